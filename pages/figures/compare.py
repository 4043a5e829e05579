"""The Compare view's figures: several runs side by side, from cit_core.compare's run records (their logs,
curves and matrices) and its difference matrix; cit_core.compare computes the numbers, this draws them."""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cit_core import compare as cmp

from . import GRID, MATRIX_SCALE, OKABE_ITO, short, styled

PANEL_COLS = 3             # small multiples per row
RUN_DASHES = ["solid", "dash", "dot", "dashdot"]     # colour repeats after 8 runs; dashes tell them apart


def _style(i: int) -> dict:
    return dict(color=OKABE_ITO[i % len(OKABE_ITO)], dash=RUN_DASHES[(i // len(OKABE_ITO)) % len(RUN_DASHES)])


# Layout in pixels (plotly's spacing is a fraction of the plot area, so it is derived from these): room
# for each row's tick labels, axis title and the next row's subplot titles, and one legend line per run.
PANEL_H = 200            # a curves panel's plot height
CURVES_GAP = 80          # between two rows of panels: x tick labels, "step", the next row's titles
LEGEND_LINE = 22         # one legend entry per line, below the panels
AXIS_BELOW = 62          # x tick labels and the axis title under the last row


def curves_figure(records: list[cmp.RunRecord]) -> go.Figure:
    """One panel per task (by name, so runs with other task orders line up), one line per run; every run
    has exactly one legend entry, one per line below the panels (nothing clipped however many runs)."""
    tasks = list(dict.fromkeys(t for r in records for t in r.log.tasks))
    cols = min(PANEL_COLS, max(len(tasks), 1))
    rows = max(1, math.ceil(len(tasks) / cols))
    plot_h = rows * PANEL_H + (rows - 1) * CURVES_GAP
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[short(t, 24) for t in tasks],
                        shared_yaxes=True, horizontal_spacing=0.05,
                        vertical_spacing=CURVES_GAP / plot_h if rows > 1 else 0.0)
    for i, rec in enumerate(records):
        curves = cmp.curves(rec)
        legend = True                     # on this run's first trace, whichever task it is
        for k, task in enumerate(tasks):
            if task not in rec.log.tasks:
                continue
            j = rec.log.tasks.index(task)
            fig.add_trace(go.Scatter(
                x=curves["steps"], y=[row[j] for row in curves["scores"]], mode="lines", name=rec.name,
                legendgroup=rec.name, showlegend=legend, line=dict(width=2, **_style(i)),
                hovertemplate=f"{rec.name}<br>{task} at step %{{x}}: %{{y:.2f}}<extra></extra>"),
                row=k // cols + 1, col=k % cols + 1)
            legend = False
    top, bottom = 90, AXIS_BELOW + 16 + LEGEND_LINE * len(records)
    styled(fig, plot_h + top + bottom, "Score of each task during training (one line per run)",
            margin=dict(l=60, r=30, t=top, b=bottom),
            legend=dict(orientation="v", y=-AXIS_BELOW / plot_h, x=0, yanchor="top", xanchor="left",
                        tracegroupgap=0, font=dict(size=12)))
    fig.update_annotations(font=dict(size=13))          # the subplot titles
    fig.update_xaxes(gridcolor=GRID, zeroline=False, title=dict(text="step", font=dict(size=11), standoff=6),
                     automargin=True)
    fig.update_yaxes(range=[-0.03, 1.03], gridcolor=GRID, zeroline=False, automargin=True)
    return fig


def _heatmap(labels, tasks, values, **style) -> go.Heatmap:
    text = [[f"{v:+.2f}" if style.get("zmid") is not None else f"{v:.2f}" for v in row] for row in values]
    return go.Heatmap(z=values, x=[f"{j + 1}. {short(t, 12)}" for j, t in enumerate(tasks)], y=labels, text=text,
                      texttemplate="%{text}", xgap=2, ygap=2, hovertemplate="%{y}<br>%{x}: %{z:.3f}<extra></extra>",
                      **style)


MATRIX_COLS = 3          # 4 side by side left no room for the run names above them
MATRIX_ROW = 34          # pixels per matrix row
MATRIX_GAP = 110         # between two rows of matrices: rotated task names, the next row's run names


def matrices_figure(records: list[cmp.RunRecord]) -> go.Figure:
    """Each run's accuracy matrix (base row first), side by side on one colour scale; the run names above
    and the rotated task names below each matrix keep clear of their neighbours."""
    cols = min(len(records), MATRIX_COLS)
    rows = math.ceil(len(records) / cols)
    T = max((len(r.log.tasks) for r in records), default=1)
    panel_h = MATRIX_ROW * (T + 1)
    plot_h = rows * panel_h + (rows - 1) * MATRIX_GAP
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[short(r.name, 34) for r in records],
                        horizontal_spacing=0.12, vertical_spacing=MATRIX_GAP / plot_h if rows > 1 else 0.0)
    for i, rec in enumerate(records):
        labels, values = cmp.full_matrix(rec)
        # short row names: the task names are on the x axis, and long names would run into the next matrix
        labels = [x if x == "before training" else x.split(".")[0] for x in labels]
        fig.add_trace(_heatmap(labels, rec.log.tasks, values, colorscale=MATRIX_SCALE,
                               zmin=0, zmax=1, showscale=(i == 0),
                               colorbar=dict(title=dict(text="score"), thickness=10, len=0.8)),
                      row=i // cols + 1, col=i % cols + 1)
    top, bottom = 90, 80
    styled(fig, plot_h + top + bottom, "Accuracy matrices (row = after training task i)",
            margin=dict(l=110, r=80, t=top, b=bottom))
    fig.update_annotations(font=dict(size=12))          # the run names
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10), automargin=True)
    fig.update_xaxes(tickangle=-30, tickfont=dict(size=10), automargin=True)
    return fig


def difference_figure(diff: dict, a: str, b: str) -> go.Figure:
    """B − A, diverging around 0: blue where B scores higher."""
    values = diff["values"]
    fig = go.Figure(_heatmap([short(x, 22) for x in diff["rows"]], diff["tasks"], values, colorscale="RdBu",
                             zmid=0, zmin=-1, zmax=1, colorbar=dict(title=dict(text="B − A"), thickness=12)))
    styled(fig, 140 + 34 * (len(values) + 1), f"Difference B − A<br><sup>A = {a}, B = {b}</sup>",
            margin=dict(l=150, r=20, t=80, b=60))
    fig.update_yaxes(autorange="reversed")
    return fig
