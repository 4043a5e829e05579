"""The Connectivity tab: loss and accuracy of every seen task along the line between two task solutions.

Data: `cit_core.connectivity` (a live run's in-memory task-end snapshots, or a saved run's checkpoints
rebuilt from config.json; a saved run's connectivity.json is read when it has the requested line; a gallery
recording, picked or played back, shows the lines and answers recorded when the gallery was built:
`cit_core.gallery.connectivity`, no weights, nothing computed).
The probe swaps weights in and out of the model, so on a live run it refuses while a Play or Step loop
drives the run and holds the run's lock while it works; a page-wide lock keeps two clicks from probing at
once.
"""
from __future__ import annotations

import threading

import gradio as gr

from cit_core import gallery
from serve import compute
from cit_core.connectivity import (Meter, ProbeError, SavedRun, method_variants, model_at, probe_trainer,
                                   read_connectivity, trainer_snapshot, variants)
from cit_core.evaluate import generate_answers

from . import source as src
from .figures import task_labels
from .figures.connectivity import curve_figure
from .view import View, ViewScaffold, live_key, refresher

HOW_TO_READ = ("_How to read this: each curve is one seen task's loss (left) or accuracy (right) on the straight "
               "line from the weights after the first chosen task (a = 0) to those after the second (a = 1). A "
               "bump in the loss between the ends means the two solutions sit in different basins; a flat line "
               "means they are linearly connected. Points: where a method's other weight states sit (a slow "
               "learner, an EMA: their projection a* on the line). LoRA runs: 'factors' blends A and B, "
               "'delta' blends ΔW = B·A._")
SAMPLES_PER_TASK = 2

_probe_lock = threading.Lock()                 # one probe at a time in this process
_saved: dict[tuple, SavedRun] = {}             # the last rebuilt saved run (model build is the slow part)


def accuracy_table(tasks: list[str], accuracies: list[float], a: float) -> str:
    rows = "\n".join(f"| {label} | {acc:.3f} |" for label, acc in zip(task_labels(tasks), accuracies))
    return f"**Accuracy at a = {a:.2f}**\n\n| task | accuracy |\n|---|---|\n{rows}"


# -- data -----------------------------------------------------------------------------------------
def checkpoint_tasks(source) -> list[int]:
    if source.trainer is not None:
        return sorted(set(source.trainer.snapshots) | {t for t, _ in source.log.checkpoints})
    return sorted({t for t, _ in source.log.checkpoints})


NO_WEIGHTS = ("a recorded gallery run ships no weights: train this method on the Train tab (or open a saved "
              "run from the run store) to probe the line between its task solutions")
NO_RECORDED = ("this recording ships no connectivity lines (it was recorded without its task-end weights) and no "
               "weights: train this method on the Train tab (or open a saved run from the run store) to probe "
               "the line between its task solutions")


def _pair_text(pair) -> str:
    return f"{pair[0] + 1}→{pair[1] + 1}"


def recorded_data(source) -> dict | None:
    """A recording's shipped connectivity (None: it has none); ProbeError when it cannot be read."""
    try:
        return gallery.connectivity(source.recording)
    except gallery.GalleryError as err:
        raise ProbeError(str(err)) from err


def recorded_tasks(source, data: dict) -> list[int]:
    """Tasks that end a recorded line and that the recording has reached (a playback follows the run)."""
    ended = len(source.log.acc_matrix)
    return sorted({t for p in data["pairs"] for t in (p["from"], p["to"]) if t < ended})


