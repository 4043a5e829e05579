"""The Train tab: pick a lesson, a method and a model, then Play / Pause / Step through training.

The widgets and their wiring live here, the picture of a run in train_view.py; what the buttons do to a
run (make it, advance it chunk by chunk, stop it, watch a recording in its place) is serve/session.py, and
the controls <-> config logic serve/controls.py. Concurrency (docs/architecture.md): the
browser session holds only a run id in gr.State; Play is a generator on the shared
`concurrency_id="train"` queue that yields after every chunk, and Step shares that queue. The config
controls reach the handlers as keyword arguments (`inputs_kwargs`) named as the web API's parameters.
"""
from __future__ import annotations

import gradio as gr

from cit_core.config import RunConfig, TrainConfig, help_text
from cit_core.lessons import default_lesson
from cit_core.displays import card_markdown
from cit_core.methods import METHODS
from serve import controls as ctl
from serve.playback import gallery_choices, recorded_settings
from serve.registry import Run, RunRegistry
from serve.session import CannotStart, Session, step_count, stopped

from .ask import build_ask
from .train_view import (OUTPUT_KEYS, as_tuple, lesson_preview, message_only, on_files, on_lesson, render,
                         waiting_line)
from .train_text import INTRO, LEAD, PENDING_PLAY, PENDING_STEP, pending_js
from .workshop import UrlUI

# the base switch: the same tiny architecture instruction-tuned (assets/tiny-instruct) or randomly
# initialised, so a user can run one method on both (He et al.: EWC/MAS help only an instruction-tuned base)
MODEL_CHOICES = [("tiny · instruction-tuned base", "tiny"), ("tiny · random init (scratch)", "tiny-scratch"),
                 ("SmolLM2-135M-Instruct", "smollm2")]
CARD_LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
TRAIN_FIELDS = ("steps_per_task", "lr", "batch_size", "eval_every", "seed")   # the TrainConfig knobs shown

# A browser proves itself with this timer's ticks (a scripted client that never opens the page does not send
# them, so its runs make way first: serve/registry.py). The first tick comes soon after the page loads, then
# one every HEARTBEAT_S, well inside the registry's BROWSER_TTL_S.
FIRST_BEAT_S, HEARTBEAT_S = 1.0, 20.0

def method_card(key: str) -> str:
    """The method's card: idea, update rule, knobs (a table generated from its Options), paper, our reading."""
    return card_markdown(key)


