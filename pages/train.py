"""The Train tab: pick a lesson, a method and a model, then Play / Pause / Step through training.

Concurrency (ARCHITECTURE.md, "Gradio: concurrency and state"): the browser session holds only a run id
in gr.State; the Trainer lives in the server-side RunRegistry. Play is a generator on the shared
`concurrency_id="train"` queue that advances a few steps per yield; Step shares that queue. Every advance
happens under the run's lock, so two events never move one trainer at once, and `advance()` is atomic per
call, so a cancelled Play always leaves the run at a clean step boundary.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import gradio as gr

from cit_core import gallery
from serve import compute, playback
from cit_core.config import ConfigError, LessonConfig, ModelConfig, RunConfig, TrainConfig, help_text
from cit_core.lessons import BUILTIN, default_lesson
from cit_core.lessons.files import LessonFileError, load_lesson_files
from cit_core.methods import METHODS, resolve
from cit_core.methods.replay import ReplayOptions
from cit_core.metrics import EXPLAIN, FORMULAS
from cit_core.model import ModelUnavailable
from cit_core.settings import settings
from cit_core.threads import default_threads
from serve.registry import RegistryFull, Run, RunRegistry

from .figures import progress
from .ask import build_ask
from .workshop import UrlUI, keep_options

logger = logging.getLogger("cit.app.train")

CHUNK_STEPS = 5                 # optimizer steps per Play yield
LOSS_REDRAW_S = 0.5             # the loss plot is resent at most this often while playing
MAX_STEP_CLICK = 1000           # Step is for small moves; Play is for long ones
LOCK_WAIT_S = 60.0              # Pause / status wait at most this long for a chunk in flight
LESSON_DEFAULT = "default"
LESSON_CLASSIC = "classic"
LESSON_FILES = "uploaded files"
# the base switch: the same tiny architecture instruction-tuned (assets/tiny-instruct) or randomly
# initialised, so a user can run one method on both (He et al.: EWC/MAS help only an instruction-tuned base)
MODEL_CHOICES = [("tiny · instruction-tuned base", "tiny"), ("tiny · random init (scratch)", "tiny-scratch"),
                 ("SmolLM2-135M-Instruct", "smollm2")]
WATCH_STEPS_PER_FRAME = 4       # a recorded run plays back this many steps per frame...
WATCH_FRAME_S = 0.08            # ...this often: the default lesson's 225 steps in about 5 s


def train_concurrency() -> int:
    """How many Play/Step events may train at once, sized from the hardware found (env CIT_TRAIN_CONCURRENCY):
    half the CPU cores without CUDA (one run at a time on a 2-vCPU CPU-basic Space), up to 4 with CUDA."""
    if settings().train_concurrency:
        return settings().train_concurrency
    import torch
    from serve.spaces_gpu import train_concurrency_for
    return train_concurrency_for(os.cpu_count(), torch.cuda.is_available())


def torch_threads() -> int:
    """Torch threads per app run: cit_core.threads.default_threads split over the runs that may train at
    once, one core always left to the rest of the machine (1 on a 2-core machine; env CIT_TORCH_THREADS
    overrides). Measured idle and busy in bench/thread_policy.py (bench/RESULTS.md, "Thread policy")."""
    return default_threads(train_concurrency())


LEAD = """\
A small language model learns **instruction tasks one after another** and is tested on all of them after each:
press **▶ Play** and the **accuracy matrix** and the **curves** show what it forgets.
"""

INTRO = """\
The **accuracy matrix** has one row per stage (before training, then after each task) and one column per task:
the outlined diagonal is each task's score right after it was learned, and lower numbers further down a column
mean the model **forgot** that task while learning later ones (catastrophic forgetting). The **curves** show
the same scores at every periodic evaluation, with the task being trained shaded; the **metrics** summarise the
matrix. The last column, **general** (dotted grey curve), scores skills the base already had before this lesson
(held-out prompts of the families it was instruction-tuned on): not part of the metrics, it shows what
continual tuning does to what the model already knew. Choose the lesson, method and model under **Settings**,
then press **Play** (Pause stops at a clean step; Step moves a given number of steps). Changed settings apply on
**Reset**, or on **Play** once the run has finished (switch the method to Replay and press Play to see
forgetting shrink). **Ask the model** (under the charts) shows what the model answers now and after each task.
"""

PENDING_PLAY = ("**▶ Play pressed** · starting: waiting for a free training slot (other runs may be training; "
                "your place in the queue shows here) or building the model. No need to press again.")
PENDING_STEP = ("**Step pressed** · starting: waiting for a free training slot or building the model; the "
                "charts update as the steps run. No need to press again.")


def pending_js(text: str) -> str:
    """A client-side handler that puts `text` in the status box the moment a button is pressed."""
    return f"() => {json.dumps(text)}"


FIELD_LABELS = {
    "TrainConfig.steps_per_task": "Steps per task",
    "TrainConfig.lr": "Learning rate",
    "TrainConfig.batch_size": "Batch size",
    "TrainConfig.eval_every": "Evaluate every",
    "TrainConfig.seed": "Seed",
    "ReplayOptions.per_task": "Replay: examples kept per task",
    "ReplayOptions.mix_ratio": "Replay: buffer share of each batch",
    "ModelConfig.name": "Model",
}


CARDS = Path(__file__).resolve().parents[1] / "assets" / "cards"
CARD_LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


def method_card(key: str) -> str:
    """The method's card (assets/cards/<key>.md): idea, update rule, knobs, paper claim, our reading."""
    path = CARDS / f"{key}.md"
    return path.read_text(encoding="utf-8") if path.exists() else f"_No card for {key!r} yet._"


