"""Frozen event records the trainer emits, and RunLog, which folds them into plain data.

The CLI, the tests and the UI consume the same stream; pages read only RunLog (never the model).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields

from . import metrics


@dataclass(frozen=True)
class RunStarted:
    tasks: tuple[str, ...]
    method: str
    steps_per_task: int
    total_steps: int
    config: dict


@dataclass(frozen=True)
class TaskStarted:
    task: int
    step: int
    info: dict = field(default_factory=dict)   # method decisions (replay sizes, groups, ...)


@dataclass(frozen=True)
class StepLogged:
    task: int
    step: int            # global step, 1-based
    loss: float          # total loss that was back-propagated
    scalars: dict        # method terms (e.g. "ce", "penalty")
    tokens: int          # non-padding tokens in the batch
    seconds: float       # wall time of this step


@dataclass(frozen=True)
class Evaluated:
    task: int            # task being trained (-1 = before any training)
    step: int
    scores: tuple[float, ...]   # one score per task of the lesson, seen or not
    seconds: float = 0.0
    general: float | None = None   # the general suite (what the base knew); None when not evaluated


@dataclass(frozen=True)
class TaskEnded:
    task: int
    step: int
    acc_row: tuple[float, ...]  # row `task` of the accuracy matrix
    info: dict = field(default_factory=dict)   # what the method's after_task reported
    general: float | None = None   # the general suite's score in that row (None when not evaluated)


@dataclass(frozen=True)
class CoefficientsLogged:
    task: int
    step: int
    values: dict         # tensor or layer name -> value


@dataclass(frozen=True)
class Checkpointed:
    task: int
    ref: str             # where the task-end weights are: a path relative to the run directory


@dataclass(frozen=True)
class DriftLogged:
    task: int
    values: dict         # layer (or adapter) name -> ||theta_end - theta_start|| / ||theta_start|| during `task`


@dataclass(frozen=True)
class RunFailed:
    task: int
    step: int
    message: str


@dataclass(frozen=True)
class RunEnded:
    summary: dict


EVENT_TYPES = {cls.__name__: cls for cls in (RunStarted, TaskStarted, StepLogged, Evaluated, TaskEnded,
                                             CoefficientsLogged, Checkpointed, DriftLogged, RunFailed, RunEnded)}


class InfoRecord:
    """Base of the typed records a method puts in TaskStarted / TaskEnded `info`.

    Fields are named like the JSON keys (or carry `metadata={"key": ...}` where the key is no Python name,
    such as "lambda"), so run files and recordings keep the same JSON: to_dict leaves out fields that are
    None (keys a task did not log) and keeps the field order; from_dict reads the keys that are there and
    leaves the rest at their defaults (an older run, a task that took another branch). Subclasses are
    frozen dataclasses whose fields all have defaults."""

    def to_dict(self) -> dict:
        return {_info_key(f): getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: dict | None):
        data = data or {}
        return cls(**{f.name: data[_info_key(f)] for f in fields(cls) if _info_key(f) in data})

    @classmethod
    def read_all(cls, infos: list[dict]) -> list:
        """One record per logged info dict (a RunLog's task_info or task_end_info)."""
        return [cls.from_dict(info) for info in infos]


def _info_key(f) -> str:
    return f.metadata.get("key", f.name)


def event_to_dict(event) -> dict:
    return {"type": type(event).__name__, **asdict(event)}


def event_from_dict(data: dict):
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    names = {f.name for f in fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) and k in ("tasks", "scores", "acc_row") else v)
              for k, v in data.items() if k in names}
    return cls(**kwargs)


