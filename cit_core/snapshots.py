"""Weight snapshots at task boundaries, layer drift, and task-end checkpoints (safetensors).

A Snapshot is a set of CPU copies taken by the trainer at every task start and task end:
- LoRA methods: every adapter tensor (trainable or not, so a frozen adapter's drift is measured as 0);
- full fine-tuning: every parameter (frozen ones too, for the same reason).
Plus the method's extra named states (`Method.extra_states()`: I-LoRA's slow learner, LCIA's EMA), keyed
like the trained adapter's tensors with the adapter name removed (lora_tools.state_of).

Checkpoints (`checkpoints/task{t}.safetensors`) hold only what cannot be rebuilt from config.json: the
tensors that were trainable at the task end and, for LoRA, every adapter tensor (`state/<name>`), and
the extra states (`extra/<state>/<name>`). The frozen base is rebuilt from the config (the tiny model
is deterministic from its seed; SmolLM2 from its wheel).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Task-end snapshots stay in memory (for the live Connectivity view) only up to this many trainable
# parameters when the run also writes checkpoints; bigger runs keep them on disk only.
MEMORY_LIMIT_PARAMS = 50_000_000

_ADAPTER = re.compile(r"\.lora_[AB]\.([^.]+)\.")


@dataclass
class Snapshot:
    task: int
    when: str                                  # "start" or "end"
    lora: bool
    tensors: dict[str, torch.Tensor]           # full parameter name -> CPU copy
    trainable: list[str]                       # names trainable when the snapshot was taken
    extras: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def trained_adapters(self) -> list[str]:
        """LoRA adapters with trainable tensors, in first-seen order (empty for full fine-tuning)."""
        found = (_ADAPTER.search(n) for n in self.trainable)
        return list(dict.fromkeys(m.group(1) for m in found if m))

    def numel_trainable(self) -> int:
        return sum(self.tensors[n].numel() for n in self.trainable if n in self.tensors)


def adapter_of(name: str) -> str | None:
    m = _ADAPTER.search(name)
    return m.group(1) if m else None


@torch.no_grad()
def take_snapshot(model, task: int, when: str, lora: bool, extras: dict | None = None) -> Snapshot:
    tensors = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()
               if not lora or ".lora_" in n}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n in tensors]
    extras = {k: {n: t.detach().to("cpu", copy=True) for n, t in v.items()} for k, v in (extras or {}).items()}
    return Snapshot(task, when, lora, tensors, trainable, extras)


# -- drift ---------------------------------------------------------------------------------------
def _display(path: str) -> str:
    """'base_model.model.model.layers.0.self_attn.q_proj' -> 'layers.0.self_attn.q_proj'."""
    parts = path.split(".")
    while parts and parts[0] in ("base_model", "model"):
        parts.pop(0)
    return ".".join(parts) or path


@torch.no_grad()
def drift(start: Snapshot, end: Snapshot, model=None) -> dict[str, float]:
    """Per layer (full fine-tuning) or per adapted layer and adapter (LoRA): how far it moved in the task.

    Full fine-tuning: ‖θ_end − θ_start‖ / ‖θ_start‖ over the parameters of one module (weight and bias
    together); where ‖θ_start‖ = 0 the absolute change ‖θ_end − θ_start‖ is reported instead.
    LoRA: the relative change of the layer's effective weight, ‖s·(B_end A_end − B_start A_start)‖ / ‖W‖
    with W the frozen base weight and s the adapter's scaling. A factor-relative change would divide by
    ‖B_start‖ = 0 for every freshly initialised adapter; the base weight is never zero, and this makes LoRA
    and full fine-tuning rows comparable. Needs `model` (for W and s). Frozen layers/adapters give exactly 0.
    """
    if start.lora:
        return _lora_drift(start, end, model)
    groups: dict[str, list[str]] = {}
    for name in start.tensors:
        groups.setdefault(name.rsplit(".", 1)[0], []).append(name)
    out = {}
    for module, names in groups.items():
        diff = _norm([end.tensors[n] - start.tensors[n] for n in names])
        base = _norm([start.tensors[n] for n in names])
        out[_display(module)] = diff / base if base > 0 else diff
    return out


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))


def _lora_drift(start: Snapshot, end: Snapshot, model) -> dict[str, float]:
    out = {}
    for name, module in model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if not isinstance(lora_a, torch.nn.ModuleDict):
            continue
        base = float(module.get_base_layer().weight.detach().double().norm())
        for adapter in lora_a.keys():
            key_a, key_b = f"{name}.lora_A.{adapter}.weight", f"{name}.lora_B.{adapter}.weight"
            if key_a not in start.tensors or key_a not in end.tensors:
                continue      # an adapter added during the task has no start state
            scale = module.scaling[adapter]
            delta = scale * (end.tensors[key_b].double() @ end.tensors[key_a].double()
                             - start.tensors[key_b].double() @ start.tensors[key_a].double())
            # the adapter in the label unless it is peft's single "default" one: labels stay stable per run
            label = _display(name) if adapter == "default" else f"{_display(name)} [{adapter}]"
            out[label] = float(delta.norm()) / base if base > 0 else float(delta.norm())
    return out


# -- checkpoints -----------------------------------------------------------------------------------
def checkpoint_tensors(snap: Snapshot) -> dict[str, torch.Tensor]:
    """What a checkpoint stores (see the module docstring), flat, with `state/` and `extra/` prefixes."""
    keep = set(snap.trainable) | ({n for n in snap.tensors} if snap.lora else set())
    flat = {f"state/{n}": snap.tensors[n].contiguous() for n in snap.tensors if n in keep}
    for state, tensors in snap.extras.items():
        flat.update({f"extra/{state}/{n}": t.contiguous() for n, t in tensors.items()})
    return flat


def write_checkpoint(path: Path, snap: Snapshot) -> None:
    """Atomic: a temp file in the same folder, then os.replace (a reader never sees half a file)."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task": str(snap.task), "lora": "1" if snap.lora else "0", "trainable": json.dumps(snap.trainable)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(checkpoint_tensors(snap), tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_checkpoint(path: Path) -> Snapshot:
    """A task-end Snapshot back from its safetensors file (frozen full-FT weights are not in it)."""
    from safetensors import safe_open
    tensors, extras = {}, {}
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        for key in fh.keys():
            kind, _, rest = key.partition("/")
            if kind == "state":
                tensors[rest] = fh.get_tensor(key)
            elif kind == "extra":
                state, _, name = rest.partition("/")
                extras.setdefault(state, {})[name] = fh.get_tensor(key)
    try:
        task, lora, trainable = int(meta["task"]), meta["lora"] == "1", json.loads(meta["trainable"])
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path} is not a CIT checkpoint (metadata {sorted(meta)})") from err
    return Snapshot(task, "end", lora, tensors, trainable, extras)


__all__ = ["MEMORY_LIMIT_PARAMS", "Snapshot", "adapter_of", "checkpoint_tensors", "drift", "read_checkpoint",
           "take_snapshot", "write_checkpoint"]