# -- the handlers ---------------------------------------------------------------------------------
class TrainTab:
    """Event handlers bound to one registry; `build_train_tab` wires them to components. The config
    controls arrive as keyword arguments named as in the web API (serve.controls.Controls)."""

    def __init__(self, registry: RunRegistry):
        self.registry = registry

    def _session(self, run_id, request=None) -> Session:
        """The session's hold on its run; its owner is the browser session (request.session_hash)."""
        return Session(self.registry, run_id, getattr(request, "session_hash", None))

    @staticmethod
    def _show(session: Session, word: str, note: str, missing: str) -> tuple:
        """The session's run drawn between two chunks, or `missing` when it has none."""
        run = session.run
        if run is None:
            return message_only(session.run_id, missing)
        return as_tuple(session.read(run, lambda r: render(r, None, word, note)))

    @staticmethod
    def _framing(word: str, note: str, first_note: str):
        """(frame, first) for a Play or Watch stream: the run drawn after each chunk, unchanged plots skipped."""
        sent: dict = {}
        return (lambda r, over, _: as_tuple(render(r, sent, word, note, force_loss=over)),
                lambda r: as_tuple(render(r, sent, word, first_note)))

    @staticmethod
    def _waiting(run: Run, words: str) -> tuple:
        """A Play or Step loop's status while it waits for its turn on the CPU; the charts stay as they are."""
        return message_only(run.id, waiting_line(run, words))

    @staticmethod
    def _cannot_start(run_id, err: CannotStart) -> tuple:
        gr.Warning(str(err))
        return message_only(run_id, f"**Could not start:** {err}")

    def play(self, run_id, request: gr.Request = None, **controls):
        session = self._session(run_id, request)
        try:
            run, note = session.obtain(ctl.Controls.from_values(controls))
        except CannotStart as err:
            yield self._cannot_start(run_id, err)
            return
        if stopped(run):
            yield self._show(session, "", note, "")
            return
        yield from session.play(run, *self._framing("▶ Playing", note, note or "starting…"), waiting=self._waiting)

    def pause(self, run_id):
        session = self._session(run_id)
        session.pause()                      # stops a Play loop even when its event was not cancelled
        return self._show(session, "Paused", "", "Nothing to pause: press Play or Step to start a run.")

    def step(self, run_id, steps, request: gr.Request = None, **controls):
        """Move the run `steps` optimizer steps and pause. Streams like Play: the status, matrix and curves
        update after every chunk, so a long Step shows its progress; Pause, Play or Reset stop it."""
        session = self._session(run_id, request)
        try:
            n = step_count(steps)
        except ctl.UserError as err:
            gr.Warning(str(err))
            yield self._show(session, "Paused", str(err), str(err))
            return
        if session.run is None:
            yield message_only(run_id, f"**Starting…** building the model, then {n} steps")
        try:
            run, note = session.obtain(ctl.Controls.from_values(controls))
        except CannotStart as err:
            yield self._cannot_start(run_id, err)
            return
        sent: dict = {}

        def frame(r: Run, over: bool, moved: int) -> tuple:
            progress_note = f"{moved} of {n} steps" + (f"; {note}" if note else "")
            return as_tuple(render(r, sent, "Paused" if over else "▶ Stepping", note if over else progress_note,
                                   force_loss=over))
        yield from session.step(run, n, frame, waiting=self._waiting)

    def reset(self, run_id, request: gr.Request = None, **controls):
        session = self._session(run_id, request)
        try:
            return as_tuple(render(session.reset(ctl.Controls.from_values(controls)), None))
        except CannotStart as err:
            gr.Warning(str(err))
            kept = f"Reset failed, this run is kept: {err}"
            return self._show(session, "Paused", kept, f"**Could not start:** {err}")

    def status(self, run_id):
        run = self.registry.peek(run_id)         # peek: polling the status keeps no run from being idle
        if run is None:
            return message_only(None, "No run yet: press Play, Step or Reset.")
        return as_tuple(self._session(run_id).read(run, lambda r: render(r, None, "Current", "")))

    def watch(self, run_id, name, request: gr.Request = None):
        """Play a recorded gallery run back in this session's place (no training, no train queue): the
        plots here and every analysis view follow it step by step. A recording paused half-way continues."""
        session = self._session(run_id, request)
        try:
            run, note = session.watch(name)
        except CannotStart as err:
            gr.Warning(str(err))
            yield self._show(session, "Paused", str(err), str(err))
            return
        yield from session.watch_frames(run, *self._framing("▶ Watching", note, note))

    def heartbeat(self, request: gr.Request = None):
        """The Train tab's timer: this session has a browser page open. Slows the timer to HEARTBEAT_S."""
        self.registry.heartbeat(self._session(None, request).owner)
        return gr.Timer(HEARTBEAT_S)

    def unload(self, request: gr.Request = None):
        self.registry.release_owner(self._session(None, request).owner)


# -- small events ---------------------------------------------------------------------------------
def watched_settings(name: str):
    """The method picker and its options follow the recording being watched (so its card is shown)."""
    found = recorded_settings(name)
    return (gr.update(value=found[0]), gr.update(value=found[1])) if found else (gr.skip(), gr.skip())


# -- the tab's components -------------------------------------------------------------------------
class TrainUI:
    """The tab's components; `controls` holds the config controls by their API names."""

    def __init__(self):
        self.controls: dict[str, gr.components.Component] = {}
        self.method_boxes: dict[str, gr.Group] = {}       # method -> the group of its option fields

    def config_inputs(self) -> dict:
        """The config controls as the handlers' keyword arguments, in the web API's parameter order."""
        fields = [f.key for shown in ctl.all_option_fields().values() for f in shown]
        order = ("lesson", "files", "method", "model", "allow_download", *TRAIN_FIELDS, *fields, "method_options")
        return {name: self.controls[name] for name in order}


