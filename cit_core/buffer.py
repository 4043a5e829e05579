"""Replay selection as pure functions: InsCL's budget allocation, InsInfo scores, per-instruction quotas.

Nothing here touches a model, so every rule is testable on hand-made numbers. The InsCL method
(`methods/inscl.py`) wires them to the lesson and the embedder.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np


# -- InsCL: budget per old task from Wasserstein distances ---------------------------------------
def allocate_budget(budget: int, distances: Sequence[float]) -> list[int]:
    """n_i = floor(B * W_i / sum W), then +-1 corrections so that sum n_i == B exactly.

    The deficit d = B - sum floor(...) (0 <= d < k) is given one each to the d old tasks with the largest
    W (more dissimilar -> more replay); a surplus (only possible with float round-off) is taken one
    each from the smallest-W tasks that still have something. All distances 0 (identical tasks): equal
    split. Ties are broken by task order, so the result is deterministic. (The released InsCL code gives
    every +1 to the first of tied tasks, so one task can receive the whole deficit: not reproduced.)
    """
    k = len(distances)
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if k == 0:
        return []
    w = np.asarray(distances, dtype=np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"distances must be finite and >= 0, got {list(distances)}")
    total = float(w.sum())
    share = w / total if total > 0 else np.full(k, 1.0 / k)
    counts = [int(math.floor(budget * s)) for s in share]
    # stable orders: largest share first (earlier task wins a tie), smallest share first
    largest = sorted(range(k), key=lambda i: (-share[i], i))
    smallest = sorted(range(k), key=lambda i: (share[i], i))
    while sum(counts) < budget:
        for i in largest:
            if sum(counts) >= budget:
                break
            counts[i] += 1
    while sum(counts) > budget:
        for i in smallest:
            if sum(counts) <= budget:
                break
            if counts[i] > 0:
                counts[i] -= 1
    return counts


# -- InsInfo: tags, DBSCAN merge, idf score -----------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+")
_POSSESSIVE = re.compile(r"['’]s\b")
_IRREGULAR = {"does": "do", "did": "do", "has": "have", "had": "have", "is": "be", "are": "be", "was": "be",
              "were": "be", "children": "child", "people": "person", "men": "man", "women": "woman"}


def lemma(word: str) -> str:
    """A small rule-based lemmatiser (plural and 3rd-person -s); enough for instruction keywords."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def extract_tags(instruction: str) -> list[str]:
    """Content-word lemmas of an instruction: lower-cased, scikit-learn's English stop words removed.

    Our offline stand-in for the paper's GPT-4 intention tagger; distinct tags in first-seen order.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    text = _POSSESSIVE.sub("", instruction.lower())
    words = (lemma(w) for w in _WORD.findall(text) if w not in ENGLISH_STOP_WORDS)
    return list(dict.fromkeys(w for w in words if w and w not in ENGLISH_STOP_WORDS))


def normalise_tag(tag) -> str:
    """A supplied tag as the extracted ones are: lower-cased, each word lemmatised ("Sentiment Classes" ->
    "sentiment class"), so that supplied and extracted tags count as one (METHODS.md, InsCL)."""
    return " ".join(lemma(w) for w in str(tag).lower().split())


def merge_tags(tag_counts: Mapping[str, int], embeddings: np.ndarray, eps: float = 0.1,
               min_samples: int = 5) -> dict[str, str]:
    """DBSCAN (cosine) over tag embeddings; each cluster is replaced by its most frequent tag.

    `tag_counts` (tag -> occurrences) and `embeddings` are in the same order. Noise points (label -1)
    stay their own tag. Every cluster label is merged, the last one included (the released code's
    `range(max(labels))` skips it). Returns tag -> representative tag.
    """
    tags = list(tag_counts)
    mapping = {t: t for t in tags}
    if len(tags) == 0:
        return mapping
    from sklearn.cluster import DBSCAN
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit(np.asarray(embeddings)).labels_
    for label in sorted(set(int(x) for x in labels) - {-1}):
        members = [t for t, lab in zip(tags, labels) if lab == label]
        # most frequent; ties -> first seen (stable)
        representative = max(members, key=lambda t: (tag_counts[t], -tags.index(t)))
        for t in members:
            mapping[t] = representative
    return mapping


def insinfo_scores(instruction_tags: Sequence[Mapping[str, Sequence[str]]]) -> list[dict[str, float]]:
    """InsInfo per instruction, normalised within each task.

    `instruction_tags[j]` maps each distinct instruction of task j (tasks 1..t, the current one
    included) to its (already merged) tags. score(ins) = sum over its distinct tags of log(N / f(tag)),
    N = number of instructions over tasks 1..t, f(tag) = number of those instructions carrying the tag.
    Scores are divided by their sum within the task (uniform when every score is 0).
    """
    per_task = [{ins: list(dict.fromkeys(tags)) for ins, tags in task.items()} for task in instruction_tags]
    n = sum(len(task) for task in per_task)
    freq = Counter(tag for task in per_task for tags in task.values() for tag in tags)
    out = []
    for task in per_task:
        raw = {ins: sum(math.log(n / freq[tag]) for tag in tags) for ins, tags in task.items()}
        total = sum(raw.values())
        out.append({ins: (s / total if total > 0 else 1.0 / len(raw)) for ins, s in raw.items()})
    return out


def instruction_quota(scores: Mapping[str, float], available: Mapping[str, int], n: int) -> dict[str, int]:
    """How many examples of each instruction to replay so that the quotas sum to exactly n.

    - n < #instructions: the top-n instructions by score, one example each.
    - otherwise: max(1, floor(s_k * n)) each (capped by the examples available), then top up one at a
      time in descending score order, or trim one at a time in ascending score order, never taking an
      instruction below one example (its only example is kept).
    `available` gives the number of stored examples per instruction; n is capped at their total.
    Ties in score are broken by the instruction text, so the result is deterministic.
    """
    names = [k for k in scores if available.get(k, 0) > 0]
    n = min(n, sum(available[k] for k in names))
    order = sorted(names, key=lambda k: (-scores[k], k))       # best first
    if n <= 0:
        return {k: 0 for k in scores}
    if n < len(order):
        quota = {k: (1 if i < n else 0) for i, k in enumerate(order)}
        return {k: quota.get(k, 0) for k in scores}
    quota = {k: min(available[k], max(1, int(math.floor(scores[k] * n)))) for k in order}
    while sum(quota.values()) < n:
        for k in order:
            if sum(quota.values()) >= n:
                break
            if quota[k] < available[k]:
                quota[k] += 1
    while sum(quota.values()) > n:
        for k in reversed(order):
            if sum(quota.values()) <= n:
                break
            if quota[k] > 1:
                quota[k] -= 1
    return {k: quota.get(k, 0) for k in scores}


__all__ = ["allocate_budget", "extract_tags", "insinfo_scores", "instruction_quota", "lemma", "merge_tags"]
