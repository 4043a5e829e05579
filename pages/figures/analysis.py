"""Plotly figures and text tables of the Forgetting and Coefficients views, built from plain run data.

No gradio here and never the model: every builder takes lists / dicts as RunLog holds them, so the views
draw a live run and a saved run directory the same way and the tests feed hand-made numbers.
Style is the package's (template="none", fixed heights, numbers on hover); colour scales are
Viridis (perceptually uniform, readable with the common colour-vision deficiencies) and the Okabe-Ito
palette for bars.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cit_core.panels import named_grid

from . import GRID, OKABE_ITO, short, styled, task_labels

HEAT_SCALE = "Viridis"
MAX_COLS = 400          # step columns sent to the browser (a heatmap cell per column per row)
MAX_ROWS = 60           # tensor / layer rows sent to the browser
MAX_MARKS = 4000        # fallback markers drawn at most (beyond that the side bar tells the story)
MAX_CELL_TEXT = 300     # cells with their value printed inside; larger heatmaps show it on hover only


MESSAGE_WIDTH = 64          # characters per line of an empty plot's message: fits a phone-wide plot


def message_figure(text: str, height: int = 220) -> go.Figure:
    """An empty plot area that says why there is nothing to draw (instead of a blank box): the whole text,
    wrapped into short lines (an annotation never wraps by itself, so one long line would be clipped)."""
    import textwrap
    lines = textwrap.wrap(text, MESSAGE_WIDTH) or [""]
    fig = go.Figure()
    fig.add_annotation(text="<br>".join(lines), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       align="left", font=dict(size=14, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return styled(fig, max(height, 80 + 22 * len(lines)), "")


# -- down-sampling --------------------------------------------------------------------------------
def bin_columns(z: np.ndarray, max_cols: int = MAX_COLS) -> tuple[np.ndarray, int]:
    """Mean over bins of k consecutive columns (NaN = no value, ignored), k = ceil(n / max_cols)."""
    n = z.shape[1]
    k = max(1, math.ceil(n / max_cols))
    if k == 1:
        return z, 1
    pad = (-n) % k
    padded = np.pad(z, ((0, 0), (0, pad)), constant_values=np.nan)
    return _nanmean(padded.reshape(z.shape[0], -1, k), axis=2), k


def bin_rows(names: list[str], z: np.ndarray, max_rows: int = MAX_ROWS) -> tuple[list[str], np.ndarray, int]:
    """Mean over groups of k consecutive rows, labelled by their first and last name."""
    n = len(names)
    k = max(1, math.ceil(n / max_rows))
    if k == 1:
        return list(names), z, 1
    groups = [list(range(i, min(i + k, n))) for i in range(0, n, k)]
    labels = [names[g[0]] if len(g) == 1 else f"{names[g[0]]} … {names[g[-1]]}" for g in groups]
    return labels, np.stack([_nanmean(z[g], axis=0) for g in groups]), k


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean without the 'mean of empty slice' warning: all-NaN bins stay NaN."""
    valid = ~np.isnan(a)
    count = valid.sum(axis=axis)
    total = np.where(valid, a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def column_centres(n_cols: int, k: int) -> np.ndarray:
    """Global step at the middle of each bin of k steps (steps are 1-based)."""
    starts = np.arange(n_cols) * k + 1
    return starts + (k - 1) / 2


# -- log colour scale -------------------------------------------------------------------------------
def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks at 1, 2, 5 × 10^n (log10 positions) labelled with the value itself."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [], []
    first, last = math.floor(lo), math.ceil(hi)
    mantissas = (1, 2, 5) if last - first <= 3 else (1,)
    vals = [e + math.log10(m) for e in range(first, last + 1) for m in mantissas]
    vals = [v for v in vals if lo - 1e-9 <= v <= hi + 1e-9] or [lo, hi]
    return vals, [f"{10 ** v:.3g}" for v in vals]


def safe_log10(z: np.ndarray) -> np.ndarray:
    """log10 of positive values; zero / negative / missing -> NaN (blank cell, said in the hover note)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan)


def _finite_range(z: np.ndarray) -> tuple[float, float]:
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = float(finite.min()), float(finite.max())
    return (lo - 0.5, hi + 0.5) if hi - lo < 1e-12 else (lo, hi)


def _f32(z: np.ndarray) -> np.ndarray:
    """float32 numpy for the browser: plotly sends it as a compact binary array (NaN = blank cell), and
    skips the per-element validation that nested lists cost (~0.3 s for a 28 x 375 heatmap)."""
    return np.asarray(z, dtype=np.float32)


# -- coefficient heatmap (tensor x step) -------------------------------------------------------
def step_heatmap(names: list[str], z: np.ndarray, *, title: str, value_name: str,
                 fallback: np.ndarray | None = None, side: list[float] | None = None, side_title: str = "",
                 side_log: bool = False, tasks: list[str] | None = None, boundaries: list[int] | None = None,
                 max_cols: int = MAX_COLS, max_rows: int = MAX_ROWS) -> go.Figure:
    """Heatmap of log10(value) per tensor (row) per global step (column), ticks labelled in the value.

    `fallback` (same shape, 1 = this value is a fallback) marks fallback cells with ×; `side` is one
    number per tensor drawn as a bar beside its row. Larger inputs are averaged over bins of steps and
    of tensors, and the title says so.
    """
    zc, k_cols = bin_columns(z, max_cols)
    labels, zb, k_rows = bin_rows(names, zc, max_rows)
    logz = safe_log10(zb)
    lo, hi = _finite_range(logz)
    tickvals, ticktext = log_ticks(lo, hi)
    xs = column_centres(zb.shape[1], k_cols)
    has_side = side is not None and len(side) == len(names)
    fig = make_subplots(rows=1, cols=2 if has_side else 1, shared_yaxes=True, horizontal_spacing=0.02,
                        column_widths=[0.8, 0.2] if has_side else None)
    span = f"steps %{{x:.0f}} ± {(k_cols - 1) / 2:g}" if k_cols > 1 else "step %{x:.0f}"
    fig.add_trace(go.Heatmap(
        z=_f32(logz), x=xs, y=labels, customdata=_f32(zb), colorscale=HEAT_SCALE,
        zmin=lo if math.isfinite(lo) else None, zmax=hi if math.isfinite(hi) else None, hoverongaps=False,
        colorbar=dict(title=dict(text=value_name), tickvals=tickvals, ticktext=ticktext, thickness=12, len=0.9,
                      x=1.0 if has_side else None),
        hovertemplate=f"%{{y}}<br>{span}<br>{value_name} = %{{customdata:.4g}}<extra></extra>"), row=1, col=1)
    notes = []
    if fallback is not None:
        notes += _fallback_marks(fig, fallback, labels, xs, k_cols, k_rows, max_cols, max_rows)
    if has_side:
        _, side_b, _ = bin_rows(names, np.asarray(side, float)[:, None], max_rows)
        fig.add_trace(go.Bar(x=side_b[:, 0].tolist(), y=labels, orientation="h", marker_color=OKABE_ITO[1],
                             name=side_title, hovertemplate=f"%{{y}}<br>{side_title}: %{{x:.4g}}<extra></extra>"),
                      row=1, col=2)
        fig.update_xaxes(title=dict(text=side_title, font=dict(size=11)), type="log" if side_log else "linear",
                         gridcolor=GRID, row=1, col=2)
    if k_cols > 1 or k_rows > 1:
        notes.append(f"down-sampled: 1 column = {k_cols} steps, 1 row = {k_rows} tensors (means)")
    _boundary_lines(fig, tasks or [], boundaries or [])
    height = max(320, min(900, 120 + 14 * len(labels)))
    full_title = title + ("<br><sup>" + "; ".join(notes) + "</sup>" if notes else "")
    styled(fig, height, full_title, showlegend=False, margin=dict(l=190, r=20, t=80 if notes else 60, b=50))
    fig.update_xaxes(title=dict(text="global step"), showgrid=False, zeroline=False, row=1, col=1)
    fig.update_yaxes(autorange="reversed", showgrid=False, tickfont=dict(size=10), row=1, col=1)
    return fig


def _fallback_marks(fig, fallback, labels, xs, k_cols, k_rows, max_cols, max_rows) -> list[str]:
    """× on every cell where at least half of the binned values were fallbacks; returns title notes."""
    fc, _ = bin_columns(fallback.astype(float), max_cols)
    _, fb, _ = bin_rows([str(i) for i in range(fallback.shape[0])], fc, max_rows)
    rows, cols = np.nonzero(np.nan_to_num(fb, nan=0.0) >= 0.5)
    what = "× = fell back" if k_cols == 1 and k_rows == 1 else "× = fell back in ≥ half of the cell's steps"
    if len(rows) > MAX_MARKS:
        return [f"{len(rows)} fallback cells (too many to mark: see the side bar)"]
    if len(rows):
        fig.add_trace(go.Scatter(
            x=xs[cols], y=[labels[r] for r in rows], mode="markers", name="fallback",
            marker=dict(symbol="x-thin", size=7, line=dict(width=1.5, color="white")),
            customdata=_f32(fb[rows, cols]),
            hovertemplate="%{y}<br>step %{x:.0f}: fallback share %{customdata:.2f}<extra></extra>"), row=1, col=1)
    return [what]


def _boundary_lines(fig, tasks: list[str], boundaries: list[int]) -> None:
    """Dashed vertical line where each task starts (its name on top), on the step axis of column 1."""
    for i, start in enumerate(boundaries[: len(tasks)]):
        if i > 0:
            fig.add_vline(x=start + 0.5, line=dict(color="#D55E00", width=1, dash="dash"), row=1, col=1)
        fig.add_annotation(x=start + 0.5, y=1.0, xref="x", yref="paper", text=short(tasks[i], 12), showarrow=False,
                           xanchor="left", yanchor="bottom", font=dict(size=10, color="#555"))


# -- importance (layer x task) --------------------------------------------------------------------
def layer_task_heatmap(layers: list[str], tasks: list[str], z: np.ndarray, *, title: str, value_name: str,
                       log: bool, side: list[float] | None = None, side_title: str = "",
                       max_rows: int = MAX_ROWS) -> go.Figure:
    """Heatmap layer (row) x task (column); log colour with ticks in the value when `log`."""
    labels, zb, k_rows = bin_rows(layers, z, max_rows)
    shown = safe_log10(zb) if log else zb
    lo, hi = _finite_range(shown)
    tickvals, ticktext = log_ticks(lo, hi) if log else (None, None)
    cols = task_labels(tasks)[: z.shape[1]]
    has_side = side is not None and len(side) == len(layers)
    fig = make_subplots(rows=1, cols=2 if has_side else 1, shared_yaxes=True, horizontal_spacing=0.02,
                        column_widths=[0.78, 0.22] if has_side else None)
    small = zb.size <= MAX_CELL_TEXT
    fig.add_trace(go.Heatmap(
        z=_f32(shown), x=cols, y=labels, customdata=_f32(zb), colorscale=HEAT_SCALE, xgap=1, ygap=1,
        zmin=lo if math.isfinite(lo) else None, zmax=hi if math.isfinite(hi) else None, hoverongaps=False,
        text=[[f"{v:.3g}" if math.isfinite(v) else "" for v in row] for row in zb.tolist()] if small else None,
        texttemplate="%{text}" if small else None, textfont=dict(size=10),
        colorbar=dict(title=dict(text=value_name), tickvals=tickvals, ticktext=ticktext, thickness=12, len=0.9),
        hovertemplate=f"%{{y}}<br>during %{{x}}<br>{value_name} = %{{customdata:.4g}}<extra></extra>"),
        row=1, col=1)
    if has_side:
        _, side_b, _ = bin_rows(layers, np.asarray(side, float)[:, None], max_rows)
        fig.add_trace(go.Bar(x=side_b[:, 0].tolist(), y=labels, orientation="h", marker_color=OKABE_ITO[1],
                             hovertemplate=f"%{{y}}<br>{side_title}: %{{x:.4g}}<extra></extra>"), row=1, col=2)
        fig.update_xaxes(title=dict(text=side_title, font=dict(size=11)), type="log" if log else "linear",
                         gridcolor=GRID, row=1, col=2)
    note = f"<br><sup>down-sampled: 1 row = {k_rows} layers (means)</sup>" if k_rows > 1 else ""
    height = max(320, min(900, 130 + 18 * len(labels)))
    styled(fig, height, title + note, showlegend=False, margin=dict(l=230, r=20, t=70, b=70))
    fig.update_yaxes(autorange="reversed", showgrid=False, tickfont=dict(size=10), row=1, col=1)
    fig.update_xaxes(showgrid=False, tickangle=-30 if len(cols) > 4 else 0, row=1, col=1)
    return fig


# -- drift beside the accuracy drops ------------------------------------------------------------
def drop_during(acc_matrix: list[list[float]]) -> list[float | None]:
    """Per finished task t: mean score lost by the earlier tasks j < t while t trained,
    mean_j (R[t-1][j] - R[t][j]); None for the first task (nothing earlier to lose)."""
    out: list[float | None] = []
    for t, row in enumerate(acc_matrix):
        if t == 0:
            out.append(None)
            continue
        prev = acc_matrix[t - 1]
        out.append(sum(prev[j] - row[j] for j in range(t)) / t)
    return out


def forgetting_so_far(acc_matrix: list[list[float]]) -> list[float | None]:
    """Per task j: best score after it was trained (rows j..T-2) minus the latest score (row T-1);
    None for the latest task and tasks not yet trained."""
    T = len(acc_matrix)
    out: list[float | None] = []
    for j in range(T):
        if j >= T - 1:
            out.append(None)
        else:
            out.append(max(acc_matrix[i][j] for i in range(j, T - 1)) - acc_matrix[T - 1][j])
    return out


def drift_figure(tasks: list[str], drift: list[dict], acc_matrix: list[list[float]],
                 max_rows: int = MAX_ROWS) -> go.Figure:
    """Layer-drift heatmap (layer x task) over bars of the accuracy drops, one column per finished task."""
    if not drift:
        return message_figure("No layer drift in this run yet: it is logged when each task ends.", 300)
    layers, z = named_grid(drift)
    labels, zb, k_rows = bin_rows(layers, z, max_rows)
    cols = task_labels(tasks)[: len(drift)]
    small = zb.size <= MAX_CELL_TEXT
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    fig.add_trace(go.Heatmap(
        z=_f32(zb), x=cols, y=labels, colorscale=HEAT_SCALE, xgap=1, ygap=1, hoverongaps=False,
        text=[[f"{v:.3f}" if math.isfinite(v) else "" for v in row] for row in zb.tolist()] if small else None,
        texttemplate="%{text}" if small else None, textfont=dict(size=10),
        colorbar=dict(title=dict(text="‖Δθ‖/‖θ‖"), thickness=12, len=0.7, y=0.64),
        hovertemplate="%{y}<br>during %{x}<br>‖Δθ‖/‖θ‖ = %{z:.4g}<extra></extra>"), row=1, col=1)
    drops, forgot = drop_during(acc_matrix), forgetting_so_far(acc_matrix)
    n = len(cols)
    fig.add_trace(go.Bar(x=cols, y=[drops[i] if i < len(drops) else None for i in range(n)],
                         name="earlier tasks' mean drop while this task trained", marker_color=OKABE_ITO[0],
                         hovertemplate="%{x}: earlier tasks lost %{y:.3f} on average<extra></extra>"), row=2, col=1)
    fig.add_trace(go.Bar(x=cols, y=[forgot[i] if i < len(forgot) else None for i in range(n)],
                         name="this task's forgetting so far (best − latest)", marker_color=OKABE_ITO[1],
                         marker_pattern_shape="/",
                         hovertemplate="%{x}: forgotten %{y:.3f} since its best<extra></extra>"), row=2, col=1)
    note = f"<br><sup>down-sampled: 1 row = {k_rows} layers (means)</sup>" if k_rows > 1 else ""
    height = max(420, min(950, 260 + 18 * len(labels)))
    styled(fig, height, "Layer drift during each task, and the accuracy it cost" + note, barmode="group",
           margin=dict(l=230, r=20, t=70, b=90), legend=dict(orientation="h", y=-0.18, x=0, font=dict(size=11)))
    fig.update_yaxes(autorange="reversed", showgrid=False, tickfont=dict(size=10), row=1, col=1)
    fig.update_yaxes(title=dict(text="score lost", font=dict(size=11)), gridcolor=GRID, zeroline=True, row=2, col=1)
    fig.update_xaxes(tickangle=-30 if n > 4 else 0, row=2, col=1)
    return fig


# -- text tables (the accessible alternative of every heatmap) --------------------------------------
def _cell(v, fmt: str = ".4g") -> str:
    return "·" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def grid_markdown(row_names: list[str], col_names: list[str], z: np.ndarray, corner: str = "", fmt=".4g") -> str:
    """A markdown table of z (rows x columns); '·' where there is no value."""
    head = f"| {corner} | " + " | ".join(col_names) + " |"
    sep = "|---|" + "---:|" * len(col_names)
    body = [f"| {name} | " + " | ".join(_cell(v, fmt) for v in row) + " |" for name, row in zip(row_names, z.tolist())]
    return "\n".join([head, sep, *body])


def drift_markdown(tasks: list[str], drift: list[dict], acc_matrix: list[list[float]]) -> str:
    if not drift:
        return "_No layer drift logged yet._"
    layers, z = named_grid(drift)
    cols = task_labels(tasks)[: len(drift)]
    drops, forgot = drop_during(acc_matrix), forgetting_so_far(acc_matrix)
    extra = np.array([[d if d is not None else np.nan for d in drops[: len(cols)]],
                      [f if f is not None else np.nan for f in forgot[: len(cols)]]], float)
    extra = np.pad(extra, ((0, 0), (0, len(cols) - extra.shape[1])), constant_values=np.nan)
    table = grid_markdown(layers, cols, z, "layer: ‖Δθ‖/‖θ‖ during task")
    drops_table = grid_markdown(["earlier tasks' mean drop while it trained", "its forgetting so far"], cols, extra,
                                "accuracy", ".3f")
    return table + "\n\n" + drops_table


def step_summary_markdown(names: list[str], z: np.ndarray, value_name: str,
                          fallback: list[float] | None = None) -> str:
    """Per tensor: steps logged, min / median / max / latest value (and fallback share): the heatmap in
    words; the full tensor x step grid is too wide for a table."""
    head = f"| tensor | steps logged | min {value_name} | median | max | latest |" + (" fallback share |" if fallback
                                                                                    else "")
    sep = "|---|---:|---:|---:|---:|---:|" + ("---:|" if fallback else "")
    body = []
    for i, name in enumerate(names):
        row = z[i][~np.isnan(z[i])]
        if row.size == 0:
            stats = ["0", "·", "·", "·", "·"]
        else:
            stats = [str(row.size), *(f"{v:.4g}" for v in (row.min(), np.median(row), row.max(), row[-1]))]
        tail = f" {fallback[i]:.3f} |" if fallback else ""
        body.append(f"| {name} | " + " | ".join(stats) + " |" + tail)
    return "\n".join([head, sep, *body])


__all__ = ["bin_columns", "bin_rows", "step_heatmap", "layer_task_heatmap", "drift_figure", "drop_during", "forgetting_so_far",
           "grid_markdown", "drift_markdown", "step_summary_markdown", "log_ticks", "message_figure"]
