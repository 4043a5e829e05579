"""Experience replay: keep a fixed quota of examples per finished task and mix them into every batch."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import knob, validate
from ..data import Pool
from .base import Method


@dataclass
class ReplayOptions:
    per_task: int = knob(64, "examples kept from each finished task", 1, 100_000)
    mix_ratio: float = knob(0.25, "share of each batch drawn from the buffer", 0.0, 0.95)

    def __post_init__(self):
        validate(self)


class Replay(Method):
    name = "replay"
    title = "Experience replay (per-task quota)"
    Options = ReplayOptions

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.buffer: dict[int, list] = {}     # task index -> kept examples

    def before_task(self, index, task, pools):
        stored = [(ex, i) for i, kept in sorted(self.buffer.items()) for ex in kept]
        if not stored:
            return pools, {"replayed": 0}
        current = pools[0]
        current.weight = 1.0 - self.options.mix_ratio
        return [current, Pool(stored, self.options.mix_ratio, name="buffer")], {"replayed": len(stored)}

    def after_task(self, index, task):
        k = min(self.options.per_task, len(task.train))
        self.buffer[index] = self.ctx.rng.sample(task.train, k)
        return {"buffer_size": sum(map(len, self.buffer.values()))}
