"""RunRegistry: ids, capacity, idle eviction (fake clock), release, per-run locks."""
from __future__ import annotations

import sys
import threading

import pytest

from serve.registry import RegistryFull, RunRegistry


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


def test_full_raises_with_count_and_release_frees_a_slot():
    reg, _, built = make(max_runs=2)
    a = reg.create("a")
    reg.create("b")
    with pytest.raises(RegistryFull) as info:
        reg.create("c")
    message = str(info.value)
    assert "busy" in message and "2 runs are active" in message
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

    reg = RunRegistry(3, 60, factory=factory)
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
