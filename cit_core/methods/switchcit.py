"""SwitchCIT: one LoRA expert per task, chosen at inference by a small switch network.

Update rule
- Task t trains a new peft LoRA adapter `task{t}` from the base model (the adapters of earlier tasks
  are frozen and never change: parameter isolation). Only the new adapter has requires_grad.
- A fraction of each task's training prompts is retained (`retain_fraction`, at least
  `min_retained`). At stage t the switch MLP  feature -> 200 -> ReLU -> t  is trained from scratch on the
  retained features of tasks 1..t with cross-entropy (AdamW lr 1e-3, batch 32, 20 epochs, seeded).
- Inference: each prompt goes to argmax_k switch(feature(prompt)); a batch is grouped by the predicted
  task and each group is generated with that task's adapter.

Follows the paper: per-task LoRA from the base, the switch's shape and training recipe, retraining at
each stage on retained prompts of every seen task, routing per prompt.
Released code differs: its switch dataset skips the first task's prompts; we include them.
Our interpretation: the feature is the packaged MiniLM embedding of the whole formatted prompt (the
paper uses the last-token state of a frozen OPT-125m; `features="base_lm"` uses the base LM's own
last-token hidden state with adapters disabled instead); the paper keeps 0.01% of the data, which on a
small lesson is a handful of prompts, hence the floor. The switch for stage t is trained when task t
starts (its prompts are known then), so evaluations during task t already route to adapter t.
Logs: switch accuracy on the held-out prompts of tasks 1..t and the t x t confusion matrix (rows = true
task, columns = predicted), in the TaskStarted info of stage t and again in after_task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import knob, validate
from ..events import InfoRecord
from ..model import lora_config
from ..panels import matrix
from .base import Method
from .lora_tools import active_adapter, adapter_parameters, train_only


@dataclass
class SwitchCITOptions:
    features: str = knob("minilm", "switch input: 'minilm' = packaged MiniLM embedding of the whole prompt; "
                         "'base_lm' = the base LM's last-token hidden state (adapters off)",
                         choices=("minilm", "base_lm"))
    retain_fraction: float = knob(0.0001, "share of each task's training prompts kept for the switch "
                                  "(paper: 0.01% = 0.0001; the floor min_retained applies)", 0.0, 1.0)
    min_retained: int = knob(8, "at least this many prompts kept per task", 1, 100_000)
    hidden: int = knob(200, "switch MLP hidden width", 1, 4096)
    epochs: int = knob(20, "switch training epochs at each stage", 1, 1000)
    switch_lr: float = knob(1e-3, "switch AdamW learning rate", 1e-6, 1.0)
    switch_batch: int = knob(32, "switch training batch size", 1, 4096)

    def __post_init__(self):
        validate(self)


def train_switch(features: np.ndarray, labels: np.ndarray, n_classes: int, hidden: int, epochs: int,
                 lr: float, batch: int, seed: int) -> torch.nn.Module:
    """MLP feature -> hidden -> ReLU -> n_classes, cross-entropy, AdamW; deterministic for a seed."""
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden, n_classes))
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(net.parameters(), lr=lr)
        with torch.enable_grad():
            for _ in range(epochs):
                order = torch.randperm(len(x), generator=gen)
                for start in range(0, len(x), batch):
                    idx = order[start:start + batch]
                    loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    return net.eval()


@dataclass(frozen=True)
class SwitchStage(InfoRecord):
    """The switch after stage t (TaskEnded info, and TaskStarted info with the adapter and retained size):
    its accuracy on the held-out prompts of tasks 1..t and its confusion matrix."""

    switch_accuracy: float | None = None
    switch_accuracy_per_task: list | None = None
    switch_confusion: list | None = None       # row: true task; column: task routed to (counts)
    switch_train_size: int | None = None


class SwitchCIT(Method):
    name = "switchcit"
    title = "SwitchCIT (per-task LoRA + switch network)"
    uses_lora = True
    Options = SwitchCITOptions

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.retained: list[list] = []          # per task: retained training examples
        self.switch: torch.nn.Module | None = None
        self.n_trained = 0                      # tasks the current switch knows
        self.stages: list[SwitchStage] = []     # switch accuracy + confusion per stage
        self._memo: dict = {}                   # example -> feature vector

    @staticmethod
    def adapter(index: int) -> str:
        return f"task{index}"

    def setup(self, model):
        from peft import get_peft_model
        self.model = get_peft_model(model, lora_config(self.ctx.config.model), adapter_name=self.adapter(0))
        return self.model

    # -- features ----------------------------------------------------------------------------
    def features(self, examples) -> np.ndarray:
        missing = [ex for ex in dict.fromkeys(examples) if ex not in self._memo]
        if missing:
            vecs = self._minilm(missing) if self.options.features == "minilm" else self._base_lm(missing)
            self._memo.update(zip(missing, vecs))
        return np.stack([self._memo[ex] for ex in examples])

    def _minilm(self, examples) -> np.ndarray:
        from ..similarity import get_embedder
        fmt = self.ctx.bundle.fmt
        return get_embedder().encode([fmt.prompt(ex) for ex in examples])

    @torch.no_grad()
    def _base_lm(self, examples) -> np.ndarray:
        out, device = [], self.ctx.bundle.device
        was_training = self.model.training
        self.model.eval()
        try:
            with self.model.disable_adapter():
                for start in range(0, len(examples), 64):
                    ids, mask = self.ctx.encoder.prompts(examples[start:start + 64])
                    ids, mask = ids.to(device), mask.to(device)
                    positions = (mask.cumsum(-1) - 1).clamp(min=0)
                    res = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                     output_hidden_states=True)
                    out.append(res.hidden_states[-1][:, -1].float().cpu().numpy())   # left-padded
        finally:
            self.model.train(was_training)
        return np.concatenate(out)

    # -- hooks -------------------------------------------------------------------------------
    def before_task(self, index, task, pools):
        name = self.adapter(index)
        if index > 0:
            self.model.add_adapter(name, lora_config(self.ctx.config.model))   # fresh: starts at the base
        train_only(self.model, name)
        k = min(len(task.train), max(self.options.min_retained,
                                      math.ceil(self.options.retain_fraction * len(task.train))))
        self.retained.append(self.ctx.rng.sample(task.train, k))
        stage = self._fit_switch(index)
        self.stages.append(stage)
        return pools, {"adapter": name, "retained": k, **stage.to_dict()}

    def after_task(self, index, task):
        return self.stages[index].to_dict()

    def _fit_switch(self, index) -> SwitchStage:
        """Retrain the switch on the retained prompts of tasks 0..index; score it on held-out prompts."""
        n = index + 1
        self.n_trained = n
        if n == 1:
            self.switch = None          # one expert: nothing to choose
        else:
            examples = [ex for kept in self.retained for ex in kept]
            labels = np.array([t for t, kept in enumerate(self.retained) for _ in kept])
            o = self.options
            self.switch = train_switch(self.features(examples), labels, n, o.hidden, o.epochs, o.switch_lr,
                                       o.switch_batch, seed=self.ctx.config.train.seed * 1000 + index)
        tasks = self.ctx.lesson.tasks[:n]
        confusion = [[0] * n for _ in range(n)]
        for t, task in enumerate(tasks):
            for p in self._predict(task.eval):
                confusion[t][p] += 1
        total = sum(map(sum, confusion))
        correct = sum(confusion[t][t] for t in range(n))
        per_task = [confusion[t][t] / max(1, sum(confusion[t])) for t in range(n)]
        return SwitchStage(correct / max(1, total), per_task, confusion, sum(map(len, self.retained)))

    def _predict(self, examples) -> list[int]:
        if self.switch is None:
            return [0] * len(examples)
        with torch.no_grad():
            logits = self.switch(torch.as_tensor(self.features(list(examples)), dtype=torch.float32))
        return logits.argmax(-1).tolist()

    def route(self, examples):
        if self.n_trained == 0:
            return [None] * len(examples)
        return [self.adapter(k) for k in self._predict(examples)]

    def use_for_inference(self, adapter):
        return active_adapter(self.model, adapter)

    def expert_state(self, index: int) -> dict:
        """Copies of task `index`'s adapter tensors (tests check earlier experts never change)."""
        return {n: p.detach().clone() for n, p in adapter_parameters(self.model, self.adapter(index)).items()}

    @classmethod
    def matrices(cls, log):
        """The switch's confusion on held-out prompts, from the latest stage that logged it."""
        stages = SwitchStage.read_all([*log.task_info, *log.task_end_info])
        confusion = None
        for stage in stages:
            if stage.switch_confusion and (confusion is None or len(stage.switch_confusion) >= len(confusion)):
                confusion = stage.switch_confusion
        if confusion is None:
            return {}
        return {"SwitchCIT router confusion": matrix(
            list(log.tasks)[:len(confusion)], confusion,
            note="row: true task; column: task the switch routed its held-out prompts to (counts)")}
