"""InsCL: instruction-based replay (Wang et al., NAACL 2024; code OPPO-Mente-Lab/InsCL).

Update rule. At stage t (t >= 2) the replay budget is B_t = B * (t - 1) (B = `per_task`):
- allocation over old tasks i < t: W_i = 1-Wasserstein distance between the instruction-embedding
  sets of task t and task i (cosine cost, exact OT through POT's emd2, point masses = empirical
  instruction frequencies); n_i = floor(B_t * W_i / sum_j W_j), then +1 to the largest-W tasks (or -1
  from the smallest-W ones) until sum n_i = B_t exactly. More dissimilar old tasks get more replay.
- InsInfo sampling inside old task i: every instruction gets tags; the tags of tasks 1..t are embedded
  and merged by DBSCAN (eps 0.1, min_samples 5, cosine; a cluster becomes its most frequent tag, noise
  points stay themselves); score(ins) = sum_tag log(N / f(tag)) (N = instructions of tasks 1..t,
  f = instructions carrying the tag), normalised within the task. If n_i < #instructions: the top-n_i
  instructions, one example each; else max(1, floor(s_k n_i)) examples per instruction, topped up /
  trimmed to exactly n_i without removing an instruction's only example.
- the replayed examples form a buffer pool that fills `mix_ratio` of every batch (as `replay`).

What follows the paper: the budget, the Wasserstein allocation with the +-1 corrections, DBSCAN
merging, the idf-style InsInfo score and the quota rule. The released code differs and we follow the
paper: its `cal_dynamic_num` is called without the embedding-file argument (it cannot run as
released), and its `range(max(labels))` loop never merges the last DBSCAN cluster (we merge all).
Our interpretation / substitutes:
- tags come from the instruction text (content-word lemmas: lower-case, scikit-learn's English stop
  words removed, a small rule lemmatiser), or from the lesson when a task carries `instruction_tags`
  (instruction -> tags: lower-cased and lemmatised the same way); this replaces the paper's GPT-4 tagger;
- the embedder (paper: unverified; released code: phrase-bert) is the packaged MiniLM (384-d);
- the top-up adds one example at a time to instructions in descending score order, the trim removes one
  at a time in ascending order (the released code adds / removes random examples);
- old tasks' training data stay available and the replay set is drawn afresh at each stage (as the
  released sampling script does); `sampling="random"` draws the same n_i uniformly inside each task and
  `allocation="uniform"` splits B_t equally: both "random" settings together are the paper's random
  replay baseline at the same budget.
Logs (TaskStarted info): budget, W per old task, n per old task, InsInfo score per instruction.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..buffer import (allocate_budget, extract_tags, insinfo_scores, instruction_quota, merge_tags,
                      normalise_tag)
from ..config import knob, validate
from ..data import Pool
from ..events import InfoRecord
from ..panels import by_task, matrix
from .base import Method


INFO_TOP = 50


@dataclass(frozen=True)
class InsCLTaskStart(InfoRecord):
    """TaskStarted info: the replay drawn for this task, per earlier task."""

    replayed: int | None = None
    budget: int | None = None
    distances: dict | None = None      # earlier task -> 1-Wasserstein distance of instruction embeddings
    allocation: dict | None = None     # earlier task -> examples of it replayed
    insinfo: dict | None = None        # earlier task -> its best-scored instructions (InsInfo sampling)


@dataclass
class InsCLOptions:
    per_task: int = knob(64, "replay budget B per previous task (B x (t-1) examples at stage t)", 1, 100_000)
    mix_ratio: float = knob(0.25, "share of each batch drawn from the replayed examples", 0.0, 0.95)
    allocation: str = knob("wasserstein", "'wasserstein': more replay for more dissimilar old tasks; "
                           "'uniform': B per old task", choices=("wasserstein", "uniform"))
    sampling: str = knob("insinfo", "inside an old task: 'insinfo' (informative instructions first) or "
                         "'random' (uniform)", choices=("insinfo", "random"))
    dbscan_eps: float = knob(0.1, "DBSCAN neighbourhood radius (cosine distance) for merging tags", 1e-6, 1.0)
    dbscan_min_samples: int = knob(5, "DBSCAN core-point size for merging tags", 1, 1000)

    def __post_init__(self):
        validate(self)


def task_tags(task) -> dict[str, list[str]]:
    """Distinct training instructions of a task -> tags (from the lesson if given, else extracted)."""
    given = getattr(task, "instruction_tags", None) or {}
    out = {}
    for ex in task.train:
        if ex.instruction not in out:
            tags = given.get(ex.instruction)
            out[ex.instruction] = ([normalise_tag(t) for t in tags] if tags
                                   else extract_tags(ex.instruction))
    return out


class InsCL(Method):
    name = "inscl"
    title = "InsCL (Wasserstein-allocated, InsInfo-guided replay)"
    Options = InsCLOptions

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self._tags: dict[int, dict[str, list[str]]] = {}

    def _embedder(self):
        from ..similarity import get_embedder
        return get_embedder()

    def distances(self, index, task) -> list[float]:
        from ..similarity import task_wasserstein
        tasks, emb = self.ctx.lesson.tasks, self._embedder()
        return [task_wasserstein(task, tasks[i], emb) for i in range(index)]

    def scores(self, index) -> list[dict[str, float]]:
        """InsInfo scores of the instructions of tasks 0..index (tags merged over those tasks)."""
        tasks = self.ctx.lesson.tasks
        raw = [self._tags.setdefault(i, task_tags(tasks[i])) for i in range(index + 1)]
        counts = Counter(tag for per_task in raw for tags in per_task.values() for tag in tags)
        if counts:
            mapping = merge_tags(counts, self._embedder().encode(list(counts)),
                                 self.options.dbscan_eps, self.options.dbscan_min_samples)
        else:
            mapping = {}
        merged = [{ins: list(dict.fromkeys(mapping.get(t, t) for t in tags)) for ins, tags in per_task.items()}
                  for per_task in raw]
        return insinfo_scores(merged)

    def select(self, task, n: int, scores: dict[str, float] | None) -> list:
        """n examples of an old task: InsInfo quotas per instruction, or uniformly at random."""
        rng = self.ctx.rng
        n = min(n, len(task.train))
        if scores is None:
            return rng.sample(task.train, n)
        by_ins: dict[str, list] = {}
        for ex in task.train:
            by_ins.setdefault(ex.instruction, []).append(ex)
        quota = instruction_quota(scores, {k: len(v) for k, v in by_ins.items()}, n)
        chosen = []
        for ins, k in quota.items():
            if k:
                chosen.extend(rng.sample(by_ins[ins], k))
        return chosen

    def before_task(self, index, task, pools):
        if index == 0:
            return pools, InsCLTaskStart(0).to_dict()
        names = self.ctx.lesson.task_names
        budget = self.options.per_task * index
        dist = self.distances(index, task)
        weights = dist if self.options.allocation == "wasserstein" else [1.0] * index
        alloc = allocate_budget(budget, weights)
        scores = self.scores(index) if self.options.sampling == "insinfo" else None
        stored = []
        for i, n in enumerate(alloc):
            kept = self.select(self.ctx.lesson.tasks[i], n, scores[i] if scores else None)
            stored.extend((ex, i) for ex in kept)
        # the 50 best-scored instructions per old task (a lesson may have thousands)
        best = None if not scores else {
            names[i]: dict(sorted(((ins, round(s, 6)) for ins, s in scores[i].items()),
                                  key=lambda kv: -kv[1])[:INFO_TOP])
            for i in range(index)}
        info = InsCLTaskStart(len(stored), budget, {names[i]: round(d, 6) for i, d in enumerate(dist)},
                              {names[i]: n for i, n in enumerate(alloc)}, best).to_dict()
        if not stored:
            return pools, info
        current = pools[0]
        current.weight = 1.0 - self.options.mix_ratio
        return [current, Pool(stored, self.options.mix_ratio, name="buffer")], info

    @classmethod
    def matrices(cls, log):
        """The distance to each earlier task and the replay it got, at each task start."""
        tasks, starts = list(log.tasks), InsCLTaskStart.read_all(log.task_info)
        if not any(s.distances is not None for s in starts):
            return {}
        return {
            "InsCL Wasserstein distance": matrix(
                tasks, by_task([s.distances for s in starts], tasks),
                note="row: task starting; column: earlier task; 1-Wasserstein distance of instruction embeddings"),
            "InsCL replay allocation": matrix(
                tasks, by_task([s.allocation for s in starts], tasks),
                note="row: task starting; column: earlier task; examples of it replayed (more for farther tasks)"),
        }


__all__ = ["InsCL", "InsCLOptions", "task_tags"]
