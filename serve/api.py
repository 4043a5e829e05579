"""The documented web API's logic (no gradio here): start a run from named parameters, ask how far it got,
read its result, follow it to the end. pages/api.py publishes these as `/run`, `/status`, `/result` and
`/watch`; a script calls them with gradio_client (README, "Python API"; docs/api_example.py).

A run started here is an ordinary app run: it is made in the app's RunRegistry (the same training slots,
memory budget and per-session limit as Play), from the same controls -> RunConfig path as the Train tab
(serve/controls.py, and serve.session.check_work: the same checks and public-server caps), advanced by a
serve.session.Session Play loop (turns on the CPU from the registry's scheduler, like every Play), and saved
in the run store. Each caller (a gradio_client Client is one session) trains one run at a time; a second
/run while the first still trains is refused rather than stopping the first. A script's session has no
browser, so when every training slot is taken its training run may make way for a browser's (registry.py,
"Sharing a room"): its status then says "failed" and why. Results are plain dicts: a status (`state`:
training / paused / finished / failed, `step`, `total_steps`, ...) and, once finished, the run's
summary.json content (tasks, acc_matrix, metrics, curves, ...) plus its `run_id`. An ended run's status and
result outlive the registry's run (the last KEEP_RESULTS are kept).
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from cit_core.config import ConfigError, RunConfig, TrainConfig
from cit_core.methods import resolve
from cit_core.settings import settings

from .controls import Controls, UserError, build_config, option_fields, parse_options, user_message
from .registry import Run, RunRegistry
from .session import Session, check_work

KEEP_RESULTS = 256          # finished runs' results kept after the registry frees the runs
WATCH_EVERY_S = 1.0         # /watch looks at the run this often (and says something only when it moved)
STATUS_LOCK_S = 0.2         # /status waits at most this long for a chunk in flight, then reads anyway
STATES = ("training", "paused", "finished", "failed")
_TRAIN, _RUN = TrainConfig(), RunConfig()


class ApiError(ValueError):
    """A request the API cannot serve; the message says why and is shown to the caller as is."""


@dataclass(frozen=True)
class RunParams:
    """/run's named parameters and their defaults (RunConfig's own defaults)."""
    method: str = _RUN.method
    lesson: str = "default"
    model: str = "tiny"
    seed: int = _TRAIN.seed
    steps_per_task: int = _TRAIN.steps_per_task
    lr: float = _TRAIN.lr
    batch_size: int = _TRAIN.batch_size
    eval_every: int = _TRAIN.eval_every
    options: str | dict = field(default="")
    allow_download: bool = False


def option_dict(options) -> dict:
    """The method's options from `key=value, ...` text (as the CLI's --option), a JSON object, or a dict."""
    if isinstance(options, dict):
        return dict(options)
    text = (options or "").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ApiError(f"options: not a JSON object ({err})") from None
        if not isinstance(data, dict):
            raise ApiError("options: a JSON object is expected")
        return data
    try:
        return parse_options(text)
    except UserError as err:
        raise ApiError(str(err)) from None


def config_of(params: RunParams) -> RunConfig:
    """The run's config, built by the Train tab's path (serve.controls.build_config: the same checks and
    caps), the method options then set from `params.options` and checked by the method's Options."""
    given = option_dict(params.options)
    try:
        controls = Controls(lesson=params.lesson, method=params.method, model=params.model, seed=params.seed,
                            steps_per_task=params.steps_per_task, lr=params.lr, batch_size=params.batch_size,
                            eval_every=params.eval_every, allow_download=bool(params.allow_download),
                            # option fields at their defaults here: the options themselves are set below
                            option_values={f.key: f.default for f in option_fields(params.method)})
        cfg = build_config(controls)
        # options as values, not text: a list or a string with a comma would not survive the text box's format
        cfg = resolve(replace(cfg, method_options=given))
        check_work(cfg)                 # a public server's cap on one run's steps, as for Play
        return cfg
    except Exception as err:            # noqa: BLE001 - every refusal becomes one readable line
        raise ApiError(user_message(err)) from err


def _summary_of(run: Run) -> dict | None:
    summary = run.trainer.log.summary
    return None if summary is None else {"run_id": run.id, **summary, "config": run.cfg.to_dict()}


