"""The Compare tab: several saved runs side by side (methods, seeds, task orders).

Per-task score curves as small multiples (one panel per task, colour = run), the accuracy matrices side
by side, a table per run and a table of mean ± std over seeds per (method, lesson), and the difference
matrix B − A of two runs. The numbers come from cit_core.compare, the figures from pages/figures/compare.py;
this module lays them out.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from cit_core import compare as cmp
from cit_core import gallery
from serve import downloads
from cit_core.export import write_figure_html, write_metrics
from cit_core.metrics import format_value
from cit_core.store import RunNotFound, list_runs, run_path

from . import source as src
from .figures import short
from .figures.compare import curves_figure, difference_figure, matrices_figure
from .view import View

MAX_RUNS = 8               # more runs than this make unreadable small multiples


# -- what can be compared: saved runs and the gallery's recordings ----------------------------------
def choices() -> list[tuple[str, str]]:
    """(label, value) of everything Compare can overlay: the run store's runs, then the recordings."""
    out = [(name, name) for name in list_runs()]
    try:
        out += [(f"recorded · {cmp.recording_label(e)}", src.GALLERY + e["name"]) for e in gallery.index()]
    except gallery.GalleryError:
        pass                           # a damaged gallery must not take Compare down
    return out


def _record(name: str) -> cmp.RunRecord:
    if name.startswith(src.GALLERY):
        rec_name = name[len(src.GALLERY):]
        try:
            entry, log = gallery.entry(rec_name), gallery.load(rec_name)
            path = gallery.recording_path(rec_name)
        except gallery.GalleryError as err:
            raise cmp.CompareError(str(err)) from err
        # a recording's display name says it is one; the value that picks it stays `gallery: <name>`
        return cmp.RunRecord(f"recorded: {rec_name}", path, entry.get("config") or {}, log, log.summary or None)
    try:
        return cmp.load_run(run_path(name))
    except RunNotFound as err:
        raise cmp.CompareError(str(err)) from err


def load(names: list[str]) -> list[cmp.RunRecord]:
    """Records of the picked runs and recordings; CompareError (a message for the user) when one cannot be read."""
    if not names:
        raise cmp.CompareError("Pick at least one run.")
    if len(names) > MAX_RUNS:
        raise cmp.CompareError(f"Pick at most {MAX_RUNS} runs (got {len(names)}).")
    return cmp.unique(_record(name) for name in names)


def steps_per_task(rec: cmp.RunRecord):
    return rec.log.steps_per_task or (rec.config.get("train") or {}).get("steps_per_task")


SCHEDULE_KEYS = (("steps_per_task", "steps per task"), ("batch_size", "batch size"), ("lr", "learning rate"),
                 ("eval_every", "evaluation every"))


def schedule_warning(records: list[cmp.RunRecord]) -> str:
    """A warning when the runs did not train on the same schedule (their curves and metrics are then not
    like for like); '' when they did."""
    lines = []
    for key, title in SCHEDULE_KEYS:
        values = {}
        for rec in records:
            value = steps_per_task(rec) if key == "steps_per_task" else (rec.config.get("train") or {}).get(key)
            values.setdefault(value, []).append(rec.name)
        if len(values) > 1:
            lines.append(f"{title} " + " vs ".join(f"{'?' if v is None else cmp.short_value(v)} "
                                                   f"({', '.join(short(n, 28) for n in names)})"
                                                   for v, names in values.items()))
    if not lines:
        return ""
    return ("⚠ **These runs trained on different schedules**, so their curves and metrics are not like for "
            "like: " + "; ".join(lines) + ".")


# -- tables --------------------------------------------------------------------------------------
def _num(v, key: str = "", finished: bool = False) -> str:
    if v is None:
        return "n/a" if finished else "unfinished"
    return format_value(key, v)


def runs_markdown(rows: list[dict]) -> str:
    """One row per run; the metric columns are cmp.METRICS (whatever metrics the summaries carry)."""
    cols = ["run", "method", "lesson", "seed", "steps/task", *cmp.METRICS, "wall s"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)
    lines = [f"| {r['run']} | {r['method']} | {r['lesson']} | {r['seed']} | {r.get('steps_per_task') or '?'} | "
             + " | ".join(_num(r.get(k), k, r.get("finished", False)) for k in cmp.METRICS)
             + f" | {'' if r.get('wall_s') is None else format(r['wall_s'], '.1f')} |" for r in rows]
    return "\n".join([head, *lines])


def groups_markdown(groups: list[dict]) -> str:
    cols = ["method", "lesson", "runs (seeds)", *cmp.METRICS, "wall s"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)
    lines = [f"| {g['method']} | {g['lesson']} | {g['runs']} ({', '.join(map(str, g['seeds'])) or '—'}) | "
             + " | ".join(cmp.format_pm(g.get(k)) for k in cmp.METRICS) + f" | {cmp.format_pm(g.get('wall_s'))} |"
             for g in groups]
    return "\n".join([head, *lines]) + ("\n\n_mean ± std over the finished runs of each (method, lesson); std is "
                                        "the population std (numpy's default); unfinished runs are left out._")


# -- handlers ------------------------------------------------------------------------------------
OWN_DIAGONAL = ("each task's own score right after training it, R[i][i]", "")


