"""The one thing a web session holds and every view reads: a run handle.

A live `cit_core.trainer.Trainer`, a ZeroGPU `serve.chunks.ChunkedTrainer` and a played-back gallery
`serve.playback.Recording` are the same thing to a view. This protocol says what that thing is, so that
pages and the session ask `handle.has_weights` instead of probing attributes with getattr."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RunHandle(Protocol):
    cfg: Any                 # cit_core.config.RunConfig
    lesson: Any              # cit_core.lessons.Lesson (a recording of a missing file lesson: named tasks only)
    log: Any                 # cit_core.events.RunLog, folded up to the handle's current step
    run_dir: Path | None     # where the run's files are written; None for a recording or an unsaved run
    has_weights: bool        # False for a recording: probes that need the model say so instead
    steps_per_call: int      # optimizer steps one Play chunk asks for (a ZeroGPU call trains more: each has a fixed cost)

    @property
    def finished(self) -> bool: ...

    @property
    def steps_done(self) -> int: ...

    def advance(self, steps: int) -> list:
        """Train (or play back) up to `steps` more optimizer steps; the events emitted."""
        ...

    def close(self) -> None:
        """The run is released: nothing advances it again (a live trainer frees its model at once)."""
        ...


__all__ = ["RunHandle"]
