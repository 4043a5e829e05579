"""EWC, MAS and TIR: a quadratic penalty that anchors parameters important to earlier tasks.

Update rule (He et al. 2023, "Continual Instruction Tuning for Large Multimodal Models", Sec. on
regularization; EWC: Kirkpatrick et al. 2017; MAS: Aljundi et al. 2018):

    L = L_t + lambda * sum_{i<t} w_i * sum_k Omega_{i,k} * (theta_k - theta*_{i,k})^2

- After each task i the diagonal importance Omega_i and the weights theta*_i are stored (one pair per
  finished task; the penalty therefore accumulates across tasks).
  EWC: Omega = mean squared gradient of the task's cross-entropy (diagonal empirical Fisher).
  MAS: Omega = mean |d ||f(x)||^2 / d theta|, f(x) = the logits at the answer positions (the ones
  that predict answer tokens), ||.||^2 averaged over those positions.
- Vanilla EWC / MAS: w_i = 1.
- TIR (task-similarity-informed regularization): w_i from s = cosine similarity of the mean
  instruction embeddings (packaged MiniLM) of the current task and task i. The paper gives neither
  the formula nor the direction [unverified]; our default is "similar old task -> lighter penalty",
  w_i = max(0, 1 - s); `direction="heavier"` gives w_i = max(0, s). `base` picks EWC or MAS importance.

What follows the papers: the penalty form, per-task anchors, EWC's squared gradients, MAS's gradient of
the squared output norm. Our interpretation / approximations:
- importance is estimated on `batches` random mini-batches of `batch_size` examples of the finished
  task (default 64 single examples: per-example gradients, the textbook estimate; larger batches are
  faster but square / abs the batch-mean gradient, which underestimates the Fisher at convergence);
- "the logits of answer positions" is our reading of MAS's f(x) for a language model;
- the penalty covers every trainable parameter (all weights for full fine-tuning, the adapter for LoRA).
Implementation: the per-task terms are folded once per task into A = sum_i w_i Omega_i, the weighted
centre m = sum_i w_i Omega_i theta*_i / A and the constant c = sum_i w_i Omega_i (theta*_i - m)^2, so
a step costs the same whatever the number of old tasks (the value is identical: a variance split).

Logs: "penalty" (the term added to the loss, lambda included) in every step's scalars (0 on the first
task); the importance mass per layer (sum of Omega over the layer's tensors) of the task just finished,
returned by after_step on the first step of the next task (so it reaches the CoefficientsLogged event,
step = that first step) and repeated in after_task's info; TIR weights and similarities in TaskStarted.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import knob, validate
from ..events import InfoRecord
from ..panels import Heatmap, Markdown, Message, by_task, matrix, named_grid
from ..tokenize import IGNORE_INDEX
from .base import Method


@dataclass
class EWCOptions:
    lam: float = knob(1e6, "penalty strength lambda; the importance is not normalised (raw Fisher values at "
                      "convergence are tiny: ~1e-9 per weight on the tiny model)", 0.0, 1e12)
    batches: int = knob(64, "mini-batches of the finished task used to estimate the importance", 1, 10_000)
    batch_size: int = knob(1, "examples per importance mini-batch (1 = per-example gradients, the "
                           "textbook estimate; larger is faster but averages gradients first)", 1, 1024)

    def __post_init__(self):
        validate(self)


@dataclass
class MASOptions(EWCOptions):
    lam: float = knob(0.002, "penalty strength lambda; the importance is not normalised", 0.0, 1e12)


@dataclass
class TIROptions(EWCOptions):
    lam: float = knob(1e6, "penalty strength lambda (EWC's default, sized for base='ewc'; about 0.002 suits "
                      "base='mas' on the tiny model)", 0.0, 1e12)
    base: str = knob("ewc", "importance of each old task: EWC (Fisher) or MAS (output sensitivity)",
                     choices=("ewc", "mas"))
    direction: str = knob("lighter", "'lighter': similar old task -> lighter penalty, w = 1 - s [our default, "
                          "unverified]; 'heavier': w = s", choices=("lighter", "heavier"))


@dataclass(frozen=True)
class PenaltyTaskStart(InfoRecord):
    """TaskStarted info: how many earlier tasks the penalty anchors, and the weight w_i of each."""

    regularized_tasks: int | None = None
    lam: float | None = field(default=None, metadata={"key": "lambda"})
    weights: dict | None = None              # earlier task -> w_i
    tir_direction: str | None = None         # TIR only
    tir_similarity: dict | None = None       # TIR only: earlier task -> cosine of mean instruction embeddings


@dataclass(frozen=True)
class ImportanceTaskEnd(InfoRecord):
    """TaskEnded info: the importance Ω of the task just finished, summed per layer."""

    importance_total: float | None = None
    importance_mass: dict | None = None      # layer -> Σ Ω over its tensors


HOW_TO_READ = ("How to read this: each row is one layer, each column the task just finished; the colour is "
               "the importance mass Σ Ω of that layer (log scale): the penalty holds heavy layers near their "
               "values after that task. The bar: mass summed over tasks.")


def tir_weights(current_key, old_keys, direction: str = "lighter") -> tuple[list[float], list[float]]:
    """TIR weights w_i and cosine similarities s_i of the current task's key to each old task's key."""
    cur = np.asarray(current_key, np.float64)
    sims = []
    for key in old_keys:
        key = np.asarray(key, np.float64)
        sims.append(float(cur @ key / max(np.linalg.norm(cur) * np.linalg.norm(key), 1e-12)))
    if direction == "lighter":
        weights = [max(0.0, 1.0 - s) for s in sims]
    elif direction == "heavier":
        weights = [max(0.0, s) for s in sims]
    else:
        raise ValueError(f"direction must be 'lighter' or 'heavier', got {direction!r}")
    return weights, sims


def task_key(task) -> np.ndarray:
    """Mean instruction embedding of a task's training set (instructions weighted by frequency)."""
    from ..similarity import mean_embedding
    return mean_embedding([ex.instruction for ex in task.train])


