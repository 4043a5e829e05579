"""The app's torch work runs on the compute threads (serve/compute.py), whatever thread asks for it."""
from __future__ import annotations

import contextvars
import threading

import pytest

from serve import compute
from serve.registry import RunRegistry
from serve.session import advance

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_run_uses_a_compute_thread_keeps_the_context_and_reraises():
    WHO.set("request-7")
    name, who = compute.run(lambda: (threading.current_thread().name, WHO.get()))
    assert name.startswith("torch") and name != threading.current_thread().name
    assert who == "request-7"
    with pytest.raises(ZeroDivisionError):
        compute.run(lambda: 1 / 0)


def test_run_from_many_threads_lands_on_the_same_few_threads_and_nests_inline():
    seen, lock = set(), threading.Lock()

    def note():
        with lock:
            seen.add(threading.get_ident())
        return compute.run(threading.get_ident)       # nested: runs inline, no deadlock on one worker

    results = []
    threads = [threading.Thread(target=lambda: results.append(compute.run(note))) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and set(results) == seen
    assert len(seen) <= compute._workers                # 12 callers, at most `workers` threads did the work


class _SpyTrainer:
    """Stands in for a Trainer: records which thread advances it."""

    def __init__(self):
        self.threads, self.finished, self.steps = [], False, 0

    def advance(self, n):
        self.threads.append(threading.current_thread().name)
        self.steps += n
        self.finished = self.steps >= 10
        return []


def test_the_train_tab_advances_live_runs_on_a_compute_thread_and_recordings_inline():
    registry = RunRegistry(max_runs=2, idle_ttl_s=60, factory=lambda cfg: _SpyTrainer())
    run = registry.get(registry.create(object()))
    advance(run, 5)                                       # one compute call, stepping one step at a time
    assert run.trainer.threads == [run.trainer.threads[0]] * 5 and run.trainer.threads[0].startswith("torch")
    run.recorded = True                                   # a playback has no torch work: it stays here
    advance(run, 5)
    assert run.trainer.threads[5:] == [threading.current_thread().name]
