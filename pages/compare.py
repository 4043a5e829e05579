"""The Compare tab: several saved runs side by side (methods, seeds, task orders).

Per-task score curves as small multiples (one panel per task, colour = run), the accuracy matrices side
by side, a table per run and a table of mean ± std over seeds per (method, lesson), and the difference
matrix B − A of two runs. The numbers come from cit_core.compare; this module only draws them.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cit_core import compare as cmp
from cit_core.export import write_figure_html, write_metrics
from cit_core.store import RunNotFound, list_runs, run_path

from . import source as src
from .figures import GRID, MATRIX_SCALE, OKABE_ITO, _base_layout, short

MAX_RUNS = 8               # more runs than this make unreadable small multiples
PANEL_COLS = 3
RUN_DASHES = ["solid", "dash", "dot", "dashdot"]     # colour repeats after 8 runs; dashes tell them apart


@dataclass
class View:
    timer: gr.Timer


def _style(i: int) -> dict:
    return dict(color=OKABE_ITO[i % len(OKABE_ITO)], dash=RUN_DASHES[(i // len(OKABE_ITO)) % len(RUN_DASHES)])


def load(names: list[str]) -> list[cmp.RunRecord]:
    """Records of the picked runs; CompareError (a message for the user) when one cannot be read."""
    if not names:
        raise cmp.CompareError("Pick at least one run.")
    if len(names) > MAX_RUNS:
        raise cmp.CompareError(f"Pick at most {MAX_RUNS} runs (got {len(names)}).")
    try:
        return cmp.load_runs([run_path(n) for n in names])
    except RunNotFound as err:
        raise cmp.CompareError(str(err)) from err


# -- figures -------------------------------------------------------------------------------------
def curves_figure(records: list[cmp.RunRecord]) -> go.Figure:
    """One panel per task (by name, so runs with other task orders line up), one line per run."""
    tasks = list(dict.fromkeys(t for r in records for t in r.log.tasks))
    cols = min(PANEL_COLS, max(len(tasks), 1))
    rows = max(1, math.ceil(len(tasks) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[short(t, 24) for t in tasks],
                        shared_yaxes=True, horizontal_spacing=0.05, vertical_spacing=0.16)
    for i, rec in enumerate(records):
        curves = cmp.curves(rec)
        for k, task in enumerate(tasks):
            if task not in rec.log.tasks:
                continue
            j = rec.log.tasks.index(task)
            fig.add_trace(go.Scatter(
                x=curves["steps"], y=[row[j] for row in curves["scores"]], mode="lines", name=rec.name,
                legendgroup=rec.name, showlegend=(k == 0), line=dict(width=2, **_style(i)),
                hovertemplate=f"{rec.name}<br>{task} at step %{{x}}: %{{y:.2f}}<extra></extra>"),
                row=k // cols + 1, col=k % cols + 1)
    _base_layout(fig, 230 * rows + 150, "Score of each task during training (one line per run)",
                 margin=dict(l=55, r=20, t=70, b=80), legend=dict(orientation="h", y=-0.12, x=0, yanchor="top"))
    fig.update_xaxes(gridcolor=GRID, zeroline=False, title=dict(text="step", font=dict(size=11)))
    fig.update_yaxes(range=[-0.03, 1.03], gridcolor=GRID, zeroline=False)
    return fig


def _heatmap(labels, tasks, values, **style) -> go.Heatmap:
    text = [[f"{v:+.2f}" if style.get("zmid") is not None else f"{v:.2f}" for v in row] for row in values]
    return go.Heatmap(z=values, x=[f"{j + 1}. {short(t, 12)}" for j, t in enumerate(tasks)], y=labels, text=text,
                      texttemplate="%{text}", xgap=2, ygap=2, hovertemplate="%{y}<br>%{x}: %{z:.3f}<extra></extra>",
                      **style)


def matrices_figure(records: list[cmp.RunRecord]) -> go.Figure:
    """Each run's accuracy matrix (base row first), side by side on one colour scale."""
    cols = min(len(records), 4)
    rows = math.ceil(len(records) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[short(r.name, 30) for r in records],
                        horizontal_spacing=0.1, vertical_spacing=0.14)
    for i, rec in enumerate(records):
        labels, values = cmp.full_matrix(rec)
        # short row names: the task names are on the x axis, and long names would run into the next matrix
        labels = [x if x == "before training" else x.split(".")[0] for x in labels]
        fig.add_trace(_heatmap(labels, rec.log.tasks, values, colorscale=MATRIX_SCALE,
                               zmin=0, zmax=1, showscale=(i == 0),
                               colorbar=dict(title=dict(text="score"), thickness=10, len=0.8)),
                      row=i // cols + 1, col=i % cols + 1)
    T = max((len(r.log.tasks) for r in records), default=1)
    _base_layout(fig, rows * (120 + 34 * (T + 1)) + 60, "Accuracy matrices (row = after training task i)",
                 margin=dict(l=110, r=20, t=80, b=40))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10))
    fig.update_xaxes(tickangle=-30, tickfont=dict(size=10))
    return fig


def difference_figure(diff: dict, a: str, b: str) -> go.Figure:
    """B − A, diverging around 0: blue where B scores higher."""
    values = diff["values"]
    fig = go.Figure(_heatmap([short(x, 22) for x in diff["rows"]], diff["tasks"], values, colorscale="RdBu",
                             zmid=0, zmin=-1, zmax=1, colorbar=dict(title=dict(text="B − A"), thickness=12)))
    _base_layout(fig, 140 + 34 * (len(values) + 1), f"Difference B − A<br><sup>A = {a}, B = {b}</sup>",
                 margin=dict(l=150, r=20, t=80, b=60))
    fig.update_yaxes(autorange="reversed")
    return fig


