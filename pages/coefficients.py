"""The Coefficients tab: the stability-plasticity knobs of each method, drawn the same way for all of them.

- LCIA: α per LoRA tensor per step (log colour), × where α fell back to its fixed value, the fallback
  share per tensor beside each row.
- I-LoRA: ‖θ_slow − θ_fast‖ per LoRA tensor per step (how far the slow learner trails; λ is fixed).
- EWC / MAS / TIR: the importance mass per layer after each task (what the penalty anchors).
Methods without such numbers say so. The data are RunLog pieces (live or saved), never the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from cit_core.methods import METHODS
from cit_core.methods.lcia import LCIAOptions

from .figures import analysis as af
from . import source as src

WITH_COEFFICIENTS = {"lcia": "LCIA", "ilora": "I-LoRA", "ewc": "EWC", "mas": "MAS", "tir": "TIR"}
PICK_ONE = "pick LCIA, I-LoRA, EWC, MAS or TIR"

HOW = {
    "lcia": "How to read this: each row is one LoRA tensor, each column a training step; brighter = larger α, "
            "i.e. the EMA copy θ* follows the live weights faster (more plasticity); dark = θ* holds on to "
            "earlier tasks. × marks steps where the adaptive α was outside (0, 1) and LCIA used its fixed "
            "fallback; the bar on the right is each tensor's share of such steps.",
    "ilora": "How to read this: each row is one LoRA tensor, each column a step; the colour is the distance "
             "between the slow learner (used for answers) and the fast one (trained). Large = the slow learner "
             "lags behind (stable, protects old tasks); λ sets how fast it follows. The bar: mean distance.",
    "importance": "How to read this: each row is one layer, each column the task just finished; the colour is "
                  "the importance mass Σ Ω of that layer (log scale): the penalty holds heavy layers near their "
                  "values after that task. The bar: mass summed over tasks.",
}


@dataclass
class View:
    timer: gr.Timer


def _title(method: str) -> str:
    cls = METHODS.get(method)
    return cls.title.split(" (")[0] if cls else (method or "This run")


def coefficient_view(log) -> tuple[object, str, str]:
    """(figure, markdown tables, how-to-read line) for a RunLog; a plain sentence when there is nothing."""
    method = log.method
    if method == "lcia":
        return _lcia(log)
    if method == "ilora":
        return _ilora(log)
    if method in ("ewc", "mas", "tir"):
        return _importance(log)
    if not log.tasks:
        return af.message_figure("The run has not started yet."), "", ""
    text = f"{_title(method)} has no balance coefficients — {PICK_ONE}."
    return af.message_figure(text), "", text


def _lcia(log):
    coefficients = list(log.coefficients)
    if not coefficients:
        # tasks that open a new group train plain LoRA: no α until some task retrains a group
        text = ("No α logged yet: LCIA logs α only while a task retrains an existing group (DEMA). On the "
                "default lesson at the default τ = 0.30 that is task 3, first_two (phrased like last_two); "
                "on another lesson, lower τ (option tau) to make tasks share groups.")
        return af.message_figure(text), _decisions_md(log), f"{text} {HOW['lcia']}"   # the note says it too
    names, z = af.step_grid(coefficients, log.step)
    fallback_value = float(log.config.get("method_options", {}).get("fallback", LCIAOptions().fallback))
    fb = af.fallback_cells(z, fallback_value)
    share = af.fallback_share(fb)
    fig = af.step_heatmap(names, z, title=f"LCIA: α per tensor per step (fallback α = {fallback_value:g})",
                          value_name="α", fallback=fb, side=share, side_title="fallback share",
                          tasks=log.tasks, boundaries=list(log.boundaries))
    table = af.step_summary_markdown(names, z, "α", share) + "\n\n" + _decisions_md(log)
    return fig, table, HOW["lcia"]


def _decisions_md(log) -> str:
    """LCIA's per-task decision and its own fallback count (TaskEnded info), as a table."""
    rows = ["| task | decision | group | DEMA | fallback share (mean over tensors) |", "|---|---|---:|---|---:|"]
    ends = list(log.task_end_info)
    for i, info in enumerate(list(log.task_info)):
        end = ends[i] if i < len(ends) else {}
        mean = end.get("fallback_share_mean")
        rows.append(f"| {i + 1}. {log.tasks[i]} | {info.get('decision', '·')} | {info.get('group', '·')} | "
                    f"{'yes' if info.get('dema') else 'no'} | {'·' if mean is None else f'{mean:.3f}'} |")
    return "\n".join(rows)