def recorded_pair(source, start: int, end: int, variant: str | None) -> dict:
    """The recorded line (a copy marked "recorded"), or ProbeError naming the lines that were recorded."""
    data = recorded_data(source)
    if data is None:
        raise ProbeError(NO_RECORDED)
    variant = variant if variant in data["variants"] else data["variants"][0]
    if max(start, end) >= len(source.log.acc_matrix):
        raise ProbeError(f"task {max(start, end) + 1} has not ended yet in this playback")
    for pair in data["pairs"]:
        if (pair["from"], pair["to"], pair["variant"]) == (start, end, variant):
            return {**pair, "recorded": source.recording}
    lines = sorted({(p["from"], p["to"]) for p in data["pairs"]})
    raise ProbeError(f"the recording has no line {start + 1}→{end + 1}; recorded: "
                     + ", ".join(_pair_text(x) for x in lines))


def _saved_run(source) -> SavedRun:
    if source.run_dir is None:
        raise ProbeError(NO_WEIGHTS)
    key = (str(source.run_dir), source.key)
    run = _saved.get(key)
    if run is None:
        run = SavedRun(source.run_dir)
        _saved.clear()
        _saved[key] = run
    return run


def _parse_task(label) -> int:
    if not label:
        raise ProbeError("pick two tasks with saved task-end weights")
    try:
        return int(str(label).split(".", 1)[0]) - 1
    except ValueError as err:
        raise ProbeError(f"unknown task {label!r}") from err


def _stored(source, start: int, end: int, variant: str, points: int) -> dict | None:
    data = read_connectivity(source.run_dir) if source.run_dir is not None else None
    for pair in (data or {}).get("pairs", []):
        if (pair.get("from"), pair.get("to"), pair.get("variant"), len(pair.get("a", []))) == \
                (start, end, variant, points):
            return pair
    return None


class _LiveGuard:
    """Refuse while a Play or Step loop drives the live run; hold its lock while probing so no step moves
    the weights (a loop that starts meanwhile waits for the lock)."""

    def __init__(self, registry, run_id, source):
        self.run = registry.get(run_id) if source.trainer is not None else None

    def __enter__(self):
        if self.run is None:
            return self
        if self.run.is_training() or not self.run.lock.acquire(timeout=2.0):
            raise ProbeError("the run is training: press Pause on the Train tab, then Compute")
        return self

    def __exit__(self, *exc):
        if self.run is not None:
            self.run.lock.release()


def compute_pair(registry, run_id, choice, start_label, end_label, variant, points, progress=None) -> dict:
    """The line between the two chosen task-end weights; ProbeError with a clear message otherwise."""
    source, message = src.resolve(registry, run_id, choice)
    if source is None:
        raise ProbeError(message)
    start, end = _parse_task(start_label), _parse_task(end_label)
    if start == end:
        raise ProbeError("pick two different tasks")
    points = int(points or 11)
    if not 2 <= points <= 101:
        raise ProbeError("points must be between 2 and 101")
    if source.recording is not None:
        return recorded_pair(source, start, end, variant)         # read, not computed: no lock needed
    if not _probe_lock.acquire(blocking=False):
        raise ProbeError("another connectivity probe is running; try again when it has finished")
    try:
        if source.trainer is None:
            stored = _stored(source, start, end, variant, points)
            if stored is not None:
                return stored
            run = compute.run(_saved_run, source)          # rebuilds the model: torch work
            lora = run.snapshot(start).lora
            return compute.run(run.pair, start, end, variant or variants(lora)[0], points, progress=progress)
        with _LiveGuard(registry, run_id, source):     # outside the compute thread: Play may hold the lock
            return compute.run(probe_trainer, source.trainer, start, end, variant or None, points,
                               progress=progress)
    finally:
        _probe_lock.release()


def _model_parts(registry, run_id, choice):
    source, message = src.resolve(registry, run_id, choice)
    if source is None:
        raise ProbeError(message)
    if source.trainer is not None:
        t = source.trainer
        return source, t.model, t.encoder, t.lesson.tasks, (lambda k: trainer_snapshot(t, k))
    run = _saved_run(source)
    t = run.trainer
    return source, t.model, t.encoder, t.lesson.tasks, run.snapshot


