"""The web app's torch work, all on a few long-lived threads.

Why: PyTorch's OpenMP runtime (libgomp on Linux) gives every thread that starts parallel work a team of
worker threads of its own, and once the teams together outnumber the cores it throttles their
spin-waiting to almost nothing. Gradio runs each event, and each step of a generator, on whichever
thread of its pool is free, so without this every Play chunk, probe or embedding could bring another team.
Measured on the 2-core machine: the tiny model's training steps took 1.85x as long in a thread once
another thread had used torch (bench/RESULTS.md, "One torch thread"), and a run driven through the app
took 1.4x as long as the same run on the command line.

`run(fn, ...)` calls fn on one of `workers` threads (call `configure` once at start; the app gives it the
number of runs that may train at once, each with cores // workers torch threads, so that all the teams
together match the cores). A call from inside a worker runs inline. The command line and the tests call
the trainer directly and need none of this.
"""
from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_workers = 1
_local = threading.local()


def configure(workers: int) -> None:
    """Set the number of compute threads (before the first `run`; later calls only resize an unused pool)."""
    global _workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with _lock:
        _workers = workers


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_workers, thread_name_prefix="torch",
                                       initializer=_mark_worker)
        return _pool


def _mark_worker() -> None:
    _local.worker = True


def in_worker() -> bool:
    return getattr(_local, "worker", False)


def run(fn, *args, **kwargs):
    """fn(*args, **kwargs) on a compute thread, in the caller's context (so a web request's progress bar
    still reaches it); its result, or its exception re-raised here."""
    if in_worker():
        return fn(*args, **kwargs)
    context = contextvars.copy_context()
    return _executor().submit(context.run, fn, *args, **kwargs).result()


__all__ = ["configure", "run", "in_worker"]
