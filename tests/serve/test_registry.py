"""RunRegistry: ids, capacity, idle eviction (fake clock), release, per-run locks."""
from __future__ import annotations

import sys
import threading

import pytest

from serve.registry import BROWSER_TTL_S, GRACE_S, RegistryFull, RunRegistry


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(max_runs=2, ttl=60.0):
    clock = Clock()
    built = []

    def factory(cfg):
        built.append(cfg)
        return {"trainer-for": cfg}

    return RunRegistry(max_runs, ttl, clock=clock, factory=factory), clock, built


def test_create_get_release():
    reg, _, built = make()
    rid = reg.create("cfg-a", owner="s1")
    assert isinstance(rid, str) and 6 <= len(rid) <= 12
    run = reg.get(rid)
    assert run.trainer == {"trainer-for": "cfg-a"} and run.cfg == "cfg-a" and run.owner == "s1"
    assert built == ["cfg-a"]
    assert reg.release(rid) is True
    assert reg.get(rid) is None
    assert reg.release(rid) is False
    assert reg.get(None) is None and reg.get("nope") is None


def drive(run):
    """What a Play loop does to the run it drives (serve.session): claim it with the play token."""
    run.play_token += 1
    run.streaming = run.play_token
    return run


def test_full_raises_with_count_and_release_frees_a_slot():
    reg, _, built = make(max_runs=2)
    a = reg.create("a")
    drive(reg.get(a)), drive(reg.get(reg.create("b")))
    with pytest.raises(RegistryFull) as info:
        reg.create("c")
    message = str(info.value)
    assert "busy" in message and "2 runs are training" in message
    assert built == ["a", "b"], "a full registry must not build a trainer"
    reg.release(a)
    reg.create("c")
    assert len(reg) == 2


def test_idle_runs_are_evicted_after_ttl_and_touch_keeps_them():
    reg, clock, _ = make(max_runs=2, ttl=60)
    a = reg.create("a")
    b = reg.create("b")
    clock.now += 50
    assert reg.get(a) is not None          # touched at t+50
    clock.now += 30                        # b idle 80 s > 60, a idle 30 s
    c = reg.create("c")                    # full, but b is evicted first
    assert reg.get(b) is None
    assert reg.get(a) is not None and reg.get(c) is not None
    clock.now += 61
    assert sorted(reg.evict_idle()) == sorted([a, c])
    assert len(reg) == 0


def test_eviction_skips_a_run_being_advanced_and_bumps_play_token():
    reg, clock, _ = make(max_runs=2, ttl=10)
    a = reg.create("a")
    b = reg.create("b")
    run_a, run_b = reg.get(a), reg.get(b)
    clock.now += 100
    with run_a.lock:
        assert reg.evict_idle() == [b]
    assert run_b.play_token == 1
    assert reg.get(a) is not None


def test_failed_build_frees_its_reserved_slot():
    def factory(cfg):
        if cfg == "bad":
            raise ValueError("bad file")
        return object()

    reg = RunRegistry(1, 60, factory=factory)
    with pytest.raises(ValueError, match="bad file"):
        reg.create("bad")
    reg.create("good")                     # the failed build did not keep the only slot
    assert len(reg) == 1


def test_release_owner_and_unique_ids():
    reg, _, _ = make(max_runs=50)
    ids = {reg.create(i, owner="s1" if i % 2 else "s2") for i in range(40)}
    assert len(ids) == 40
    assert reg.release_owner("s1") == 20
    assert len(reg) == 20
    assert reg.release_owner(None) == 0


def test_concurrent_creates_respect_the_cap():
    gate = threading.Barrier(6)

    def factory(cfg):
        return cfg

    reg = RunRegistry(3, 60, factory=factory, max_held=3)      # new runs never make way (GRACE_S)
    results = []

    def worker(i):
        gate.wait()
        try:
            results.append(reg.create(i))
        except RegistryFull:
            results.append(None)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 3
    assert len(reg) == 3


