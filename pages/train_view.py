"""The Train tab's picture of a run: its status line, its lesson and settings, the progress figures, as the
values of the tab's outputs (OUTPUT_KEYS); and the preview of a lesson before any run. A stream passes
`sent` (what it already shows) so that unchanged plots are skipped."""
from __future__ import annotations

import time

import gradio as gr

from cit_core.lessons import BUILTIN, default_lesson
from cit_core.lessons.files import LessonFileError, load_lesson_files
from cit_core.methods import METHODS
from cit_core.metrics import EXPLAIN, FORMULAS
from serve import controls as ctl
from serve.playback import RECORDING_VS_LIVE, recording_note
from serve.registry import Run

from .figures import progress

LOSS_REDRAW_S = 0.5             # the loss plot is resent at most this often while playing
OUTPUT_KEYS = ("state", "status", "matrix", "matrix_md", "curves", "loss", "metrics", "lesson_md")


def _task_names(run: Run) -> list[str]:
    return [t.name for t in run.trainer.lesson.tasks]


def _current_task(run: Run) -> int:
    return -1 if run.trainer.finished else run.trainer.log.task


def status_line(run: Run, word: str = "", note: str = "") -> str:
    lg, tasks = run.trainer.log, _task_names(run)
    if run.recorded:
        note = "; ".join(n for n in (f"recorded run {run.trainer.name} from the gallery: nothing trains, "
                                      "press Reset for a live run", note) if n)
    T, spt = len(tasks), run.cfg.train.steps_per_task
    total = T * spt
    tail = f"  \n_{note}_" if note else ""
    if run.failure:
        return f"**Run stopped by an error:** {run.failure} Press Reset to start again.{tail}"
    if lg.error:
        return f"**Run stopped** at step {lg.step} / {total}: {lg.error}{tail}"
    if lg.summary is not None:
        ap = lg.metrics().get("AP")
        score = f" · final average score (AP) {ap:.2f}" if ap is not None else ""
        same = "" if run.recorded else recording_note(run.cfg, ap)
        if same:
            note = "; ".join(n for n in (note, same) if n)
            tail = f"  \n_{note}_"
        return (f"**Finished** · task {T} of {T} ({tasks[-1]}) · step {lg.step} / {total}{score} · "
                f"press Reset for a new run{tail}")
    if lg.step == 0 and lg.task < 0:
        return (f"**Ready** · task 1 of {T} ({tasks[0]}) · step 0 / {total} · "
                f"press Play or Step{tail}")
    i = max(lg.task, 0)
    speed = f"{lg.recent_tokens_per_s:,.0f} tokens/s" if lg.recent_tokens_per_s else "measuring speed…"
    if run.recorded and lg.recent_tokens_per_s:
        speed = f"recorded at {lg.recent_tokens_per_s:,.0f} tokens/s"
    lead = f"**{word}** · " if word else ""
    return f"{lead}task {i + 1} of {T} ({tasks[i]}) · step {lg.step} / {total} · {speed}{tail}"


def waiting_line(run: Run, words: str) -> str:
    """The status line of a run waiting for its turn on the CPU (serve/scheduler.py: runs take turns)."""
    lg, T = run.trainer.log, len(_task_names(run))
    total = T * run.cfg.train.steps_per_task
    return (f"**▶ Playing · {words}** · task {max(lg.task, 0) + 1} of {T} · step {lg.step} / {total} · "
            "runs take turns chunk by chunk, so every run moves")


def lesson_markdown_for_run(run: Run) -> str:
    cfg, lesson = run.cfg, run.trainer.lesson
    title = METHODS[cfg.method].title
    lines = [f"**This run** (`{run.id}`): {title} · model `{cfg.model.name}` · {len(lesson.tasks)} tasks × "
             f"{cfg.train.steps_per_task} steps · batch {cfg.train.batch_size} · lr {cfg.train.lr:g} · "
             f"seed {cfg.train.seed}", ""]
    lines += [f"{i + 1}. **{t.name}**: {t.description or f'{len(t.train)} training examples'}"
              for i, t in enumerate(lesson.tasks)]
    saved = run.trainer.run_dir
    if run.recorded:
        lines += ["", f"_Recorded run `{run.trainer.name}` from the gallery (assets/gallery): its events are "
                      "played back as they were recorded; every analysis view follows it. Nothing trains, and a "
                      f"recording has no weights. Why a live run of the same settings may differ: {RECORDING_VS_LIVE}._"]
    if saved is not None:       # every app run is written to the run store as it trains
        lines += ["", f"_Saved as `{saved.name}` in the run store (Runs tab: open, compare, export, delete)._"]
    return "\n".join(lines)