def upper_bounds(upper: str | None, records: list[cmp.RunRecord]) -> list[float] | None:
    """RG's U: None = each run's own diagonal; else the diagonal of the picked per-task run (InsCL's
    single-task bound; `oracle_lora` trains every task alone from the base). CompareError if unusable."""
    if not upper:
        return None
    return cmp.single_task_bounds(load([upper])[0], records)


def rg_note(upper_name: str | None) -> str:
    bound = (f"U_i = the score of task i right after training it in **{upper_name}** (single-task bound)"
             if upper_name else "U_i = each run's own score on task i right after training it, R[i][i]")
    return (f"_RG (InsCL's Relative Gain) = (100/T) Σ_i R[T][i] / U_i, {bound}; n/a when some U_i is 0. "
            "Pick an `oracle_lora` run of the same lesson and seed as U to compare methods on the paper's scale._")


def show(names, upper=None):
    """Outputs: note, curves, matrices, runs table, groups table, A choices, B choices, RG bound choices."""
    try:
        records = load(names or [])
        bounds = upper_bounds(upper, records)
    except cmp.CompareError as err:
        return (f"**{err}**", None, None, "", "", gr.update(choices=[], value=None),
                gr.update(choices=[], value=None), gr.update())
    rows = [{**cmp.run_row(r, bounds), "steps_per_task": steps_per_task(r)} for r in records]
    picked = [(r.name, _value(r)) for r in records]
    first, second = picked[0][1], picked[1][1] if len(picked) > 1 else picked[0][1]
    upper_name = next((name for name, value in picked if value == upper), None) if upper else None
    finished = [(name, value) for (name, value), r in zip(picked, records) if r.finished]
    return (schedule_warning(records), curves_figure(records), matrices_figure(records), runs_markdown(rows),
            groups_markdown(cmp.grouped(rows)) + "\n\n" + rg_note(upper_name),
            gr.update(choices=picked, value=first), gr.update(choices=picked, value=second),
            gr.update(choices=[OWN_DIAGONAL, *finished], value=upper if upper_name else ""))


def _value(rec: cmp.RunRecord) -> str:
    """The menu value that picks this record again (A and B of the difference)."""
    prefix = "recorded: "
    return src.GALLERY + rec.name[len(prefix):] if rec.name.startswith(prefix) else rec.name


def show_difference(a, b):
    if not a or not b:
        return None, "_Pick two runs (A and B) among the compared ones._"
    try:
        ra, rb = load([a]) + load([b])
        diff = cmp.difference(ra, rb)
    except cmp.CompareError as err:
        return None, f"**{err}**"
    return difference_figure(diff, ra.name, rb.name), ""


def export(names, a, b, upper=None):
    """CSV + JSON of the metrics and each figure as standalone HTML, in a fresh temp folder (downloads)."""
    try:
        records = load(names or [])
        bounds = upper_bounds(upper, records)
    except cmp.CompareError as err:
        return None, f"**{err}**"
    folder = downloads.fresh_folder("compare")
    files = write_metrics(records, folder, "compare_metrics", upper=bounds)
    files.append(write_figure_html(curves_figure(records), folder / "compare_curves.html"))
    files.append(write_figure_html(matrices_figure(records), folder / "compare_matrices.html"))
    if a and b and a != b:
        try:
            ra, rb = load([a]) + load([b])
            files.append(write_figure_html(difference_figure(cmp.difference(ra, rb), ra.name, rb.name),
                                           folder / "compare_difference.html"))
        except cmp.CompareError:
            pass                      # the difference panel already says why there is none
    return [str(f) for f in files], f"{len(files)} files ready below."


def build_compare_tab(registry, run_state) -> View:
    gr.Markdown("_Pick saved runs (different methods, seeds or task orders) or recorded runs (`recorded · …`, "
                "the gallery) to see them side by side. Every run trained in this app is saved; the Runs tab "
                "manages them._")
    with gr.Row():
        pick = gr.Dropdown(choices(), value=[], multiselect=True, label="Runs to compare", scale=4,
                           max_choices=MAX_RUNS)
        reload = gr.Button("↻ runs", scale=0, min_width=60)
        go_btn = gr.Button("Compare", variant="primary", scale=0, min_width=100)
    note = gr.Markdown()
    rg_upper = gr.Dropdown([OWN_DIAGONAL], value="", label="RG upper bound U (pick a per-task run, e.g. "
                           "oracle_lora, for InsCL's single-task bound)")
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
        now = choices()
        if now == seen:
            return gr.skip(), gr.skip()
        return now, gr.update(choices=now)

    timer.tick(poll, [known], [known, pick], concurrency_limit=None, show_progress="hidden")
    reload.click(lambda: gr.update(choices=choices()), None, [pick], concurrency_limit=None)
    shown = [note, curves, matrices, table, groups, run_a, run_b, rg_upper]
    go_btn.click(show, [pick, rg_upper], shown, concurrency_limit=2, api_visibility="private") \
        .then(show_difference, [run_a, run_b], [diff, diff_note], api_visibility="private")
    rg_upper.input(show, [pick, rg_upper], shown, concurrency_limit=2, api_visibility="private")
    for dd in (run_a, run_b):
        dd.input(show_difference, [run_a, run_b], [diff, diff_note], concurrency_limit=2,
                 api_visibility="private")
    export_btn.click(export, [pick, run_a, run_b, rg_upper], [files, export_note], concurrency_limit=2,
                     api_visibility="private")
    return View(timer, menus=[(pick, choices)])