class UserError(ValueError):
    """A problem the user can fix; the message is shown as is."""


def friendly(message: str) -> str:
    for name, label in FIELD_LABELS.items():
        message = message.replace(name, label)
    return message


# -- turning the controls into a RunConfig ------------------------------------------------------
@dataclass
class Controls:
    """The values of the config controls, in the order the events pass them."""
    lesson: str = LESSON_DEFAULT
    files: list = field(default_factory=list)
    method: str = "seqft"
    model: str = "tiny"
    steps_per_task: float | None = None
    lr: float | None = None
    batch_size: float | None = None
    eval_every: float | None = None
    seed: float | None = None
    per_task: float | None = None
    mix_ratio: float | None = None
    options_text: str = ""


def _number(value, label: str, integer: bool):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"{label} is empty: type a number.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{label} must be a number, got {value!r}.") from None
    if integer:
        if number != number or number in (float("inf"), float("-inf")) or number != int(number):
            raise UserError(f"{label} must be a whole number, got {value!r}.")
        return int(number)
    return number


def _paths(files) -> list[str]:
    out = []
    for f in files or []:
        if isinstance(f, str):
            out.append(f)
        elif isinstance(f, dict) and f.get("path"):
            out.append(f["path"])
        elif getattr(f, "name", None):
            out.append(f.name)
    return out


def parse_options(text: str | None) -> dict:
    """'key=value' pairs separated by commas or new lines (values read as JSON when they parse), as the
    CLI's --option; the method's own options dataclass then checks names and ranges."""
    options = {}
    for item in re.split(r"[,\n]", text or ""):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"Method options must be key=value pairs, got {item!r}.")
        value = value.strip()
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def options_help(method: str) -> str:
    """The selected method's options with defaults, help and ranges, read from its Options dataclass."""
    if method not in METHODS:
        return ""
    cls = METHODS[method].Options
    items = [f"- `{f.name}` (default `{f.default!r}`): {help_text(cls, f.name)}" for f in fields(cls)]
    if not items:
        return "_This method has no options._"
    return "Options of this method (`key=value`, comma-separated; empty = defaults):\n" + "\n".join(items)


def has_free_options(method: str) -> bool:
    """Methods whose options go in the text box (replay has its own number fields)."""
    return method in METHODS and method != "replay" and bool(fields(METHODS[method].Options))


def build_config(c: Controls) -> RunConfig:
    """RunConfig from the controls; raises UserError / ConfigError with a readable message."""
    method = c.method
    if method not in METHODS:
        raise UserError(f"Unknown method {method!r}; choose one from the list.")
    model = (c.model or "").strip()
    if not model:
        raise UserError("Model is empty: choose 'tiny', 'smollm2', or type a Hugging Face model id.")
    if c.lesson == LESSON_FILES:
        paths = _paths(c.files)
        if not paths:
            raise UserError("The lesson is 'uploaded files' but no file is uploaded: upload lesson files "
                            "(JSONL, SuperNI JSON or TRACE JSON) or choose the default lesson.")
        lesson = LessonConfig(files=paths)
    elif c.lesson in BUILTIN:
        lesson = LessonConfig(name=c.lesson)
    else:
        raise UserError(f"Unknown lesson {c.lesson!r}.")
    train = TrainConfig(
        steps_per_task=_number(c.steps_per_task, "Steps per task", True),
        lr=_number(c.lr, "Learning rate", False),
        batch_size=_number(c.batch_size, "Batch size", True),
        eval_every=_number(c.eval_every, "Evaluate every", True),
        seed=_number(c.seed, "Seed", True),
        threads=torch_threads())
    if method == "replay":
        options = {"per_task": _number(c.per_task, "Replay: examples kept per task", True),
                   "mix_ratio": _number(c.mix_ratio, "Replay: buffer share of each batch", False)}
    else:
        options = parse_options(c.options_text) if has_free_options(method) else {}
    return resolve(RunConfig(method=method, model=ModelConfig(name=model), train=train, lesson=lesson,
                             method_options=options))