class RunLog:
    """Everything the views need, folded from events; plain lists and dicts, cheap to deep-copy."""

    def __init__(self):
        self.tasks: list[str] = []
        self.method = ""
        self.config: dict = {}
        self.steps_per_task = 0
        self.total_steps = 0
        self.step = 0
        self.task = -1
        self.losses: list[tuple[int, float]] = []
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.curve_steps: list[int] = []
        self.curve_scores: list[list[float]] = []
        self.base_scores: list[float] = []
        self.acc_matrix: list[list[float]] = []
        # the general suite (TRACE's general ability): before training, at each evaluation, at task ends
        self.base_general: float | None = None
        self.curve_general: list[float | None] = []
        self.general_row: list[float | None] = []
        self.task_info: list[dict] = []      # what methods decided at each task start
        self.task_end_info: list[dict] = []  # what methods reported at each task end
        self.boundaries: list[int] = []      # global step at which each task started
        self.coefficients: list[tuple[int, dict]] = []
        self.checkpoints: list[tuple[int, str]] = []
        self.drift: list[dict[str, float]] = []   # one row per finished task: layer -> relative change
        self.tokens = 0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.recent_tokens_per_s = 0.0
        self.error: str | None = None
        self.summary: dict | None = None
        self.version = 0                     # bumps on every event: pages redraw only on change

    # -- folding ---------------------------------------------------------------------------
    def add(self, event) -> None:
        self.version += 1
        handler = getattr(self, f"_on_{type(event).__name__}")
        handler(event)

    def _on_RunStarted(self, e: RunStarted):
        self.tasks, self.method, self.config = list(e.tasks), e.method, e.config
        self.steps_per_task, self.total_steps = e.steps_per_task, e.total_steps

    def _on_TaskStarted(self, e: TaskStarted):
        self.task = e.task
        self.boundaries.append(e.step)
        self.task_info.append(e.info)

    def _on_StepLogged(self, e: StepLogged):
        self.step, self.task = e.step, e.task
        self.losses.append((e.step, e.loss))
        for name, value in e.scalars.items():
            self.scalars.setdefault(name, []).append((e.step, value))
        self.tokens += e.tokens
        self.train_seconds += e.seconds
        if e.seconds > 0:
            # exponential moving average: a status line that does not jitter
            rate = e.tokens / e.seconds
            self.recent_tokens_per_s = rate if not self.recent_tokens_per_s else \
                0.8 * self.recent_tokens_per_s + 0.2 * rate

    def _on_Evaluated(self, e: Evaluated):
        self.eval_seconds += e.seconds
        if e.task < 0:
            self.base_scores = list(e.scores)
            self.base_general = e.general
        self.curve_steps.append(e.step)
        self.curve_scores.append(list(e.scores))
        self.curve_general.append(e.general)

    def _on_TaskEnded(self, e: TaskEnded):
        self.acc_matrix.append(list(e.acc_row))
        self.task_end_info.append(dict(e.info))
        self.general_row.append(e.general)

    def _on_CoefficientsLogged(self, e: CoefficientsLogged):
        self.coefficients.append((e.step, dict(e.values)))

    def _on_Checkpointed(self, e: Checkpointed):
        self.checkpoints.append((e.task, e.ref))

    def _on_DriftLogged(self, e: DriftLogged):
        self.drift.append(dict(e.values))

    def _on_RunFailed(self, e: RunFailed):
        self.error = e.message

    def _on_RunEnded(self, e: RunEnded):
        self.summary = e.summary

    # -- reading ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.summary is not None or self.error is not None

    def metrics(self) -> dict[str, float]:
        """Metrics over the tasks trained so far (all of them once the run has ended)."""
        if not self.base_scores or not self.acc_matrix:
            return {}
        return metrics.partial_metrics(self.base_scores, self.acc_matrix)

    def curves(self) -> dict:
        out = {"steps": list(self.curve_steps), "scores": [list(s) for s in self.curve_scores]}
        if self.has_general:
            out["general"] = list(self.curve_general)
        return out

    @property
    def has_general(self) -> bool:
        return self.base_general is not None

    def general(self) -> dict:
        """The general suite: base score, score after each task, and the drop from base to the last row.

        Not part of the continual-learning metrics (those are over the lesson's tasks only)."""
        if not self.has_general:
            return {}
        rows = [g for g in self.general_row if g is not None]
        out = {"base": self.base_general, "after_task": list(self.general_row)}
        if rows:
            out["final"] = rows[-1]
            out["drop"] = round(self.base_general - rows[-1], 6)
        return out

    def snapshot(self) -> "RunLog":
        return copy.deepcopy(self)

    def build_summary(self, seed: int, wall_s: float, extra: dict | None = None) -> dict:
        summary = {
            "tasks": list(self.tasks),
            "acc_matrix": [list(r) for r in self.acc_matrix],
            "base_scores": list(self.base_scores),
            "metrics": self.metrics(),
            "curves": self.curves(),
            **({"general": self.general()} if self.has_general else {}),
            "method": self.method,
            "seed": seed,
            "steps": self.step,
            "wall_s": round(wall_s, 3),
            "train_s": round(self.train_seconds, 3),
            "eval_s": round(self.eval_seconds, 3),
            "tokens": self.tokens,
        }
        summary.update(extra or {})
        return summary


def is_finite(x: float) -> bool:
    return math.isfinite(x)
