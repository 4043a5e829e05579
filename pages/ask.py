"""The Train tab's "Ask the model" box: a typed instruction and input answered by the current model and,
side by side, by every task-end snapshot (with the adapter that answered, for routing methods).

The generation is the engine's (`cit_core.ask`); this module only picks the run, holds its lock while the
weights are swapped in and out, and renders the rows as a table. A gallery recording has no weights, so it
says so instead of answering.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from serve import compute
from cit_core.ask import AskError, ask, trainer_snapshots
from cit_core.connectivity import ProbeError, SavedRun
from cit_core.evaluate import SCORE_FUNCTIONS
from cit_core.lessons import default_lesson

from . import source as src

LOCK_WAIT_S = 60.0
NO_WEIGHTS = ("**A recording has no weights**: a gallery run is its recorded events (scores, losses), played back, "
              "so there is no model to ask. Press Play (or Reset) for a live run with these settings, or pick a "
              "saved run in the menu beside.")
HOW = ("_Type an instruction and an input (or fill them from a held-out example of a task), then press **Ask**: the "
       "model answers now and as it was after each task, side by side: forgetting in words. Routing methods "
       "(SwitchCIT, LCIA, expansion, oracle LoRA, I-LoRA's slow learner) show which adapter answered._")

_saved: dict[str, SavedRun] = {}           # the last rebuilt saved run (the model build is the slow part)


@dataclass
class AskUI:
    pick: gr.Dropdown
    example: gr.Dropdown
    instruction: gr.Textbox
    input: gr.Textbox
    button: gr.Button
    answers: gr.Markdown


def _cell(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    if not text:
        return "_(empty)_"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _expected(lesson, instruction: str, input_text: str):
    """(task, gold answer) when the question is one of the lesson's examples, else (None, None)."""
    key = (instruction.strip(), input_text.strip())
    for task in lesson.tasks:
        for ex in (*task.eval, *task.train):
            if (ex.instruction.strip(), ex.input.strip()) == key:
                return task, ex.output
    return None, None


