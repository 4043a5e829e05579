"""CIT Explorer: train a tiny language model through a sequence of instruction tasks and watch it forget.

    python app.py                       # http://127.0.0.1:7860 (CIT_HOST / CIT_PORT override)

Views are tabs in one Blocks (ARCHITECTURE.md); each tab's content comes from one pages/*.py module.
Runs live server-side in a RunRegistry; the browser session only holds a run id.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

if os.environ.get("SPACES_ZERO_GPU"):   # ZeroGPU wants `spaces` imported before torch touches CUDA
    import spaces  # noqa: E402,F401

import gradio as gr  # noqa: E402

from serve import compute  # noqa: E402
from serve.registry import RunRegistry  # noqa: E402
from serve.startup import warm_imports  # noqa: E402
from cit_core.settings import settings  # noqa: E402
from serve.spaces_gpu import on_zero_gpu, queue_size_for, zero_gpu_train_chunk  # noqa: E402
from pages.board import build_board_tab  # noqa: E402
from pages.api import build_api, hide_internal_endpoints  # noqa: E402
from pages.coefficients import build_coefficients_tab  # noqa: E402
from pages.compare import build_compare_tab  # noqa: E402
from pages.connectivity import build_connectivity_tab  # noqa: E402
from pages.embeddings import build_embeddings_tab  # noqa: E402
from pages.forgetting import build_forgetting_tab  # noqa: E402
from pages.runs import build_runs_tab  # noqa: E402
from pages import source as src  # noqa: E402
from pages.source import LIVE  # noqa: E402
from pages.train import build_train_tab  # noqa: E402
from serve.controls import train_concurrency  # noqa: E402

TITLE = "CIT Explorer"
# the Train tab's events a script may still call by name besides the documented API (pages/api.py): they take
# the page's controls and return its Markdown and plots, for tests and scripts that drive the page itself
ADVANCED_ENDPOINTS = ("play", "step", "pause", "reset", "session_status", "heartbeat")
# pending events: 64 for one training slot, more where the hardware trains several runs at once
QUEUE_MAX_SIZE = settings().queue_max or queue_size_for(train_concurrency())
MAX_RUNS = settings().max_runs
IDLE_TTL_S = settings().idle_ttl_s

# The analysis views: tab id -> (title, builder). Each builder gets the registry and the Train tab's run
# state and returns a view whose `timer` polls for new data; only the shown tab's timer is active.
VIEWS = {
    "forgetting": ("Forgetting", build_forgetting_tab),
    "coefficients": ("Coefficients", build_coefficients_tab),
    "connectivity": ("Connectivity", build_connectivity_tab),
    "embeddings": ("Embeddings", build_embeddings_tab),
    "compare": ("Compare", build_compare_tab),
    "runs": ("Runs", build_runs_tab),
    "board": ("Class board", build_board_tab),
}

CSS = """
.cit-status { font-size: 1.05rem; padding: 6px 10px; border-radius: 6px; background: var(--block-background-fill);
              border: 1px solid var(--border-color-primary); min-height: 2.4em; }
.cit-small { font-size: 0.88rem; }
.cit-intro { font-size: 0.93rem; }
.cit-metrics table { font-size: 0.85rem; display: block; overflow-x: auto; max-width: 100%; }
.cit-metrics th, .cit-metrics td:nth-child(1), .cit-metrics td:nth-child(2) { white-space: nowrap; }
.cit-metrics td:nth-child(3) { min-width: 13em; }
.cit-metrics td:nth-child(4) { min-width: 15em; }
.cit-buttons { align-items: end; }
.cit-status .progress-text, .cit-status .eta-bar, .cit-status .meta-text, .cit-status .meta-text-center
  { z-index: 20; }
.cit-ask-answers table { font-size: 0.9rem; }
/* a phone (one column): Play, the status and the charts first, the settings after them; wide plots scroll
   sideways instead of squeezing their numbers together */
