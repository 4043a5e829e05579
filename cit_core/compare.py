"""Several saved runs side by side: per-run rows, mean ± std over seeds, difference matrices (plain data).

A run is read from its directory: summary.json when the run finished, else its events folded into a
RunLog (an unfinished run shows what it has, and is left out of the averages). No gradio, no plotly.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .events import RunLog
from .methods import METHODS
from .metrics import format_value, relative_gain
from .runs import read_run

METRICS = ("AP", "BWT", "FWT", "forgetting", "RG")


class CompareError(ValueError):
    """Runs that cannot be compared (missing, unreadable, different task lists); the message is for users."""


@dataclass
class RunRecord:
    name: str
    path: Path
    config: dict
    log: RunLog
    summary: dict | None

    @property
    def method(self) -> str:
        return self.log.method or self.config.get("method", "?")

    @property
    def seed(self):
        return self.config.get("train", {}).get("seed")

    @property
    def lesson(self) -> str:
        lesson = self.config.get("lesson", {})
        files = lesson.get("files") or []
        return lesson.get("name", "?") if not files else "files: " + ", ".join(Path(f).name for f in files)

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def metrics(self) -> dict:
        """The summary's metrics (finished runs); the metrics over the tasks done so far otherwise."""
        return dict(self.summary["metrics"]) if self.summary else self.log.metrics()


def load_run(path) -> RunRecord:
    """Read one run directory; CompareError when it is not one."""
    path = Path(path)
    if not (path / "events.jsonl").is_file():
        raise CompareError(f"{path} is not a run directory (no events.jsonl)")
    try:
        config = _read_json(path / "config.json") or {}
        summary = _read_json(path / "summary.json")
        log = read_run(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CompareError(f"cannot read run {path}: {err}") from err
    return RunRecord(path.name, path, config, log, summary)


def _read_json(path: Path):
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def disk_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and not f.is_symlink())


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def store_row(record: RunRecord) -> dict:
    """One line of the Runs table."""
    m = record.metrics if record.finished else {}
    created = (record.path / "config.json") if (record.path / "config.json").exists() else record.path
    return {
        "run": record.name, "method": record.method, "lesson": record.lesson, "seed": record.seed,
        "tasks done": f"{len(record.log.acc_matrix)} / {len(record.log.tasks)}",
        **{k: (round(m[k], 3) if k in m else ("failed" if record.log.error else "unfinished"))
           for k in ("AP", "BWT", "forgetting")},
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created.stat().st_mtime)),
        "size": human_size(disk_size(record.path)),
    }


def run_row(record: RunRecord, upper: list[float] | None = None) -> dict:
    """One row per run for the compare table and CSV: metrics straight from summary.json (None if unfinished).

    `upper`: per-task upper bounds for RG (`single_task_bounds` of a per-task run); default each task's own
    score right after training it, as in summary.json.
    """
    s = record.summary or {}
    m = dict(s.get("metrics", {}))
    if upper is not None and record.finished:
        m["RG"] = relative_gain([record.log.base_scores or [0.0] * len(upper), *record.log.acc_matrix], upper)
    return {"run": record.name, "method": record.method, "lesson": record.lesson, "seed": record.seed,
            **{k: m.get(k) for k in METRICS}, "wall_s": s.get("wall_s"), "finished": record.finished}


def single_task_bounds(upper: RunRecord, runs: list[RunRecord]) -> list[float]:
    """InsCL's single-task upper bound U_i for RG: each task's score right after training it in a finished
    per-task run (`oracle_lora` trains every task alone from the base), for runs on the same tasks."""
    if not upper.finished:
        raise CompareError(f"{upper.name} has not finished: its scores cannot serve as upper bounds")
    for run in runs:
        if run.log.tasks != upper.log.tasks:
            raise CompareError(f"{run.name} and {upper.name} have different tasks; RG needs the same tasks")
    return [row[i] for i, row in enumerate(upper.log.acc_matrix)]


def grouped(rows: list[dict]) -> list[dict]:
    """Per (method, lesson), in first-seen order: mean and population std (numpy's default) over the
    finished runs' metrics; `seeds` lists which seeds went in."""
    out = []
    for key in dict.fromkeys((r["method"], r["lesson"]) for r in rows):
        mine = [r for r in rows if (r["method"], r["lesson"]) == key and r["finished"]]
        entry = {"method": key[0], "lesson": key[1], "runs": len(mine), "seeds": [r["seed"] for r in mine]}
        for name in (*METRICS, "wall_s"):
            values = np.array([r[name] for r in mine if r[name] is not None], dtype=float)
            entry[name] = (float(values.mean()), float(values.std())) if values.size else None
        out.append(entry)
    return out


