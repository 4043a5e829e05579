"""The Embeddings tab: instruction-embedding clusters (UMAP) beside the task-similarity matrices the methods use.

Stub: the page's own content comes with issue 4. The wiring (a source picker, a timer that is active only
while this tab is shown, a redraw only when Source.key changed) is the pattern every view follows.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from . import source as src


@dataclass
class View:
    timer: gr.Timer


def build_embeddings_tab(registry, run_state) -> View:
    gr.Markdown("_Instruction-embedding clusters (UMAP) beside the task-similarity matrices the methods use._")
    with gr.Row():
        pick = gr.Dropdown(src.choices(), value=src.LIVE, label="Run", allow_custom_value=False, scale=3)
        reload = gr.Button("↻ runs", scale=0, min_width=60)
    shown = gr.State(None)              # Source.key of what is on screen
    note = gr.Markdown()
    timer = gr.Timer(src.TIMER_S, active=False)

    def refresh(run_id, choice, shown_key):
        source, message = src.resolve(registry, run_id, choice)
        if source is None:
            return None, message
        if source.key == shown_key:
            return gr.skip(), gr.skip()
        return source.key, f"{source.label}: {len(source.log.acc_matrix)} of {len(source.log.tasks)} tasks done"

    for trigger in (timer.tick, pick.change):
        trigger(refresh, [run_state, pick, shown], [shown, note], concurrency_limit=None, show_progress="hidden")
    reload.click(lambda: gr.update(choices=src.choices()), None, [pick], concurrency_limit=None)
    return View(timer)
