"""The Connectivity view's figure: loss or accuracy of every seen task along the line between two task
solutions, from a probe result (cit_core.connectivity's plain dict: a computed line or a recorded one)."""
from __future__ import annotations

import plotly.graph_objects as go

from . import FONT, GRID, OKABE_ITO, task_labels

HEIGHT = 340
MARK_SYMBOLS = ["diamond", "star", "square", "triangle-up"]


def curve_figure(result: dict, key: str, alpha: float | None = None) -> go.Figure:
    """`key` is "loss" or "accuracy": one line per seen task over a, the marks as points, and a vertical
    line at the slider's current a (where "Generate samples" and the table below evaluate)."""
    fig = go.Figure()
    labels = task_labels(result["tasks"])
    title = "loss (mean token CE)" if key == "loss" else "accuracy"
    for k, label in enumerate(labels):
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        fig.add_trace(go.Scatter(x=result["a"], y=result[key][k], mode="lines+markers", name=label,
                                 line=dict(color=colour), hovertemplate=f"{label}<br>a=%{{x:.2f}}<br>{key}=%{{y:.4f}}"
                                 "<extra></extra>"))
        for j, mark in enumerate(result.get("marks", [])):
            fig.add_trace(go.Scatter(x=[mark["a"]], y=[mark[key][k]], mode="markers", showlegend=k == 0,
                                     name=f"{mark['name']} (a*={mark['a']:.2f})", legendgroup=mark["name"],
                                     marker=dict(color=colour, size=12, symbol=MARK_SYMBOLS[j % len(MARK_SYMBOLS)],
                                                 line=dict(color="#000", width=1)),
                                     hovertemplate=f"{mark['name']} · {label}<br>a*=%{{x:.3f}}<br>{key}=%{{y:.4f}}"
                                     "<extra></extra>"))
    names = result["tasks"]
    fig.update_layout(template="none", height=HEIGHT, font=FONT, margin=dict(l=55, r=10, t=60, b=45),
                      title=dict(text=f"{title}: task {result['from'] + 1} ({names[result['from']]}) → "
                                      f"task {result['to'] + 1} ({names[result['to']]}), {result['variant']}",
                                 font=dict(size=13)),
                      xaxis=dict(title=dict(text="a", standoff=4), gridcolor=GRID),
                      yaxis=dict(title=title, gridcolor=GRID),
                      # the legend sits right of the plot: below it, it covered the x-axis title
                      legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top", font=dict(size=11)))
    if alpha is not None:
        fig.add_vline(x=float(alpha), line=dict(color="#555", width=1.5, dash="dash"))
        fig.add_annotation(x=float(alpha), y=1.0, yref="paper", text=f"slider a = {float(alpha):.2f}",
                           showarrow=False, yanchor="bottom", font=dict(size=11, color="#555"))
    if key == "accuracy":
        fig.update_yaxes(range=[-0.02, 1.02])
    return fig
