"""Small helpers for methods that keep several peft LoRA adapters on one base model.

peft's `set_adapter` also flips `requires_grad` (the active adapter becomes trainable, the others
frozen). That is what a method wants when it moves training to another adapter, but not when it only
needs a forward pass through another adapter (inference, or I-LoRA's slow forward inside a training
step): `active_adapter` switches which adapter the LoRA layers apply without touching `requires_grad`.
"""
from __future__ import annotations

import contextlib
import re

import torch


def _tuner_layers(model):
    from peft.tuners.tuners_utils import BaseTunerLayer
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def active_adapter(model, name: str | None):
    """Within the block the LoRA layers apply adapter `name` (None: leave as is); requires_grad untouched."""
    if name is None:
        yield
        return
    layers = _tuner_layers(model)
    saved = [layer._active_adapter for layer in layers]
    try:
        for layer in layers:
            layer._active_adapter = name
        yield
    finally:
        for layer, old in zip(layers, saved):
            layer._active_adapter = old


def adapter_parameters(model, name: str) -> dict[str, torch.nn.Parameter]:
    """LoRA tensors of adapter `name`, keyed by their full parameter name."""
    tag = f".{name}."
    return {n: p for n, p in model.named_parameters() if ".lora_" in n and tag in n}


def state_of(model, name: str) -> dict[str, torch.Tensor]:
    """Detached copies of adapter `name`'s tensors, keyed by the name with the adapter part removed."""
    tag = f".{name}."
    return {n.replace(tag, "."): p.detach().clone() for n, p in adapter_parameters(model, name).items()}


@torch.no_grad()
def copy_adapter(model, source: str, target: str) -> None:
    """Copy every tensor of adapter `source` into the matching tensor of adapter `target` (paired by name)."""
    src, dst = adapter_parameters(model, source), adapter_parameters(model, target)
    for n, p in src.items():
        dst[n.replace(f".{source}.", f".{target}.")].copy_(p)


def trainable_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def train_only(model, name: str) -> None:
    """Make adapter `name` the active, trainable one and check that nothing else is trainable."""
    model.set_adapter(name)
    wrong = [n for n in trainable_names(model) if f".{name}." not in n]
    if wrong:
        raise RuntimeError(f"after set_adapter({name!r}) these parameters are still trainable: {wrong[:5]}")
    if not adapter_parameters(model, name):
        raise RuntimeError(f"adapter {name!r} has no LoRA tensors")


_LAYER = re.compile(r"^\d+$")


def short_name(param_name: str) -> str:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.fast.weight' -> 'layers.0.q_proj.A'."""
    path, _, rest = param_name.partition(".lora_")
    factor = rest[:1] or "?"
    parts = [p for p in path.split(".") if p not in ("base_model", "model")]
    for i, part in enumerate(parts):
        if _LAYER.match(part) and i > 0:
            return f"{parts[i - 1]}.{part}.{parts[-1]}.{factor}"
    return ".".join(parts[-2:] + [factor])


def short_names(param_names) -> dict[str, str]:
    """short_name of each parameter, falling back to the longer path where two short names collide."""
    names = list(param_names)
    short = {n: short_name(n) for n in names}
    if len(set(short.values())) < len(names):
        for n in names:
            path, _, rest = n.partition(".lora_")
            parts = [p for p in path.split(".") if p not in ("base_model", "model")]
            short[n] = ".".join(parts + [rest[:1] or "?"])
    return short
