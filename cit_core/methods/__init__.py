"""Explicit registry of methods (the CLI's --method values); no directory scanning."""
from __future__ import annotations

from dataclasses import asdict, fields

from ..config import ConfigError
from .base import Method, NoOptions, RunContext
from .expansion import Expansion
from .inscl import InsCL
from .multitask import MultiTask
from .oracle_lora import OracleLoRA
from .regularization import EWC, MAS, TIR
from .replay import Replay
from .seqft import SeqFT, SeqFTLoRA
from .switchcit import SwitchCIT
from .ilora import ILoRA
from .lcia import LCIA

METHODS: dict[str, type[Method]] = {
    "seqft": SeqFT,
    "seqft_lora": SeqFTLoRA,
    "multitask": MultiTask,
    "replay": Replay,
    "ewc": EWC,
    "mas": MAS,
    "tir": TIR,
    "inscl": InsCL,
    "expansion": Expansion,
    "oracle_lora": OracleLoRA,
    "switchcit": SwitchCIT,
    "ilora": ILoRA,
    "lcia": LCIA,
}


def method_options(name: str, values: dict | None = None):
    """The method's options dataclass built from `values`, with unknown keys rejected."""
    cls = METHODS[name].Options
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"method {name!r} has no options {sorted(unknown)}; it has {sorted(known)}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(str(err)) from err


def resolve(cfg):
    """Check that a RunConfig names a method and normalise its options through the method's own Options
    dataclass (unknown keys and ranges are refused with a ConfigError). Every path that starts or reads a
    run calls this: the trainer, the CLI, a link, the Train page, a recording. Returns cfg, resolved."""
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method {cfg.method!r}; choose from {sorted(METHODS)}")
    cfg.method_options = asdict(method_options(cfg.method, cfg.method_options))
    return cfg


__all__ = ["METHODS", "Method", "NoOptions", "RunContext", "method_options", "resolve"]