def user_message(err: BaseException) -> str:
    """One readable line for the errors a user can cause; never a traceback."""
    if isinstance(err, (UserError, ConfigError)):
        return friendly(str(err))
    if isinstance(err, LessonFileError):
        return f"Lesson file problem: {err}"
    if isinstance(err, ModelUnavailable):
        return f"Model unavailable: {err}"
    if isinstance(err, RegistryFull):
        return str(err)
    return f"Could not start the run ({type(err).__name__}: {err})"


# -- rendering a run ----------------------------------------------------------------------------
OUTPUT_KEYS = ("state", "status", "matrix", "matrix_md", "curves", "loss", "metrics", "lesson_md")


def _task_names(run: Run) -> list[str]:
    return [t.name for t in run.trainer.lesson.tasks]


def _current_task(run: Run) -> int:
    lg = run.trainer.log
    return -1 if run.trainer.finished else lg.task


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


def lesson_markdown_for_run(run: Run) -> str:
    cfg, lesson = run.cfg, run.trainer.lesson
    title = METHODS[cfg.method].title
    lines = [f"**This run** (`{run.id}`): {title} · model `{cfg.model.name}` · {len(lesson.tasks)} tasks × "
             f"{cfg.train.steps_per_task} steps · batch {cfg.train.batch_size} · lr {cfg.train.lr:g} · "
             f"seed {cfg.train.seed}", ""]
    lines += [f"{i + 1}. **{t.name}**: {t.description or f'{len(t.train)} training examples'}"
              for i, t in enumerate(lesson.tasks)]
    saved = getattr(run.trainer, "run_dir", None)
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


def as_tuple(values: dict) -> tuple:
    return tuple(values[k] if k in values else gr.skip() for k in OUTPUT_KEYS)


def message_only(run_id, message: str) -> tuple:
    return as_tuple({"state": run_id, "status": message})