def lesson_preview(lesson) -> str:
    lines = [f"**Lesson:** {lesson.description}", ""]
    lines += [f"{i + 1}. **{t.name}**: {t.description or f'{len(t.train)} training examples'}"
              for i, t in enumerate(lesson.tasks)]
    return "\n".join(lines)



def render(run: Run, sent: dict | None, word: str = "", note: str = "", force_loss: bool = False) -> dict:
    """Output values for `run`; with `sent` (what this stream already shows), unchanged plots are skipped."""
    lg, tasks = run.trainer.log, _task_names(run)
    cur, spt = _current_task(run), run.cfg.train.steps_per_task
    total = spt * len(tasks)
    full = sent is None
    sent = {} if sent is None else sent
    out = {"state": run.id, "status": status_line(run, word, note)}

    key = (run.id, len(lg.base_scores), len(lg.acc_matrix), cur)
    if full or sent.get("matrix") != key:
        sent["matrix"] = key
        general = progress.general_column(lg)
        out["matrix"] = progress.matrix_figure(tasks, lg.base_scores, lg.acc_matrix, cur, general=general)
        out["matrix_md"] = progress.matrix_markdown(tasks, lg.base_scores, lg.acc_matrix, general)
        out["metrics"] = progress.metrics_markdown(lg.metrics(), FORMULAS, EXPLAIN, len(lg.acc_matrix), len(tasks))

    key = (run.id, len(lg.curve_steps), cur)
    if full or sent.get("curves") != key:
        sent["curves"] = key
        out["curves"] = progress.curves_figure(tasks, lg.curve_steps, lg.curve_scores, lg.boundaries, spt, cur,
                                               total, general=lg.curve_general if lg.has_general else None)

    now = time.monotonic()
    key = (run.id, len(lg.losses), cur)
    stale = sent.get("loss") != key
    if full or (stale and (force_loss or now - sent.get("loss_at", 0.0) >= LOSS_REDRAW_S)):
        sent["loss"], sent["loss_at"] = key, now
        out["loss"] = progress.loss_figure(lg.losses, tasks, lg.boundaries, spt, cur, total)

    if full or sent.get("lesson") != run.id:
        sent["lesson"] = run.id
        out["lesson_md"] = lesson_markdown_for_run(run)
    return out



def on_lesson(name):
    """Preview a built-in lesson when it is chosen (uploaded files are previewed by on_files)."""
    if name not in BUILTIN:
        return gr.skip()
    return lesson_preview(BUILTIN[name]())


def on_files(files):
    """Check uploaded lesson files at once and preview their tasks (the run still starts on Reset)."""
    paths = ctl.file_paths(files)
    if not paths:
        return gr.update(value=ctl.LESSON_DEFAULT), lesson_preview(default_lesson())
    try:
        lesson = load_lesson_files(paths)
    except LessonFileError as err:
        gr.Warning(f"Lesson file problem: {err}")
        return gr.update(value=ctl.LESSON_DEFAULT), f"**Lesson file problem:** {err}"
    return gr.update(value=ctl.LESSON_FILES), lesson_preview(lesson) + "\n\n_Press Reset to train on this lesson._"


def as_tuple(values: dict) -> tuple:
    return tuple(values[k] if k in values else gr.skip() for k in OUTPUT_KEYS)


def message_only(run_id, message: str) -> tuple:
    return as_tuple({"state": run_id, "status": message})


__all__ = ["OUTPUT_KEYS", "render", "status_line", "waiting_line", "lesson_preview", "on_lesson", "on_files", "as_tuple",
           "message_only"]
