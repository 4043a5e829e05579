"""The Train page's controls and a RunConfig, both ways (no gradio here).

The controls travel as one mapping keyed by the names the web API uses (`lesson`, `files`, `method`, `model`,
`steps_per_task`, `lr`, `batch_size`, `eval_every`, `seed`, `method_options` and one key per option field,
see `option_fields`). `build_config` turns such a mapping into a resolved RunConfig or raises an error whose
message a user can act on (`user_message`); `control_values` goes back from a config to the controls
(a shareable link sets them). Method options are generic: they come from each method's `Options`
dataclass and its `knob` metadata (cit_core/config.py), never from a list of method names.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cit_core.config import ConfigError, LessonConfig, ModelConfig, RunConfig, TrainConfig, help_text
from cit_core.lessons import BUILTIN
from cit_core.lessons.files import LessonFileError
from cit_core.methods import METHODS, method_options, resolve
from cit_core.model import ModelUnavailable
from cit_core.settings import settings
from cit_core.threads import default_threads

from .registry import RegistryFull

LESSON_DEFAULT = "default"
LESSON_CLASSIC = "classic"
LESSON_FILES = "uploaded files"
# a method with at most this many options, all of them numbers with a range, shows a number field for
# each; longer lists (or names, choices) go in the one "Method options" text box, so that thirteen methods'
# knobs never pile up as fields on the page
MAX_OPTION_FIELDS = 2

# readable names for the fields an error message names (ConfigError says "TrainConfig.lr must be ...")
FIELD_LABELS = {
    "TrainConfig.steps_per_task": "Steps per task",
    "TrainConfig.lr": "Learning rate",
    "TrainConfig.batch_size": "Batch size",
    "TrainConfig.eval_every": "Evaluate every",
    "TrainConfig.seed": "Seed",
    "ReplayOptions.per_task": "Replay: examples kept per task",
    "ReplayOptions.mix_ratio": "Replay: buffer share of each batch",
    "ModelConfig.name": "Model",
}


class UserError(ValueError):
    """A problem the user can fix; the message is shown as is."""


def friendly(message: str) -> str:
    for name, label in FIELD_LABELS.items():
        message = message.replace(name, label)
    return message


def user_message(err: BaseException) -> str:
    """One readable line for the errors a user can cause; never a traceback."""
    if isinstance(err, (UserError, ConfigError)):
        return friendly(str(err))
    if isinstance(err, LessonFileError):
        return f"Lesson file problem: {err}"
    if isinstance(err, ModelUnavailable):
        return f"Model unavailable: {err}"
    if isinstance(err, RegistryFull):
        return str(err)
    return f"Could not start the run ({type(err).__name__}: {err})"


def is_user_error(err: BaseException) -> bool:
    """An error the user caused and can fix (no traceback in the log for these)."""
    return isinstance(err, (UserError, ConfigError, LessonFileError, ModelUnavailable, RegistryFull))


# -- the hardware's share of a run -----------------------------------------------------------------
def train_concurrency() -> int:
    """How many Play/Step events may train at once, sized from the hardware found (env CIT_TRAIN_CONCURRENCY):
    half the CPU cores without CUDA (one run at a time on a 2-vCPU CPU-basic Space), up to 4 with CUDA."""
    if settings().train_concurrency:
        return settings().train_concurrency
    import torch
    from .spaces_gpu import train_concurrency_for
    return train_concurrency_for(os.cpu_count(), torch.cuda.is_available())


def torch_threads() -> int:
    """Torch threads per app run: cit_core.threads.default_threads split over the runs that may train at
    once, one core always left to the rest of the machine (1 on a 2-core machine; env CIT_TORCH_THREADS
    overrides). Measured idle and busy in bench/thread_policy.py (bench/RESULTS.md, "Thread policy")."""
    return default_threads(train_concurrency())


# -- method options, from each method's Options dataclass ------------------------------------------
@dataclass(frozen=True)
class OptionField:
    """One method option shown as a number field of its own."""
    method: str
    option: str
    label: str
    info: str
    integer: bool
    default: Any

    @property
    def key(self) -> str:
        """The field's name in the controls mapping and the web API, e.g. 'replay_per_task'."""
        return f"{self.method}_{self.option}"


