"""Training streams: pools of (example, task index) drawn into batches at fixed proportions."""
from __future__ import annotations

import random
from dataclasses import dataclass

from .lessons.base import Example


@dataclass
class Pool:
    """Examples a batch draws from, with the share of each batch they fill."""

    items: list[tuple[Example, int]]   # (example, index of the task it belongs to)
    weight: float
    name: str = "current"


class BatchSampler:
    """Fills each batch from the pools in proportion to their weights.

    Each pool is read in shuffled epochs (every example once before any repeats). Fractional shares
    carry over between batches, so a pool with weight 0.1 at batch 32 gets 3 or 4 rows, 3.2 on average.
    """

    def __init__(self, pools: list[Pool], batch_size: int, rng: random.Random):
        self.pools = [p for p in pools if p.items and p.weight > 0]
        if not self.pools:
            raise ValueError("nothing to train on: every pool is empty")
        total = sum(p.weight for p in self.pools)
        self.shares = [p.weight / total * batch_size for p in self.pools]
        self.batch_size, self.rng = batch_size, rng
        self.credit = [0.0] * len(self.pools)
        self.orders: list[list[int]] = [[] for _ in self.pools]

    def _take(self, k: int, n: int) -> list[int]:
        out = []
        while len(out) < n:
            if not self.orders[k]:
                order = list(range(len(self.pools[k].items)))
                self.rng.shuffle(order)
                self.orders[k] = order
            out.append(self.orders[k].pop())
        return out

    def counts(self) -> list[int]:
        for k, share in enumerate(self.shares):
            self.credit[k] += share
        counts = [int(c) for c in self.credit]
        # rounding leftovers go to the pools with the largest remaining credit
        for k in sorted(range(len(counts)), key=lambda k: self.credit[k] - counts[k], reverse=True):
            if sum(counts) >= self.batch_size:
                break
            counts[k] += 1
        for k, n in enumerate(counts):
            self.credit[k] -= n
        return counts

    def next_batch(self) -> tuple[list[Example], list[int], list[int]]:
        """Examples, pool index of each row, task index of each row."""
        examples, sources, task_ids = [], [], []
        for k, n in enumerate(self.counts()):
            for i in self._take(k, n):
                ex, task = self.pools[k].items[i]
                examples.append(ex)
                sources.append(k)
                task_ids.append(task)
        return examples, sources, task_ids