def full_matrix(record: RunRecord) -> tuple[list[str], list[list[float]]]:
    """Row labels and rows of R: the base row (when evaluated), then one row per finished task."""
    log = record.log
    labels = [f"after {i + 1}. {t}" for i, t in enumerate(log.tasks[:len(log.acc_matrix)])]
    rows = [list(r) for r in log.acc_matrix]
    if log.base_scores:
        labels, rows = ["before training", *labels], [list(log.base_scores), *rows]
    return labels, rows


def difference(a: RunRecord, b: RunRecord) -> dict:
    """B − A over the rows of R both runs reached (base row included); the tasks must be the same."""
    if a.log.tasks != b.log.tasks:
        raise CompareError(f"runs {a.name} and {b.name} have different tasks ({a.log.tasks} vs {b.log.tasks}); "
                           "their matrices cannot be subtracted")
    labels_a, ra = full_matrix(a)
    _, rb = full_matrix(b)
    n = min(len(ra), len(rb))
    if n == 0:
        raise CompareError(f"{a.name} or {b.name} has no scores yet")
    diff = (np.asarray(rb[:n], float) - np.asarray(ra[:n], float)).tolist()
    return {"tasks": list(a.log.tasks), "rows": labels_a[:n], "values": diff}


def curves(record: RunRecord) -> dict:
    """Every task's score at each evaluation, by global step: {"steps": [...], "scores": [[per task]...]}."""
    return record.log.curves()


def unique(records) -> list[RunRecord]:
    """The records in order, each run once (the same run named twice counts once)."""
    out, seen = [], set()
    for rec in records:
        key = str(rec.path.resolve())
        if key not in seen:
            seen.add(key)
            out.append(rec)
    return out


def load_runs(paths) -> list[RunRecord]:
    return unique(load_run(p) for p in paths)


def format_pm(pair) -> str:
    return "—" if pair is None else f"{pair[0]:.3f} ± {pair[1]:.3f}"


def table_text(rows: list[dict]) -> str:
    """The per-run table as aligned plain text (CLI)."""
    header = ["run", "method", "seed", *METRICS, "wall_s"]
    cells = [[str(r["run"]), str(r["method"]), str(r["seed"])]
             + [("unfinished" if not r["finished"] else format_value(k, r[k])) for k in METRICS]
             + ["" if r["wall_s"] is None else f"{r['wall_s']:.1f}"] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# -- labels -----------------------------------------------------------------------------------------
MODEL_NAMES = {"tiny": "tiny base", "tiny-scratch": "tiny scratch", "smollm2": "SmolLM2-135M"}
SCHEDULE = (("steps_per_task", "{} steps/task"), ("batch_size", "batch {}"), ("lr", "lr {:g}"))
TRAIN_DEFAULTS = TrainConfig()


def short_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def recording_label(entry: dict) -> str:
    """A recording (a gallery index entry) as a learner can tell it apart: method · model (base) · lesson,
    then only the knobs that differ from the defaults (method options, schedule): `LCIA (…) · SmolLM2-135M
    · classic lesson · 30 steps/task, batch 8, lr 0.001`, never every option (`lam=100000000.0`)."""
    config = entry.get("config") or {}
    method = entry.get("method") or config.get("method", "?")
    cls = METHODS.get(method)
    parts = [cls.title if cls else method]
    model = (config.get("model") or {}).get("name", "tiny")
    parts.append(MODEL_NAMES.get(model, model))
    lesson = entry.get("lesson") or (config.get("lesson") or {}).get("name", "")
    if lesson and lesson != "default":
        parts.append(f"{lesson} lesson")
    knobs = _changed_knobs(config, cls)
    if knobs:
        parts.append(", ".join(knobs))
    return " · ".join(parts)


def _changed_knobs(config: dict, cls) -> list[str]:
    """The method options and schedule settings of a run config that differ from their defaults."""
    knobs = []
    defaults = {f.name: f.default for f in fields(cls.Options)} if cls is not None else {}
    for key, value in sorted((config.get("method_options") or {}).items()):
        if key not in defaults or defaults[key] != value:
            knobs.append(f"{key} {short_value(value)}")
    train = config.get("train") or {}
    for key, fmt in SCHEDULE:
        if key in train and train[key] != getattr(TRAIN_DEFAULTS, key):
            knobs.append(fmt.format(train[key]))
    return knobs
