"""Every Plotly figure of the app, built from plain run data (RunLog pieces, lists, dicts); never the model.

One module per family of figures: `progress` (accuracy matrix, score curves, loss, metrics table),
`analysis` (the Forgetting and Coefficients heatmaps and their text tables). This package's own namespace
holds the shared style, so every figure looks alike:

- `template="none"` (a much smaller JSON per update), a fixed height, the numbers on hover;
- colours readable with the common colour-vision deficiencies: Cividis for matrices, the Okabe-Ito
  palette (plus distinct dash patterns) for lines and bars.
"""
from __future__ import annotations

import plotly.graph_objects as go

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
MATRIX_SCALE = "Cividis"
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=13, color="#222")
GRID = "#e5e5e5"


def short(name: str, limit: int = 16) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def task_labels(tasks: list[str]) -> list[str]:
    """Numbered, shortened labels ("1. parity"): unique even when long names shorten alike."""
    return [f"{i + 1}. {short(t)}" for i, t in enumerate(tasks)]


def layout(height: int, title: str, **extra) -> dict:
    """The shared layout as a dict: white, no template, the title at the top left."""
    return dict(template="none", height=height, font=FONT, paper_bgcolor="white", plot_bgcolor="white",
                title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)), **extra)


def styled(fig: go.Figure, height: int, title: str, **extra) -> go.Figure:
    """Apply the shared layout to a figure built trace by trace (subplots)."""
    fig.update_layout(**layout(height, title, **extra))
    return fig


def build_figure(traces: list[dict], figure_layout: dict) -> go.Figure:
    """Build a figure in one constructor call: plotly validates it once. The live Train tab redraws
    several times a second, and per-call add_trace / update_layout cost about 7x more (bench/RESULTS.md)."""
    return go.Figure(data=traces, layout=figure_layout)


__all__ = ["OKABE_ITO", "DASHES", "MATRIX_SCALE", "FONT", "GRID", "short", "task_labels", "layout", "styled",
           "build_figure"]
