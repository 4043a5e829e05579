"""Metric functions against a hand-computed 3-task matrix."""
import pytest

from cit_core import metrics

BASE = [0.1, 0.2, 0.3]
ROWS = [[0.9, 0.3, 0.4],
        [0.5, 0.8, 0.5],
        [0.6, 0.4, 0.7]]


def test_hand_computed_3x3():
    m = metrics.all_metrics(BASE, ROWS)
    # AP = mean of the last row = (0.6 + 0.4 + 0.7) / 3
    assert m["AP"] == pytest.approx(1.7 / 3)
    # BWT = ((0.6 - 0.9) + (0.4 - 0.8)) / 2 = -0.35
    assert m["BWT"] == pytest.approx(-0.35)
    # FWT = ((R1[2] - R0[2]) + (R2[3] - R0[3])) / 2 = ((0.3 - 0.2) + (0.5 - 0.3)) / 2 = 0.15
    assert m["FWT"] == pytest.approx(0.15)
    # forgetting: task 1 best over rows 1..2 = 0.9 -> 0.9 - 0.6 = 0.3; task 2 best over row 2 = 0.8 -> 0.4
    assert m["forgetting"] == pytest.approx(0.35)
    # MAA = (0.9 + (0.5 + 0.8)/2 + 1.7/3) / 3
    assert m["MAA"] == pytest.approx((0.9 + 0.65 + 1.7 / 3) / 3)
    # RG (InsCL) = 100/3 · (0.6/0.9 + 0.4/0.8 + 0.7/0.7), U = the diagonal
    assert m["RG"] == pytest.approx(100 / 3 * (0.6 / 0.9 + 0.5 + 1.0))


def test_relative_gain_with_single_task_upper_bounds_and_when_undefined():
    import numpy as np
    R = np.vstack([[BASE], ROWS])
    # U from a per-task run (e.g. oracle_lora's diagonal), not this run's own diagonal
    assert metrics.relative_gain(R, upper=[1.0, 0.5, 0.8]) == pytest.approx(100 / 3 * (0.6 + 0.8 + 0.875))
    # a task whose upper bound is 0 makes RG undefined (None, shown as n/a), not infinite
    rows = [[0.0, 0.3], [0.5, 0.8]]
    assert metrics.all_metrics([0, 0], rows)["RG"] is None
    assert metrics.format_value("RG", None) == "n/a" and metrics.format_value("RG", 61.04) == "61.0"
    with pytest.raises(ValueError):
        metrics.relative_gain(R, upper=[1.0, 0.5])


def test_forgetting_uses_best_earlier_row_not_diagonal():
    # task 1 improves after task 2 (0.5 -> 0.9), then drops to 0.2: forgetting counts from the best, 0.9
    rows = [[0.5, 0.0, 0.0], [0.9, 1.0, 0.0], [0.2, 1.0, 1.0]]
    m = metrics.all_metrics([0, 0, 0], rows)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.2) + 0.0) / 2)
    assert m["BWT"] == pytest.approx(((0.2 - 0.5) + 0.0) / 2)


def test_single_task_and_partial():
    assert metrics.all_metrics([0.0], [[0.8]]) == {"AP": 0.8, "BWT": 0.0, "FWT": 0.0, "forgetting": 0.0,
                                                   "MAA": 0.8, "RG": 100.0}
    partial = metrics.partial_metrics(BASE, ROWS[:2])
    assert partial["AP"] == pytest.approx((0.5 + 0.8) / 2)
    assert partial["forgetting"] == pytest.approx(0.4)


def test_shape_is_checked():
    with pytest.raises(ValueError):
        metrics.average_performance([[1.0, 2.0]])