def _settings_column(ui: TrainUI) -> None:
    c, d, first = ui.controls, TrainConfig(), RunConfig().method      # the page opens on the config's defaults
    with gr.Accordion("What you are looking at", open=False, elem_classes=["cit-intro-more"]):
        gr.Markdown(INTRO, elem_classes=["cit-intro"])
    gr.Markdown("#### Settings", elem_classes=["cit-settings-title"])
    c["lesson"] = gr.Dropdown([ctl.LESSON_DEFAULT, ctl.LESSON_CLASSIC, ctl.LESSON_FILES], value=ctl.LESSON_DEFAULT,
                              label="Lesson", info="the built-in five-task lesson, or the files you upload below")
    c["files"] = gr.File(file_count="multiple", file_types=[".jsonl", ".json"], type="filepath",
                         label="Lesson files (JSONL / SuperNI JSON / TRACE JSON)", height=150,
                         elem_classes=["cit-files"])
    ui.lesson_info = gr.Markdown(lesson_preview(default_lesson()), elem_classes=["cit-small"])
    c["method"] = gr.Dropdown([(cls.title, key) for key, cls in METHODS.items()], value=first,
                              label="Method", info="how the model is trained on the task sequence")
    with gr.Accordion("About this method", open=False) as ui.card_box:
        # cards write formulas as LaTeX between $…$ (inline) or $$…$$ (display)
        ui.card = gr.Markdown(method_card(first), elem_classes=["cit-small", "cit-card"], latex_delimiters=CARD_LATEX)
    _option_controls(ui)
    c["model"] = gr.Dropdown(MODEL_CHOICES, value="tiny", allow_custom_value=True, label="Model (base)",
                             info="tiny: a 0.9 M-parameter byte model this project instruction-tuned on 40 "
                                  "generated task families; 'random init' is the same model untrained (run EWC on "
                                  "both to see He et al.'s finding). smollm2 (SmolLM2-135M) is much slower on "
                                  "CPU. Or type a Hugging Face model id / local folder already on this machine "
                                  "(nothing is downloaded unless 'allow download' is ticked).")
    # the box exists on every server so a link's allow_download=1 always has a control to land on; where the
    # operator forbids downloads it is greyed out and says so (cit_core.model refuses the download anyway)
    c["allow_download"] = gr.Checkbox(False, label="allow download (Hub models)", info=ctl.download_info(),
                                      interactive=ctl.downloads_possible(), elem_id="cit-allow-download")
    with gr.Accordion("Training settings", open=True) as ui.settings_box:
        for name in TRAIN_FIELDS:
            default = getattr(d, name)
            c[name] = gr.Number(default, label=ctl.FIELD_LABELS[f"TrainConfig.{name}"],
                                precision=0 if isinstance(default, int) else None, info=help_text(TrainConfig, name))


def _option_controls(ui: TrainUI) -> None:
    """A group of number fields for each method whose options have them, and the one options text box."""
    for method, shown in ctl.all_option_fields().items():
        with gr.Group(visible=False) as ui.method_boxes[method]:
            for f in shown:
                ui.controls[f.key] = gr.Number(f.default, label=f.label, precision=0 if f.integer else None,
                                               info=f.info)
    with gr.Group(visible=False) as ui.options_box:
        ui.controls["method_options"] = gr.Textbox("", label="Method options", placeholder="key=value, key=value",
                                                   max_lines=3)
        ui.options_md = gr.Markdown("", elem_classes=["cit-small", "cit-options-help"])


