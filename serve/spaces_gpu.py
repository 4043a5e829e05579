"""Hugging Face Spaces helpers: the ZeroGPU wrapper and sizing from the hardware found.

ZeroGPU runs a `@spaces.GPU` function in a forked worker process: its arguments and its return value
cross the process boundary by pickle, and whatever the function changes in place stays in the worker.
A training chunk on ZeroGPU must therefore take the training state in and return it: the app then
trains through chunks.ChunkedTrainer, each advance one call of `zero_gpu_train_chunk()`. Off ZeroGPU
(no `spaces` package, or SPACES_ZERO_GPU unset) everything here is a no-op.
"""
from __future__ import annotations

import importlib

from cit_core.settings import settings


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space: the platform sets SPACES_ZERO_GPU and ships the `spaces` package."""
    if not settings().zero_gpu:
        return False
    try:
        importlib.import_module("spaces")
    except ImportError:
        return False
    return True


def gpu_chunk(fn, duration: int = 60):
    """`spaces.GPU(duration=duration)(fn)` on a ZeroGPU Space, else `fn` itself (unchanged, same object).

    duration: the seconds ZeroGPU reserves per call; a shorter one gets a visitor served sooner, so a
    chunk should be a few optimizer steps, not a whole run.
    """
    if not on_zero_gpu():
        return fn
    spaces = importlib.import_module("spaces")
    return spaces.GPU(duration=duration)(fn)


_zero_gpu_chunk = None


def zero_gpu_train_chunk():
    """chunks.train_chunk wrapped in spaces.GPU once per process (app.py asks at start-up, as ZeroGPU
    wants its functions decorated before the app launches). Env CIT_GPU_DURATION: seconds per call."""
    global _zero_gpu_chunk
    if _zero_gpu_chunk is None:
        from .chunks import ensure_key, train_chunk
        ensure_key()                 # before spaces.GPU starts a worker: the workers inherit the key
        _zero_gpu_chunk = gpu_chunk(train_chunk, duration=settings().gpu_duration)
    return _zero_gpu_chunk


def train_concurrency_for(cpus: int | None, cuda: bool) -> int:
    """Training events that may run at once on this hardware.

    CPU: half the cores (each run gets 2 torch threads: measured fastest on a 2-core machine, README), so a
    CPU-basic Space (2 vCPU) trains one run at a time. CUDA: runs share the GPU and each one's Python loop
    needs about one core, so up to 4 at once where the cores allow [not measured on a GPU].
    """
    cpus = cpus or 2
    if cuda:
        return max(1, min(4, cpus))
    return max(1, cpus // 2)


def queue_size_for(concurrency: int) -> int:
    """Pending events the queue accepts: 64 for one training slot (a 30-person workshop, each with a Play
    waiting and a view polling) and 32 more per further slot."""
    return 64 + 32 * (max(1, concurrency) - 1)


__all__ = ["on_zero_gpu", "gpu_chunk", "zero_gpu_train_chunk", "train_concurrency_for", "queue_size_for"]
