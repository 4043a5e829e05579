"""The Runs tab: the run store's saved runs — list, open in every analysis view, export, delete.

Every run trained in the app is written to the store as it trains (serve.registry), so this list
also shows this session's run while it is training. Names typed or sent here only ever reach folders
inside the store (cit_core.store.run_path refuses anything else).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from cit_core import store
from cit_core.settings import settings
from serve import downloads
from cit_core.compare import CompareError, load_run, store_row
from cit_core.export import export_model, write_figure_html, write_metrics

from .figures import progress
from . import source as src
from .view import View

COLUMNS = ["run", "method", "lesson", "seed", "tasks done", "AP", "BWT", "forgetting", "created", "size"]


@dataclass
class RunsView(View):
    components: dict = field(default_factory=dict)
    wire_open: object = None          # wire_open(pickers): "Open in every view" sets those dropdowns


_rows: dict[str, tuple[tuple, dict]] = {}     # run name -> (its events.jsonl stamp, table row)


def _row(name: str, path: Path) -> dict:
    """The run's table row, re-read only when its events.jsonl changed (a finished run: never again)."""
    try:
        stat = (path / "events.jsonl").stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    hit = _rows.get(name)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return dict(hit[1])
    try:
        row = store_row(load_run(path))
    except CompareError as err:
        row = {"run": name, "method": f"unreadable: {err}"}
    if stamp is not None:
        _rows[name] = (stamp, row)
    return dict(row)


def table() -> list[list]:
    """One row per saved run; a run that cannot be read still gets a row saying so."""
    busy = store.writing_dirs()
    rows = []
    names = store.list_runs()
    for gone in set(_rows) - set(names):          # deleted runs leave the cache too
        _rows.pop(gone, None)
    for name in names:
        path = store.run_path(name)
        row = _row(name, path)
        if path.resolve() in busy:
            row["tasks done"] = f"{row.get('tasks done', '')} (training)"
        rows.append([row.get(c, "") for c in COLUMNS])
    return rows


def signature() -> tuple:
    """Changes when a run is added, removed or written to (the table is redrawn only then)."""
    out = []
    for name in store.list_runs():
        events = store.run_path(name) / "events.jsonl"
        try:
            out.append((name, events.stat().st_mtime_ns))
        except OSError:
            out.append((name, 0))
    return tuple(out)


def _check(name) -> Path:
    if not name:
        raise CompareError("Pick a run first.")
    path = store.run_path(name)                    # RunNotFound (a ValueError) for names outside the store
    if not (path / "events.jsonl").is_file():
        raise CompareError(f"No saved run named {name!r}.")
    return path


def export_run(name) -> tuple[list[str] | None, str]:
    """Metrics (CSV, JSON), figures (standalone HTML) and, for LoRA runs, the adapters as a zip of peft
    folders. Adapters need the weights: they exist while the run is live in this server (saved into the
    run directory's export/ then) or when an earlier export saved them there."""
    try:
        path = _check(name)
        rec = load_run(path)
    except ValueError as err:
        return None, f"**{err}**"
    folder = downloads.fresh_folder(f"export-{name[:40]}")
    files = write_metrics([rec], folder, "metrics")
    lg = rec.log
    files.append(write_figure_html(progress.matrix_figure(lg.tasks, lg.base_scores, lg.acc_matrix,
                                                          general=progress.general_column(lg)),
                                   folder / "accuracy_matrix.html"))
    files.append(write_figure_html(progress.curves_figure(lg.tasks, lg.curve_steps, lg.curve_scores, lg.boundaries,
                                                          lg.steps_per_task, -1, lg.total_steps,
                                                          general=lg.curve_general if lg.has_general else None),
                                   folder / "curves.html"))
    note = _export_adapters(path, folder, files)
    return [str(f) for f in files], f"{len(files)} files ready below. {note}"


