"""A run's settings and the page's view flags as a URL query string, like TensorFlow Playground's links.

    ?method=lcia&lesson=default&model=tiny&seed=1&steps=40&lr=0.001&batch=32&eval=25&opt.tau=0.3
    ?workshop=forgetting&step=2&hide=method,lr

Keys (PARAMS): `method`, `lesson`, `model`, `seed`, `steps` (per task), `lr`, `batch`, `eval` (evaluate
every N steps); a method's options are `opt.<name>` (only those that differ from the method's defaults are
written). `allow_download=1` (OPT_IN) lets the run download a Hugging Face model id; it is written only when
set, and a server whose operator turned Hub downloads off (cit_core.settings: allow_hub) still refuses.
View flags: `hide` (comma-separated names from HIDEABLE; `hide=` hides nothing), `workshop` (a
ready-made lesson: its own query strings, one per guided step, are the base the link's keys override) and
`step` (1-based guided step; steps 1..N of a workshop apply in turn).

What a link cannot carry: uploaded lesson files, and the settings the Train tab has no control for (model
size, weight decay, clipping, evaluation batch, prompt length, threads, held-out size) - they keep their
defaults. Decoding never raises: every bad key or value becomes one line in `UrlState.errors` and that
setting keeps its default (or the workshop's value).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from urllib.parse import parse_qsl, urlencode

from cit_core.config import ConfigError, LessonConfig, ModelConfig, RunConfig, TrainConfig
from cit_core.lessons import BUILTIN
from cit_core.methods import METHODS, method_options, resolve

# query key -> (RunConfig section, field)
PARAMS = {
    "lesson": ("lesson", "name"),
    "model": ("model", "name"),
    "seed": ("train", "seed"),
    "steps": ("train", "steps_per_task"),
    "lr": ("train", "lr"),
    "batch": ("train", "batch_size"),
    "eval": ("train", "eval_every"),
}
# keys written only when true (as `1`): a link asks for a download only when its author did
OPT_IN = {
    "allow_download": ("model", "allow_download"),
}
OPTION_PREFIX = "opt."
FLAGS = ("workshop", "step", "hide")
HIDEABLE = ("lesson", "method", "options", "model", "steps", "lr", "batch", "eval", "seed", "step")
MAX_QUERY_CHARS = 2000          # a link longer than this is not something a person typed or shared
MAX_FIELDS = 64
MAX_VALUE_CHARS = 200
# keys other parts of the page read from the URL (Gradio's `view`; the Class board's `room`): not the Train
# tab's to judge
FOREIGN = ("view", "room")


class UrlConfigError(ValueError):
    """A configuration that cannot be written into a link (e.g. uploaded lesson files)."""


@dataclass
class UrlState:
    config: RunConfig
    hide: tuple[str, ...] = ()
    workshop: str | None = None
    step: int = 1
    errors: list[str] = field(default_factory=list)

    def message(self) -> str:
        """One paragraph for the page; empty when the link was fine."""
        if not self.errors:
            return ""
        return ("The link's settings had problems; those settings keep their defaults: "
                + "; ".join(self.errors))


# -- encoding ------------------------------------------------------------------------------------
def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)           # the shortest text that reads back as the same float
    return str(value)


def encode(cfg: RunConfig, hide: Sequence[str] = (), workshop: str | None = None, step: int | None = None) -> str:
    """The query string (without '?') for `cfg` and the view flags; decode() reads it back to `cfg`."""
    if cfg.lesson.files or cfg.lesson.name not in BUILTIN:
        raise UrlConfigError("a link can only carry a built-in lesson; uploaded lesson files stay on this computer")
    pairs: list[tuple[str, str]] = []
    if workshop:
        pairs.append(("workshop", workshop))
        if step is not None:
            pairs.append(("step", str(step)))
    pairs.append(("method", cfg.method))
    for key, (section, name) in PARAMS.items():
        pairs.append((key, _text(getattr(getattr(cfg, section), name))))
    for key, (section, name) in OPT_IN.items():
        if getattr(getattr(cfg, section), name):
            pairs.append((key, "1"))
    defaults = asdict(method_options(cfg.method))
    for name, value in cfg.method_options.items():
        if value != defaults.get(name):
            pairs.append((OPTION_PREFIX + name, _text(value)))
    if hide or workshop:              # a workshop's own hide list is replaced only when written out
        pairs.append(("hide", ",".join(hide)))
    return urlencode(pairs, safe=",")


# -- decoding ------------------------------------------------------------------------------------
def _pairs(query) -> list[tuple[str, str]]:
    """(key, value) pairs from a query string, a mapping or a list of pairs."""
    if isinstance(query, str):
        return parse_qsl(query.lstrip("?"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    if isinstance(query, Mapping):
        items = query.multi_items() if hasattr(query, "multi_items") else query.items()
        return [(str(k), str(v)) for k, v in items]
    return [(str(k), str(v)) for k, v in query or []]


def _merge(pairs, errors: list[str]) -> dict[str, str]:
    """Later pairs win; a key given twice in one link is reported."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if not key:                   # stray '&' or '=' in a hand-edited link
            continue
        if key in out:
            errors.append(f"'{key}' is given more than once (the last value is used)")
        out[key] = value
    return out


