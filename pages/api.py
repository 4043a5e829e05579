"""The app's documented Python API: `/run`, `/status`, `/result`, `/watch` (gr.api endpoints; their typed
signatures are the schema `view_api()` shows, their docstrings the descriptions). The logic is serve/api.py
(no gradio); this module only names the endpoints, reads the caller's session from the request and turns an
ApiError into a gr.Error the client raises. app.py calls `build_api(registry)` inside its Blocks, with the
registry every tab uses, and hides every other event from the API page (`hide_internal_endpoints`).

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    done = client.predict(method="replay", steps_per_task=20, wait=True, api_name="/run")
    print(done["result"]["metrics"]["AP"])
"""
# no `from __future__ import annotations`: gr.api reads the return annotation as is, and a string 'dict'
# would give the API page an untyped output
from collections.abc import Iterator

import gradio as gr

from serve.api import ApiError, RunApi, RunParams
from serve.controls import train_concurrency
from serve.registry import RunRegistry

ENDPOINTS = ("run", "status", "result", "watch")       # the documented API, in the API page's order
_D = RunParams()


def _owner(request: gr.Request | None) -> str | None:
    """The caller's session: a gradio_client Client keeps one for all its calls."""
    return getattr(request, "session_hash", None)


def _endpoints(api: RunApi) -> dict:
    """The four endpoint functions bound to `api` (closures: gr.api reads their signatures and docstrings)."""

    def run(method: str = _D.method, lesson: str = _D.lesson, model: str = _D.model, seed: int = _D.seed,
            steps_per_task: int = _D.steps_per_task, lr: float = _D.lr, batch_size: int = _D.batch_size,
            eval_every: int = _D.eval_every, options: str = "", allow_download: bool = False, wait: bool = False,
            request: gr.Request = None) -> dict:
        """Start a training run in this session and return its status at once (or, with wait=True, once it
        has finished, with its summary under "result"). One run trains per session at a time.

        Args:
            method: a method key, e.g. seqft, replay, ewc, lcia (`python -m cit_core methods` lists them)
            lesson: a built-in lesson: default or classic
            model: tiny, tiny-scratch, smollm2, or a Hugging Face model id
            seed: seed of the lesson, the model init and the batch order
            steps_per_task: optimizer steps on each task
            lr: AdamW learning rate
            batch_size: examples per step
            eval_every: evaluate every task every this many steps (0 = only at task ends)
            options: the method's options as key=value text (comma-separated) or a JSON object; empty = defaults
            allow_download: allow downloading a Hub model id (a server whose operator forbids it still refuses)
            wait: return only once the run has ended, with its result
        """
        params = RunParams(method, lesson, model, seed, steps_per_task, lr, batch_size, eval_every, options,
                           allow_download)
        return _answer(lambda: api.start(params, _owner(request), wait=wait))

    def status(run_id: str, request: gr.Request = None) -> dict:
        """Where a run stands: state (training, paused, finished or failed), step, total_steps, the task being
        trained (1-based), the metrics so far, and the error of a failed run.

        Args:
            run_id: the run_id /run returned
        """
        return _answer(lambda: api.status(run_id, _owner(request)))

    def result(run_id: str, request: gr.Request = None) -> dict:
        """A finished run's results, as the command line's summary.json: tasks, acc_matrix (row 0 after task 1),
        base_scores, metrics (AP, BWT, FWT, forgetting, MAA), curves, method, seed, steps, timings; plus run_id
        and config. An error while the run has not finished.

        Args:
            run_id: the run_id /run returned
        """
        return _answer(lambda: api.result(run_id, _owner(request)))

    def watch(run_id: str, request: gr.Request = None) -> Iterator[dict]:
        """Stream a run's status (as /status) each time it moves, until it has finished, failed or stopped.

        Args:
            run_id: the run_id /run returned
        """
        try:
            yield from api.watch(run_id, _owner(request))
        except ApiError as err:
            raise gr.Error(str(err)) from None

    return dict(run=run, status=status, result=result, watch=watch)


def _answer(call):
    try:
        return call()
    except ApiError as err:
        raise gr.Error(str(err)) from None       # the client raises AppError with this message


def build_api(registry: RunRegistry) -> RunApi:
    """Register the documented endpoints in the current Blocks. /run trains on the Train tab's queue (the same
    concurrency as Play); the read-only endpoints never wait behind training."""
    api = RunApi(registry)
    fns = _endpoints(api)
    gr.api(fns["run"], api_name="run", concurrency_id="train", concurrency_limit=train_concurrency())
    for name in ENDPOINTS[1:]:
        gr.api(fns[name], api_name=name, concurrency_limit=None)
    return api


def hide_internal_endpoints(demo: gr.Blocks, keep: tuple[str, ...] = ()) -> list[str]:
    """Make every event of `demo` private except the documented endpoints and `keep` (called once the Blocks is
    built): the API page and view_api() then list only what a script should call. Returns the names shown."""
    shown = set(ENDPOINTS) | set(keep)
    for fn in demo.fns.values():
        if fn.api_name not in shown:
            fn.api_visibility = "private"
    return [fn.api_name for fn in demo.fns.values() if fn.api_visibility != "private"]


__all__ = ["build_api", "hide_internal_endpoints", "ENDPOINTS"]
