"""The Forgetting tab: per-task accuracy curves, the accuracy matrix, and a layer-drift heatmap (layer × task)
beside the accuracy drops it explains.

Drift is ‖θ_end − θ_start‖ / ‖θ_start‖ of each layer (or adapter) during each task (DriftLogged events);
the bars under it are, per task, what the earlier tasks lost while it trained and what it has lost itself
since. The data are RunLog pieces (live or saved), never the model.
"""
from __future__ import annotations

import gradio as gr

from .figures import analysis as af
from .figures import progress
from .view import View, ViewScaffold, live_key, refresher

HOW = ("How to read this: the curves are every task's score at each evaluation (dashed lines = a new task "
       "starts); in the matrix, row = after training task i, column = task j, and lower numbers down a column "
       "are forgetting. The drift heatmap shows how much each layer moved during each task (brighter = "
       "moved more); the bars under each column show the accuracy that task's training cost the earlier "
       "tasks (blue) and what the task itself has lost since its best (orange, hatched).")


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


def draw(source) -> tuple:
    """(note, curves, matrix, drift, tables) of a picked run."""
    log = source.log
    if not log.tasks:
        return f"**{source.label}**: the run has not started yet.", None, None, None, ""
    note = f"**{source.label}** · {len(log.acc_matrix)} of {len(log.tasks)} tasks done\n\n_{HOW}_"
    return (note, *forgetting_view(log))


def nothing(message: str) -> tuple:
    return message, None, None, None, ""


def view_key(source) -> tuple:
    """What this view draws changes only at evaluations, task ends and drift: a live run is keyed by
    these counts alone (no redraw on the steps between them)."""
    log = source.log
    return live_key(source, len(log.curve_steps), len(log.acc_matrix), len(log.drift), len(log.boundaries),
                    log.finished)


# refresh(registry, run_id, choice, shown_key) -> (shown key, note, curves, matrix, drift, tables)
refresh = refresher(view_key, draw, nothing, n_outputs=5)


def build_forgetting_tab(registry, run_state) -> View:
    gr.Markdown("_Per-task accuracy curves, the accuracy matrix, and a layer-drift heatmap (layer × task) "
                "beside the accuracy drops it explains._")
    scaffold = ViewScaffold()
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
    scaffold.wire(registry, run_state, refresh, [note, curves, matrix, drift, tables], api_name="forgetting_refresh")
    return scaffold.view()
