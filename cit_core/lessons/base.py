"""Plain data types for a lesson: a sequence of instruction tasks."""
from __future__ import annotations

from dataclasses import dataclass, field

SCORERS = ("exact", "label", "rougeL")


@dataclass(frozen=True)
class Example:
    instruction: str
    input: str
    output: str


@dataclass
class Task:
    """One instruction task: training examples, disjoint held-out examples, and how to score."""

    name: str
    train: list[Example]
    eval: list[Example]
    scorer: str = "exact"          # "exact" (normalised exact match), "label" (closed label set), "rougeL"
    description: str = ""
    labels: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.scorer not in SCORERS:
            raise ValueError(f"task {self.name!r}: scorer must be one of {SCORERS}, got {self.scorer!r}")
        if not self.train:
            raise ValueError(f"task {self.name!r}: no training examples")
        if not self.eval:
            raise ValueError(f"task {self.name!r}: no held-out (eval) examples")

    @property
    def instructions(self) -> list[str]:
        """Distinct instruction strings of the task, in first-seen order."""
        return list(dict.fromkeys(ex.instruction for ex in self.train + self.eval))


def _duplicates(names) -> list[str]:
    """Names that occur more than once, sorted. One pass over a set: `names.count(n)` per name was
    quadratic, and a 20,000-task upload spent half a minute here (issue 14)."""
    seen: set[str] = set()
    dupes: set[str] = set()
    for name in names:
        (dupes if name in seen else seen).add(name)
    return sorted(dupes)


@dataclass
class Lesson:
    name: str
    tasks: list[Task]
    description: str = ""

    def __post_init__(self):
        dupes = _duplicates(t.name for t in self.tasks)
        if dupes:
            raise ValueError(f"lesson {self.name!r}: duplicate task names {dupes}")
        if not self.tasks:
            raise ValueError(f"lesson {self.name!r}: no tasks")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]
