"""How many torch threads one run gets when none is asked for: the engine's policy, shared by the CLI and
the web app (which splits the cores between the runs that may train at once)."""
from __future__ import annotations

import os

from .settings import settings


def default_threads(concurrency: int = 1, cores: int | None = None) -> int:
    """Torch threads for one run when none is asked for (the CLI without --threads, every app run).

    Env CIT_TORCH_THREADS (a positive integer) overrides. Otherwise the cores are split between the runs
    that may train at once (`concurrency`) and one core is always left to the rest of the machine (the
    browser drawing the plots, another run, the OS): max(1, min(cores // concurrency, cores - 1)), so
    1 thread on a 2-core machine. Why (bench/thread_policy.py, bench/RESULTS.md "Thread policy"): once
    the OpenMP teams outnumber the cores, libgomp throttles them and a run takes many times as long
    (2 threads beside a second run on 2 cores: about 10x the idle time), while 1 thread costs about 1.5x
    on an idle machine.
    """
    if settings().torch_threads:
        return settings().torch_threads
    cores = cores or os.cpu_count() or 1
    return max(1, min(cores // max(1, concurrency), cores - 1))