def answers_markdown(rows, label: str, task=None, expected: str | None = None, routed_note: str = "") -> str:
    """The answers as a table: one row per model (after each task, now), the adapter column only when an
    adapter answered, a ✓/✗ column when the question is a lesson example with a known answer."""
    show_adapter = any(r.adapter for r in rows)
    judge = SCORE_FUNCTIONS[task.scorer] if task is not None and expected is not None else None
    head = ["model", "answer"] + (["adapter that answered"] if show_adapter else []) + (["right?"] if judge else [])
    lines = [f"**Answers of {label}**" + (f" · expected (from the lesson, task *{task.name}*): "
                                           f"**{_cell(expected)}**" if judge else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"**{r.stage}**" if r.task is None else r.stage, _cell(r.answer)]
        if show_adapter:
            cells.append((r.adapter or "—") + (f" ({r.note})" if r.note else ""))
        if judge:
            cells.append("✓" if judge(r.answer, expected) >= 0.5 else "✗")
        lines.append("| " + " | ".join(cells) + " |")
    if routed_note:
        lines += ["", f"_{routed_note}_"]
    return "\n".join(lines)


def _saved_run(path) -> SavedRun:
    key = str(path)
    run = _saved.get(key)
    if run is None:
        run = SavedRun(path)
        _saved.clear()
        _saved[key] = run
    return run


def ask_source(registry, run_id, choice, instruction: str, input_text: str) -> str:
    """Markdown with the answers of the chosen run's models, or one line saying why there are none."""
    source, message = src.resolve(registry, run_id, choice)
    if source is None:
        return f"_{message}_"
    if source.trainer is None and source.run_dir is None:
        return NO_WEIGHTS
    try:
        if source.trainer is not None:
            run = registry.get(run_id)
            if run is None:
                return "_This session's run was freed: press Play for a new one._"
            # between two Play chunks: no training step moves the weights while the snapshots are loaded
            if not run.lock.acquire(timeout=LOCK_WAIT_S):
                return "_The run is busy; try again in a moment (or press Pause)._"
            try:
                trainer = run.trainer
                rows = compute.run(lambda: ask(trainer, trainer_snapshots(trainer), instruction, input_text))
            finally:
                run.lock.release()
            state = "finished" if trainer.finished else f"at step {trainer.log.step}"
            label = f"this session's run ({trainer.cfg.method}, {state})"
            task, expected = _expected(trainer.lesson, instruction, input_text)
            return answers_markdown(rows, label, task, expected)
        saved = compute.run(_saved_run, source.run_dir)
        trainer = saved.trainer
        snaps = compute.run(lambda: {t: saved.snapshot(t) for t in sorted(saved.refs)})
        rows = compute.run(lambda: ask(trainer, snaps, instruction, input_text, current=False, use_router=False))
        task, expected = _expected(trainer.lesson, instruction, input_text)
        note = ("A saved run's router (SwitchCIT's switch, LCIA's codebooks) is not stored: each row answers "
                "with the adapter trained in that task." if any(r.adapter for r in rows) else "")
        return answers_markdown(rows, source.label, task, expected, note)
    except (AskError, ProbeError) as err:
        return f"**Cannot ask:** {err}"


def example_choices(lesson) -> list[str]:
    return [f"{i + 1}. {t.name}" for i, t in enumerate(lesson.tasks)]


def fill_example(registry, run_id, label):
    """Instruction and input of a held-out example of the chosen task (this session's lesson, else the
    default lesson)."""
    if not label:
        return gr.skip(), gr.skip()
    run = registry.get(run_id) if run_id else None
    lesson = run.trainer.lesson if run is not None else default_lesson()
    try:
        task = lesson.tasks[int(str(label).split(".", 1)[0]) - 1]
    except (ValueError, IndexError):
        return gr.skip(), gr.skip()
    ex = task.eval[0]
    return ex.instruction, ex.input


def build_ask(registry, run_state) -> AskUI:
    """The accordion under the Train tab's charts; call inside the tab's layout."""
    with gr.Accordion("Ask the model: its answer now and after each task", open=True, elem_id="cit-ask"):
        gr.Markdown(HOW, elem_classes=["cit-small"])
        with gr.Row(equal_height=False):
            pick = gr.Dropdown(src.choices(), value=src.LIVE, label="Run", scale=2, min_width=200)
            reload = gr.Button("↻ runs", scale=0, min_width=60)
            example = gr.Dropdown(example_choices(default_lesson()), value=None, label="Fill with an example of task",
                                  scale=1, min_width=160)
        with gr.Row(equal_height=False):
            instruction = gr.Textbox(label="Instruction", placeholder="e.g. the last two letters of", scale=3,
                                     min_width=200, max_lines=3, elem_id="cit-ask-instruction")
            input_box = gr.Textbox(label="Input", placeholder="e.g. kemado", scale=2, min_width=140, max_lines=3,
                                   elem_id="cit-ask-input")
            button = gr.Button("Ask", variant="primary", scale=0, min_width=90)
        answers = gr.Markdown("", elem_classes=["cit-ask-answers"])
    example.input(lambda run_id, label: fill_example(registry, run_id, label), [run_state, example],
                  [instruction, input_box], concurrency_limit=None, api_visibility="private")
    inputs = [run_state, pick, instruction, input_box]
    handler = lambda run_id, choice, ins, inp: ask_source(registry, run_id, choice, ins, inp)  # noqa: E731
    button.click(handler, inputs, [answers], api_name="ask", concurrency_id="ask", concurrency_limit=1,
                 show_progress="minimal")
    for trigger in (instruction.submit, input_box.submit):
        trigger(handler, inputs, [answers], api_visibility="private", concurrency_id="ask", concurrency_limit=1,
                show_progress="minimal")
    reload.click(lambda: gr.update(choices=src.choices()), None, [pick], concurrency_limit=None,
                 api_visibility="private")
    return AskUI(pick, example, instruction, input_box, button, answers)


__all__ = ["AskUI", "answers_markdown", "ask_source", "build_ask", "NO_WEIGHTS"]
