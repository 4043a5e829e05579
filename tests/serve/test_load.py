"""Many users at once: 4 gradio_client sessions play concurrently against one app on 127.0.0.1.

All finish; each session's summary equals a solo Trainer run of the same config (seeds differ per
session, so results leaking between sessions would show); a fifth session still gets a run, since finished
runs hold no training slot. The registry's memory budget refuses runs with "Server busy" when no parked run
can make way. bench/load.py is the long version; bench/workshop.py the room of 30.
"""
from __future__ import annotations

import time

import pytest

from support.load import BASE, differences, play_sessions, running_app, session_run, solo_summary
from cit_core.config import ModelConfig, RunConfig, TrainConfig
from serve.registry import MB, RegistryFull, RunRegistry, estimate_run_bytes

SESSIONS = 4
SHORT = dict(BASE, steps_per_task=8, eval_every=0, batch_size=8)


@pytest.fixture(scope="module")
def app():
    with running_app(SESSIONS) as (url, registry):
        yield url, registry


def test_four_sessions_play_at_once_without_cross_talk(app):
    url, registry = app
    started = time.monotonic()
    results = play_sessions(url, [dict(SHORT, seed=i) for i in range(SESSIONS)])
    assert [r.get("error") for r in results] == [None] * SESSIONS, results
    assert all("40 / 40" in r["status"] for r in results), [r["status"] for r in results]
    assert len({r["session_hash"] for r in results}) == SESSIONS and len(registry) == SESSIONS

    seen_seeds = []
    for r in results:
        run = session_run(registry, r["session_hash"])
        seen_seeds.append(run.cfg.train.seed)
        summary = run.trainer.log.summary
        assert summary is not None and run.trainer.finished
        solo = solo_summary(run.cfg)
        assert differences(summary, solo) == [], (run.cfg.train.seed, differences(summary, solo))
        assert summary["acc_matrix"] == solo["acc_matrix"] and len(summary["acc_matrix"]) == 5
    assert sorted(seen_seeds) == list(range(SESSIONS))
    # different seeds give different runs: equal summaries above are not equal by accident
    summaries = [session_run(registry, r["session_hash"]).trainer.log.summary for r in results]
    assert len({str(s["curves"]) + str(s["metrics"]) for s in summaries}) > 1

    # every slot was used, but the runs finished: with their tabs still open they hold no training slot, so
    # one more session gets a run (issue 14: it used to get "Server busy" until a tab closed)
    extra = results[0]["client"].__class__(url, verbose=False)
    status = extra.predict(**dict(SHORT, seed=9), api_name="/reset")[0]
    assert "step 0 / 40" in status and "Server busy" not in status and "Traceback" not in status, status
    assert len(registry) == SESSIONS + 1
    # a liveness bound, not a speed goal (bench/load.py measures speed): generous for a busy machine
    assert time.monotonic() - started < 600


# ---------------------------------------------------------------------------------------------
# The memory estimate and budget (fake trainers: nothing is built)


def test_estimate_matches_a_hand_count_of_the_tiny_model():
    """Parameters from the config alone equal what the built model has."""
    from cit_core.model import build_tiny
    cfg = RunConfig()
    model, _ = build_tiny(cfg.model, seed=0)
    params = sum(p.numel() for p in model.parameters())
    from serve.registry import RUN_OVERHEAD_BYTES, TINY_VOCAB, TYPICAL_TOKENS, _shape
    assert _shape(cfg.model)[-1] == params
    h, n, a, i, b, t = 128, 4, 4, 384, cfg.train.batch_size, min(cfg.train.max_len, TYPICAL_TOKENS)
    activations = b * t * (n * (8 * h + 3 * i + a * t) + 3 * TINY_VOCAB)
    assert estimate_run_bytes(cfg) == 4 * (6 * params + activations) + RUN_OVERHEAD_BYTES
    # bigger settings cost more; the pretrained model far more
    assert estimate_run_bytes(RunConfig(train=TrainConfig(batch_size=64))) > estimate_run_bytes(cfg)
    assert estimate_run_bytes(RunConfig(model=ModelConfig(name="smollm2"))) > 50 * estimate_run_bytes(cfg)


def _registry(budget_mb: float, max_runs: int = 8):
    cfg = RunConfig()
    need = estimate_run_bytes(cfg)
    reg = RunRegistry(max_runs, 60, factory=lambda c: object(), mem_budget_bytes=budget_mb * MB)
    return reg, cfg, need


def test_memory_budget_refuses_with_a_busy_message():
    reg, cfg, need = _registry(0)
    reg.mem_budget = 2.5 * need                    # room for two runs, not three
    a = reg.create(cfg)
    for run_id in (a, reg.create(cfg)):            # both train (a Play loop drives them): neither makes way
        run = reg.get(run_id)
        run.play_token += 1
        run.streaming = run.play_token
    assert reg.mem_used() == 2 * need
    with pytest.raises(RegistryFull) as info:
        reg.create(cfg)
    msg = str(info.value)
    assert msg.startswith("Server busy: 2 runs are training") and f"{need / MB:,.0f} MB" in msg, msg
    assert "Try again in a minute" in msg and len(reg) == 2
    reg.release(a)                                 # freeing a run frees its share of the budget
    reg.create(cfg)
    assert len(reg) == 2 and reg.mem_used() == 2 * need


def test_a_run_bigger_than_the_whole_budget_says_so():
    reg, cfg, need = _registry(1)                  # 1 MB: no run fits even on an empty server
    with pytest.raises(RegistryFull, match="more than this server's memory budget of 1 MB"):
        reg.create(cfg)
    assert len(reg) == 0 and reg.mem_used() == 0


def test_failed_build_gives_its_memory_back():
    def broken(cfg):
        raise ValueError("bad lesson")
    reg = RunRegistry(4, 60, factory=broken, mem_budget_bytes=10 * estimate_run_bytes(RunConfig()))
    with pytest.raises(ValueError):
        reg.create(RunConfig())
    assert reg.mem_used() == 0


def test_budget_from_env(monkeypatch):
    from serve.registry import default_mem_budget
    monkeypatch.setenv("CIT_MEM_BUDGET_MB", "300")
    assert default_mem_budget() == 300 * MB and RunRegistry(2, 60, factory=lambda c: 0).mem_budget == 300 * MB
    monkeypatch.setenv("CIT_MEM_BUDGET_MB", "0")
    assert default_mem_budget() == float("inf")
    monkeypatch.delenv("CIT_MEM_BUDGET_MB")
    assert 0 < default_mem_budget() < float("inf")


def test_train_tab_shows_the_busy_message_as_is():
    from serve.controls import user_message
    err = RegistryFull("Server busy: 3 runs are active (the limit is 3). Try again in a minute.")
    assert user_message(err) == str(err)
