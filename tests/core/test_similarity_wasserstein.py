"""similarity.wasserstein1 (POT's exact OT) against a brute-force assignment on equal-size uniform sets.

With n points of mass 1/n on each side, an optimal transport plan is a permutation (Birkhoff), so
W1 = min over assignments of the mean cosine distance, which scipy's linear_sum_assignment finds.
"""
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from cit_core.similarity import wasserstein1


def _unit(rows):
    rows = np.asarray(rows, np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("seed,n,dim", [(0, 5, 8), (1, 9, 384), (2, 2, 3), (3, 12, 16)])
def test_wasserstein_matches_brute_force_assignment(seed, n, dim):
    rng = np.random.default_rng(seed)
    a, b = _unit(rng.standard_normal((n, dim))), _unit(rng.standard_normal((n, dim)))
    cost = 1.0 - a @ b.T
    rows, cols = linear_sum_assignment(cost)
    assert wasserstein1(a, b) == pytest.approx(cost[rows, cols].mean(), abs=1e-9)


def test_wasserstein_of_a_set_with_itself_is_zero_and_symmetric():
    rng = np.random.default_rng(4)
    a, b = _unit(rng.standard_normal((6, 10))), _unit(rng.standard_normal((6, 10)))
    assert wasserstein1(a, a) == pytest.approx(0.0, abs=1e-9)
    assert wasserstein1(a, b) == pytest.approx(wasserstein1(b, a), abs=1e-9)


def test_inscl_distances_match_brute_force_on_the_default_lesson():
    """The distances InsCL allocates by (real embeddings; every task of the default lesson has 8 distinct
    training instructions): with uniform weights they equal the best one-to-one matching."""
    from cit_core.lessons import default_lesson
    from cit_core.similarity import get_embedder
    lesson = default_lesson(seed=0, n_eval=4)
    emb = get_embedder()
    train_instructions = [list(dict.fromkeys(ex.instruction for ex in t.train)) for t in lesson.tasks[:3]]
    assert [len(s) for s in train_instructions] == [8, 8, 8]
    sets = [emb.encode(s).astype(np.float64) for s in train_instructions]
    for x in sets:
        for y in sets:
            cost = np.clip(1.0 - x @ y.T, 0.0, 2.0)
            rows, cols = linear_sum_assignment(cost)
            assert wasserstein1(x, y) == pytest.approx(cost[rows, cols].mean(), abs=1e-6)
