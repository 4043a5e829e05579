"""serve.api without gradio: /run's named parameters become the Train tab's RunConfig (options as text, JSON
or a dict), a run trains to its end in the background or while the caller waits, its status moves from
training to finished, its result is the summary with its run id (and outlives the registry's run), a session
trains one run at a time, and every refusal is one readable ApiError."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from serve import api as api_module
from serve.api import ApiError, RunApi, RunParams, config_of, option_dict
from serve.registry import RunRegistry
from support.handles import CountingHandle


class Log(SimpleNamespace):
    def metrics(self) -> dict:
        return {"AP": 0.5} if self.step else {}


class Handle(CountingHandle):
    """Counts steps and writes a summary at its end; `gate` lets the test decide when training goes on."""
    steps_per_call = 2

    def __init__(self, cfg, total: int = 6, gate: threading.Event | None = None):
        super().__init__(cfg, total)
        self.gate = gate
        self.log = Log(step=0, total_steps=total, task=0, tasks=["a", "b"], error=None, summary=None)

    def advance(self, steps: int) -> list:
        if self.gate is not None:
            self.gate.wait(10)               # the test decides when training may go on
        super().advance(steps)
        if self.finished:
            self.log.summary = {"tasks": ["a", "b"], "acc_matrix": [[1.0, 0.0], [0.5, 1.0]],
                                "metrics": {"AP": 0.75}, "curves": {}, "method": self.cfg.method, "steps": self.total}
        return []


def api_with(gate=None, **registry) -> RunApi:
    # a clock that stands still: no run is ever idle or past its grace period (registry.GRACE_S), so which
    # run may make way for another does not depend on how fast this machine runs the test
    return RunApi(RunRegistry(factory=lambda cfg: Handle(cfg, gate=gate),
                              **{"max_runs": 4, "clock": lambda: 100.0, **registry}))


def test_named_parameters_become_the_train_tabs_config():
    cfg = config_of(RunParams(method="replay", seed=3, steps_per_task=10, lr=1e-3, batch_size=8, eval_every=0,
                              options="per_task=9", allow_download=True, model="gpt2"))
    assert (cfg.method, cfg.train.seed, cfg.train.steps_per_task, cfg.train.lr) == ("replay", 3, 10, 1e-3)
    assert (cfg.train.batch_size, cfg.train.eval_every, cfg.lesson.name) == (8, 0, "default")
    assert cfg.method_options["per_task"] == 9 and cfg.method_options["mix_ratio"] == 0.25   # the rest: defaults
    assert cfg.model.name == "gpt2" and cfg.model.allow_download is True
    defaults = config_of(RunParams())
    assert (defaults.method, defaults.model.allow_download, defaults.train.steps_per_task) == ("seqft", False, 45)


@pytest.mark.parametrize("options", ['{"lam": 500, "batches": 2}', "lam=500, batches=2", {"lam": 500, "batches": 2}])
def test_options_as_text_json_or_a_dict(options):
    assert option_dict(options) == {"lam": 500, "batches": 2}
    cfg = config_of(RunParams(method="ewc", options=options))
    assert (cfg.method_options["lam"], cfg.method_options["batches"]) == (500, 2)


@pytest.mark.parametrize("params,message", [
    (RunParams(method="nope"), "Unknown method 'nope'"),
    (RunParams(lesson="uploaded files"), "no file is uploaded"),
    (RunParams(lr=5.0), "Learning rate must be in"),
    (RunParams(method="ewc", options="lambda=3"), "lambda"),
    (RunParams(method="ewc", options="lam"), "key=value"),
    (RunParams(method="ewc", options="{not json"), "not a JSON object"),
    (RunParams(method="ewc", options="[1, 2]"), "key=value"),
])
def test_bad_parameters_give_one_readable_line(params, message):
    with pytest.raises(ApiError, match=message):
        config_of(params)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_run_trains_in_the_background_to_its_result():
    gate = threading.Event()
    api = api_with(gate)
    started = api.start(RunParams(steps_per_task=3), owner="me")
    assert started["state"] == "training" and started["step"] == 0 and started["total_steps"] == 6
    with pytest.raises(ApiError, match="has not finished"):
        api.result(started["run_id"], "me")
    gate.set()
    wait_for(lambda: api.status(started["run_id"], "me")["state"] == "finished")
    result = api.result(started["run_id"], "me")
    assert result["run_id"] == started["run_id"] and result["acc_matrix"] == [[1.0, 0.0], [0.5, 1.0]]
    assert result["metrics"] == {"AP": 0.75} and result["config"]["train"]["steps_per_task"] == 3


def test_wait_returns_the_result_and_it_outlives_the_registrys_run():
    api = api_with()
    done = api.start(RunParams(), owner="me", wait=True)
    assert done["state"] == "finished" and done["result"]["metrics"] == {"AP": 0.75}
    api.registry.release(done["run_id"])          # evicted, or freed when the session closed
    assert api.result(done["run_id"], "me") == done["result"]
    assert api.status(done["run_id"], "me")["state"] == "finished"


def test_watch_streams_each_move_until_the_end():
    api = api_with()
    run_id = api.start(RunParams(), owner="me", wait=True)["run_id"]
    seen = list(api.watch(run_id, "me", every_s=0.0))
    assert seen[-1]["state"] == "finished" and seen[-1]["step"] == 6


def test_one_training_run_per_session_and_the_registrys_slots():
    gate = threading.Event()
    api = api_with(gate, max_runs=2)
    first = api.start(RunParams(), owner="me")
    with pytest.raises(ApiError, match="still training"):
        api.start(RunParams(), owner="me")
    api.start(RunParams(), owner="you")
    with pytest.raises(ApiError, match="Server busy"):     # the same slots as Play
        api.start(RunParams(), owner="them")
    gate.set()
    wait_for(lambda: api.status(first["run_id"], "me")["state"] == "finished")
    api.registry.release(first["run_id"])
    assert api.start(RunParams(), owner="me", wait=True)["state"] == "finished"


def test_unknown_ids_and_other_sessions_runs_on_a_public_server(monkeypatch):
    api = api_with()
    with pytest.raises(ApiError, match="No run with id"):
        api.status("nope")
    run_id = api.start(RunParams(), owner="me", wait=True)["run_id"]
    assert api.status(run_id, "someone else")["state"] == "finished"      # a local server: ids are enough
    monkeypatch.setattr(api_module, "settings", lambda: SimpleNamespace(public=True))
    with pytest.raises(ApiError, match="No run with id"):
        api.result(run_id, "someone else")
    assert api.result(run_id, "me")["run_id"] == run_id


class Boom(Handle):
    def advance(self, steps: int) -> list:
        raise RuntimeError("boom")


def test_a_crashed_run_reports_failed():
    api = RunApi(RunRegistry(factory=Boom, clock=lambda: 100.0))
    done = api.start(RunParams(), owner="me", wait=True)
    assert done["state"] == "failed" and "boom" in done["error"] and "result" not in done
    with pytest.raises(ApiError, match="failed: RuntimeError: boom"):
        api.result(done["run_id"], "me")