# -- the tab ------------------------------------------------------------------------------------
class TrainTab:
    """Event handlers bound to one registry; `build_train_tab` wires them to components."""

    def __init__(self, registry: RunRegistry):
        self.registry = registry

    # -- helpers ------------------------------------------------------------------------------
    def _create(self, controls: Controls, owner: str | None) -> Run:
        cfg = build_config(controls)
        run_id = self.registry.create(cfg, owner=owner)
        run = self.registry.get(run_id)
        if run is None:                      # evicted between create and get: practically never
            raise RegistryFull("The run was freed before it started; press Reset again.")
        return run

    def _settings_note(self, run: Run, controls: Controls) -> str:
        try:
            cfg = build_config(controls)
        except (UserError, ConfigError) as err:
            return f"The settings on the left are not valid ({friendly(str(err))}); this run keeps its own."
        if _settings(cfg) != _settings(run.cfg):
            return "Settings changed: they apply when you press Reset."
        return ""

    def _obtain(self, run_id, controls: Controls, request) -> tuple[Run | None, str, str]:
        """The session's run, created from the controls when there is none: (run, note, error)."""
        run = self.registry.get(run_id)
        if run is not None:
            note = self._settings_note(run, controls)
            if note.startswith("Settings changed") and (run.failure or run.trainer.finished):
                # a finished run has nothing left to lose: Play/Step start over with the new settings
                try:
                    fresh = self._create(controls, _owner(request))
                except Exception as err:   # noqa: BLE001 - keep the finished run, say why
                    return run, f"Could not start a new run: {user_message(err)}", ""
                self.registry.release(run.id)
                return fresh, "The previous run had finished: this is a new run with the changed settings.", ""
            return run, note, ""
        note = ("Your earlier run was freed after being idle; this is a new run from the settings on the left."
                if run_id else "")
        try:
            return self._create(controls, _owner(request)), note, ""
        except Exception as err:           # noqa: BLE001 - every failure becomes one line for the user
            if not isinstance(err, (UserError, ConfigError, LessonFileError, ModelUnavailable, RegistryFull)):
                logger.exception("could not create a run")
            return None, "", user_message(err)

    @staticmethod
    def _advance(run: Run, steps: int) -> None:
        """One atomic trainer.advance under the caller's lock; an unexpected crash marks the run failed."""
        if run.failure or run.trainer.finished:
            return
        try:
            if run.recorded:
                run.trainer.advance(steps)        # a playback folds events: no torch, no compute thread
            else:
                compute.run(run.trainer.advance, steps)
        except Exception as err:           # noqa: BLE001
            logger.exception("run %s crashed while advancing", run.id)
            run.failure = f"{type(err).__name__}: {err}"

    def _render_locked(self, run: Run, word: str, note: str = "") -> dict:
        got = run.lock.acquire(timeout=LOCK_WAIT_S)
        try:
            return render(run, None, word, note)
        finally:
            if got:
                run.lock.release()

    # -- events -------------------------------------------------------------------------------
    def play(self, run_id, lesson, files, method, model, steps_per_task, lr, batch_size, eval_every, seed,
             replay_per_task, replay_mix_ratio, method_options="", request: gr.Request = None):
        controls = Controls(lesson, files, method, model, steps_per_task, lr, batch_size, eval_every, seed,
                            replay_per_task, replay_mix_ratio, method_options)
        run, note, error = self._obtain(run_id, controls, request)
        if run is None:
            gr.Warning(error)
            yield message_only(run_id, f"**Could not start:** {error}")
            return
        if run.failure or run.trainer.finished:
            yield as_tuple(self._render_locked(run, "", note))
            return
        # a ZeroGPU run (chunks.ChunkedTrainer) trains more steps per GPU call: each call has a fixed cost
        steps = getattr(run.trainer, "steps_per_call", CHUNK_STEPS)
        yield from self._stream(run, "▶ Playing", note, steps, first_note=note or "starting…")

    def _stream(self, run: Run, word: str, note: str, steps: int, pause_s: float = 0.0, first_note: str = ""):
        """Advance `run` `steps` at a time, yielding the outputs after each chunk, until it finishes or
        another event moves its play token (Pause, Step, Reset, another Play or Watch, eviction)."""
        run.play_token += 1
        token, sent = run.play_token, {}
        run.streaming = token
        yield as_tuple(render(run, sent, word, first_note or note))
        try:
            while True:
                if pause_s:
                    time.sleep(pause_s)
                if run.play_token != token or self.registry.get(run.id) is None:
                    return                   # paused, stepped, reset or evicted: stop quietly
                with run.lock:
                    if run.play_token != token:
                        return
                    self._advance(run, steps)
                    done = run.failure or run.trainer.finished
                    values = render(run, sent, word, note, force_loss=bool(done))
                yield as_tuple(values)
                if done:
                    return
        finally:
            # advance() is atomic per call, so the run is already at a clean step boundary; only this
            # loop's claim on the run ends here (Pause/close cancel us at a yield).
            if run.play_token == token:
                run.play_token += 1
            if run.streaming == token:
                run.streaming = None

    def pause(self, run_id):
        run = self.registry.get(run_id)
        if run is None:
            return message_only(run_id, "Nothing to pause: press Play or Step to start a run.")
        run.play_token += 1                  # stops a Play loop even when its event was not cancelled
        return as_tuple(self._render_locked(run, "Paused"))

    def step(self, run_id, steps, lesson, files, method, model, steps_per_task, lr, batch_size, eval_every,
             seed, replay_per_task, replay_mix_ratio, method_options="", request: gr.Request = None):
        """Move the run `steps` optimizer steps and pause. Streams like Play: the status, matrix and curves
        update after every chunk, so a long Step shows its progress; Pause, Play or Reset stop it."""
        controls = Controls(lesson, files, method, model, steps_per_task, lr, batch_size, eval_every, seed,
                            replay_per_task, replay_mix_ratio, method_options)
        n = steps
        try:
            steps = _number(n, "Steps", True)
            if not 1 <= steps <= MAX_STEP_CLICK:
                raise UserError(f"Steps must be between 1 and {MAX_STEP_CLICK}, got {steps}; use Play for more.")
        except UserError as err:
            gr.Warning(str(err))
            run = self.registry.get(run_id)
            yield as_tuple(self._render_locked(run, "Paused", str(err))) if run else message_only(run_id, str(err))
            return
        if self.registry.get(run_id) is None:
            yield message_only(run_id, f"**Starting…** building the model, then {steps} steps")
        run, note, error = self._obtain(run_id, controls, request)
        if run is None:
            gr.Warning(error)
            yield message_only(run_id, f"**Could not start:** {error}")
            return
        run.play_token += 1                  # Step pauses a running Play
        token, sent = run.play_token, {}
        run.streaming = token
        chunk = getattr(run.trainer, "steps_per_call", CHUNK_STEPS)
        start = run.trainer.log.step
        try:
            while True:
                with run.lock:
                    if run.play_token != token:
                        return               # paused, played or reset meanwhile: stop quietly
                    done = run.trainer.log.step - start
                    left = steps - done
                    over = left <= 0 or bool(run.failure) or run.trainer.finished
                    if not over:
                        self._advance(run, min(chunk, left))
                        done = run.trainer.log.step - start
                        over = done >= steps or bool(run.failure) or run.trainer.finished
                    progress = f"{done} of {steps} steps" + (f"; {note}" if note else "")
                    values = render(run, sent, "Paused" if over else "▶ Stepping", note if over else progress,
                                    force_loss=over)
                yield as_tuple(values)
                if over or self.registry.get(run.id) is None:
                    return
        finally:
            if run.play_token == token:
                run.play_token += 1
            if run.streaming == token:
                run.streaming = None

    def reset(self, run_id, lesson, files, method, model, steps_per_task, lr, batch_size, eval_every, seed,
              replay_per_task, replay_mix_ratio, method_options="", request: gr.Request = None):
        controls = Controls(lesson, files, method, model, steps_per_task, lr, batch_size, eval_every, seed,
                            replay_per_task, replay_mix_ratio, method_options)
        try:
            new = self._create(controls, _owner(request))
        except Exception as err:           # noqa: BLE001
            if not isinstance(err, (UserError, ConfigError, LessonFileError, ModelUnavailable, RegistryFull)):
                logger.exception("could not create a run")
            message = user_message(err)
            gr.Warning(message)
            old = self.registry.get(run_id)
            if old is None:
                return message_only(run_id, f"**Could not start:** {message}")
            return as_tuple(self._render_locked(old, "Paused", f"Reset failed, this run is kept: {message}"))
        self.registry.release(run_id)
        return as_tuple(render(new, None))

    def status(self, run_id):
        run = self.registry.get(run_id)
        if run is None:
            return message_only(None, "No run yet: press Play, Step or Reset.")
        return as_tuple(self._render_locked(run, "Current"))

    def watch(self, run_id, name, request: gr.Request = None):
        """Play a recorded gallery run back in this session's place (no training, no train queue): the
        plots here and every analysis view follow it step by step. A recording paused half-way continues."""
        run = self.registry.get(run_id)
        note = ""
        if not (run is not None and run.recorded and run.trainer.name == name and not run.trainer.finished):
            try:
                recording = playback.Recording(name)
                new_id = self.registry.add_recorded(recording, _owner(request))
            except (gallery.GalleryError, RegistryFull) as err:
                message = f"Cannot play the recording: {err}"
                gr.Warning(message)
                yield as_tuple(self._render_locked(run, "Paused", message)) if run else message_only(run_id, message)
                return
            if run is not None:
                self.registry.release(run.id)     # a live run stops at its next chunk; its directory stays
                if getattr(run.trainer, "run_dir", None) is not None:
                    note = f"your previous run is kept in the run store as {run.trainer.run_dir.name}"
            run = self.registry.get(new_id)
        yield from self._stream(run, "▶ Watching", note, WATCH_STEPS_PER_FRAME, pause_s=WATCH_FRAME_S)

    def unload(self, request: gr.Request = None):
        self.registry.release_owner(_owner(request))