def _is_number_knob(f) -> bool:
    meta = f.metadata
    ranged = meta.get("lo") is not None or meta.get("hi") is not None
    return ranged and meta.get("choices") is None and type(f.default) in (int, float)


def option_fields(method: str) -> list[OptionField]:
    """The method's options shown as number fields; [] when they go in the text box (or it has none)."""
    if method not in METHODS:
        return []
    cls = METHODS[method].Options
    knobs = fields(cls)
    if not knobs or len(knobs) > MAX_OPTION_FIELDS or not all(map(_is_number_knob, knobs)):
        return []
    return [OptionField(method, f.name, FIELD_LABELS.get(f"{cls.__name__}.{f.name}", f"{method}: {f.name}"),
                        help_text(cls, f.name), type(f.default) is int, f.default) for f in knobs]


def all_option_fields() -> dict[str, list[OptionField]]:
    """method -> its option fields, for the methods that have some (the page builds one group each)."""
    return {m: option_fields(m) for m in METHODS if option_fields(m)}


def has_text_options(method: str) -> bool:
    """The method's options are typed in the text box (it has options, and no fields for them)."""
    return method in METHODS and bool(fields(METHODS[method].Options)) and not option_fields(method)


def parse_options(text: str | None) -> dict:
    """'key=value' pairs separated by commas or new lines (values read as JSON when they parse), as the
    CLI's --option; the method's own options dataclass then checks names and ranges."""
    options = {}
    for item in re.split(r"[,\n]", text or ""):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"Method options must be key=value pairs, got {item!r}.")
        value = value.strip()
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def options_help(method: str) -> str:
    """The selected method's options with defaults, help and ranges, read from its Options dataclass."""
    if method not in METHODS:
        return ""
    cls = METHODS[method].Options
    items = [f"- `{f.name}` (default `{f.default!r}`): {help_text(cls, f.name)}" for f in fields(cls)]
    if not items:
        return "_This method has no options._"
    return "Options of this method (`key=value`, comma-separated; empty = defaults):\n" + "\n".join(items)


def options_text(method: str, options: dict) -> str:
    """The 'Method options' text for the options that differ from the method's defaults."""
    defaults = asdict(method_options(method))
    return ", ".join(f"{k}={v}" for k, v in options.items() if v != defaults.get(k))


def keep_options(text: str, method: str) -> str:
    """The options text kept when the method changes: only if every key is an option of the new method
    (a link or a workshop step sets method and options together; a hand-picked method starts clean)."""
    if method not in METHODS:
        return ""
    try:
        options = parse_options(text)
        method_options(method, options)
    except (UserError, ConfigError):
        return ""
    return text if options else ""


# -- Hub downloads ----------------------------------------------------------------------------------
def downloads_possible() -> bool:
    """Whether this server may download a Hub model at all: its operator's switch (CIT_ALLOW_HUB; off on a
    public Space unless set) and HF_HUB_OFFLINE. cit_core.model enforces the same; the page only says it."""
    return settings().allow_hub and not settings().hf_offline


def download_info() -> str:
    """The 'allow download' box's help line: what ticking it does on this server."""
    if downloads_possible():
        return "lets a Hugging Face model id typed above be downloaded (needs network); off: only local models"
    return ("this server does not download models (its operator turned Hub downloads off: CIT_ALLOW_HUB=0, "
            "a public Space, or HF_HUB_OFFLINE=1); only models already on it can be used")


# -- the controls -> a RunConfig ------------------------------------------------------------------------
@dataclass
class Controls:
    """The values of the config controls, by their API names; `option_values` holds the option fields'."""
    lesson: str = LESSON_DEFAULT
    files: list = field(default_factory=list)
    method: str = "seqft"
    model: str = "tiny"
    steps_per_task: float | None = None
    lr: float | None = None
    batch_size: float | None = None
    eval_every: float | None = None
    seed: float | None = None
    method_options: str = ""
    allow_download: bool = False        # the user asked for a Hub download (the server may still refuse)
    option_values: dict = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "Controls":
        """Controls from one mapping of control values (what an event receives), option fields included."""
        own = {f.name for f in fields(cls)} - {"option_values"}
        return cls(**{k: v for k, v in values.items() if k in own},
                   option_values={k: v for k, v in values.items() if k not in own})


