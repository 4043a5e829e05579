"""The Method hook protocol: the one extension point of the engine.

The trainer owns the loop and the optimizer; a method only changes data, adds loss terms, updates
shadow weights and returns numbers to log. Every hook has a no-op default.

Rules every method keeps:
- Its state pickles between any two steps. On a ZeroGPU Space training runs in short chunks that take
  the whole training state (model, optimizer, method) in and out by pickle (serve/chunks.py), so a
  method holds plain data, tensors, modules and module-level classes only: no lambdas or closures (as
  forward hooks either: see I-LoRA's _HiddenStateHook), no open files, threads or generators. The
  contract test pickles every method's state in the middle of its second task.
- Info dicts (before_task, after_task) are JSON: a method writes them through its typed records
  (events.InfoRecord) and its displays read them back the same way.
- Displays (short_title, panels, matrices) read a RunLog only: a saved run or a recording has no model.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..data import Pool


@dataclass
class NoOptions:
    """This method has no knobs."""


@dataclass
class RunContext:
    """What a method may read: never the optimizer, never the UI."""

    config: object          # RunConfig
    lesson: object          # Lesson
    bundle: object          # ModelBundle (tokenizer, prompt format, device)
    encoder: object         # tokenize.Encoder
    rng: object             # random.Random, seeded from the run seed


class Method:
    name = "base"
    title = "Base"
    uses_lora = False
    Options = NoOptions

    def __init__(self, options, ctx: RunContext):
        self.options, self.ctx = options, ctx
        self.after_step_values: dict = {}

    def setup(self, model) -> torch.nn.Module:
        """Attach adapters or allocate shadows; returns the model the trainer trains."""
        return model

    def before_task(self, index: int, task, pools: list[Pool]) -> tuple[list[Pool], dict]:
        """Change what the task trains on (replay mixing, expand decision). Returns (pools, info to log)."""
        return pools, {}

    def loss(self, batch, out) -> tuple[torch.Tensor | None, dict]:
        """Extra loss terms on top of the cross-entropy `out.loss`, and scalars to log."""
        return None, {}

    def after_step(self, step: int) -> dict:
        """After optimizer.step(), before gradients are cleared. Returns coefficients to log."""
        return {}

    def after_task(self, index: int, task) -> dict:
        """Fisher, buffer fill, router fit, EMA replace... Returns info to log."""
        return {}

    def extra_states(self) -> dict[str, dict[str, torch.Tensor]]:
        """Named weight states besides the live ones (I-LoRA's slow learner, LCIA's EMA), each keyed like
        the trained adapter's tensors with the adapter name removed (lora_tools.state_of). The trainer
        copies them at every task end, just before after_task, into snapshots and checkpoints."""
        return {}

    def route(self, examples) -> list[str | None]:
        """Adapter name per prompt at inference (None = the model as it is)."""
        return [None] * len(examples)

    def use_for_inference(self, adapter: str | None):
        """Context in which generation uses `adapter` (one routed group); restores training state after."""
        return contextlib.nullcontext()

    # -- displays: read from a RunLog alone (live, saved or recorded run), never from the model -----------
    @classmethod
    def short_title(cls) -> str:
        """The title without its parenthesis ("LCIA"), as views name the method."""
        return cls.title.split(" (")[0]

    @classmethod
    def panels(cls, log) -> list:
        """What the Coefficients view shows for a run of this method: cit_core/panels.py records (the first
        heatmap or message is the figure; every panel adds its table). Empty = no balance coefficients."""
        return []

    @classmethod
    def matrices(cls, log) -> dict[str, dict]:
        """Task x task matrices the method logged in its TaskStarted / TaskEnded info, for the Embeddings
        view, by name (panels.matrix layout: labels, values, columns, note)."""
        return {}