def _main_column(ui: TrainUI, registry: RunRegistry) -> None:
    ui.status = gr.Markdown("**No run yet** · press Play (or Step) to start with the chosen settings",
                            elem_classes=["cit-status"], elem_id="cit-status")
    with gr.Row(elem_classes=["cit-buttons", "cit-play-row"]):
        ui.play = gr.Button("▶ Play", variant="primary", min_width=90)
        ui.pause = gr.Button("Pause", min_width=90)
        ui.step_n = gr.Number(10, label="steps", precision=0, min_width=90, scale=0, elem_classes=["cit-steps"])
        ui.step = gr.Button("Step", min_width=90)
        ui.reset = gr.Button("↺ Reset", variant="stop", min_width=90)
    recordings = gallery_choices()
    with gr.Row(elem_classes=["cit-buttons", "cit-recordings"], visible=bool(recordings), elem_id="cit-recordings"):
        ui.watch_pick = gr.Dropdown(recordings, value=recordings[0][1] if recordings else None,
                                    label="Recorded runs: a finished run played back in seconds, nothing "
                                          "trains (every tab follows it)", scale=4, min_width=240)
        ui.watch = gr.Button("▶ Watch recording", min_width=120, scale=1)
    with gr.Row(equal_height=False, elem_classes=["cit-charts"]):
        with gr.Column(scale=1, min_width=340, elem_classes=["cit-wide-plot"]):
            ui.matrix = gr.Plot(label="Accuracy matrix", show_label=False, elem_id="cit-matrix")
        with gr.Column(scale=1, min_width=340, elem_classes=["cit-wide-plot"]):
            ui.curves = gr.Plot(label="Score curves", show_label=False, elem_id="cit-curves")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=340):
            ui.loss = gr.Plot(label="Training loss", show_label=False)
        with gr.Column(scale=1, min_width=340):
            ui.metrics = gr.Markdown("_Metrics appear once the first task has ended._", elem_classes=["cit-metrics"])
    with gr.Accordion("Accuracy matrix as a table", open=False):
        ui.matrix_md = gr.Markdown("_No run yet._")
    build_ask(registry, ui.run_state)


# -- wiring ---------------------------------------------------------------------------------------
def _wire_settings(ui: TrainUI, url: UrlUI) -> None:
    c = ui.controls

    def on_method(m, text, flags):
        shown = "options" not in (flags or {}).get("hide", ())      # a link may hide the options
        free = ctl.has_text_options(m)
        boxes = [gr.update(visible=m == key and shown) for key in ui.method_boxes]
        return (*boxes, gr.update(visible=free and shown), gr.update(value=ctl.keep_options(text, m)),
                ctl.options_help(m) if free else "", method_card(m))

    c["method"].change(on_method, [c["method"], c["method_options"], url.flags],
                       [*ui.method_boxes.values(), ui.options_box, c["method_options"], ui.options_md, ui.card],
                       queue=False, api_visibility="private")
    c["files"].change(on_files, c["files"], [c["lesson"], ui.lesson_info], concurrency_limit=None,
                      api_visibility="private")
    c["lesson"].input(on_lesson, c["lesson"], ui.lesson_info, concurrency_limit=None, api_visibility="private")