def _typed(raw: str, like, key: str):
    """`raw` read as the type of `like` (the field's default); ValueError with a readable message."""
    if len(raw) > MAX_VALUE_CHARS:
        raise ValueError(f"{key} is too long ({len(raw)} characters)")
    if isinstance(like, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{key} must be true or false, got {raw!r}")
    if isinstance(like, int):
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{key} must be a whole number, got {raw!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"{key} must be a whole number, got {raw!r}")
        return int(number)
    if isinstance(like, float):
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {raw!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{key} must be a finite number, got {raw!r}")
        return number
    if not raw.strip():
        raise ValueError(f"{key} is empty")
    return raw.strip()


def _set_field(cfg: RunConfig, key: str, raw: str) -> RunConfig:
    section, name = PARAMS[key] if key in PARAMS else OPT_IN[key]
    part = getattr(cfg, section)
    value = _typed(raw, getattr(part, name), key)
    if key == "lesson" and value not in BUILTIN:
        raise ValueError(f"lesson must be one of {sorted(BUILTIN)}, got {raw!r}")
    try:
        new_part = replace(part, **{name: value})      # the section's own checks run here
    except ConfigError as err:
        raise ValueError(f"{key}: {_plain(str(err), section, name, key)}") from None
    return replace(cfg, **{section: new_part})


def _plain(message: str, section: str, name: str, key: str) -> str:
    owner = {"lesson": LessonConfig, "model": ModelConfig, "train": TrainConfig}[section].__name__
    return message.replace(f"{owner}.{name} ", "")


def _options(method: str, base: dict, given: dict[str, str], errors: list[str]) -> dict:
    """The method's options: `base`, then each `opt.` value that parses and passes the method's checks."""
    defaults = asdict(method_options(method))
    good = {k: v for k, v in base.items() if k in defaults}
    for name, raw in given.items():
        key = OPTION_PREFIX + name
        if name not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            errors.append(f"{key}: method '{method}' has no option '{name}' (its options: {known})")
            continue
        try:
            value = _typed(raw, defaults[name], key)
            method_options(method, {**good, name: value})
        except (ValueError, ConfigError) as err:
            errors.append(f"{key}: {err}" if isinstance(err, ConfigError) else str(err))
            continue
        good[name] = value
    return asdict(method_options(method, good))


def _flags(values: dict[str, str], presets: Mapping[str, Sequence[str]], errors: list[str]):
    """(workshop, step) from the link, checked against the known workshops."""
    name, step = values.get("workshop"), 1
    if name is not None and name not in presets:
        known = ", ".join(sorted(presets)) or "none"
        errors.append(f"workshop: no workshop named {name[:40]!r} (known: {known})")
        name = None
    if "step" in values:
        n_steps = len(presets[name]) if name else 1
        try:
            step = _typed(values["step"], 1, "step")
            if not 1 <= step <= n_steps:
                raise ValueError(f"step must be between 1 and {n_steps}, got {values['step']!r}")
        except ValueError as err:
            errors.append(str(err))
            step = 1
    return name, step


def _hide(raw: str, errors: list[str]) -> tuple[str, ...]:
    out = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if item not in HIDEABLE:
            errors.append(f"hide: {item[:40]!r} is not a control that can be hidden (choose from {', '.join(HIDEABLE)})")
        elif item not in out:
            out.append(item)
    return tuple(out)


def decode(query, presets: Mapping[str, Sequence[str]] | None = None) -> UrlState:
    """The settings a link asks for. `presets` maps a workshop name to its guided steps' query strings."""
    presets = presets or {}
    errors: list[str] = []
    if isinstance(query, str) and len(query) > MAX_QUERY_CHARS:
        return UrlState(RunConfig(), errors=[f"the link's query is too long ({len(query)} characters, at most "
                                             f"{MAX_QUERY_CHARS}); every setting keeps its default"])
    try:
        values = _merge(_pairs(query), errors)
    except ValueError:                           # parse_qsl: more than MAX_FIELDS fields
        return UrlState(RunConfig(), errors=[f"the link has more than {MAX_FIELDS} settings; every setting keeps "
                                             "its default"])
    workshop, step = _flags(values, presets, errors)
    if workshop:
        base: dict[str, str] = {}
        for preset in presets[workshop][:step]:  # guided steps apply in turn
            base.update(_pairs(preset))
        values = {**base, **{k: v for k, v in values.items() if k not in ("workshop", "step")}}
    return _build(values, workshop, step, errors)


def _build(values: dict[str, str], workshop, step, errors: list[str]) -> UrlState:
    cfg = resolve(RunConfig())
    method = values.get("method")
    if method is not None:
        if method in METHODS:
            cfg = replace(cfg, method=method, method_options=asdict(method_options(method)))
        else:
            errors.append(f"method: no method named {method[:40]!r} (choose from {', '.join(METHODS)})")
    options: dict[str, str] = {}
    for key, raw in values.items():
        if key in PARAMS or key in OPT_IN:
            try:
                cfg = _set_field(cfg, key, raw)
            except ValueError as err:
                errors.append(str(err))
        elif key.startswith(OPTION_PREFIX):
            options[key[len(OPTION_PREFIX):]] = raw
        elif key not in ("method", *FLAGS) and key not in FOREIGN and not key.startswith("__"):
            known = ", ".join([*PARAMS, *OPT_IN, "method", "opt.<name>", *FLAGS])
            errors.append(f"unknown setting {key[:40]!r} (known: {known})")
    cfg = replace(cfg, method_options=_options(cfg.method, cfg.method_options, options, errors))
    hide = _hide(values.get("hide", ""), errors)
    return UrlState(cfg, hide, workshop, step, errors)


def shareable(cfg: RunConfig) -> RunConfig:
    """`cfg` with only what a link carries: the other settings back at their defaults."""
    out = resolve(RunConfig(method=cfg.method, method_options=dict(cfg.method_options)))
    for section, name in (*PARAMS.values(), *OPT_IN.values()):
        part = getattr(out, section)
        out = replace(out, **{section: replace(part, **{name: getattr(getattr(cfg, section), name)})})
    return out


__all__ = ["encode", "decode", "shareable", "UrlState", "UrlConfigError", "PARAMS", "OPT_IN", "HIDEABLE", "OPTION_PREFIX"]
