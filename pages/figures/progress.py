"""The figures of a run's progress, from plain run data: the accuracy matrix (figure and table), every task's
score curve, the training loss, and the metrics table. Drawn by the Train tab, the Runs tab's exports and
the Forgetting view.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from cit_core.metrics import format_value

from . import DASHES, GRID, MATRIX_SCALE, OKABE_ITO, build_figure, layout, short, task_labels

MAX_LOSS_POINTS = 1500


def _segments(tasks: list[str], steps_per_task: int, boundaries: list[int]) -> list[tuple[int, int]]:
    """(start, end) global step of each task: the logged start when known, else planned."""
    out = []
    for i in range(len(tasks)):
        start = boundaries[i] if i < len(boundaries) else i * steps_per_task
        out.append((start, start + steps_per_task))
    return out


def matrix_height(n_tasks: int) -> int:
    return 140 + 34 * (n_tasks + 1)


# -- accuracy matrix ----------------------------------------------------------------------------
GENERAL_LABEL = "general"
GENERAL_HOVER = "the general suite (held-out prompts of the base's pretraining skills; not a lesson task)"


def general_column(log) -> list[float | None] | None:
    """The general suite's score per matrix row (before training, after each task), or None when the run
    did not evaluate it. `log` is a RunLog (or anything with its three general fields)."""
    if getattr(log, "base_general", None) is None:
        return None
    return [log.base_general, *log.general_row]


def matrix_rows(tasks: list[str], base_scores: list[float], acc_matrix: list[list[float]],
                general: list[float | None] | None = None):
    """Row labels and values of the full (T+1) x T matrix (plus the general column when given); None where
    a row is not reached yet."""
    T = len(tasks)
    labels = ["before training"] + [f"after {i + 1}. {short(t)}" for i, t in enumerate(tasks)]
    values: list[list[float | None]] = [list(base_scores) if base_scores else [None] * T]
    for i in range(T):
        values.append(list(acc_matrix[i]) if i < len(acc_matrix) else [None] * T)
    if general is not None:
        for r, row in enumerate(values):
            row.append(general[r] if r < len(general) else None)
    return labels, values


def matrix_figure(tasks: list[str], base_scores: list[float], acc_matrix: list[list[float]],
                  current_task: int = -1, general: list[float | None] | None = None) -> go.Figure:
    """Heatmap of R: rows = before training / after task i, columns = tasks (then the general suite, set
    apart by a gap); empty rows not reached."""
    T = len(tasks)
    labels, values = matrix_rows(tasks, base_scores, acc_matrix, general)
    cols = task_labels(tasks) + ([GENERAL_LABEL] if general is not None else [])
    names = list(tasks) + ([GENERAL_HOVER] if general is not None else [])
    text = [["" if v is None else f"{v:.2f}" for v in row] for row in values]
    hover_rows = ["before training"] + [f"after training task {i + 1} ({t})" for i, t in enumerate(tasks)]
    custom = [[[hover_rows[r], names[c]] for c in range(len(cols))] for r in range(T + 1)]
    heat = dict(
        type="heatmap", z=values, x=cols, y=labels, text=text, texttemplate="%{text}", textfont=dict(size=13),
        customdata=custom, colorscale=MATRIX_SCALE, zmin=0, zmax=1, xgap=2, ygap=2,
        hovertemplate="%{customdata[0]}<br>score on %{customdata[1]}: %{z:.3f}<extra></extra>",
        colorbar=dict(title=dict(text="score"), thickness=12, len=0.9), hoverongaps=False)
    # outline the diagonal: each task's score right after it was trained
    shapes = [dict(type="rect", xref="x", yref="y", x0=i - 0.5, x1=i + 0.5, y0=i + 0.5, y1=i + 1.5,
                   line=dict(color="#D55E00", width=2)) for i in range(min(len(acc_matrix), T))]
    if 0 <= current_task < T and current_task >= len(acc_matrix):
        # the row being trained now: a dashed outline where the next numbers will appear
        shapes.append(dict(type="rect", xref="x", yref="y", x0=-0.5, x1=T - 0.5, y0=current_task + 0.5,
                           y1=current_task + 1.5, line=dict(color="#555", width=1.5, dash="dot")))
    if general is not None:   # a white bar sets the general column apart: it is not in the metrics
        shapes.append(dict(type="line", xref="x", yref="paper", x0=T - 0.5, x1=T - 0.5, y0=0, y1=1,
                           line=dict(color="white", width=8)))
    return build_figure([heat], layout(
        matrix_height(T), "Accuracy matrix", shapes=shapes, margin=dict(l=150, r=20, t=40, b=70),
        xaxis=dict(side="bottom", tickangle=-30 if T > 4 else 0, showgrid=False, fixedrange=True),
        yaxis=dict(autorange="reversed", showgrid=False, fixedrange=True)))


def _fmt(v) -> str:
    return "·" if v is None else f"{v:.2f}"


def matrix_markdown(tasks: list[str], base_scores: list[float], acc_matrix: list[list[float]],
                    general: list[float | None] | None = None) -> str:
    """The same matrix as a markdown table ('·' = not reached yet), for screen readers and copying."""
    if not tasks:
        return "_No run yet._"
    labels, values = matrix_rows(tasks, base_scores, acc_matrix, general)
    cols = task_labels(tasks) + ([GENERAL_LABEL] if general is not None else [])
    head = "| | " + " | ".join(cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    body = ["| " + label + " | " + " | ".join(_fmt(v) for v in row) + " |" for label, row in zip(labels, values)]
    return "\n".join([head, sep, *body])


# -- curves -------------------------------------------------------------------------------------
def _task_bands(tasks: list[str], segments, current_task: int, y_label: float) -> dict:
    """Layout entries: vertical lines at task boundaries, the current task shaded, each task's name on top."""
    shapes, notes = [], []
    for i, (start, end) in enumerate(segments):
        if i > 0:
            shapes.append(dict(type="line", xref="x", yref="paper", x0=start, x1=start, y0=0, y1=1,
                               line=dict(color="#888", width=1, dash="dash")))
        if i == current_task:
            shapes.append(dict(type="rect", xref="x", yref="paper", x0=start, x1=end, y0=0, y1=1,
                               fillcolor="rgba(0,114,178,0.08)", line=dict(width=0), layer="below"))
        label = f"<b>▶ {short(tasks[i], 14)}</b>" if i == current_task else short(tasks[i], 14)
        notes.append(dict(x=(start + end) / 2, y=y_label, xref="x", yref="paper", text=label, showarrow=False,
                          font=dict(size=11, color="#0072B2" if i == current_task else "#555"),
                          yanchor="bottom"))
    return dict(shapes=shapes, annotations=notes)


