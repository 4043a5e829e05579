"""The Class board's figures, from serve.board's rows and per-method groups (plain data): every
participant's AP and forgetting, grouped by method with the method's mean ± std, and every run's final
accuracy matrix as small multiples."""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import GRID, MATRIX_SCALE, OKABE_ITO, short, styled

PANELS = (("AP", "Average accuracy (AP) ↑"), ("forgetting", "Forgetting ↓"))
SPREAD = 0.28            # participants of a method spread over ±this around the method's position
MATRIX_COLS = 4
MATRIX_MAX = 40          # small multiples drawn at most (a room of 40 people); the table has every run
MATRIX_H = 150           # one row of matrices, plot area
MATRIX_GAP = 70          # between rows of matrices: the next row's participant names


def _offsets(n: int) -> list[float]:
    """Where a method's n points sit around its position: evenly spread, so no two points overlap."""
    return [0.0] if n == 1 else [-SPREAD + 2 * SPREAD * k / (n - 1) for k in range(n)]


def _points(rows, method: str, x: int, key: str, colour: str) -> go.Scatter:
    mine = [r for r in rows if r.method == method and getattr(r, key) is not None]
    xs = [x + dx for dx in _offsets(len(mine))]
    return go.Scatter(
        x=xs, y=[getattr(r, key) for r in mine], mode="markers", name=method, legendgroup=method,
        showlegend=False, text=[r.name for r in mine],
        marker=dict(size=9, color=colour, symbol=["circle-open" if r.recording else "circle" for r in mine],
                    line=dict(width=1.5, color=colour)),
        hovertemplate=f"%{{text}} ({method})<br>{key}: %{{y:.3f}}<extra></extra>")


def _mean(group: dict, x: int, key: str, colour: str, legend: bool) -> go.Scatter | None:
    if group.get(key) is None:
        return None
    mean, std = group[key]
    return go.Scatter(
        x=[x + SPREAD + 0.12], y=[mean], mode="markers", name=f"{group['method']} (n={group['n']})",
        legendgroup=group["method"], showlegend=legend,
        marker=dict(size=13, symbol="diamond", color=colour, line=dict(width=1, color="#222")),
        error_y=dict(type="data", array=[std], color=colour, thickness=2, width=6),
        hovertemplate=f"{group['method']}: mean %{{y:.3f}} ± {std:.3f} (n={group['n']})<extra></extra>")


def overlay_figure(rows, groups: list[dict]) -> go.Figure:
    """AP and forgetting side by side: one point per finished run (hollow: a recording), grouped by
    method, and the method's mean ± std (population std over its runs) as a diamond with a bar."""
    methods = [g["method"] for g in groups]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in PANELS], horizontal_spacing=0.1)
    for col, (key, _) in enumerate(PANELS, start=1):
        for x, group in enumerate(groups):
            colour = OKABE_ITO[x % len(OKABE_ITO)]
            fig.add_trace(_points(rows, group["method"], x, key, colour), row=1, col=col)
            mean = _mean(group, x, key, colour, legend=(col == 1))
            if mean is not None:
                fig.add_trace(mean, row=1, col=col)
    styled(fig, 380, "The class: every run, and each method's mean ± std",
           margin=dict(l=55, r=20, t=80, b=60), legend=dict(orientation="h", y=-0.18, x=0))
    fig.update_xaxes(tickvals=list(range(len(methods))), ticktext=methods, range=[-0.6, len(methods) - 0.2],
                     gridcolor=GRID, zeroline=False)
    fig.update_yaxes(range=[-0.03, 1.03], gridcolor=GRID, zeroline=False)
    fig.update_annotations(font=dict(size=13))
    return fig


def matrices_figure(rows) -> go.Figure:
    """Each run's final accuracy matrix (row = after training task i), small and side by side on one
    colour scale, titled with the participant's name."""
    shown = [r for r in rows if r.matrix][:MATRIX_MAX]
    cols = max(1, min(MATRIX_COLS, len(shown)))
    n_rows = max(1, math.ceil(len(shown) / cols))
    plot_h = n_rows * MATRIX_H + (n_rows - 1) * MATRIX_GAP
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=[short(f"{r.name} · {r.method}", 30) for r in shown],
                        horizontal_spacing=0.06, vertical_spacing=MATRIX_GAP / plot_h if n_rows > 1 else 0.0)
    for i, row in enumerate(shown):
        tasks = [f"{j + 1}. {short(t, 10)}" for j, t in enumerate(row.tasks)] or None
        fig.add_trace(go.Heatmap(
            z=row.matrix, x=tasks, y=[f"after {k + 1}" for k in range(len(row.matrix))], zmin=0, zmax=1,
            colorscale=MATRIX_SCALE, showscale=(i == 0), xgap=1, ygap=1,
            colorbar=dict(title=dict(text="score"), thickness=10, len=0.8),
            hovertemplate=f"{row.name}<br>%{{y}}, %{{x}}: %{{z:.3f}}<extra></extra>"),
            row=i // cols + 1, col=i % cols + 1)
    styled(fig, plot_h + 130, "Final accuracy matrices (row = after training task i, column = task j)",
           margin=dict(l=70, r=70, t=80, b=50))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=9))
    fig.update_xaxes(showticklabels=False)       # the tasks are in the hover; names would crowd small panels
    fig.update_annotations(font=dict(size=11))
    return fig