@media (max-width: 760px) {
  .cit-train-row > .cit-main { order: -1; }
  .cit-main > .cit-recordings { order: 10; }
  .cit-lead { font-size: 0.85rem; }
  .cit-status { font-size: 0.9rem; }
  .cit-play-row { flex-wrap: nowrap !important; gap: 4px; }
  .cit-play-row > * { min-width: 0 !important; flex: 1 1 0 !important; }
  .cit-play-row .cit-steps { flex: 0 0 84px !important; min-width: 84px !important; }
  .cit-play-row .cit-steps input::-webkit-inner-spin-button { display: none; }
  .cit-play-row .cit-steps input { padding: 4px; }
  .cit-play-row button { padding-left: 2px; padding-right: 2px; font-size: 0.9rem; }
  .cit-wide-plot, .cit-scroll-plot { overflow-x: auto; }
  .cit-wide-plot > *, .cit-scroll-plot > * { min-width: 480px !important; }
}
.cit-options-help { padding: 4px 10px; }
"""

ABOUT = """\
## About CIT Explorer
CIT Explorer shows **catastrophic forgetting in continual instruction tuning** on a model small enough
to train in seconds on a CPU. Training runs **on the server** that serves this page (your browser only
shows the results; each run is saved in the server's run store). The engine (`cit_core`) emits plain
events; this app only reads the run log folded from them. Metrics follow the usual continual-learning
definitions (AP, BWT, FWT, forgetting, MAA); the Train tab shows each formula next to its value.

### The papers behind the methods
- **LCIA** — Qiao et al., *Large Continual Instruction Assistant*, ICML 2025:
  [arXiv 2410.10868](https://arxiv.org/abs/2410.10868) (code: [JingyangQiao/CoIN](https://github.com/JingyangQiao/CoIN))
- **InsCL** — Wang et al., *InsCL: A Data-efficient Continual Learning Paradigm for Fine-tuning Large
  Language Models with Instructions*, NAACL 2024: [arXiv 2403.11435](https://arxiv.org/abs/2403.11435)
  (code: [OPPO-Mente-Lab/InsCL](https://github.com/OPPO-Mente-Lab/InsCL))
- **SwitchCIT** — Wu et al., *SwitchCIT: Switching for Continual Instruction Tuning*, 2024:
  [arXiv 2407.11780](https://arxiv.org/abs/2407.11780) (code: [xinbowu2/SwitchCIT](https://github.com/xinbowu2/SwitchCIT))
- **I-LoRA** — Ren et al., *Analyzing and Reducing Catastrophic Forgetting in Parameter Efficient Tuning*,
  2024: [arXiv 2402.18865](https://arxiv.org/abs/2402.18865) (code: [which47/LLMCL](https://github.com/which47/LLMCL))
- **EWC / MAS / TIR** — He et al., *Continual Instruction Tuning for Large Multimodal Models*, 2023:
  [arXiv 2311.16206](https://arxiv.org/abs/2311.16206)
"""
PAPER_LINKS = ("2410.10868", "2403.11435", "2407.11780", "2402.18865", "2311.16206")


def build_app(registry: RunRegistry | None = None) -> gr.Blocks:
    if registry is None:
        registry = RunRegistry(MAX_RUNS, IDLE_TTL_S, per_session=settings().runs_per_session)
    compute.configure(train_concurrency())      # torch work on as many threads as runs may train at once
    registry.scheduler.resize(train_concurrency())   # and as many turns on the CPU at once
    warm_imports()                              # before any session: lazy library imports raced (issue 14)
    if on_zero_gpu():
        zero_gpu_train_chunk()                  # decorated with spaces.GPU now, before the app launches
    # Gradio copies each downloaded file into its cache: every 10 minutes, drop copies older than an hour
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}")
        with gr.Tabs() as tabs:
            with gr.Tab("Train", id="train") as train_tab:
                train = build_train_tab(registry)
            # the Train tab's Ask picker too: Open sets it and page loads refresh it, like the views' pickers
            views, pickers = {}, _source_pickers(train_tab)
            for tab_id, (title, builder) in VIEWS.items():
                with gr.Tab(title, id=tab_id) as tab:
                    views[tab_id] = builder(registry, train.components["state"])
                pickers += _source_pickers(tab)
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)
        if "runs" in views:             # "Open in every view" sets every analysis view's run picker
            views["runs"].wire_open(pickers)
        timers = [v.timer for v in views.values()]
        tabs.select(_active_timers(list(views)), None, timers, concurrency_limit=None, show_progress="hidden")
        # run menus list the runs and recordings that exist when the page opens or a tab is shown, not
        # only those of the server's start (new runs no longer wait for a "↻ runs" press)
        menus = [(p, src.choices) for p in pickers] + [m for v in views.values() for m in getattr(v, "menus", [])]
        if menus:
            refresh = _refresh_menus(menus)
            outputs = [dropdown for dropdown, _ in menus]
            demo.load(refresh, None, outputs, concurrency_limit=None, show_progress="hidden",
                      api_visibility="private")
            tabs.select(refresh, None, outputs, concurrency_limit=None, show_progress="hidden",
                        api_visibility="private")
        demo.unload(train.unload)
        train.url.wire_load(demo)           # the page URL's query (settings, workshop, hidden controls)
        demo.cit_api = build_api(registry)  # /run, /status, /result, /watch on the same registry as the tabs
        # inside the Blocks: its config (what gradio_client reads) is written when the `with` ends
        hide_internal_endpoints(demo, keep=ADVANCED_ENDPOINTS)
    demo.queue(max_size=QUEUE_MAX_SIZE)
    demo.cit_registry = registry            # for tests and later tabs
    return demo


def _source_pickers(block) -> list:
    """The run pickers inside a tab: dropdowns offering this session's live run (pages/source.py choices)."""
    found = []
    for child in getattr(block, "children", None) or []:
        if isinstance(child, gr.Dropdown) and any(value == LIVE for _, value in child.choices or []):
            found.append(child)
        found += _source_pickers(child)
    return found


def _refresh_menus(menus: list):
    """demo.load / tabs.select handler: every run menu's current choices (one fresh update per menu; the
    menus keep their picked values)."""
    def handler():
        return [gr.update(choices=list(choices())) for _, choices in menus]
    return handler


def _active_timers(tab_ids: list[str]):
    """tabs.select handler: activate the timer of the selected view's tab, stop all the others."""
    order = ["train", *tab_ids, "about"]          # the tabs' order on the page

    def handler(evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else -1
        selected = order[index] if 0 <= index < len(order) else None
        return [gr.Timer(active=(tab_id == selected)) for tab_id in tab_ids]
    return handler


def launch_kwargs() -> dict:
    # CIT_HOST / CIT_PORT, else Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (which Spaces set)
    return dict(server_name=settings().host, server_port=settings().port,
                css=CSS, theme=gr.themes.Default(), footer_links=["api"])


if __name__ == "__main__":
    build_app().launch(**launch_kwargs())