def _ilora(log):
    coefficients = list(log.coefficients)
    lam = log.config.get("method_options", {}).get("ema_lambda")
    if not coefficients:
        return af.message_figure("No step trained yet."), "", HOW["ilora"]
    names, z = af.step_grid(coefficients, log.step)
    mean = [0.0 if np.all(np.isnan(r)) else float(np.nanmean(r)) for r in z]
    lam_text = f"λ = {lam:g}" if lam is not None else "λ fixed"
    fig = af.step_heatmap(names, z, title=f"I-LoRA: ‖θ_slow − θ_fast‖ per tensor after each step "
                                          f"({lam_text}: slow ← λ·slow + (1−λ)·fast)",
                          value_name="‖θs−θf‖", side=mean, side_title="mean distance", side_log=True,
                          tasks=log.tasks, boundaries=list(log.boundaries))
    ends = list(log.task_end_info)
    per_task = ["| task | ‖θ_slow − θ_fast‖ at its end (all tensors) | buffer size |", "|---|---:|---:|"]
    per_task += [f"| {i + 1}. {log.tasks[i]} | {e.get('slow_fast_distance', float('nan')):.4g} | "
                 f"{e.get('buffer', '·')} |" for i, e in enumerate(ends)]
    return fig, af.step_summary_markdown(names, z, "distance") + "\n\n" + "\n".join(per_task), HOW["ilora"]


def _importance(log):
    ends = list(log.task_end_info)
    rows = [e["importance_mass"] for e in ends if isinstance(e.get("importance_mass"), dict)]
    name = _title(log.method).split(" ")[0]
    if not rows:
        return af.message_figure(f"No importance yet: {name} computes it when a task ends."), "", HOW["importance"]
    layers, z = af.layer_task_grid(rows)
    total = np.nansum(z, axis=1).tolist()
    fig = af.layer_task_heatmap(layers, log.tasks, z, title=f"{name}: importance mass Σ Ω per layer after each task",
                                value_name="Σ Ω", log=True, side=total, side_title="sum over tasks")
    table = af.grid_markdown(layers, af.task_labels(log.tasks)[: len(rows)], z, "layer: Σ Ω after task")
    return fig, table + _weights_md(log), HOW["importance"]


def _weights_md(log) -> str:
    """TIR / EWC per-old-task weights w_i used at each task start (TaskStarted info), if any."""
    lines = []
    for i, info in enumerate(list(log.task_info)):
        weights = info.get("weights")
        if weights:
            shown = ", ".join(f"{k}: {v:.3f}" for k, v in weights.items())
            lines.append(f"- task {i + 1} ({log.tasks[i]}): penalty weights {shown}")
    return ("\n\nPenalty weight of each earlier task at each task start:\n" + "\n".join(lines)) if lines else ""


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
    note = f"**{source.label}** · {_title(source.log.method)}" + (f"\n\n_{how}_" if how else "")
    return key, note, fig, tables or "_Nothing to tabulate._"


def view_key(source) -> tuple:
    """A live run's key bumps on every event; this view changes only with new coefficients or task
    starts / ends, so a live run is keyed by those counts (no redraw on evaluation-only events)."""
    log = source.log
    if source.trainer is None:
        return source.key
    return (*source.key[:2], len(log.coefficients), len(log.task_info), len(log.task_end_info), log.finished)


def build_coefficients_tab(registry, run_state) -> View:
    gr.Markdown("_Balance coefficients: LCIA's α per tensor per step, I-LoRA's slow–fast distance, "
                "EWC / MAS / TIR importance per layer — how each method trades stability for plasticity._")
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