def layer_of(name: str) -> str:
    """Parameter name -> the layer (module) it belongs to."""
    return name.rsplit(".", 1)[0] if "." in name else name


class Regularized(Method):
    """Shared machinery: importance after each task, anchors per task, the folded quadratic penalty."""

    importance_kind = "ewc"

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.anchors: list[tuple[dict, dict]] = []     # per finished task: (Omega, theta*) on the CPU
        self.keys: list[np.ndarray] = []               # per finished task: mean instruction embedding
        self.folded: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []
        self.constant = 0.0
        self.pending_masses: dict = {}
        self.model = None

    def setup(self, model):
        self.model = model
        return model

    # -- weights -----------------------------------------------------------------------------
    def task_weights(self, index, task) -> tuple[list[float], dict]:
        """(w_i per earlier task, extra PenaltyTaskStart fields that explain them)."""
        return [1.0] * len(self.anchors), {}

    def before_task(self, index, task, pools):
        self.folded, self.constant = [], 0.0
        if not self.anchors:
            return pools, PenaltyTaskStart(0).to_dict()
        weights, similarity = self.task_weights(index, task)
        self._fold(weights)
        names = self.ctx.lesson.task_names
        info = PenaltyTaskStart(len(self.anchors), self.options.lam,
                                {names[i]: round(w, 6) for i, w in enumerate(weights)}, **similarity)
        return pools, info.to_dict()

    @torch.no_grad()
    def _fold(self, weights):
        params = dict(self.model.named_parameters())
        constant = 0.0
        for name, param in params.items():
            if name not in self.anchors[0][0]:
                continue
            dev = param.device
            omegas = [w * anchor[0][name].to(dev, torch.float32) for w, anchor in zip(weights, self.anchors)]
            thetas = [anchor[1][name].to(dev, torch.float32) for anchor in self.anchors]
            a = torch.stack(omegas).sum(0)
            weighted = torch.stack([o * t for o, t in zip(omegas, thetas)]).sum(0)
            centre = torch.where(a > 0, weighted / a.clamp_min(1e-30), thetas[-1])
            constant += float(sum((o.double() * (t.double() - centre.double()) ** 2).sum()
                                  for o, t in zip(omegas, thetas)))
            self.folded.append((param, a, centre))
        self.constant = max(0.0, constant)

    # -- the penalty -------------------------------------------------------------------------
    def loss(self, batch, out):
        if not self.folded:
            return None, {"penalty": 0.0}
        total = out.loss.new_zeros(())
        for param, a, centre in self.folded:
            total = total + (a * (param.float() - centre) ** 2).sum()
        penalty = self.options.lam * (total + self.constant)
        return penalty, {"penalty": float(penalty.detach())}

    def after_step(self, step):
        masses, self.pending_masses = self.pending_masses, {}
        return masses

    # -- importance --------------------------------------------------------------------------
    def _objective(self, batch, out):
        if self.importance_kind == "ewc":
            return out.loss
        # MAS: squared L2 norm of the logits at the positions that predict answer tokens, averaged
        logits = out.logits[:, :-1]
        mask = batch.labels[:, 1:] != IGNORE_INDEX
        return logits[mask].float().pow(2).sum(-1).mean()

    def importance(self, task, seed_text: str) -> dict[str, torch.Tensor]:
        model, encoder, device = self.model, self.ctx.encoder, self.ctx.bundle.device
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
        rng = random.Random(seed_text)
        was_training = model.training
        model.eval()
        try:
            for _ in range(self.options.batches):
                examples = rng.sample(task.train, min(self.options.batch_size, len(task.train)))
                batch = encoder.collate(examples).to(device)
                model.zero_grad(set_to_none=True)
                out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                            labels=batch.labels)
                self._objective(batch, out).backward()
                for n, p in params.items():
                    if p.grad is not None:
                        g = p.grad.detach().float()
                        acc[n] += g.pow(2) if self.importance_kind == "ewc" else g.abs()
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        return {n: (a / self.options.batches).cpu() for n, a in acc.items()}

    def after_task(self, index, task):
        omega = self.importance(task, f"importance-{self.ctx.config.train.seed}-{index}")
        theta = {n: p.detach().float().cpu().clone() for n, p in self.model.named_parameters() if n in omega}
        self.anchors.append((omega, theta))
        self.keys.append(self.task_key(task))
        masses: dict[str, float] = {}
        for name, value in omega.items():
            layer = layer_of(name)
            masses[layer] = masses.get(layer, 0.0) + float(value.sum())
        self.pending_masses = masses           # logged as coefficients on the next task's first step
        return ImportanceTaskEnd(sum(masses.values()), masses).to_dict()

    def task_key(self, task):
        return None

    # -- displays -----------------------------------------------------------------------------
    @classmethod
    def panels(cls, log):
        """The importance mass per layer after each task (what the penalty anchors), and the weight of
        each earlier task's penalty at each task start."""
        name = cls.title.split(" ")[0]
        masses = [e.importance_mass for e in ImportanceTaskEnd.read_all(log.task_end_info)
                  if isinstance(e.importance_mass, dict)]
        if not masses:
            return [Message(f"No importance yet: {name} computes it when a task ends.", how=HOW_TO_READ)]
        layers, z = named_grid(masses)
        heat = Heatmap(f"{name}: importance mass Σ Ω per layer after each task", tuple(layers), z, "Σ Ω",
                       axis="task", tasks=tuple(log.tasks), log=True, side=tuple(np.nansum(z, axis=1).tolist()),
                       side_title="sum over tasks", table_label="layer: Σ Ω after task", how=HOW_TO_READ)
        weights = cls.weights_text(log)
        return [heat, Markdown(weights)] if weights else [heat]

    @staticmethod
    def weights_text(log) -> str:
        """The penalty weight w_i of each earlier task at each task start, as a list ('' when none)."""
        lines = []
        for i, start in enumerate(PenaltyTaskStart.read_all(log.task_info)):
            if start.weights:
                shown = ", ".join(f"{k}: {v:.3f}" for k, v in start.weights.items())
                lines.append(f"- task {i + 1} ({log.tasks[i]}): penalty weights {shown}")
        return ("Penalty weight of each earlier task at each task start:\n" + "\n".join(lines)) if lines else ""