# -- tables --------------------------------------------------------------------------------------
def _num(v) -> str:
    return "unfinished" if v is None else f"{v:.3f}"


def runs_markdown(rows: list[dict]) -> str:
    head = "| run | method | lesson | seed | AP | BWT | FWT | forgetting | wall s |\n|---|---|---|---|---|---|---|---|---|"
    lines = [f"| {r['run']} | {r['method']} | {r['lesson']} | {r['seed']} | "
             + " | ".join(_num(r[k]) for k in cmp.METRICS)
             + f" | {'' if r['wall_s'] is None else format(r['wall_s'], '.1f')} |" for r in rows]
    return "\n".join([head, *lines])


def groups_markdown(groups: list[dict]) -> str:
    head = ("| method | lesson | runs (seeds) | AP | BWT | FWT | forgetting | wall s |\n"
            "|---|---|---|---|---|---|---|---|")
    lines = [f"| {g['method']} | {g['lesson']} | {g['runs']} ({', '.join(map(str, g['seeds'])) or '—'}) | "
             + " | ".join(cmp.format_pm(g[k]) for k in cmp.METRICS) + f" | {cmp.format_pm(g['wall_s'])} |"
             for g in groups]
    return "\n".join([head, *lines]) + ("\n\n_mean ± std over the finished runs of each (method, lesson); std is "
                                        "the population std (numpy's default); unfinished runs are left out._")


# -- handlers ------------------------------------------------------------------------------------
def show(names):
    """Outputs: note, curves, matrices, runs table, groups table, A choices, B choices."""
    try:
        records = load(names or [])
    except cmp.CompareError as err:
        return (f"**{err}**", None, None, "", "", gr.update(choices=[], value=None),
                gr.update(choices=[], value=None))
    rows = [cmp.run_row(r) for r in records]
    picked = [r.name for r in records]
    return ("", curves_figure(records), matrices_figure(records), runs_markdown(rows),
            groups_markdown(cmp.grouped(rows)),
            gr.update(choices=picked, value=picked[0]),
            gr.update(choices=picked, value=picked[1] if len(picked) > 1 else picked[0]))


def show_difference(a, b):
    if not a or not b:
        return None, "_Pick two runs (A and B) among the compared ones._"
    try:
        ra, rb = load([a]) + load([b])
        diff = cmp.difference(ra, rb)
    except cmp.CompareError as err:
        return None, f"**{err}**"
    return difference_figure(diff, a, b), ""


def export(names, a, b):
    """CSV + JSON of the metrics and each figure as standalone HTML, in a fresh temp folder (downloads)."""
    try:
        records = load(names or [])
    except cmp.CompareError as err:
        return None, f"**{err}**"
    folder = Path(tempfile.mkdtemp(prefix="cit-compare-"))
    files = write_metrics(records, folder, "compare_metrics")
    files.append(write_figure_html(curves_figure(records), folder / "compare_curves.html"))
    files.append(write_figure_html(matrices_figure(records), folder / "compare_matrices.html"))
    if a and b and a != b:
        try:
            ra, rb = load([a]) + load([b])
            files.append(write_figure_html(difference_figure(cmp.difference(ra, rb), a, b),
                                           folder / "compare_difference.html"))
        except cmp.CompareError:
            pass                      # the difference panel already says why there is none
    return [str(f) for f in files], f"{len(files)} files ready below."


def build_compare_tab(registry, run_state) -> View:
    gr.Markdown("_Pick saved runs (different methods, seeds or task orders) to see them side by side. "
                "Every run trained in this app is saved; the Runs tab manages them._")
    with gr.Row():
        pick = gr.Dropdown(list_runs(), value=[], multiselect=True, label="Runs to compare", scale=4,
                           max_choices=MAX_RUNS)
        reload = gr.Button("↻ runs", scale=0, min_width=60)
        go_btn = gr.Button("Compare", variant="primary", scale=0, min_width=100)
    note = gr.Markdown()
    groups = gr.Markdown(elem_classes=["cit-metrics"])
    with gr.Accordion("Per run", open=False):
        table = gr.Markdown(elem_classes=["cit-metrics"])
    curves = gr.Plot(show_label=False)
    matrices = gr.Plot(show_label=False)
    with gr.Row():
        run_a = gr.Dropdown([], label="A", scale=2)
        run_b = gr.Dropdown([], label="B", scale=2)
    diff_note = gr.Markdown()
    diff = gr.Plot(show_label=False)
    with gr.Row():
        export_btn = gr.Button("Export metrics (CSV, JSON) and figures (HTML)", scale=0)
        export_note = gr.Markdown()
    files = gr.File(label="Downloads", file_count="multiple", interactive=False)
    timer = gr.Timer(src.TIMER_S * 5, active=False)
    known = gr.State(None)

    def poll(seen):
        """Keep the run list current while the tab is shown (new runs, deleted runs)."""
        names = list_runs()
        if names == seen:
            return gr.skip(), gr.skip()
        return names, gr.update(choices=names)

    timer.tick(poll, [known], [known, pick], concurrency_limit=None, show_progress="hidden")
    reload.click(lambda: gr.update(choices=list_runs()), None, [pick], concurrency_limit=None)
    go_btn.click(show, [pick], [note, curves, matrices, table, groups, run_a, run_b], concurrency_limit=2,
                 api_visibility="private") \
        .then(show_difference, [run_a, run_b], [diff, diff_note], api_visibility="private")
    for dd in (run_a, run_b):
        dd.input(show_difference, [run_a, run_b], [diff, diff_note], concurrency_limit=2,
                 api_visibility="private")
    export_btn.click(export, [pick, run_a, run_b], [files, export_note], concurrency_limit=2,
                     api_visibility="private")
    return View(timer)
