"""InsCL: budget allocation, InsInfo scores and quotas (pure functions), and the method's replay set."""
import math
import random

import numpy as np
import pytest

from cit_core.buffer import allocate_budget, extract_tags, insinfo_scores, instruction_quota, merge_tags


@pytest.mark.parametrize("budget,distances", [
    (64, [0.2, 0.5, 0.3]),
    (128, [0.31, 0.05, 0.77, 0.12]),
    (7, [0.1, 0.1, 0.1]),
    (5, [0.9, 0.0, 0.4, 0.2, 0.3, 0.6]),
    (100, [1.0]),
])
def test_allocation_sums_exactly_and_orders_by_distance(budget, distances):
    alloc = allocate_budget(budget, distances)
    assert sum(alloc) == budget
    assert all(n >= 0 for n in alloc)
    # more dissimilar -> at least as much replay
    for i in range(len(distances)):
        for j in range(len(distances)):
            if distances[i] > distances[j]:
                assert alloc[i] >= alloc[j]
    # each n_i is the floor of its share or one more (the +-1 corrections)
    total = sum(distances)
    for n, w in zip(alloc, distances):
        assert math.floor(budget * w / total) <= n <= math.floor(budget * w / total) + 1


def test_allocation_hand_computed():
    # shares 64*[0.2, 0.5, 0.3] = 12.8, 32, 19.2 -> floors 12, 32, 19 (sum 63) -> +1 to the largest W
    assert allocate_budget(64, [0.2, 0.5, 0.3]) == [12, 33, 19]
    # identical tasks (all W = 0): equal split, leftovers to the earliest
    assert allocate_budget(10, [0.0, 0.0, 0.0]) == [4, 3, 3]


def test_tags_are_content_lemmas():
    assert extract_tags("Does the word contain the letter z?") == ["word", "contain", "letter", "z"]
    assert extract_tags("Classify the numbers as even or odd.") == ["classify", "number", "odd"]


def test_merge_tags_keeps_the_last_cluster_and_noise():
    # two tight clusters (5 points each) and one noise point; the second cluster is the last label,
    # which the released code's range(max(labels)) never merges
    rng = np.random.default_rng(0)
    a, b, noise = np.eye(3)
    emb = [a + 1e-3 * rng.standard_normal(3) for _ in range(5)] + \
          [b + 1e-3 * rng.standard_normal(3) for _ in range(5)] + [noise]
    tags = {f"a{i}": (9 if i == 2 else 1) for i in range(5)}
    tags.update({f"b{i}": (7 if i == 4 else 1) for i in range(5)})
    tags["lonely"] = 1
    mapping = merge_tags(tags, np.array(emb), eps=0.1, min_samples=5)
    assert {mapping[f"a{i}"] for i in range(5)} == {"a2"}
    assert {mapping[f"b{i}"] for i in range(5)} == {"b4"}
    assert mapping["lonely"] == "lonely"


def test_insinfo_scores_hand_computed():
    tasks = [{"i1": ["x", "y"], "i2": ["x"]}, {"i3": ["z"]}]
    scores = insinfo_scores(tasks)
    n = 3
    raw1, raw2 = math.log(n / 2) + math.log(n / 1), math.log(n / 2)
    assert scores[0]["i1"] == pytest.approx(raw1 / (raw1 + raw2))
    assert scores[0]["i2"] == pytest.approx(raw2 / (raw1 + raw2))
    assert scores[1]["i3"] == pytest.approx(1.0)


def test_quota_sums_to_n_and_keeps_every_instructions_only_example():
    rng = random.Random(0)
    for _ in range(200):
        k = rng.randint(1, 12)
        names = [f"ins{i}" for i in range(k)]
        raw = [rng.random() ** 3 for _ in names]
        scores = {nm: r / sum(raw) for nm, r in zip(names, raw)}
        available = {nm: rng.randint(1, 30) for nm in names}
        n = rng.randint(0, sum(available.values()) + 5)
        quota = instruction_quota(scores, available, n)
        assert sum(quota.values()) == min(n, sum(available.values()))
        assert all(0 <= quota[nm] <= available[nm] for nm in names)
        if n >= k:
            assert all(quota[nm] >= 1 for nm in names)      # every instruction keeps one example
        else:
            top = sorted(names, key=lambda nm: (-scores[nm], nm))[:n]
            assert {nm for nm in names if quota[nm]} == set(top)
            assert all(quota[nm] <= 1 for nm in names)


def test_quota_trims_without_removing_an_only_example():
    # max(1, floor(s*n)) over-shoots: 1 + 1 + floor(0.9*4)=3 -> 5 > 4, trimmed from the low scores
    # but never below one example each
    quota = instruction_quota({"a": 0.05, "b": 0.05, "c": 0.9}, {"a": 5, "b": 5, "c": 5}, 4)
    assert quota == {"a": 1, "b": 1, "c": 2}


def test_inscl_replays_exactly_the_budget_by_distance():
    from cit_core.config import RunConfig
    from cit_core.lessons import default_lesson
    from cit_core.methods import METHODS, RunContext, method_options
    from cit_core.data import Pool

    lesson = default_lesson(seed=0, n_eval=4)
    cfg = RunConfig(method="inscl", method_options={"per_task": 10})
    method = METHODS["inscl"](method_options("inscl", cfg.method_options),
                              RunContext(cfg, lesson, None, None, random.Random(0)))
    index = 3
    pools = [Pool([(ex, index) for ex in lesson.tasks[index].train], 1.0)]
    pools, info = method.before_task(index, lesson.tasks[index], pools)
    assert info["budget"] == 30 and info["replayed"] == 30
    buffer = pools[1].items
    assert len(buffer) == 30
    names = lesson.task_names
    for i in range(index):
        assert sum(1 for _, t in buffer if t == i) == info["allocation"][names[i]]
    dist = info["distances"]
    order = sorted(names[:index], key=dist.get)
    assert [info["allocation"][n] for n in order] == sorted(info["allocation"][n] for n in order)
    # InsInfo quotas: every instruction of an old task is replayed once its share covers them all
    for i in range(index):
        n = info["allocation"][names[i]]
        kept = {ex.instruction for ex, t in buffer if t == i}
        assert len(kept) == min(n, len(info["insinfo"][names[i]]))


def test_supplied_tags_are_lower_cased_and_lemmatised_like_extracted_ones():
    from types import SimpleNamespace

    from cit_core.lessons.base import Example
    from cit_core.methods.inscl import task_tags
    a, b = "Classify the reviews.", "Give the sentiment classes of these reviews."
    task = SimpleNamespace(train=[Example(a, "x", "y"), Example(b, "x", "y")],
                           instruction_tags={a: ["Reviews", "Sentiment Classes"]})
    tags = task_tags(task)
    assert tags[a] == ["review", "sentiment class"]          # supplied: lower-cased and lemmatised
    assert "review" in tags[b] and "class" in tags[b]        # extracted from the text: the same forms