class EWC(Regularized):
    name = "ewc"
    title = "EWC (diagonal Fisher penalty)"
    Options = EWCOptions
    importance_kind = "ewc"


class MAS(Regularized):
    name = "mas"
    title = "MAS (output-sensitivity penalty)"
    Options = MASOptions
    importance_kind = "mas"


class TIR(Regularized):
    name = "tir"
    title = "TIR (similarity-weighted EWC / MAS)"
    Options = TIROptions

    @property
    def importance_kind(self):
        return self.options.base

    def task_key(self, task):
        return task_key(task)

    def task_weights(self, index, task):
        weights, sims = tir_weights(task_key(task), self.keys, self.options.direction)
        names = self.ctx.lesson.task_names
        return weights, {"tir_direction": self.options.direction,
                         "tir_similarity": {names[i]: round(s, 6) for i, s in enumerate(sims)}}

    @classmethod
    def matrices(cls, log):
        """The similarity to each earlier task and the penalty weight it gave, at each task start."""
        tasks, starts = list(log.tasks), PenaltyTaskStart.read_all(log.task_info)
        if not any(s.tir_similarity is not None for s in starts):
            return {}
        return {
            "TIR cosine similarity": matrix(
                tasks, by_task([s.tir_similarity for s in starts], tasks),
                note="row: task starting; column: earlier task; cosine of mean instruction embeddings"),
            "TIR penalty weight": matrix(
                tasks, by_task([s.weights for s in starts], tasks),
                note="row: task starting; column: earlier task; weight of that task's penalty"),
        }


__all__ = ["EWC", "MAS", "TIR", "EWCOptions", "MASOptions", "TIROptions", "tir_weights", "task_key"]