def _settings(cfg: RunConfig) -> dict:
    """What the user set: the config without the thread count (the app picks it from the hardware)."""
    data = cfg.to_dict()
    data["train"] = {k: v for k, v in data["train"].items() if k != "threads"}
    return data


MODEL_SHORT = {"tiny": "tiny base", "tiny-scratch": "tiny, random init", "smollm2": "SmolLM2-135M"}
SCHEDULE = (("steps_per_task", "{} steps/task"), ("batch_size", "batch {}"), ("lr", "lr {}"))
RECORDING_VS_LIVE = ("a recording reproduces its numbers exactly only on the processor and thread count that made "
                     "it: elsewhere float sums run in another order, tiny differences change the training "
                     "trajectory, and a live run with the same settings ends with somewhat different scores")


def readable(value) -> str:
    """A knob's value as a person writes it: 1000000.0 -> '1,000,000', 0.0020 -> '0.002', True -> 'on'."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        if float(value).is_integer() and abs(value) >= 1:
            return f"{int(value):,}"
        return f"{value:.3g}"
    return str(value)


def recording_label(e: dict, knobs: list[str]) -> str:
    """Method, base model, lesson, a schedule that is not the default, the given knobs, headline numbers."""
    cls = METHODS.get(e["method"])
    title = cls.title if cls else e["method"]
    cfg = e["config"]
    model = (cfg.get("model") or {}).get("name", "?")
    parts = [title, MODEL_SHORT.get(model, model), f"{(cfg.get('lesson') or {}).get('name') or 'custom'} lesson"]
    train, default = cfg.get("train") or {}, TrainConfig()
    parts += [fmt.format(readable(train[k])) for k, fmt in SCHEDULE if k in train and train[k] != getattr(default, k)]
    options = cfg.get("method_options") or {}
    parts += [f"{k} {readable(options[k])}" for k in knobs if k in options]
    m = e["metrics"]
    parts.append(f"AP {m.get('AP', float('nan')):.2f} · forgetting {m.get('forgetting', float('nan')):.2f}")
    return " · ".join(parts)


def gallery_choices() -> list[tuple[str, str]]:
    """(label, name) of every recording, the tiny-model ones first: labels name the method, the base model
    and the lesson, and only the knobs that tell two recordings of one method apart."""
    try:
        entries = gallery.index()
    except gallery.GalleryError:
        return []                      # a damaged gallery must not take the Train tab down; Watch says why
    by_method: dict[str, list[dict]] = {}
    for e in entries:
        by_method.setdefault(e["method"], []).append(e)
    out = []
    for e in entries:
        same = by_method[e["method"]]
        knobs = sorted({k for o in same for k in (o["config"].get("method_options") or {})
                        if len({repr((x["config"].get("method_options") or {}).get(k)) for x in same}) > 1})
        out.append((recording_label(e, knobs), e["name"], (e["config"].get("model") or {}).get("name") != "tiny"))
    out.sort(key=lambda item: item[2])                  # stable: the index order within each group
    return [(label, name) for label, name, _ in out]


def matching_recording(cfg: RunConfig) -> dict | None:
    """The gallery entry recorded with exactly these settings (thread count aside), if any."""
    try:
        entries = gallery.index()
    except gallery.GalleryError:
        return None
    mine = _settings(cfg)
    for e in entries:
        try:
            theirs = _settings(resolve(RunConfig.from_dict(e["config"])))
        except (ConfigError, KeyError, TypeError, ValueError):
            continue
        if theirs == mine:
            return e
    return None


def recording_note(cfg: RunConfig, ap: float | None) -> str:
    """Said under a finished live run whose settings match a recording: why the numbers may differ."""
    e = matching_recording(cfg)
    if e is None or ap is None:
        return ""
    theirs = e["metrics"].get("AP")
    if theirs is None:
        return ""
    return (f"the recording '{e['name']}' of these settings ended at AP {theirs:.2f}, this run at {ap:.2f}: "
            + RECORDING_VS_LIVE)


def watched_settings(name: str):
    """The method picker and its options follow the recording being watched (so its card is shown)."""
    try:
        e = gallery.entry(name)
    except gallery.GalleryError:
        return gr.skip(), gr.skip()
    from .workshop import options_text
    options = e["config"].get("method_options") or {}
    return gr.update(value=e["method"]), gr.update(value=options_text(e["method"], options))


def _owner(request) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def on_lesson(name):
    """Preview a built-in lesson when it is chosen (uploaded files are previewed by on_files)."""
    if name not in BUILTIN:
        return gr.skip()
    return lesson_preview(BUILTIN[name]())


def on_files(files):
    """Check uploaded lesson files at once and preview their tasks (the run still starts on Reset)."""
    paths = _paths(files)
    if not paths:
        return gr.update(value=LESSON_DEFAULT), lesson_preview(default_lesson())
    try:
        lesson = load_lesson_files(paths)
    except LessonFileError as err:
        gr.Warning(f"Lesson file problem: {err}")
        return gr.update(value=LESSON_DEFAULT), f"**Lesson file problem:** {err}"
    return gr.update(value=LESSON_FILES), lesson_preview(lesson) + "\n\n_Press Reset to train on this lesson._"


def build_train_tab(registry: RunRegistry) -> TrainTab:
    """Build the Train tab's components and events inside the current Blocks; returns the handlers."""
    tab = TrainTab(registry)
    url = UrlUI()                       # shareable link, workshop guide, hideable controls (pages/workshop.py)
    d, rd = TrainConfig(), ReplayOptions()
    limit = train_concurrency()

    gr.Markdown(LEAD, elem_classes=["cit-intro", "cit-lead"])
    # a plain closure, not a bound method: Gradio deep-copies component configs, and copying a bound
    # method would copy the registry (locks, trainers) with it
    run_state = gr.State(None, delete_callback=lambda run_id: registry.release(run_id))
    # on a phone the row wraps: CSS (app.CSS, .cit-train-row) puts the main column (Play, the charts) first
    with gr.Row(equal_height=False, elem_classes=["cit-train-row"]):
        with gr.Column(scale=1, min_width=300, elem_classes=["cit-controls"]):
            with gr.Accordion("What you are looking at", open=False, elem_classes=["cit-intro-more"]):
                gr.Markdown(INTRO, elem_classes=["cit-intro"])
            gr.Markdown("#### Settings", elem_classes=["cit-settings-title"])
            lesson = gr.Dropdown([LESSON_DEFAULT, LESSON_CLASSIC, LESSON_FILES], value=LESSON_DEFAULT, label="Lesson",
                                 info="the built-in five-task lesson, or the files you upload below")
            files = gr.File(file_count="multiple", file_types=[".jsonl", ".json"], type="filepath",
                            label="Lesson files (JSONL / SuperNI JSON / TRACE JSON)", height=150,
                            elem_classes=["cit-files"])
            lesson_info = gr.Markdown(lesson_preview(default_lesson()), elem_classes=["cit-small"])
            method = gr.Dropdown([(cls.title, key) for key, cls in METHODS.items()], value="seqft",
                                 label="Method", info="how the model is trained on the task sequence")
            with gr.Accordion("About this method", open=False) as card_box:
                # cards write formulas as LaTeX between $…$ (inline) or $$…$$ (display)
                method_card_md = gr.Markdown(method_card("seqft"), elem_classes=["cit-small", "cit-card"],
                                             latex_delimiters=CARD_LATEX)
            with gr.Group(visible=False) as replay_box:
                per_task = gr.Number(rd.per_task, label="Replay: examples kept per task", precision=0,
                                     info=help_text(ReplayOptions, "per_task"))
                mix_ratio = gr.Number(rd.mix_ratio, label="Replay: buffer share of each batch",
                                      info=help_text(ReplayOptions, "mix_ratio"))
            with gr.Group(visible=False) as options_box:
                options_text = gr.Textbox("", label="Method options", placeholder="key=value, key=value",
                                          max_lines=3)
                options_md = gr.Markdown("", elem_classes=["cit-small", "cit-options-help"])
            model = gr.Dropdown(MODEL_CHOICES, value="tiny", allow_custom_value=True, label="Model (base)",
                                info="tiny: a 0.9 M-parameter byte model this project instruction-tuned on 40 "
                                     "generated task families; 'random init' is the same model untrained (run EWC on "
                                     "both to see He et al.'s finding). smollm2 (SmolLM2-135M) is much slower on "
                                     "CPU. Or type a Hugging Face model id / local folder already on this machine "
                                     "(nothing is downloaded).")
            with gr.Accordion("Training settings", open=True) as settings_box:
                steps = gr.Number(d.steps_per_task, label="Steps per task", precision=0,
                                  info=help_text(TrainConfig, "steps_per_task"))
                lr = gr.Number(d.lr, label="Learning rate", info=help_text(TrainConfig, "lr"))
                batch = gr.Number(d.batch_size, label="Batch size", precision=0,
                                  info=help_text(TrainConfig, "batch_size"))
                eval_every = gr.Number(d.eval_every, label="Evaluate every", precision=0,
                                       info=help_text(TrainConfig, "eval_every"))
                seed = gr.Number(d.seed, label="Seed", precision=0, info=help_text(TrainConfig, "seed"))
            url.build_share()
        with gr.Column(scale=3, min_width=340, elem_classes=["cit-main"]):
            url.build_guide()
            status = gr.Markdown("**No run yet** · press Play (or Step) to start with the chosen settings",
                                 elem_classes=["cit-status"], elem_id="cit-status")
            with gr.Row(elem_classes=["cit-buttons", "cit-play-row"]):
                play_btn = gr.Button("▶ Play", variant="primary", min_width=90)
                pause_btn = gr.Button("Pause", min_width=90)
                step_n = gr.Number(10, label="steps", precision=0, min_width=90, scale=0, elem_classes=["cit-steps"])
                step_btn = gr.Button("Step", min_width=90)
                reset_btn = gr.Button("↺ Reset", variant="stop", min_width=90)
            recordings = gallery_choices()
            with gr.Row(elem_classes=["cit-buttons", "cit-recordings"], visible=bool(recordings),
                        elem_id="cit-recordings"):
                watch_pick = gr.Dropdown(recordings, value=recordings[0][1] if recordings else None,
                                         label="Recorded runs: a finished run played back in seconds, nothing "
                                               "trains (every tab follows it)", scale=4, min_width=240)
                watch_btn = gr.Button("▶ Watch recording", min_width=120, scale=1)
            with gr.Row(equal_height=False, elem_classes=["cit-charts"]):
                with gr.Column(scale=1, min_width=340, elem_classes=["cit-wide-plot"]):
                    matrix = gr.Plot(label="Accuracy matrix", show_label=False, elem_id="cit-matrix")
                with gr.Column(scale=1, min_width=340, elem_classes=["cit-wide-plot"]):
                    curves = gr.Plot(label="Score curves", show_label=False, elem_id="cit-curves")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=340):
                    loss = gr.Plot(label="Training loss", show_label=False)
                with gr.Column(scale=1, min_width=340):
                    metrics = gr.Markdown("_Metrics appear once the first task has ended._",
                                          elem_classes=["cit-metrics"])
            with gr.Accordion("Accuracy matrix as a table", open=False):
                matrix_md = gr.Markdown("_No run yet._")
            ask_ui = build_ask(registry, run_state)

    config_inputs = [lesson, files, method, model, steps, lr, batch, eval_every, seed, per_task, mix_ratio,
                     options_text]
    outputs = [run_state, status, matrix, matrix_md, curves, loss, metrics, lesson_info]
    assert len(outputs) == len(OUTPUT_KEYS)

    def on_method(m, text, flags):
        free = has_free_options(m)
        shown = "options" not in (flags or {}).get("hide", ())      # a link may hide the options
        return (gr.update(visible=m == "replay" and shown), gr.update(visible=free and shown),
                gr.update(value=keep_options(text, m)), options_help(m) if free else "", method_card(m))

    method.change(on_method, [method, options_text, url.flags],
                  [replay_box, options_box, options_text, options_md, method_card_md],
                  queue=False,
                  api_visibility="private")
    files.change(on_files, files, [lesson, lesson_info], concurrency_limit=None, api_visibility="private")
    lesson.input(on_lesson, lesson, lesson_info, concurrency_limit=None, api_visibility="private")

    # a press shows at once that it was taken (before the queue or the model build answers), so nobody
    # presses again; trigger_mode="once" ignores presses while the event is pending
    play_btn.click(None, None, [status], js=pending_js(PENDING_PLAY), queue=False, show_progress="hidden")
    step_btn.click(None, None, [status], js=pending_js(PENDING_STEP), queue=False, show_progress="hidden")
    play_event = play_btn.click(tab.play, [run_state, *config_inputs], outputs, api_name="play",
                                concurrency_id="train", concurrency_limit=limit, trigger_mode="once",
                                # the queue position / timer shows in the status box (CSS keeps it on top)
                                show_progress="minimal", show_progress_on=[status])
    # cheap (no model, a sleep between frames): never waits behind training, even on a busy Space
    watch_event = watch_btn.click(tab.watch, [run_state, watch_pick], outputs, api_name="watch",
                                  cancels=[play_event], concurrency_limit=None, show_progress="hidden")
    watch_event.then(watched_settings, [watch_pick], [method, options_text], queue=False,
                     api_visibility="private")
    step_event = step_btn.click(tab.step, [run_state, step_n, *config_inputs], outputs, api_name="step",
                                cancels=[play_event, watch_event], concurrency_id="train", concurrency_limit=limit,
                                trigger_mode="once", show_progress="minimal", show_progress_on=[status])
    pause_btn.click(tab.pause, [run_state], outputs, api_name="pause",
                    cancels=[play_event, watch_event, step_event], concurrency_limit=None, show_progress="hidden")
    reset_btn.click(tab.reset, [run_state, *config_inputs], outputs, api_name="reset",
                    cancels=[play_event, watch_event, step_event],
                    concurrency_id="build", concurrency_limit=limit, show_progress="minimal",
                    show_progress_on=[status])
    # read-only view of the session's run (tests, and a page that wants to redraw)
    refresh = gr.Button("refresh", visible=False)
    refresh.click(tab.status, [run_state], outputs, api_name="status", concurrency_limit=None,
                  show_progress="hidden")
    tab.components = dict(zip(OUTPUT_KEYS, outputs))
    url.attach(dict(lesson=lesson, files=files, method=method, model=model, steps=steps, lr=lr, batch=batch,
                    eval_every=eval_every, seed=seed, per_task=per_task, mix_ratio=mix_ratio, options_text=options_text),
               dict(lesson=[lesson, files], method=[method, card_box], options=[], model=[model], steps=[steps],
                    lr=[lr], batch=[batch], eval=[eval_every], seed=[seed], step=[step_n, step_btn]),
               status, [replay_box, options_box], settings_box=settings_box)
    tab.url = url                       # app.py: tab.url.wire_load(demo) applies the page URL on load
    tab.ask = ask_ui
    tab.inputs = config_inputs
    return tab


__all__ = ["build_train_tab", "build_config", "Controls", "TrainTab", "UserError", "render", "status_line",
           "OUTPUT_KEYS", "CHUNK_STEPS", "train_concurrency"]
