"""The Embeddings tab: instruction-embedding clusters beside the task-similarity matrices the methods use.

Data come from `cit_core.embeddings` (MiniLM embeddings, PCA/UMAP, matrices from the run log). UMAP never
blocks the page: a background job embeds and projects; PCA is drawn as soon as it exists and UMAP on the
next timer tick after it is ready. A saved run's `embeddings.json` (from `python -m cit_core probe
embeddings`) is used when it holds a UMAP map.

Point selection: Gradio 6.31's `gr.Plot` has only a `change` event (no click/select), so clicking a
point in the chart cannot reach Python; a point picker (numbers as in the hover text) lists the nearest
instructions instead and rings them on the map.
"""
from __future__ import annotations

import functools
import html
import json
import textwrap
from dataclasses import dataclass
from types import SimpleNamespace

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from cit_core import embeddings as emb
from cit_core.events import RunLog
from cit_core.lessons import default_lesson
from serve import compute

from . import source as src
from .figures import FONT, MATRIX_SCALE, OKABE_ITO, short

SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star", "hexagon", "pentagon",
           "triangle-down"]   # a second cue besides colour: tasks stay apart in greyscale too
N_NEAREST = 5
PROMPTS_PER_TASK = 10     # held-out prompts per task when the user asks for them (open markers)
HOW_TO_READ = (
    "**How to read this.** Each dot is one instruction of the lesson, placed so that instructions with "
    "similar MiniLM embeddings sit close together; colour and marker shape give its task. Tasks whose "
    "clouds overlap are phrased alike, which is where InsCL replays less, TIR penalises less and LCIA "
    "retrains a group instead of opening one. Axes have no units (only distances matter). The matrices "
    "on the right are the similarities the run's method logged, plus two computed for any run.")


@dataclass
class View:
    timer: gr.Timer


@dataclass
class ViewData:
    """Everything the page draws; plain values (kept in a gr.State)."""

    key: tuple
    points: emb.Points
    coords: list | None
    status: str
    matrices: dict
    run_dir: str | None

    def state(self) -> dict:
        p = self.points
        return {"texts": list(p.texts), "tasks": list(p.tasks), "kinds": list(p.kinds),
                "task_names": list(p.task_names), "coords": self.coords, "matrices": self.matrices,
                "run_dir": self.run_dir, "status": self.status}


def points_from_state(data: dict) -> emb.Points:
    return emb.Points(tuple(data["texts"]), tuple(data["tasks"]), tuple(data["kinds"]), tuple(data["task_names"]))


# -- data -----------------------------------------------------------------------------------------
_computed: dict[str, dict] = {}     # computed matrices per points key (TF-IDF is not free)


def _computed_matrices(points: emb.Points, vectors) -> dict:
    if points.key not in _computed:
        if len(_computed) > 16:
            _computed.clear()
        _computed[points.key] = emb.computed_matrices(points, vectors)
    return _computed[points.key]


_tasks_memo: dict[tuple, list] = {}  # a saved run's rebuilt tasks (regenerating a lesson is not free)


def _saved_tasks(run_dir, log) -> list:
    if run_dir is None:            # a recorded gallery run: its log carries the config it ran with
        key = ("recorded", json.dumps(log.config, sort_keys=True, default=str), tuple(log.tasks))
    else:
        config = run_dir / "config.json"
        key = (str(run_dir), config.stat().st_mtime_ns if config.is_file() else None, tuple(log.tasks))
    if key not in _tasks_memo:
        _tasks_memo.clear()
        _tasks_memo[key] = emb.config_tasks(log.config, log, "the recorded run") if run_dir is None \
            else emb.run_tasks(run_dir, log)[0]
    return _tasks_memo[key]