def _evaluate_at(model, encoder, seen, snapshot, result: dict, a: float, samples: bool):
    """(accuracies, examples, answers) of the model blended at `a`; the weights are restored after."""
    with model_at(model, snapshot(result["from"]), snapshot(result["to"]), a, result["variant"]):
        if not samples:
            _, acc = Meter(model, encoder, seen, max_eval=max(result.get("eval_per_task") or [0]) or None).measure()
            return acc, [], []
        examples = [ex for task in seen for ex in task.eval[:SAMPLES_PER_TASK]]
        return None, examples, generate_answers(model, encoder, examples)


def at_alpha(registry, run_id, choice, result: dict, a: float, samples: bool = False) -> str:
    """Per-task accuracy at exactly `a` (and, with samples, a few answers of the interpolated model)."""
    if not result:
        raise ProbeError("press Compute first")
    if result.get("recorded"):
        return recorded_at_alpha(result, a)
    if not _probe_lock.acquire(blocking=False):
        raise ProbeError("another connectivity probe is running; try again when it has finished")
    try:
        source, model, encoder, tasks, snapshot = compute.run(_model_parts, registry, run_id, choice)
        seen = list(tasks)[:max(result["from"], result["to"]) + 1]
        with _LiveGuard(registry, run_id, source):     # outside the compute thread: Play may hold the lock
            acc, examples, answers = compute.run(_evaluate_at, model, encoder, seen, snapshot, result, a, samples)
    finally:
        _probe_lock.release()
    if not samples:
        return accuracy_table(result["tasks"], acc, a)
    lines = [f"**Samples at a = {a:.2f}** ({result['variant']})", "", "| prompt | expected | answer |", "|---|---|---|"]
    for ex, ans in zip(examples, answers):
        lines.append(f"| {_cell(ex.instruction + ' ' + ex.input)} | {_cell(ex.output)} | {_cell(ans)} |")
    return "\n".join(lines)


def grid_index(result: dict, a: float) -> int:
    """The recorded grid point nearest to `a` (the slider snaps to the grid; this guards a stray value)."""
    return min(range(len(result["a"])), key=lambda i: abs(result["a"][i] - a))


def recorded_at_alpha(result: dict, a: float) -> str:
    """A recorded line at the grid point nearest `a`: its accuracies and the recorded answers (no model)."""
    i = grid_index(result, a)
    at = result["a"][i]
    text = [f"_Recorded when the gallery was built ({result['recorded']}): nothing was computed now._", ""]
    samples = result.get("samples")
    if samples:
        labels = task_labels(result["tasks"])
        text += [f"**Recorded answers at a = {at:.2f}** ({result['variant']})", "",
                 "| task | prompt | expected | recorded answer |", "|---|---|---|---|"]
        for ex, ans in zip(samples["examples"], samples["answers"][i]):
            text.append(f"| {_cell(labels[ex['task']], 24)} | {_cell(ex['prompt'])} | {_cell(ex['expected'])} "
                        f"| {_cell(ans)} |")
        text.append("")
    text.append(accuracy_table(result["tasks"], [row[i] for row in result["accuracy"]], at))
    return "\n".join(text)


