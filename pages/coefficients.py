"""The Coefficients tab: the stability-plasticity knobs of each method, drawn the same way for all of them.

Each method describes its own display (cit_core/displays.py asks the run's method for panel records: a
coefficient per tensor per step, an importance per layer per task, tables of its decisions); this page
draws the records (pages/figures/panels.py) and never names a method. The data are RunLog pieces (live
or saved), never the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from cit_core.displays import coefficient_panels, method_title, methods_with_coefficients

from . import source as src
from .figures.panels import render


@dataclass
class View:
    timer: gr.Timer


def coefficient_view(log) -> tuple[object, str, str]:
    """(figure, markdown tables, how-to-read line) for a RunLog; a plain sentence when there is nothing."""
    return render(coefficient_panels(log))


def refresh(registry, run_id, choice, shown_key):
    """Outputs (shown key, note, figure, tables): redraw only when the data changed, gr.skip() otherwise."""
    source, message = src.resolve(registry, run_id, choice)
    if source is None:
        key = ("none", message)
        if key == shown_key:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return key, message, None, ""
    key = view_key(source)
    if key == shown_key:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    fig, tables, how = coefficient_view(source.log)
    note = f"**{source.label}** · {method_title(source.log.method)}" + (f"\n\n_{how}_" if how else "")
    return key, note, fig, tables or "_Nothing to tabulate._"


def view_key(source) -> tuple:
    """A live run's key bumps on every event; this view changes only with new coefficients or task
    starts / ends, so a live run is keyed by those counts (no redraw on evaluation-only events)."""
    log = source.log
    if source.trainer is None:
        return source.key
    return (*source.key[:2], len(log.coefficients), len(log.task_info), len(log.task_end_info), log.finished)


def build_coefficients_tab(registry, run_state) -> View:
    gr.Markdown(f"_Balance coefficients: how each method trades stability for plasticity, drawn as the method "
                f"describes it ({', '.join(methods_with_coefficients())})._")
    with gr.Row():
        pick = gr.Dropdown(src.choices(), value=src.LIVE, label="Run", allow_custom_value=False, scale=3)
        reload = gr.Button("↻ runs", scale=0, min_width=60)
    shown = gr.State(None)              # Source.key of what is on screen
    note = gr.Markdown()
    plot = gr.Plot(show_label=False)
    with gr.Accordion("Numbers as tables", open=False):
        tables = gr.Markdown()
    timer = gr.Timer(src.TIMER_S, active=False)

    def on_update(run_id, choice, shown_key):
        return refresh(registry, run_id, choice, shown_key)

    outputs = [shown, note, plot, tables]
    timer.tick(on_update, [run_state, pick, shown], outputs, concurrency_limit=None, show_progress="hidden",
               api_name="coefficients_refresh")
    pick.change(on_update, [run_state, pick, shown], outputs, concurrency_limit=None, show_progress="hidden",
                api_visibility="private")
    reload.click(lambda: gr.update(choices=src.choices()), None, [pick], concurrency_limit=None,
                 api_visibility="private")
    return View(timer)
