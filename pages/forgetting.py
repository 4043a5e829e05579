"""The Forgetting tab: per-task accuracy curves, the accuracy matrix, and a layer-drift heatmap (layer × task)
beside the accuracy drops it explains.

Drift is ‖θ_end − θ_start‖ / ‖θ_start‖ of each layer (or adapter) during each task (DriftLogged events);
the bars under it are, per task, what the earlier tasks lost while it trained and what it has lost itself
since. The data are RunLog pieces (live or saved), never the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .figures import analysis as af
from .figures import progress
from . import source as src

HOW = ("How to read this: the curves are every task's score at each evaluation (dashed lines = a new task "
       "starts); in the matrix, row = after training task i, column = task j, and lower numbers down a column "
       "are forgetting. The drift heatmap shows how much each layer moved during each task (brighter = "
       "moved more); the bars under each column show the accuracy that task's training cost the earlier "
       "tasks (blue) and what the task itself has lost since its best (orange, hatched).")


@dataclass
class View:
    timer: gr.Timer


def forgetting_view(log) -> tuple:
    """(curves figure, matrix figure, drift figure, markdown tables) for a RunLog."""
    tasks = list(log.tasks)
    acc = [list(r) for r in log.acc_matrix]
    drift = list(log.drift)
    current = -1 if log.finished else log.task
    general = progress.general_column(log)
    curves = progress.curves_figure(tasks, list(log.curve_steps), [list(s) for s in log.curve_scores],
                                   list(log.boundaries), log.steps_per_task, current, log.total_steps or None,
                                   general=list(log.curve_general) if general else None)
    matrix = progress.matrix_figure(tasks, list(log.base_scores), acc, current, general=general)
    drift_fig = af.drift_figure(tasks, drift, acc)
    tables = ("**Accuracy matrix**\n\n" + progress.matrix_markdown(tasks, list(log.base_scores), acc, general)
              + "\n\n**Layer drift and accuracy drops**\n\n" + af.drift_markdown(tasks, drift, acc))
    return curves, matrix, drift_fig, tables


def refresh(registry, run_id, choice, shown_key):
    """Outputs (shown key, note, curves, matrix, drift, tables): redraw only when the data changed."""
    source, message = src.resolve(registry, run_id, choice)
    if source is None:
        key = ("none", message)
        if key == shown_key:
            return (gr.skip(),) * 6
        return key, message, None, None, None, ""
    key = view_key(source)
    if key == shown_key:
        return (gr.skip(),) * 6
    if not source.log.tasks:
        return key, f"**{source.label}**: the run has not started yet.", None, None, None, ""
    curves, matrix, drift, tables = forgetting_view(source.log)
    log = source.log
    note = f"**{source.label}** · {len(log.acc_matrix)} of {len(log.tasks)} tasks done\n\n_{HOW}_"
    return key, note, curves, matrix, drift, tables


def view_key(source) -> tuple:
    """What this view draws changes only at evaluations, task ends and drift: a live run's key (which
    bumps on every step) plus these counts would redraw every tick, so a live run is keyed by them alone."""
    log = source.log
    if source.trainer is None:
        return source.key
    return (*source.key[:2], len(log.curve_steps), len(log.acc_matrix), len(log.drift), len(log.boundaries),
            log.finished)


def build_forgetting_tab(registry, run_state) -> View:
    gr.Markdown("_Per-task accuracy curves, the accuracy matrix, and a layer-drift heatmap (layer × task) "
                "beside the accuracy drops it explains._")
    with gr.Row():
        pick = gr.Dropdown(src.choices(), value=src.LIVE, label="Run", allow_custom_value=False, scale=3)
        reload = gr.Button("↻ runs", scale=0, min_width=60)
    shown = gr.State(None)              # Source.key of what is on screen
    note = gr.Markdown()
    curves = gr.Plot(show_label=False)
    with gr.Row(equal_height=False):
        # on a phone these scroll sideways (app.CSS) instead of squeezing layer names and numbers together
        with gr.Column(scale=1, min_width=380, elem_classes=["cit-wide-plot"]):
            matrix = gr.Plot(show_label=False)
        with gr.Column(scale=1, min_width=380, elem_classes=["cit-wide-plot"]):
            drift = gr.Plot(show_label=False, elem_id="cit-drift")
    with gr.Accordion("Numbers as tables", open=False):
        tables = gr.Markdown()
    timer = gr.Timer(src.TIMER_S, active=False)

    def on_update(run_id, choice, shown_key):
        return refresh(registry, run_id, choice, shown_key)

    outputs = [shown, note, curves, matrix, drift, tables]
    timer.tick(on_update, [run_state, pick, shown], outputs, concurrency_limit=None, show_progress="hidden",
               api_name="forgetting_refresh")
    pick.change(on_update, [run_state, pick, shown], outputs, concurrency_limit=None, show_progress="hidden",
                api_visibility="private")
    reload.click(lambda: gr.update(choices=src.choices()), None, [pick], concurrency_limit=None,
                 api_visibility="private")
    return View(timer)