def test_registry_imports_no_gradio_plotly_or_torch():
    import subprocess
    code = ("import sys, serve.registry; "
            "bad = [m for m in ('gradio', 'plotly', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- sharing a room (issue 14) ------------------------------------------------------------------
def test_a_finished_or_paused_run_gives_its_training_slot_back_at_once():
    """A run nothing drives holds no slot: a new session trains while the finished run's tab stays open."""
    reg, _, _ = make(max_runs=1)
    a = drive(reg.get(reg.create("a", owner="s1")))
    with pytest.raises(RegistryFull, match="1 runs are training"):
        reg.create("b", owner="s2")
    a.streaming = None                                 # its loop ended: finished or paused
    b = reg.create("b", owner="s2")
    assert a.id in reg and b in reg and reg.training() == 0


def test_parked_runs_make_way_browserless_first_then_least_recently_used():
    reg, clock, _ = make(max_runs=4, ttl=3600)
    reg.max_held = 2
    reg.heartbeat("browser")
    kept = reg.create("a", owner="browser")
    squat = reg.create("b", owner="script")
    clock.now += GRACE_S + 1
    reg.get(squat)                                     # used more recently, but nobody's page is open
    c = reg.create("c", owner="other")
    assert squat not in reg and kept in reg and c in reg
    clock.now += GRACE_S + 1
    reg.heartbeat("browser"), reg.heartbeat("other")
    reg.get(c)
    reg.create("d", owner="third")                     # both have browsers: the least recently used goes
    assert kept not in reg and c in reg


def test_a_scripted_session_without_heartbeat_does_not_block_a_browser_session():
    reg, clock, _ = make(max_runs=1)
    squatter = drive(reg.get(reg.create("a", owner="script")))
    clock.now += GRACE_S + 1
    reg.heartbeat("visitor")
    visitor = reg.create("b", owner="visitor")
    assert squatter.id not in reg and visitor in reg and not squatter.is_training()   # its loop stops
    drive(reg.get(visitor))
    clock.now += GRACE_S + 1
    with pytest.raises(RegistryFull):                  # a browser's training run is never taken
        reg.create("c", owner="script")


def test_a_heartbeat_lasts_browser_ttl_and_unload_forgets_it():
    reg, clock, _ = make()
    reg.heartbeat("s1")
    assert reg.has_browser("s1") and not reg.has_browser("s2") and not reg.has_browser(None)
    clock.now += BROWSER_TTL_S + 1
    assert not reg.has_browser("s1")
    reg.heartbeat("s1")
    reg.release_owner("s1")
    assert not reg.has_browser("s1")


def test_polling_does_not_keep_a_run_from_being_idle():
    reg, clock, _ = make(ttl=60)
    a = reg.create("a")
    for _ in range(5):
        clock.now += 20
        assert reg.peek(a) is not None                 # a status poll
    assert a in reg.evict_idle()


def test_a_second_live_run_in_one_session_is_refused():
    reg, clock, _ = make(max_runs=8)
    reg.per_session = 1
    first = drive(reg.get(reg.create("a", owner="s1")))
    with pytest.raises(RegistryFull, match="already has 1 run"):
        reg.create("b", owner="s1")
    swap = reg.create("b", owner="s1", replaces=first.id)      # Reset: the new run replaces the old
    reg.release(first.id)
    first = reg.get(swap)                              # parked: a new run of the session takes its place
    third = reg.create("c", owner="s1")
    assert swap not in reg and third in reg and reg.create("d", owner="s2")


def test_a_released_trainer_is_freed_at_once_without_the_cyclic_gc(tmp_path, monkeypatch):
    import gc
    import weakref

    from cit_core.trainer import Trainer
    from support.lessons import small_lesson
    from cit_core.config import RunConfig, TrainConfig
    cfg = RunConfig(train=TrainConfig(steps_per_task=3, batch_size=4, eval_every=0))
    reg = RunRegistry(2, 60, factory=lambda c: Trainer(c, lesson=small_lesson(2, 16, 4), run_dir=tmp_path / "r"))
    run = reg.get(reg.create(cfg))
    run.trainer.advance(2)
    trainer, rid = weakref.ref(run.trainer), run.id
    del run
    gc.disable()
    try:
        reg.release(rid)
        assert trainer() is None, "the trainer waits for the cyclic GC (a reference cycle)"
    finally:
        gc.enable()