def view_data(source: src.Source, prompts_per_task: int = 0) -> ViewData:
    """What to draw for a source; never waits for UMAP (nor for MiniLM: coords None until embedded).
    Raises ValueError with a readable message when the run's lesson cannot be rebuilt."""
    log = source.log
    marks = (len(log.task_info), len(log.task_end_info))     # matrices change only at task boundaries
    if source.trainer is None:
        probe = emb.read_probe(source.run_dir)
        if probe is not None and probe["projection"] == "umap" and not prompts_per_task:
            names = probe.get("tasks") or list(dict.fromkeys(probe["task"]))
            kinds = probe.get("kind") or ["instruction"] * len(probe["text"])
            points = emb.Points(tuple(probe["text"]), tuple(probe["task"]), tuple(kinds), tuple(names))
            return ViewData(("probe", str(source.run_dir), points.key, *marks), points, probe["points"],
                            f"UMAP (seeded, from {emb.OUT_NAME})", probe["matrices"], str(source.run_dir))
        tasks, run_dir = _saved_tasks(source.run_dir, log), source.run_dir
    else:
        tasks, run_dir = source.trainer.lesson.tasks, getattr(source.trainer, "run_dir", None)
    points = emb.lesson_points(tasks, prompts_per_task)
    job = emb.projection_job(points, run_dir, run_torch=compute.run)
    coords, projection, status = job.snapshot()
    matrices = emb.logged_matrices(log)
    if job.vectors is not None:
        matrices.update(_computed_matrices(points, job.vectors))
    key = (source.label, points.key, projection, job.vectors is not None, *marks)
    return ViewData(key, points, None if coords is None else np.asarray(coords).tolist(), status, matrices,
                    None if run_dir is None else str(run_dir))


@functools.lru_cache(maxsize=1)
def _default_lesson():
    return default_lesson()


def lesson_source() -> src.Source:
    """The default lesson as a source without a run: its instructions can be embedded before any training
    (the similarity matrices the methods log appear once a run has them)."""
    lesson = _default_lesson()
    holder = SimpleNamespace(lesson=lesson, run_dir=None)
    return src.Source(RunLog(), ("lesson", "default"), holder, None,
                      "the default lesson (no run yet: press Play on the Train tab for a run's matrices)")


# -- figures --------------------------------------------------------------------------------------
def _hover(text: str, width: int = 60, limit: int = 280) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width) or [""])


def scatter_figure(points: emb.Points, coords, projection_line: str, selected: int | None = None,
                   near: list[int] = ()) -> go.Figure:
    """One trace per task (colour + marker shape); hover = the wrapped instruction; rings on a selection."""
    xy = np.asarray(coords, dtype=float).reshape(-1, 2)
    fig = go.Figure()
    for t, name in enumerate(points.task_names):
        idx = [i for i, task in enumerate(points.tasks) if task == name]
        if not idx:
            continue
        colour, symbol = OKABE_ITO[t % len(OKABE_ITO)], SYMBOLS[t % len(SYMBOLS)]
        prompt = [points.kinds[i] == "prompt" for i in idx]
        fig.add_trace(go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=f"{t + 1}. {short(name)}",
            marker=dict(color=colour, symbol=[symbol + ("-open" if p else "") for p in prompt],
                        size=[7 if p else 11 for p in prompt],   # an open marker is drawn by its outline
                        line=dict(color=[colour if p else "white" for p in prompt],
                                  width=[1.5 if p else 1 for p in prompt])),
            customdata=[[i, name, _hover(points.texts[i])] for i in idx],
            hovertemplate="#%{customdata[0]} · %{customdata[1]}<br>%{customdata[2]}<extra></extra>"))
    if selected is not None and 0 <= selected < len(xy):
        ring = [selected, *near]
        fig.add_trace(go.Scatter(
            x=xy[ring, 0], y=xy[ring, 1], mode="markers", name="selected + nearest", hoverinfo="skip",
            # an open symbol is drawn in marker.color (a transparent one made the rings invisible)
            marker=dict(size=[22] + [17] * len(near), color="#000", symbol="circle-open",
                        line=dict(color="#000", width=[3] + [1.5] * len(near)))))
    fig.update_layout(template="none", height=460, font=FONT, paper_bgcolor="white", plot_bgcolor="white",
                      title=dict(text=html.escape(projection_line), x=0.01, xanchor="left", font=dict(size=14)),
                      margin=dict(l=30, r=10, t=50, b=30), legend=dict(title=dict(text="task")),
                      xaxis=dict(showticklabels=False, zeroline=False, showgrid=False),
                      yaxis=dict(showticklabels=False, zeroline=False, showgrid=False))
    return fig


