"""Ask a run's model a question: the current model's answer and the answer of every task-end snapshot.

Forgetting in words: the same prompt answered by the weights after task 1, after task 2, ... and now.
Generation is the engine's (`evaluate.generate_answers`, greedy), routed like evaluation: a routing method
(SwitchCIT, LCIA, expansion, oracle LoRA, I-LoRA's slow learner) picks the adapter that answers, and the
answer records which one.

Snapshot rows load the snapshot's tensors into the model (every LoRA tensor that existed at that task end,
or the trainable tensors of full fine-tuning), answer, and restore the model's own weights exactly. A
method's router is not part of a snapshot, so a snapshot row asks the router the run has *now*; when it
picks an adapter that did not exist yet at that task end, the adapter trained during that task answers
instead and the row says so. A saved run has no router at all (the switch network, LCIA's codebooks are
not written to disk): each snapshot answers with the adapter trained during its task.

Plain data out (`Answer` rows); pages render them. Never imports gradio or plotly.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .evaluate import generate_answers
from .lessons.base import Example
from .snapshots import Snapshot, adapter_of

MAX_CHARS = 500              # per field: a question, not a document
MAX_NEW_TOKENS = 48          # byte-level tiny model: ~48 characters of answer


class AskError(ValueError):
    """Something the user can fix (empty question, a run without weights); the message says what."""


@dataclass(frozen=True)
class Answer:
    stage: str                 # "now", "after task 2 (has_seven)", ...
    task: int | None           # the snapshot's task index; None for the current model
    answer: str
    adapter: str | None        # the LoRA adapter that answered (None: the model as it is)
    note: str = ""             # e.g. the router picked an adapter that did not exist yet


def make_example(instruction: str, input_text: str = "") -> Example:
    instruction, input_text = (instruction or "").strip(), (input_text or "").strip()
    if not instruction:
        raise AskError("type an instruction (and an input, if the task takes one)")
    for label, text in (("instruction", instruction), ("input", input_text)):
        if len(text) > MAX_CHARS:
            raise AskError(f"the {label} is too long ({len(text)} characters; the limit is {MAX_CHARS})")
    return Example(instruction, input_text, "")


@contextlib.contextmanager
def snapshot_weights(model, snap: Snapshot):
    """The model with `snap`'s tensors loaded; its own weights are copied back afterwards (exactly)."""
    params = dict(model.named_parameters())
    names = [n for n in snap.tensors if n in params]
    if not names:
        raise AskError(f"task {snap.task + 1}'s snapshot holds no tensor of this model")
    saved = {n: params[n].detach().clone() for n in names}
    try:
        with torch.no_grad():
            for n in names:
                params[n].copy_(snap.tensors[n])
        yield model
    finally:
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t)


def _generate(trainer, example: Example, adapter: str | None, max_new_tokens: int) -> str:
    autocast = getattr(trainer, "autocast", contextlib.nullcontext)      # bf16 on CUDA, as evaluation
    with trainer.method.use_for_inference(adapter), autocast():
        return generate_answers(trainer.model, trainer.encoder, [example], 1, max_new_tokens,
                                device=trainer.bundle.device)[0]


def _route(trainer, example: Example, use_router: bool) -> str | None:
    if not use_router:
        return None
    try:
        return trainer.method.route([example])[0]
    except NotImplementedError:
        return None


def _snapshot_adapter(snap: Snapshot, routed: str | None) -> tuple[str | None, str]:
    """(adapter, note) for a snapshot row: the router's choice when the snapshot has it, else the
    adapter trained during that task (LoRA), else the model as it is (full fine-tuning)."""
    present = {adapter_of(n) for n in snap.tensors} - {None}
    if routed is not None and routed in present:
        return routed, ""
    trained = snap.trained_adapters
    own = trained[0] if trained else None
    if routed is not None:
        return own, f"the router now picks {routed}, which did not exist yet; {own or 'the model'} answered"
    return own, ""


def ask(trainer, snapshots: dict[int, Snapshot], instruction: str, input_text: str = "",
        current: bool = True, use_router: bool = True, max_new_tokens: int = MAX_NEW_TOKENS) -> list[Answer]:
    """Answers of every task-end snapshot (in task order) and, with `current`, of the model as it is now.

    `trainer` is a live Trainer (or one rebuilt from a saved run's config: pass use_router=False, its
    router was never trained). The caller makes sure no training step runs meanwhile (the run's lock)."""
    example = make_example(instruction, input_text)
    names = [t.name for t in trainer.lesson.tasks]
    model = trainer.model
    was_training = model.training
    model.eval()
    rows: list[Answer] = []
    try:
        routed = _route(trainer, example, use_router)
        for t in sorted(snapshots):
            snap = snapshots[t]
            adapter, note = _snapshot_adapter(snap, routed)
            with snapshot_weights(model, snap):
                text = _generate(trainer, example, adapter, max_new_tokens)
            label = names[t] if t < len(names) else f"task {t + 1}"
            rows.append(Answer(f"after task {t + 1} ({label})", t, text, adapter, note))
        if current:
            rows.append(Answer("now", None, _generate(trainer, example, routed, max_new_tokens), routed))
    finally:
        model.train(was_training)
    return rows


def trainer_snapshots(trainer) -> dict[int, Snapshot]:
    """A live trainer's task-end snapshots: in memory, else read from its run directory's checkpoints."""
    from .connectivity import trainer_snapshot
    done = set(trainer.snapshots) | {t for t, _ in trainer.log.checkpoints}
    return {t: trainer_snapshot(trainer, t) for t in sorted(done)}


__all__ = ["Answer", "AskError", "MAX_CHARS", "ask", "make_example", "snapshot_weights", "trainer_snapshots"]
