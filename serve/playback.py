"""A gallery recording played back as if it were training (the Train tab's "Watch" puts it in a session's
place, so every view follows it step by step). Serving, not engine: it exists so that a web session can
hold a recording where it would hold a live run (serve.handles.RunHandle)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cit_core.events import RunLog
from cit_core.gallery import _after, entry, events


class Recording:
    """A recorded run played back as if it were training, with no model and no CPU cost.

    It has the parts of a Trainer that the app reads (`cfg`, `lesson`, `log`, `advance`, `finished`,
    `steps_done`, `run_dir`, `snapshots`) and folds the recording's events into `log` exactly as the live
    trainer emitted them: `advance(n)` stops where the trainer would have paused after n more steps, so
    a view shows the same data at the same step as it did during the recorded run. It has no weights:
    probes that need the model (connectivity, sample answers) say so.
    """

    recorded = True
    has_weights = False      # serve.handles.RunHandle: no model to probe

    def __init__(self, name: str, root: Path | None = None):
        from cit_core.config import RunConfig
        from cit_core.methods import resolve                # late: listing and loading recordings stays torch-free
        from cit_core.lessons import Lesson, load_lesson
        self.name = name
        self.entry = entry(name, root)
        self._events = list(events(name, root))
        self._next = 0
        self.cfg = resolve(RunConfig.from_dict(self.entry["config"]))
        self.log = RunLog()
        self.run_dir = None
        self.snapshots: dict = {}
        try:
            self.lesson = load_lesson(self.cfg.lesson, seed=self.cfg.train.seed)   # generated: cheap
        except (OSError, ValueError):                # a file lesson that is not on this machine
            self.lesson = Lesson("recorded", [_NamedTask(t) for t in self.entry["tasks"]])
        self.advance(0)                              # RunStarted, the base evaluation, task 1 starts

    @property
    def steps_done(self) -> int:
        return self.log.step

    @property
    def finished(self) -> bool:
        return self.log.finished

    def advance(self, steps: int) -> list:
        """Fold the events up to `steps` more optimizer steps (with the evaluations that follow them)."""
        target, out = self.log.step + steps, []
        while self._next < len(self._events) and not _after(self._events[self._next], target):
            event = self._events[self._next]
            self.log.add(event)
            out.append(event)
            self._next += 1
        return out

    def run_to_end(self) -> dict:
        self.advance(self.log.total_steps)
        return self.log.summary or {}


@dataclass
class _NamedTask:
    """Stands in for a Task of a lesson that cannot be rebuilt here: its name is all a recording needs."""
    name: str
    description: str = "recorded task (its lesson file is not on this machine)"
    train: list = field(default_factory=list)
    eval: list = field(default_factory=list)