class RunApi:
    """The API over one RunRegistry (the app's: pages/api.py gets it from app.py)."""

    def __init__(self, registry: RunRegistry, keep: int = KEEP_RESULTS):
        self.registry, self.keep = registry, keep
        self._lock = threading.Lock()
        # ended runs: id -> (owner, last status, result or None), kept after the registry lets the run go
        self._ended: OrderedDict[str, tuple[str | None, dict, dict | None]] = OrderedDict()
        self._driving: set[str] = set()        # runs a driver loop advances or is about to
        self._latest: dict[str | None, str] = {}    # owner -> its latest API run

    # -- starting --------------------------------------------------------------------------------
    def start(self, params: RunParams, owner: str | None = None, wait: bool = False) -> dict:
        """Make the run and start training it; its status at once, or (wait=True) once it has ended, then
        with its `result` too. ApiError when it cannot start (bad parameters, server busy, model refused)."""
        cfg = config_of(params)
        self._check_one_at_a_time(owner)
        try:
            run_id = self.registry.create(cfg, owner=owner)
        except Exception as err:        # noqa: BLE001 - RegistryFull, ModelUnavailable, a lesson problem
            raise ApiError(user_message(err)) from err
        run = self.registry.get(run_id)
        if run is None:                  # released between create and get: practically never
            raise ApiError("The run was freed before it started; call /run again.")
        with self._lock:
            self._driving.add(run_id)
            self._latest[owner] = run_id
        # `first` makes the loop claim the run (and so a training slot) here, before this call returns: a
        # run nothing drives yet is parked, and a parked run may be dropped to make room for another
        loop = Session(self.registry, run.id, owner).play(run, lambda r, over, moved: None, first=lambda r: None)
        next(loop)
        if wait:
            self._drive(run, loop)
            out = self.status(run_id, owner)
            kept = self._ended.get(run_id)
            return {**out, "result": kept[2]} if kept and kept[2] is not None else out
        threading.Thread(target=self._drive, args=(run, loop), name=f"api-run-{run_id}", daemon=True).start()
        return self.status(run_id, owner)

    def _check_one_at_a_time(self, owner: str | None) -> None:
        """Like Play, a session trains one run at a time: refuse a second while the first trains."""
        busy = self._latest.get(owner)
        if busy and busy in self._driving:
            raise ApiError(f"This session's run {busy} is still training: wait for it (/watch) or start the "
                           "next run from another client (each gradio_client Client is its own session).")

    def _drive(self, run: Run, loop: Iterator) -> None:
        """Run the Play loop to its end (a chunk at a time on the compute threads, taking turns with the other
        runs), then keep the run's status and result. In a thread of its own, or the caller's for wait=True."""
        try:
            for _ in loop:
                pass
            self._remember(run)
        finally:
            with self._lock:
                self._driving.discard(run.id)

    def _remember(self, run: Run) -> None:
        """Keep an ended run's status and result; a run the registry dropped mid-way is kept as failed."""
        if self.registry.peek(run.id) is None and not (run.failure or run.trainer.finished):
            status = {**self._status_of(run), "state": "failed",
                      "error": "the server stopped this run to make room for others (every training slot was "
                               "taken, and a script's session yields to a browser's): call /run again later"}
        else:
            status = self._status_of(run)
        if status["state"] not in ("finished", "failed"):
            return                      # paused by someone else's Pause: still in the registry, read live
        with self._lock:
            self._ended[run.id] = (run.owner, status, _summary_of(run))
            while len(self._ended) > self.keep:
                self._ended.popitem(last=False)

    # -- reading ---------------------------------------------------------------------------------
    def _find(self, run_id: str, owner: str | None) -> tuple[Run | None, tuple | None]:
        """(the live run, what was kept of it once it ended); ApiError when neither exists for this caller.
        On a public server a session sees only its own runs (cit_core.settings: public)."""
        run, kept = self.registry.peek(run_id), self._ended.get(run_id)    # peek: reading is not using
        run_owner = run.owner if run is not None else kept[0] if kept else None
        if (run is None and kept is None) or (settings().public and run_owner != owner):
            raise ApiError(f"No run with id {str(run_id)[:40]!r}: start one with /run (a run nobody looked at "
                           "for a while is freed; its files stay in the run store).")
        if run is not None and run.recorded:
            raise ApiError(f"Run {run_id} is a recording played back on the Train tab, not an API run.")
        return run, kept

    def status(self, run_id: str, owner: str | None = None) -> dict:
        """Where the run stands: state, step / total_steps, the task being trained, metrics so far."""
        run, kept = self._find(run_id, owner)
        if kept is not None:
            return dict(kept[1])
        # a chunk in flight holds the run's lock for up to a couple of seconds; a status need not wait for it
        # (it reads plain numbers, then those from before the chunk)
        got = run.lock.acquire(timeout=STATUS_LOCK_S)
        try:
            return self._status_of(run)
        finally:
            if got:
                run.lock.release()

    def _status_of(self, run: Run) -> dict:
        log = run.trainer.log
        failure = run.failure or log.error
        if failure:
            state = "failed"
        elif run.trainer.finished:
            state = "finished"
        elif run.id in self._driving or run.is_training():
            state = "training"
        else:
            state = "paused"
        return {"run_id": run.id, "state": state, "step": log.step, "total_steps": log.total_steps,
                "task": max(log.task, 0) + 1 if log.tasks else 0, "tasks": list(log.tasks), "method": run.cfg.method,
                "metrics": dict(log.metrics()), "error": failure}

    def result(self, run_id: str, owner: str | None = None) -> dict:
        """The finished run's summary (summary.json's content) with its run_id and config; ApiError before."""
        now = self.status(run_id, owner)
        if now["state"] == "failed":
            raise ApiError(f"Run {run_id} failed: {now['error']}")
        kept, run = self._ended.get(run_id), self.registry.peek(run_id)
        # a run that has just finished may not be kept yet: its summary is read from the live run then
        summary = kept[2] if kept is not None else _summary_of(run) if run is not None else None
        if now["state"] != "finished" or summary is None:
            raise ApiError(f"Run {run_id} has not finished (step {now['step']} of {now['total_steps']}, "
                           f"{now['state']}): call /watch to follow it, or /result again later.")
        return summary

    def watch(self, run_id: str, owner: str | None = None, every_s: float = WATCH_EVERY_S) -> Iterator[dict]:
        """The run's status now and each time it moves, until it has finished, failed or stopped."""
        last = None
        while True:
            now = self.status(run_id, owner)
            key = (now["state"], now["step"])
            if key != last:
                yield now
                last = key
            if now["state"] != "training":
                return
            time.sleep(every_s)


__all__ = ["RunApi", "RunParams", "ApiError", "config_of", "option_dict", "STATES", "KEEP_RESULTS",
           "WATCH_EVERY_S"]
