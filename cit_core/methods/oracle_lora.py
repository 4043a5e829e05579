"""Per-task LoRA with oracle routing: the parameter-isolation upper bound (METHODS.md; SwitchCIT's reference).

Update rule: as `expansion` (a fresh LoRA adapter per task on the frozen base, only the current one
trains), but at inference every prompt uses the adapter of the task it truly belongs to. The true task
is looked up from the lesson (Example -> task index over every task's train and held-out examples; an
example that two tasks share goes to the first). A prompt whose task has no adapter yet (periodic
evaluation scores tasks not trained so far) goes to the latest adapter; an example unknown to the
lesson goes to the nearest key, as in `expansion`. Nothing is learned about routing: routing accuracy
is 1 by construction, so the gap to `expansion` / `switchcit` is the cost of routing.
Our construction; the papers name the upper bound without specifying it.
"""
from __future__ import annotations

import numpy as np

from .expansion import PerTaskLoRA, adapter_name, nearest_keys


class OracleLoRA(PerTaskLoRA):
    name = "oracle_lora"
    title = "Per-task LoRA, oracle routing (upper bound)"

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.task_of: dict = {}
        for index, task in enumerate(ctx.lesson.tasks):
            for ex in task.train + task.eval:
                self.task_of.setdefault(ex, index)

    def route(self, examples):
        if not self.adapters:
            return [None] * len(examples)
        routes: list[str | None] = []
        unknown = []
        for row, ex in enumerate(examples):
            index = self.task_of.get(ex)
            if index is None:
                unknown.append(row)
                routes.append(None)
            else:
                routes.append(adapter_name(index) if index < len(self.adapters) else self.adapters[-1])
        if unknown:
            nearest = nearest_keys(self._embed(examples[r].instruction for r in unknown), np.stack(self.keys))
            for r, i in zip(unknown, nearest):
                routes[r] = self.adapters[int(i)]
        return routes


__all__ = ["OracleLoRA"]