def _fmt(v) -> str:
    if v is None:
        return "—"
    return str(int(v)) if float(v).is_integer() else f"{v:.3f}"     # counts and 0/1 flags stay whole


def matrix_figure(name: str, matrix: dict) -> go.Figure:
    """Heatmap of one named matrix (rows top to bottom as listed; empty cells = not logged)."""
    rows, cols = matrix["labels"], matrix.get("columns", matrix["labels"])
    values = matrix["values"]
    text = [[_fmt(v) if v is not None else "" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=[[np.nan if v is None else v for v in row] for row in values], x=[short(c) for c in cols],
        y=[short(r, 24) for r in rows], text=text, texttemplate="%{text}", colorscale=MATRIX_SCALE,
        xgap=2, ygap=2, hoverongaps=False, colorbar=dict(thickness=12, len=0.9),
        hovertemplate="row %{y}<br>column %{x}<br>value %{z:.4f}<extra></extra>"))
    fig.update_layout(template="none", height=160 + 34 * max(1, len(rows)), font=FONT, paper_bgcolor="white",
                      plot_bgcolor="white", title=dict(text=html.escape(name), x=0.01, xanchor="left",
                                                       font=dict(size=14)),
                      margin=dict(l=150, r=10, t=50, b=60), yaxis=dict(autorange="reversed"))
    return fig


def matrix_markdown(name: str, matrix: dict) -> str:
    """The same matrix as a text table (screen readers, copying numbers)."""
    cols = matrix.get("columns", matrix["labels"])
    head = "| | " + " | ".join(html.escape(c) for c in cols) + " |"
    rule = "|---|" + "---|" * len(cols)
    body = ["| " + html.escape(r) + " | " + " | ".join(_fmt(v) for v in row) + " |"
            for r, row in zip(matrix["labels"], matrix["values"])]
    note = f"_{html.escape(matrix.get('note', ''))}_ ({matrix.get('source', 'logged')}; — = not logged)"
    return "\n".join([f"**{html.escape(name)}**", "", head, rule, *body, "", note])


def nearest_markdown(points: emb.Points, index: int, pairs: list[tuple[int, float]]) -> str:
    lines = [f"**#{index} · {html.escape(points.tasks[index])}:** {html.escape(points.texts[index])}", "",
             "| # | task | cosine | instruction |", "|---|---|---|---|"]
    for j, cos in pairs:
        lines.append(f"| {j} | {html.escape(points.tasks[j])} | {cos:.3f} | {html.escape(points.texts[j])} |")
    return "\n".join(lines)


def point_choices(points: emb.Points) -> list[tuple[str, int]]:
    return [(f"#{i} · {points.tasks[i]} · {short(text, 60)}", i) for i, text in enumerate(points.texts)]


# -- events ---------------------------------------------------------------------------------------
def select_point(data: dict | None, index) -> tuple:
    """(scatter with rings, nearest-instructions table) for the picked point."""
    if not data or data.get("coords") is None or index is None:
        return gr.skip(), ""
    points = points_from_state(data)
    index = int(index)
    if not 0 <= index < len(points):
        return gr.skip(), f"No point #{index}."
    vectors = emb.embed(points, data.get("run_dir"), compute.run)      # cached: the job or an earlier pick computed them
    pairs = emb.nearest(vectors, index, N_NEAREST)
    fig = scatter_figure(points, data["coords"], data["status"], index, [j for j, _ in pairs])
    return fig, nearest_markdown(points, index, pairs)


def show_matrix(data: dict | None, name: str | None) -> tuple:
    matrices = (data or {}).get("matrices") or {}
    if name not in matrices:
        return None, "_No matrix for this run yet._"
    return matrix_figure(name, matrices[name]), matrix_markdown(name, matrices[name])


