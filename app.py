"""CIT Explorer: train a tiny language model through a sequence of instruction tasks and watch it forget.

    python app.py                       # http://127.0.0.1:7860 (CIT_HOST / CIT_PORT override)

Views are tabs in one Blocks (ARCHITECTURE.md); each tab's content comes from one pages/*.py module.
Runs live server-side in a RunRegistry; the browser session only holds a run id.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from cit_core.registry import RunRegistry  # noqa: E402
from pages.train import build_train_tab  # noqa: E402

TITLE = "CIT Explorer"
QUEUE_MAX_SIZE = int(os.environ.get("CIT_QUEUE_MAX", "64"))
MAX_RUNS = int(os.environ.get("CIT_MAX_RUNS", "8"))
IDLE_TTL_S = float(os.environ.get("CIT_IDLE_TTL_S", "1800"))

# Tabs still to come, and the issue that brings each one.
LATER_TABS = {
    "Forgetting": "per-task accuracy curves beside a layer-drift heatmap (layer × task) that explains the drops",
    "Coefficients": "balance-coefficient heatmaps: LCIA's α per tensor per step, I-LoRA's λ, EWC/MAS importance",
    "Connectivity": "mode connectivity: loss and accuracy of every seen task along the line between task solutions",
    "Embeddings": "instruction-embedding clusters (UMAP) beside the task-similarity matrices the methods use",
}

CSS = """
.cit-status { font-size: 1.05rem; padding: 6px 10px; border-radius: 6px; background: var(--block-background-fill);
              border: 1px solid var(--border-color-primary); min-height: 2.4em; }
.cit-small { font-size: 0.88rem; }
.cit-intro { font-size: 0.93rem; }
.cit-metrics table { font-size: 0.85rem; }
.cit-metrics td:nth-child(1), .cit-metrics td:nth-child(2) { white-space: nowrap; }
.cit-buttons { align-items: end; }
.cit-options-help { padding: 4px 10px; }
"""

ABOUT = """\
## About CIT Explorer
CIT Explorer shows **catastrophic forgetting in continual instruction tuning** on a model small enough
to train in your browser session on a CPU. The engine (`cit_core`) emits plain events; this app only
reads the run log folded from them. Metrics follow the usual continual-learning definitions (AP, BWT, FWT,
forgetting, MAA); the Train tab shows each formula next to its value.
"""


def build_app(registry: RunRegistry | None = None) -> gr.Blocks:
    if registry is None:
        registry = RunRegistry(MAX_RUNS, IDLE_TTL_S)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}")
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                train = build_train_tab(registry)
            # Later tabs go here, one pages/<name>.py module each (a running Play can update them all).
            for name, what in LATER_TABS.items():
                with gr.Tab(name, id=name.lower()):
                    gr.Markdown(f"_Coming soon:_ {what}.")
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)
        demo.unload(train.unload)
    demo.queue(max_size=QUEUE_MAX_SIZE)
    demo.cit_registry = registry            # for tests and later tabs
    return demo


def launch_kwargs() -> dict:
    return dict(server_name=os.environ.get("CIT_HOST", "127.0.0.1"),
                server_port=int(os.environ.get("CIT_PORT", "7860")),
                css=CSS, theme=gr.themes.Default(), footer_links=["api"])


if __name__ == "__main__":
    build_app().launch(**launch_kwargs())
