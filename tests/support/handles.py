"""A run handle that counts steps (serve.handles.RunHandle): no model, no torch — for the serving tests."""
from types import SimpleNamespace


class CountingHandle:
    has_weights, run_dir, recorded, steps_per_call = True, None, False, 3

    def __init__(self, cfg, total: int = 10):
        self.cfg, self.lesson, self.total = cfg, None, total
        self.log = SimpleNamespace(step=0)
        self.calls: list[int] = []
        self.closed = False

    @property
    def finished(self) -> bool:
        return self.log.step >= self.total

    @property
    def steps_done(self) -> int:
        return self.log.step

    def advance(self, steps: int) -> list:
        self.calls.append(steps)
        self.log.step = min(self.total, self.log.step + steps)
        return []

    def close(self) -> None:
        self.closed = True