def _cell(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def offered(source) -> tuple[dict | None, list[int]]:
    """(a recording's connectivity data or None, the task ends the menus offer): a recording's tasks of
    recorded lines that it has reached, else the tasks with task-end weights. ProbeError when a
    recording's lines cannot be read."""
    data = recorded_data(source) if source.recording is not None else None
    return data, recorded_tasks(source, data) if data else checkpoint_tasks(source)


def view_key(source) -> tuple:
    """A live run's (or a playback's) task menus change only when a task ends with weights (a playback's:
    with a recorded line), not on every step."""
    try:
        ended = tuple(offered(source)[1])
    except ProbeError:
        ended = ()                             # draw() says why
    return live_key(source, ended, source.log.finished)


def draw(source, cur_start, cur_end) -> tuple:
    """(note, from-task menu, to-task menu, variant radio) for a picked run: the picked pair stays while it
    is still offered, else the last two task ends."""
    try:
        data, done = offered(source)
    except ProbeError as err:
        return nothing(f"{source.label}: {err}")
    labels = task_labels(source.log.tasks)
    opts = [labels[t] for t in sorted(set(done)) if t < len(labels)]
    start = cur_start if cur_start in opts else (opts[-2] if len(opts) >= 2 else None)
    end = cur_end if cur_end in opts else (opts[-1] if len(opts) >= 2 else None)
    kinds = list(data["variants"]) if data else list(method_variants(source.log.method))
    return (source_note(source, data, done, len(opts)), gr.update(choices=opts, value=start),
            gr.update(choices=opts, value=end), gr.update(choices=kinds, value=kinds[0]))


def source_note(source, data: dict | None, done: list[int], n_offered: int) -> str:
    """What the picked run offers: its recorded lines, its task-end checkpoints, or why it has none."""
    if data:
        reached = [p for p in sorted({(p["from"], p["to"]) for p in data["pairs"]}) if max(p) in done]
        return (f"{source.label}: connectivity **recorded** when the gallery was built — lines "
                f"{', '.join(_pair_text(p) for p in reached) or '(none yet: wait for task 2 to end)'}; "
                f"{data['points']} points, {data.get('max_eval')} held-out examples per task. Pick a "
                "pair: the curves and the slider's answers are read from the recording (no weights, "
                "nothing is computed).")
    if source.recording is not None:
        return f"{source.label}: {NO_RECORDED}."
    if source.trainer is None and source.run_dir is None:
        return f"{source.label}: {NO_WEIGHTS}."
    return (f"{source.label}: {n_offered} task-end checkpoint(s)"
            + ("" if n_offered >= 2 else " — connectivity needs two finished tasks"))


def nothing(message: str) -> tuple:
    return message, gr.update(choices=[], value=None), gr.update(choices=[], value=None), gr.skip()


# refresh(registry, run_id, choice, shown_key, cur_start, cur_end) -> (shown key, note, from-task menu,
# to-task menu, variant radio); gr.skip()s when nothing changed
refresh = refresher(view_key, draw, nothing, n_outputs=4)


# -- the tab ------------------------------------------------------------------------------------------
def line_outputs(res: dict, a: float) -> tuple:
    """(result, loss plot, accuracy plot, note, slider update) for a computed or recorded line."""
    step = 1.0 / (len(res["a"]) - 1)
    per_task = ', '.join(str(x) for x in res.get('eval_per_task', []))
    if res.get("recorded"):
        a = res["a"][grid_index(res, float(a))]              # the slider snaps to the recorded grid
        note_text = (f"**Recorded** when the gallery was built: {len(res['a'])} points × {len(res['tasks'])} "
                     f"tasks ({per_task} held-out examples per task); nothing was computed now. Move the "
                     "slider: it snaps to the recorded grid and shows the recorded answers.")
        return (res, curve_figure(res, "loss", a), curve_figure(res, "accuracy", a), note_text,
                gr.update(step=step, value=a))
    took = f" in {res['seconds']:.1f} s" if "seconds" in res else ""
    return (res, curve_figure(res, "loss", a), curve_figure(res, "accuracy", a),
            f"Computed{took}: {len(res['a'])} points × {len(res['tasks'])} tasks ({per_task} held-out "
            "examples per task).", gr.update(step=step))


def build_connectivity_tab(registry, run_state) -> View:
    gr.Markdown("_Mode connectivity: loss and accuracy of every seen task along the line between task solutions._")
    gr.Markdown(HOW_TO_READ)
    scaffold = ViewScaffold()
    ui = _line_controls()
    scaffold.wire(registry, run_state, refresh, [ui["note"], ui["start"], ui["end"], ui["variant"]],
                  inputs=[ui["start"], ui["end"]], api_name="connectivity_refresh")
    _wire_line(registry, run_state, scaffold.pick, ui)
    return scaffold.view()


def _line_controls() -> dict:
    """The pair, variant and points pickers with Compute, the two plots, the a slider and its answers."""
    with gr.Row():
        start = gr.Dropdown([], label="from task (a = 0)", scale=2)
        end = gr.Dropdown([], label="to task (a = 1)", scale=2)
        variant = gr.Radio(["full"], value="full", label="variant", scale=2)
        points = gr.Number(11, label="points", precision=0, minimum=2, maximum=101, scale=1)
        compute_btn = gr.Button("Compute", variant="primary", scale=1)
    result = gr.State(None)             # the computed line (plain dict)
    note = gr.Markdown()
    with gr.Row():
        loss_plot = gr.Plot(label="loss along the line")
        acc_plot = gr.Plot(label="accuracy along the line")
    with gr.Row():
        alpha = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="a (0 = first task's weights, 1 = second's)",
                          scale=3)
        sample_btn = gr.Button("Generate samples", scale=1)
    at_a = gr.Markdown()
    return dict(start=start, end=end, variant=variant, points=points, compute=compute_btn, result=result,
                note=note, loss_plot=loss_plot, acc_plot=acc_plot, alpha=alpha, sample=sample_btn, at_a=at_a)