def _wire_buttons(tab: TrainTab, ui: TrainUI, outputs: list) -> None:
    # every Play / Step loop may run at once: they take turns on the CPU chunk by chunk (serve/scheduler.py),
    # so a long run no longer holds Gradio's queue; Reset builds models and keeps the hardware's limit
    limit, loops, config = ctl.train_concurrency(), tab.registry.max_runs, ui.config_inputs()
    train = dict(concurrency_id="train", trigger_mode="once")
    busy = dict(show_progress="minimal", show_progress_on=[ui.status])   # queue position / timer in the status box
    # a press shows at once that it was taken (before the queue or the model build answers), so nobody
    # presses again; trigger_mode="once" ignores presses while the event is pending
    ui.play.click(None, None, [ui.status], js=pending_js(PENDING_PLAY), queue=False, show_progress="hidden")
    ui.step.click(None, None, [ui.status], js=pending_js(PENDING_STEP), queue=False, show_progress="hidden")
    play = ui.play.click(tab.play, [ui.run_state], outputs, inputs_kwargs=config, api_name="play",
                         concurrency_limit=loops, **train, **busy)
    # cheap (no model, a sleep between frames): never waits behind training, even on a busy Space
    watch = ui.watch.click(tab.watch, [ui.run_state, ui.watch_pick], outputs, api_name="watch_recording",
                           cancels=[play], concurrency_limit=None, show_progress="hidden")
    watch.then(watched_settings, [ui.watch_pick], [ui.controls["method"], ui.controls["method_options"]],
               queue=False, api_visibility="private")
    step = ui.step.click(tab.step, [ui.run_state], outputs, inputs_kwargs={"steps": ui.step_n, **config},
                         api_name="step", cancels=[play, watch], concurrency_limit=loops, **train, **busy)
    ui.pause.click(tab.pause, [ui.run_state], outputs, api_name="pause", cancels=[play, watch, step],
                   concurrency_limit=None, show_progress="hidden")
    ui.reset.click(tab.reset, [ui.run_state], outputs, inputs_kwargs=config, api_name="reset",
                   cancels=[play, watch, step], concurrency_id="build", concurrency_limit=limit, **busy)
    # read-only view of the session's run (tests, and a page that wants to redraw); not /status, which is the
    # documented API's (pages/api.py)
    gr.Button("refresh", visible=False).click(tab.status, [ui.run_state], outputs, api_name="session_status",
                                              concurrency_limit=None, show_progress="hidden")


def _wire_heartbeat(tab: TrainTab) -> None:
    """The page's heartbeat: a timer only an open page runs (scripts call /heartbeat the same way)."""
    timer = gr.Timer(FIRST_BEAT_S)
    timer.tick(tab.heartbeat, None, timer, api_name="heartbeat", concurrency_limit=None, show_progress="hidden")


def build_train_tab(registry: RunRegistry) -> TrainTab:
    """Build the Train tab's components and events inside the current Blocks; returns the handlers."""
    tab, ui, url = TrainTab(registry), TrainUI(), UrlUI()   # url: shareable link, workshop guide (pages/workshop.py)
    gr.Markdown(LEAD, elem_classes=["cit-intro", "cit-lead"])
    # a plain closure, not a bound method: Gradio deep-copies component configs, and copying a bound
    # method would copy the registry (locks, trainers) with it
    ui.run_state = gr.State(None, delete_callback=lambda run_id: registry.release(run_id))
    # on a phone the row wraps: CSS (app.CSS, .cit-train-row) puts the main column (Play, the charts) first
    with gr.Row(equal_height=False, elem_classes=["cit-train-row"]):
        with gr.Column(scale=1, min_width=300, elem_classes=["cit-controls"]):
            _settings_column(ui)
            url.build_share()
        with gr.Column(scale=3, min_width=340, elem_classes=["cit-main"]):
            url.build_guide()
            _main_column(ui, registry)
    outputs = [ui.run_state, ui.status, ui.matrix, ui.matrix_md, ui.curves, ui.loss, ui.metrics, ui.lesson_info]
    _wire_settings(ui, url)
    _wire_buttons(tab, ui, outputs)
    _wire_heartbeat(tab)
    c = ui.controls
    url.attach(c, dict(lesson=[c["lesson"], c["files"]], method=[c["method"], ui.card_box], options=[],
                       model=[c["model"], c["allow_download"]], steps=[c["steps_per_task"]], lr=[c["lr"]],
                       batch=[c["batch_size"]], eval=[c["eval_every"]], seed=[c["seed"]], step=[ui.step_n, ui.step]),
               ui.status, ui.method_boxes, ui.options_box, settings_box=ui.settings_box)
    tab.components = dict(zip(OUTPUT_KEYS, outputs))
    tab.url = url                       # app.py: tab.url.wire_load(demo) applies the page URL on load
    return tab


__all__ = ["build_train_tab", "TrainTab", "OUTPUT_KEYS", "method_card", "MODEL_CHOICES"]
