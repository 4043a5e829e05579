"""Multi-task joint training: the reference upper bound that never stops seeing old data.

Two readings of "one run on the union of all tasks", both giving a T x T accuracy matrix:
- "joint" (default): every batch mixes all T tasks equally from the first step, for the same total
  number of steps as the sequential methods; row t of the matrix is the model after t x steps_per_task
  steps of joint training (so its "forgetting" is not forgetting of a task sequence).
- "cumulative": at stage t the model trains on the union of tasks 1..t (the incremental joint upper
  bound); the last row is joint training on every task.
Our interpretation; the papers only name a multi-task upper bound.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import knob, validate
from ..data import Pool
from .base import Method


@dataclass
class MultiTaskOptions:
    mode: str = knob("joint", "'joint': all tasks from the first step; 'cumulative': tasks 1..t at stage t",
                     choices=("joint", "cumulative"))

    def __post_init__(self):
        validate(self)


class MultiTask(Method):
    name = "multitask"
    title = "Multi-task joint training (upper bound)"
    Options = MultiTaskOptions

    def before_task(self, index, task, pools):
        tasks = self.ctx.lesson.tasks
        upto = len(tasks) if self.options.mode == "joint" else index + 1
        joint = [Pool([(ex, i) for ex in tasks[i].train], 1.0, name=tasks[i].name) for i in range(upto)]
        return joint, {"tasks_mixed": upto}