def _wire_line(registry, run_state, pick, ui: dict) -> None:
    """Compute (or, for a recording, picking a pair) draws a line; the slider evaluates a point of it."""
    def on_compute(run_id, choice, s, e, v, n, a, progress=gr.Progress()):
        def report(done, total):
            progress(done / total, desc=f"point {done} of {total}")
        try:
            return line_outputs(compute_pair(registry, run_id, choice, s, e, v, n, progress=report), a)
        except ProbeError as err:
            return gr.skip(), gr.skip(), gr.skip(), f"**Cannot compute:** {err}", gr.skip()

    def on_pick_pair(run_id, choice, s, e, v, a):
        """A recording draws its recorded line as soon as a pair is picked (live and saved runs wait for
        Compute: probing them costs model work)."""
        source, _ = src.resolve(registry, run_id, choice)
        if source is None or source.recording is None or not s or not e or s == e:
            return (gr.skip(),) * 5
        try:
            return line_outputs(compute_pair(registry, run_id, choice, s, e, v, None), a)
        except ProbeError as err:
            return None, gr.skip(), gr.skip(), f"**Not recorded:** {err}", gr.skip()

    def on_alpha(run_id, choice, res, a, samples=False):
        try:
            return at_alpha(registry, run_id, choice, res, float(a), samples)
        except ProbeError as err:
            return f"**Cannot evaluate at a = {float(a):.2f}:** {err}"

    pair = [ui["start"], ui["end"], ui["variant"]]
    line = [ui["result"], ui["loss_plot"], ui["acc_plot"], ui["note"], ui["alpha"]]
    at = [run_state, pick, ui["result"], ui["alpha"]]
    ui["compute"].click(on_compute, [run_state, pick, *pair, ui["points"], ui["alpha"]], line, concurrency_limit=1)
    for menu in pair:
        menu.change(on_pick_pair, [run_state, pick, *pair, ui["alpha"]], line, concurrency_limit=None,
                    show_progress="hidden")
    ui["alpha"].release(on_alpha, at, [ui["at_a"]], concurrency_limit=1)
    # the vertical marker follows the slider (figures only: no model work)
    ui["alpha"].change(lambda res, a: (curve_figure(res, "loss", a), curve_figure(res, "accuracy", a)) if res
                       else (gr.skip(), gr.skip()), [ui["result"], ui["alpha"]], [ui["loss_plot"], ui["acc_plot"]],
                       concurrency_limit=None, show_progress="hidden", api_visibility="private")
    ui["sample"].click(lambda r, c, res, a: on_alpha(r, c, res, a, True), at, [ui["at_a"]], concurrency_limit=1)