def curves_figure(tasks: list[str], curve_steps: list[int], curve_scores: list[list[float]],
                  boundaries: list[int], steps_per_task: int, current_task: int = -1,
                  total_steps: int | None = None, general: list[float | None] | None = None) -> go.Figure:
    """Score of every task at each periodic evaluation, over global steps (and the general suite's, grey,
    when the run evaluated it)."""
    traces = []
    if general and any(g is not None for g in general):
        traces.append(dict(
            type="scatter", x=list(curve_steps), y=list(general), mode="lines+markers", name="general",
            line=dict(color="#777", dash="dot", width=3), marker=dict(size=4, symbol="square"),
            hovertemplate="general (base's skills): %{y:.2f}<extra></extra>"))
    for j, name in enumerate(tasks):
        ys = [row[j] if j < len(row) else None for row in curve_scores]
        traces.append(dict(
            type="scatter", x=list(curve_steps), y=ys, mode="lines+markers", name=f"{j + 1}. {short(name)}",
            line=dict(color=OKABE_ITO[j % len(OKABE_ITO)], dash=DASHES[(j // len(OKABE_ITO) + j) % len(DASHES)],
                      width=2),
            marker=dict(size=5), hovertemplate=f"{name}: %{{y:.2f}}<extra></extra>"))
    total = total_steps or steps_per_task * len(tasks) or 1
    bands = _task_bands(tasks, _segments(tasks, steps_per_task, boundaries), current_task, 1.0)
    return build_figure(traces, layout(
        400, "Score of every task during training", hovermode="x unified", margin=dict(l=55, r=20, t=60, b=100),
        legend=dict(orientation="h", y=-0.3, x=0, yanchor="top"), **bands,
        xaxis=dict(range=[0, total], title=dict(text="global step"), gridcolor=GRID, zeroline=False),
        yaxis=dict(range=[-0.03, 1.03], title=dict(text="score"), gridcolor=GRID, zeroline=False)))


def _downsample(points: list[tuple[int, float]], limit: int = MAX_LOSS_POINTS):
    """Bucket means so a long run still sends a small figure."""
    if len(points) <= limit:
        return [p[0] for p in points], [p[1] for p in points]
    size = math.ceil(len(points) / limit)
    xs, ys = [], []
    for k in range(0, len(points), size):
        chunk = points[k:k + size]
        xs.append(chunk[-1][0])
        ys.append(sum(p[1] for p in chunk) / len(chunk))
    return xs, ys


def _ema(values: list[float], alpha: float = 0.1) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out.append(acc)
    return out


def loss_figure(losses: list[tuple[int, float]], tasks: list[str], boundaries: list[int],
                steps_per_task: int, current_task: int = -1, total_steps: int | None = None) -> go.Figure:
    """Training loss per optimizer step (log scale when every value is positive) and its moving average."""
    xs, ys = _downsample(losses)
    ys = [float(f"{y:.4g}") for y in ys]     # 4 significant digits: what the hover shows, half the JSON
    traces = [dict(type="scatter", x=xs, y=ys, mode="lines", name="loss", line=dict(color="#999", width=1),
                   hovertemplate="step %{x}: loss %{y:.4f}<extra></extra>"),
              dict(type="scatter", x=xs, y=_ema(ys), mode="lines", name="moving average",
                   line=dict(color="#0072B2", width=2), hovertemplate="step %{x}: average %{y:.4f}<extra></extra>")]
    total = total_steps or steps_per_task * len(tasks) or 1
    bands = _task_bands(tasks, _segments(tasks, steps_per_task, boundaries), current_task, 1.0)
    log_y = bool(ys) and min(ys) > 0
    # as tall as the matrix it sits beside (within reason)
    return build_figure(traces, layout(
        min(450, max(300, matrix_height(len(tasks)))), "Training loss", margin=dict(l=55, r=20, t=60, b=70),
        legend=dict(orientation="h", y=1.0, x=1, xanchor="right", yanchor="bottom", font=dict(size=11)),
        showlegend=False, **bands,
        xaxis=dict(range=[0, total], title=dict(text="global step"), gridcolor=GRID, zeroline=False),
        yaxis=dict(type="log" if log_y else "linear", title=dict(text="loss"), gridcolor=GRID, zeroline=False,
                   **({"dtick": 1, "exponentformat": "power"} if log_y else {}))))


# -- metrics ------------------------------------------------------------------------------------
SIGNED = {"BWT", "FWT"}
# means over the tasks before the last (BWT, forgetting) or after the first (FWT): undefined at T = 1
NEEDS_TWO_TASKS = {"BWT", "FWT", "forgetting"}


def metrics_markdown(metrics: dict[str, float], formulas: dict[str, str], explain: dict[str, str],
                     tasks_done: int, total_tasks: int) -> str:
    """Each metric's value, formula and meaning (all three come from the caller: nothing hard-coded)."""
    if not metrics:
        return "_Metrics appear once the first task has ended._"
    scope = "all tasks" if tasks_done >= total_tasks else f"the first {tasks_done} of {total_tasks} tasks"
    lines = [f"Over {scope} (T = {tasks_done}; R[0] = before training, R[t] = after task t).", "",
             "| Metric | Value | Formula | Meaning |", "|---|---:|---|---|"]
    for name, value in metrics.items():
        if name in NEEDS_TWO_TASKS and tasks_done < 2:
            shown = "n/a (needs 2 tasks)"        # an empty mean, not a zero: nothing came after task 1 yet
        else:
            shown = f"{value:+.3f}" if name in SIGNED and value is not None else format_value(name, value)
        lines.append(f"| **{name}** | {shown} | `{formulas.get(name, '')}` | {explain.get(name, '')} |")
    return "\n".join(lines)


__all__ = ["general_column", "matrix_figure", "matrix_markdown", "matrix_rows", "matrix_height", "curves_figure",
           "loss_figure", "metrics_markdown"]
