"""A gallery recording played back as if it were training (the Train tab's "Watch" puts it in a session's
place, so every view follows it step by step). Serving, not engine: it exists so that a web session can
hold a recording where it would hold a live run (serve.handles.RunHandle). Below it, the gallery's
recordings as the Train page offers them (labels that tell them apart, the one matching a live run's settings)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cit_core.config import ConfigError, RunConfig, TrainConfig
from cit_core.events import RunLog
from cit_core.gallery import GalleryError, _after, entry, events, index


class Recording:
    """A recorded run played back as if it were training, with no model and no CPU cost.

    It has the parts of a Trainer that the app reads (`cfg`, `lesson`, `log`, `advance`, `finished`,
    `steps_done`, `run_dir`, `snapshots`) and folds the recording's events into `log` exactly as the live
    trainer emitted them: `advance(n)` stops where the trainer would have paused after n more steps, so
    a view shows the same data at the same step as it did during the recorded run. It has no weights:
    probes that need the model (connectivity, sample answers) say so.
    """

    recorded = True
    has_weights = False      # serve.handles.RunHandle: no model to probe
    steps_per_call = 4       # steps per frame of a playback: the default lesson's 225 steps in about 5 s

    def __init__(self, name: str, root: Path | None = None):
        from cit_core.methods import resolve                # late: listing and loading recordings stays torch-free
        from cit_core.lessons import Lesson, load_lesson
        self.name = name
        self.entry = entry(name, root)
        self._events = list(events(name, root))
        self._next = 0
        self.cfg = resolve(RunConfig.from_dict(self.entry["config"]))
        self.log = RunLog()
        self.run_dir = None
        self.snapshots: dict = {}
        try:
            self.lesson = load_lesson(self.cfg.lesson, seed=self.cfg.train.seed)   # generated: cheap
        except (OSError, ValueError):                # a file lesson that is not on this machine
            self.lesson = Lesson("recorded", [_NamedTask(t) for t in self.entry["tasks"]])
        self.advance(0)                              # RunStarted, the base evaluation, task 1 starts

    @property
    def steps_done(self) -> int:
        return self.log.step

    @property
    def finished(self) -> bool:
        return self.log.finished

    def advance(self, steps: int) -> list:
        """Fold the events up to `steps` more optimizer steps (with the evaluations that follow them)."""
        target, out = self.log.step + steps, []
        while self._next < len(self._events) and not _after(self._events[self._next], target):
            event = self._events[self._next]
            self.log.add(event)
            out.append(event)
            self._next += 1
        return out

    def close(self) -> None:
        """Nothing to free: a recording holds no model (serve.handles.RunHandle)."""

    def run_to_end(self) -> dict:
        self.advance(self.log.total_steps)
        return self.log.summary or {}


@dataclass
class _NamedTask:
    """Stands in for a Task of a lesson that cannot be rebuilt here: its name is all a recording needs."""
    name: str
    description: str = "recorded task (its lesson file is not on this machine)"
    train: list = field(default_factory=list)
    eval: list = field(default_factory=list)


# -- the gallery's recordings as the Train page offers them -----------------------------------------------
MODEL_SHORT = {"tiny": "tiny base", "tiny-scratch": "tiny, random init", "smollm2": "SmolLM2-135M"}
SCHEDULE = (("steps_per_task", "{} steps/task"), ("batch_size", "batch {}"), ("lr", "lr {}"))
RECORDING_VS_LIVE = ("a recording reproduces its numbers exactly only on the processor and thread count that made "
                     "it: elsewhere float sums run in another order, tiny differences change the training "
                     "trajectory, and a live run with the same settings ends with somewhat different scores")


def readable(value) -> str:
    """A knob's value as a person writes it: 1000000.0 -> '1,000,000', 0.0020 -> '0.002', True -> 'on'."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        if float(value).is_integer() and abs(value) >= 1:
            return f"{int(value):,}"
        return f"{value:.3g}"
    return str(value)


def recording_label(e: dict, knobs: list[str]) -> str:
    """Method, base model, lesson, a schedule that is not the default, the given knobs, headline numbers."""
    from cit_core.methods import METHODS          # late, as in Recording: listing recordings stays torch-free
    cls = METHODS.get(e["method"])
    title = cls.title if cls else e["method"]
    cfg = e["config"]
    model = (cfg.get("model") or {}).get("name", "?")
    parts = [title, MODEL_SHORT.get(model, model), f"{(cfg.get('lesson') or {}).get('name') or 'custom'} lesson"]
    train, default = cfg.get("train") or {}, TrainConfig()
    parts += [fmt.format(readable(train[k])) for k, fmt in SCHEDULE if k in train and train[k] != getattr(default, k)]
    options = cfg.get("method_options") or {}
    parts += [f"{k} {readable(options[k])}" for k in knobs if k in options]
    m = e["metrics"]
    parts.append(f"AP {m.get('AP', float('nan')):.2f} · forgetting {m.get('forgetting', float('nan')):.2f}")
    return " · ".join(parts)


def _telling_knobs(same: list[dict]) -> list[str]:
    """The options whose values differ between these recordings of one method."""
    def options(e):
        return e["config"].get("method_options") or {}
    return sorted({k for o in same for k in options(o) if len({repr(options(x).get(k)) for x in same}) > 1})


def gallery_choices() -> list[tuple[str, str]]:
    """(label, name) of every recording, the tiny-model ones first: labels name the method, the base model
    and the lesson, and only the knobs that tell two recordings of one method apart."""
    try:
        entries = index()
    except GalleryError:
        return []                      # a damaged gallery must not take the Train page down; Watch says why
    by_method: dict[str, list[dict]] = {}
    for e in entries:
        by_method.setdefault(e["method"], []).append(e)
    out = [(recording_label(e, _telling_knobs(by_method[e["method"]])), e["name"],
            (e["config"].get("model") or {}).get("name") != "tiny") for e in entries]
    out.sort(key=lambda item: item[2])                  # stable: the index order within each group
    return [(label, name) for label, name, _ in out]


def recorded_settings(name: str) -> tuple[str, str] | None:
    """(method, options text) of the recording `name`, for the controls; None if there is no such recording."""
    from .controls import options_text           # late: it imports the method registry (torch)
    try:
        e = entry(name)
    except GalleryError:
        return None
    return e["method"], options_text(e["method"], e["config"].get("method_options") or {})


def matching_recording(cfg) -> dict | None:
    """The gallery entry recorded with exactly these settings (thread count aside), if any."""
    from cit_core.methods import resolve
    from .controls import user_settings           # late: it imports the method registry (torch)
    try:
        entries = index()
    except GalleryError:
        return None
    mine = user_settings(cfg)
    for e in entries:
        try:
            theirs = user_settings(resolve(RunConfig.from_dict(e["config"])))
        except (ConfigError, KeyError, TypeError, ValueError):
            continue
        if theirs == mine:
            return e
    return None


def recording_note(cfg, ap: float | None) -> str:
    """Said under a finished live run whose settings match a recording: why the numbers may differ."""
    e = matching_recording(cfg)
    if e is None or ap is None:
        return ""
    theirs = e["metrics"].get("AP")
    if theirs is None:
        return ""
    return (f"the recording '{e['name']}' of these settings ended at AP {theirs:.2f}, this run at {ap:.2f}: "
            + RECORDING_VS_LIVE)
