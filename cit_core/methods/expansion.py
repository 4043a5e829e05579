"""Expansion: a new LoRA adapter per task, chosen per prompt by its instruction (He et al. 2023).

Update rule. Before task t a fresh peft LoRA adapter `task<t>` is added to the frozen base and made the
only trainable tensors (peft's set_adapter freezes every other adapter; checked at every switch), so
training task t never changes an earlier adapter. The task's key is its mean instruction embedding
k_t = normalise(mean_x MiniLM(instruction(x))) over its training set. At inference a prompt with
instruction embedding e goes to adapter argmax_t cos(e, k_t) among the adapters that exist (tasks not
trained yet therefore go to the nearest trained one; before any task the untouched first adapter,
whose LoRA B = 0, is the base model).

What follows the paper: the paper's EProj expands a projection per task for a multimodal model, with a
task key from instruction embeddings and nearest-key selection at test time, and a similarity-informed
variant that initialises the new expansion from the most similar old task. Our reading for a text-only
LM: the expansion is a LoRA adapter on every linear layer ('all-linear' or the configured targets);
the key and the routing use the packaged MiniLM on the instruction text only (not the input);
`init="similar"` copies the LoRA tensors of the old task with the highest key cosine into the new
adapter (default "fresh": peft's initialisation, B = 0).
Logs: routing accuracy (share of each trained task's held-out prompts routed to its own adapter) in
TaskStarted info (tasks 1..t, the new key included) and in after_task's info; the init source.

`oracle_lora` (oracle_lora.py) is the same per-task adapters with the true task as the route: the
parameter-isolation upper bound.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np

from ..config import knob, validate
from ..model import lora_config
from .base import Method
from .lora_tools import active_adapter, copy_adapter, train_only


@dataclass
class ExpansionOptions:
    init: str = knob("fresh", "new adapter starts 'fresh' (B = 0) or as a copy of the most 'similar' old "
                     "task's adapter", choices=("fresh", "similar"))

    def __post_init__(self):
        validate(self)


def adapter_name(index: int) -> str:
    return f"task{index}"


def nearest_keys(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of the most cosine-similar key for each query row."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    k = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
    return np.argmax(q @ k.T, axis=1)


class PerTaskLoRA(Method):
    """One LoRA adapter per task on a frozen base; subclasses decide the route of each prompt."""

    uses_lora = True

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.model = None
        self.adapters: list[str] = []            # adapters created so far, task order
        self.keys: list[np.ndarray] = []         # mean instruction embedding per adapter
        self.current: str | None = None

    def setup(self, model):
        from peft import get_peft_model
        self.lora = lora_config(self.ctx.config.model)
        self.model = get_peft_model(model, copy.deepcopy(self.lora), adapter_name=adapter_name(0))
        return self.model

    @staticmethod
    def _embed(texts) -> np.ndarray:
        from ..similarity import get_embedder
        return get_embedder().encode(list(texts))

    def key_of(self, task) -> np.ndarray:
        from ..similarity import mean_embedding
        return mean_embedding([ex.instruction for ex in task.train])

    def init_from(self, index, key) -> str | None:
        return None

    def before_task(self, index, task, pools):
        name = adapter_name(index)
        key = self.key_of(task)
        source = self.init_from(index, key)
        if index > 0:
            self.model.add_adapter(name, copy.deepcopy(self.lora))
        if source is not None:
            copy_adapter(self.model, source, name)
        train_only(self.model, name)
        self.current = name
        self.adapters.append(name)
        self.keys.append(key)
        info = {"adapter": name, "adapters": len(self.adapters), "init_from": source}
        info.update(self.routing_report(index))
        return pools, info

    def after_task(self, index, task):
        return self.routing_report(index)

    # -- inference -------------------------------------------------------------------------
    def route(self, examples):
        raise NotImplementedError

    def use_for_inference(self, adapter):
        if adapter is None or adapter == self.current:
            return contextlib.nullcontext()
        return active_adapter(self.model, adapter)

    def routing_report(self, index) -> dict:
        """Share of held-out prompts of tasks 0..index routed to their own task's adapter."""
        tasks = self.ctx.lesson.tasks
        per_task = {}
        for i in range(index + 1):
            routes = self.route(tasks[i].eval)
            per_task[tasks[i].name] = round(sum(r == adapter_name(i) for r in routes) / len(routes), 6)
        mean = sum(per_task.values()) / len(per_task)
        return {"routing_accuracy": round(mean, 6), "routing_accuracy_per_task": per_task}


class Expansion(PerTaskLoRA):
    name = "expansion"
    title = "Expansion (a LoRA per task, nearest-key routing)"
    Options = ExpansionOptions

    def init_from(self, index, key):
        if self.options.init != "similar" or not self.keys:
            return None
        return self.adapters[int(nearest_keys(key[None, :], np.stack(self.keys))[0])]

    def route(self, examples):
        if not self.adapters:
            return [None] * len(examples)
        if not examples:
            return []
        nearest = nearest_keys(self._embed(ex.instruction for ex in examples), np.stack(self.keys))
        return [self.adapters[int(i)] for i in nearest]


__all__ = ["Expansion", "ExpansionOptions", "PerTaskLoRA", "adapter_name", "nearest_keys"]