def number(value, label: str, integer: bool):
    """`value` (a widget's number, or text) as an int or float; UserError naming `label` if it is not one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"{label} is empty: type a number.")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{label} must be a number, got {value!r}.") from None
    if integer:
        if out != out or out in (float("inf"), float("-inf")) or out != int(out):
            raise UserError(f"{label} must be a whole number, got {value!r}.")
        return int(out)
    return out


def file_paths(files) -> list[str]:
    """Paths of uploaded files, whichever shape the upload widget or the API gave them in."""
    out = []
    for f in files or []:
        if isinstance(f, str):
            out.append(f)
        elif isinstance(f, dict) and f.get("path"):
            out.append(f["path"])
        elif getattr(f, "name", None):
            out.append(f.name)
    return out


def _lesson(c: Controls) -> LessonConfig:
    if c.lesson == LESSON_FILES:
        paths = file_paths(c.files)
        if not paths:
            raise UserError("The lesson is 'uploaded files' but no file is uploaded: upload lesson files "
                            "(JSONL, SuperNI JSON or TRACE JSON) or choose the default lesson.")
        return LessonConfig(files=paths)
    if c.lesson in BUILTIN:
        return LessonConfig(name=c.lesson)
    raise UserError(f"Unknown lesson {c.lesson!r}.")


def _train(c: Controls) -> TrainConfig:
    return TrainConfig(steps_per_task=number(c.steps_per_task, "Steps per task", True),
                       lr=number(c.lr, "Learning rate", False),
                       batch_size=number(c.batch_size, "Batch size", True),
                       eval_every=number(c.eval_every, "Evaluate every", True),
                       seed=number(c.seed, "Seed", True),
                       threads=torch_threads())


def _method_options(c: Controls) -> dict:
    shown = option_fields(c.method)
    if shown:
        return {f.option: number(c.option_values.get(f.key), f.label, f.integer) for f in shown}
    return parse_options(c.method_options) if has_text_options(c.method) else {}


def build_config(c: Controls) -> RunConfig:
    """RunConfig from the controls; raises UserError / ConfigError with a readable message."""
    if c.method not in METHODS:
        raise UserError(f"Unknown method {c.method!r}; choose one from the list.")
    model = (c.model or "").strip()
    if not model:
        raise UserError("Model is empty: choose 'tiny', 'smollm2', or type a Hugging Face model id.")
    lesson, train = _lesson(c), _train(c)
    model_cfg = ModelConfig(name=model, allow_download=bool(c.allow_download))
    return resolve(RunConfig(method=c.method, model=model_cfg, train=train, lesson=lesson,
                             method_options=_method_options(c)))


def user_settings(cfg: RunConfig) -> dict:
    """What the user set: the config without the thread count (the app picks it from the hardware)."""
    data = cfg.to_dict()
    data["train"] = {k: v for k, v in data["train"].items() if k != "threads"}
    return data


# -- a RunConfig -> the controls -------------------------------------------------------------------------
def control_values(cfg: RunConfig) -> dict:
    """Values for the config controls (uploaded files aside), by their API names: a link sets them. Option
    fields of another method than cfg's keep their defaults."""
    values = {"lesson": cfg.lesson.name, "method": cfg.method, "model": cfg.model.name,
              "steps_per_task": cfg.train.steps_per_task, "lr": cfg.train.lr, "batch_size": cfg.train.batch_size,
              "eval_every": cfg.train.eval_every, "seed": cfg.train.seed,
              "method_options": options_text(cfg.method, cfg.method_options) if has_text_options(cfg.method) else "",
              "allow_download": cfg.model.allow_download}
    for shown in all_option_fields().values():
        for f in shown:
            values[f.key] = cfg.method_options[f.option] if f.method == cfg.method else f.default
    return values


CONTROL_NAMES = tuple(control_values(resolve(RunConfig())))    # every control a link sets, in page order

__all__ = ["Controls", "UserError", "OptionField", "build_config", "control_values", "user_message", "friendly",
           "is_user_error", "option_fields", "all_option_fields", "has_text_options", "parse_options", "options_help",
           "options_text", "keep_options", "number", "file_paths", "user_settings", "train_concurrency",
           "torch_threads", "downloads_possible", "download_info", "CONTROL_NAMES", "LESSON_DEFAULT", "LESSON_CLASSIC",
           "LESSON_FILES"]