def _export_adapters(path: Path, folder: Path, files: list) -> str:
    trainer = store.find_trainer(path)
    saved = path / "export"
    if trainer is not None and not trainer.finished:
        return "Adapters can be exported once the run has finished."
    if trainer is not None:
        if saved.exists():
            shutil.rmtree(saved)
        info = export_model(trainer, saved)
        if not info["adapters"]:
            shutil.rmtree(saved, ignore_errors=True)
            return "This method trains all weights (no LoRA adapters to export)."
    elif not (saved / "adapters").is_dir():
        return ("No adapters: they are saved while a LoRA run is live in this server (export it before "
                "resetting), and full fine-tuning methods have none.")
    files.append(Path(shutil.make_archive(str(folder / "adapters"), "zip", root_dir=saved)))
    return "Adapters (peft folders + LOAD.md) are in adapters.zip (and in the run's export/ folder)."


def delete(name) -> str:
    try:
        store.delete_run(name)
    except ValueError as err:
        return f"**Not deleted:** {err}"
    return f"Deleted run `{name}`."          # never the server path


def open_everywhere(name, count: int):
    """Point every analysis view's source at run `name` (their own change events then redraw them)."""
    try:
        _check(name)
    except ValueError as err:
        return [gr.skip() for _ in range(count)] + [f"**{err}**"]
    # one fresh update per picker: Gradio pops `value` out of an update as it applies it, so one dict
    # shared by every output would set the first picker only
    choices = src.choices()
    return [gr.update(choices=list(choices), value=name) for _ in range(count)] + [
        f"Opened `{name}` in every analysis view: switch to a tab to see it."]


def build_runs_tab(registry, run_state) -> RunsView:
    where = "" if settings().public else f", `{store.runs_root()}`"      # a public server shows no paths
    gr.Markdown(f"_Every run trained here is saved in the run store{where} (set `CIT_RUNS_DIR` "
                "to move it). Open a run in every analysis view, export it, or delete it._")
    with gr.Row():
        pick = gr.Dropdown(store.list_runs(), value=None, label="Run", scale=4)
        reload = gr.Button("↻ refresh", scale=0, min_width=90)
    with gr.Row():
        open_btn = gr.Button("Open in every view", variant="primary", scale=0)
        export_btn = gr.Button("Export", scale=0)
        delete_btn = gr.Button("Delete…", variant="stop", scale=0)
    with gr.Group(visible=False) as confirm_box:
        confirm_md = gr.Markdown()
        with gr.Row():
            yes = gr.Button("Yes, delete it", variant="stop", scale=0)
            no = gr.Button("Cancel", scale=0)
    message = gr.Markdown()
    files = gr.File(label="Downloads", file_count="multiple", interactive=False)
    grid = gr.Dataframe(headers=COLUMNS, value=table(), interactive=False, wrap=True, label="Saved runs")
    pending = gr.State(None)
    shown = gr.State(None)
    timer = gr.Timer(src.TIMER_S * 2, active=False)

    def refresh(seen, force=False):
        sig = signature()
        if sig == seen and not force:
            return gr.skip(), gr.skip(), gr.skip()
        return sig, table(), gr.update(choices=[n for n, _ in sig])

    timer.tick(refresh, [shown], [shown, grid, pick], concurrency_limit=None, show_progress="hidden")
    reload.click(lambda seen: refresh(seen, True), [shown], [shown, grid, pick], concurrency_limit=None,
                 api_visibility="private")
    export_btn.click(export_run, [pick], [files, message], concurrency_limit=1, api_visibility="private")

    def ask(name):
        if not name:
            return None, gr.update(visible=False), "", "**Pick a run first.**"
        return name, gr.update(visible=True), f"Delete run `{name}` and all its files? This cannot be undone.", ""

    delete_btn.click(ask, [pick], [pending, confirm_box, confirm_md, message], api_visibility="private")
    yes.click(lambda name: (None, gr.update(visible=False), delete(name)), [pending],
              [pending, confirm_box, message], api_visibility="private") \
        .then(lambda seen: refresh(seen, True), [shown], [shown, grid, pick], api_visibility="private")
    no.click(lambda: (None, gr.update(visible=False), "Not deleted."), None, [pending, confirm_box, message],
             api_visibility="private")

    def wire_open(pickers: list) -> None:
        n = len(pickers)
        open_btn.click(lambda name: open_everywhere(name, n), [pick], [*pickers, message],
                       api_visibility="private")

    return RunsView(timer, menus=[(pick, store.list_runs)], wire_open=wire_open,
                    components=dict(pick=pick, grid=grid, message=message, files=files))