def refresh(registry, run_id, choice, shown_key, selected, matrix_name=None, prompts=False) -> tuple:
    """Outputs: shown key, state, note, scatter, point picker, matrix picker, heatmap, table, nearest."""
    blank = (None, None, "", None, gr.update(choices=[], value=None), gr.update(choices=[], value=None),
             None, "", "")
    source, message = src.resolve(registry, run_id, choice)
    if source is None and (not choice or choice == src.LIVE):
        source = lesson_source()          # no run yet: the lesson alone is enough to draw its map
    if source is None:
        return (None, None, message, *blank[3:])
    try:
        view = view_data(source, PROMPTS_PER_TASK if prompts else 0)
    except ValueError as err:
        return (None, None, f"{source.label}: {err}", *blank[3:])
    if list(view.key) == list(shown_key or []):
        return (gr.skip(),) * 9
    data = view.state()
    names = list(view.matrices)
    matrix_name = matrix_name if matrix_name in names else (names[0] if names else None)
    heat, table = show_matrix(data, matrix_name)
    n, k = len(view.points), len(view.points.task_names)
    m = view.points.kinds.count("prompt")
    what = f"{n - m} instructions" + (f" + {m} prompts" if m else "")
    note = f"{source.label} · {what} of {k} tasks · **shown: {view.status}**"
    if view.coords is None:
        return (list(view.key), data, note, None, gr.update(choices=[], value=None),
                gr.update(choices=names, value=matrix_name), heat, table, "")
    keep = selected if isinstance(selected, int) and 0 <= selected < n and shown_key and \
        view.key[1] == shown_key[1] else None
    if keep is not None:
        fig, near = select_point(data, keep)
    else:
        fig, near = scatter_figure(view.points, view.coords, view.status), \
            "_Pick a point to list its nearest instructions._"
    return (list(view.key), data, note, fig, gr.update(choices=point_choices(view.points), value=keep),
            gr.update(choices=names, value=matrix_name), heat, table, near)


def build_embeddings_tab(registry, run_state) -> View:
    gr.Markdown(HOW_TO_READ)
    with gr.Row():
        pick = gr.Dropdown(src.choices(), value=src.LIVE, label="Run", allow_custom_value=False, scale=3)
        reload = gr.Button("↻ runs", scale=0, min_width=60)
    shown = gr.State(None)              # key of what is on screen (lesson, projection, task boundaries)
    data = gr.State(None)               # texts, coordinates, matrices of what is on screen
    note = gr.Markdown()
    timer = gr.Timer(src.TIMER_S, active=False)
    with gr.Row():
        with gr.Column(scale=3):
            scatter = gr.Plot(show_label=False)
            point = gr.Dropdown([], value=None, label="Point: list its nearest instructions (cosine in "
                                "MiniLM space); the chart cannot report clicks, pick the # shown on hover")
            prompts = gr.Checkbox(False, label=f"also show {PROMPTS_PER_TASK} held-out prompts per task "
                                  "(open markers)")
            near = gr.Markdown()
        with gr.Column(scale=2):
            matrix_pick = gr.Dropdown([], value=None, label="Similarity matrix")
            heat = gr.Plot(show_label=False)
            with gr.Accordion("Matrix as a table", open=False):
                table = gr.Markdown()

    def on_refresh(run_id, choice, shown_key, selected, matrix_name, with_prompts):
        return refresh(registry, run_id, choice, shown_key, selected, matrix_name, with_prompts)

    outputs = [shown, data, note, scatter, point, matrix_pick, heat, table, near]
    for trigger in (timer.tick, pick.change, prompts.change):
        trigger(on_refresh, [run_state, pick, shown, point, matrix_pick, prompts], outputs,
                concurrency_limit=None, show_progress="hidden")
    point.input(select_point, [data, point], [scatter, near], concurrency_limit=4)
    matrix_pick.input(show_matrix, [data, matrix_pick], [heat, table], concurrency_limit=None)
    reload.click(lambda: gr.update(choices=src.choices()), None, [pick], concurrency_limit=None)
    return View(timer)


__all__ = ["View", "ViewData", "build_embeddings_tab", "matrix_figure", "matrix_markdown", "refresh",
           "scatter_figure", "select_point", "show_matrix", "view_data"]
