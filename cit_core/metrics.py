"""Continual-learning metrics from an accuracy matrix (pure numpy; formulas as in METHODS.md).

R is (T+1) x T: row 0 = scores before any training (base), row t = scores after training task t.
Each function takes that full matrix so FWT can read the base row.
"""
from __future__ import annotations

import numpy as np

FORMULAS = {
    "AP": "AP = (1/T) Σ_i R[T][i]",
    "BWT": "BWT = 1/(T−1) Σ_{i<T} (R[T][i] − R[i][i])",
    "FWT": "FWT = 1/(T−1) Σ_{i≥2} (R[i−1][i] − R[0][i])",
    "forgetting": "F = 1/(T−1) Σ_{i<T} (max_{l∈[i,T−1]} R[l][i] − R[T][i])",
    "MAA": "MAA = (1/T) Σ_t (1/t) Σ_{i≤t} R[t][i]",
    "RG": "RG = (100/T) Σ_i R[T][i] / U_i,  U_i = R[i][i]",
}
EXPLAIN = {
    "AP": "average score over all tasks at the end (TRACE's OP)",
    "BWT": "backward transfer: how much training later tasks changed earlier ones (negative = forgetting)",
    "FWT": "forward transfer: score on a task just before training it, minus the untrained model's",
    "forgetting": "Chaudhry et al. 2018: drop from each task's best earlier score to its final one "
                  "(negative only when a task ends above every earlier score)",
    "MAA": "mean average accuracy: the average over seen tasks, averaged over the stages",
    "RG": "relative gain (InsCL's headline metric): each task's final score as a percentage of its upper "
          "bound U_i, averaged; here U_i = its score right after training it (Compare can use a per-task "
          "run's instead); n/a when some U_i is 0",
}


def _check(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] + 1:
        raise ValueError(f"expected a (T+1) x T matrix with the base row first, got shape {R.shape}")
    return R


def average_performance(R) -> float:
    R = _check(R)
    return float(R[-1].mean())


def backward_transfer(R) -> float:
    R = _check(R)
    T = R.shape[1]
    if T < 2:
        return 0.0
    return float(np.mean([R[T, i] - R[i + 1, i] for i in range(T - 1)]))


def forward_transfer(R) -> float:
    R = _check(R)
    T = R.shape[1]
    if T < 2:
        return 0.0
    # task i (0-based) is trained at row i+1; the row just before it is row i
    return float(np.mean([R[i, i] - R[0, i] for i in range(1, T)]))


def forgetting(R) -> float:
    R = _check(R)
    T = R.shape[1]
    if T < 2:
        return 0.0
    # best score of task i over rows l = i+1 .. T-1 (after training it, before the last task)
    return float(np.mean([R[i + 1:T, i].max() - R[T, i] for i in range(T - 1)]))


def mean_average_accuracy(R) -> float:
    R = _check(R)
    T = R.shape[1]
    return float(np.mean([R[t, :t].mean() for t in range(1, T + 1)]))


def relative_gain(R, upper=None) -> float | None:
    """InsCL's Relative Gain: (100/T) Σ_i R[T][i] / U_i.

    `upper` = U, one upper bound per task: None means each task's own score right after training it,
    R[i][i] (the diagonal); InsCL also uses each task's single-task score (a per-task run's diagonal:
    `oracle_lora`). None (undefined) when some U_i is 0 or less: a task's gain over nothing has no value.
    """
    R = _check(R)
    T = R.shape[1]
    bound = np.array([R[i + 1, i] for i in range(T)]) if upper is None else np.asarray(upper, float)
    if bound.shape != (T,):
        raise ValueError(f"expected {T} upper bounds, got {bound.shape}")
    if (bound <= 0).any():
        return None
    return float(100.0 * np.mean(R[T] / bound))


def format_value(name: str, value) -> str:
    """A metric as text: RG in percent with one decimal, the others with three; 'n/a' when undefined."""
    if value is None:
        return "n/a"
    return f"{value:.1f}" if name == "RG" else f"{value:.3f}"


def all_metrics(base_scores, acc_matrix) -> dict[str, float | None]:
    """Metrics from the base row and the T x T matrix (row t = after training task t)."""
    R = np.vstack([np.asarray(base_scores, float)[None, :], np.asarray(acc_matrix, float)])
    return {"AP": average_performance(R), "BWT": backward_transfer(R), "FWT": forward_transfer(R),
            "forgetting": forgetting(R), "MAA": mean_average_accuracy(R), "RG": relative_gain(R)}


def partial_metrics(base_scores, rows) -> dict[str, float]:
    """Metrics of the first len(rows) tasks, for a run in progress (the square part seen so far)."""
    t = len(rows)
    if t == 0:
        return {}
    square = [list(r)[:t] for r in rows]
    return all_metrics(list(base_scores)[:t], square)
