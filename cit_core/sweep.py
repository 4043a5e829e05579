"""Sweeps: many runs (methods x seeds) written as run directories, then one table of mean ± std.

    python -m cit_core sweep --lesson default --methods all --seeds 0 1 2 --out DIR
writes DIR/<method>-s<seed>/ (a run directory each), DIR/runs.csv (one row per run) and DIR/table.csv +
DIR/table.md (per method: AP, BWT, forgetting, FWT, RG, the general suite's final score when the runs
evaluated it, and wall time, mean ± std over seeds).
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import RunConfig
from .methods import resolve
from .metrics import format_value
from .trainer import Trainer

COLUMNS = ("AP", "BWT", "forgetting", "FWT", "RG")
GENERAL = "general"          # the general suite's score after the last task (summary["general"]["final"])


def _columns(rows: list[dict]) -> tuple[str, ...]:
    return COLUMNS + ((GENERAL,) if rows and all(r.get(GENERAL) is not None for r in rows) else ())


def run_one(cfg: RunConfig, out: Path) -> dict:
    trainer = Trainer(cfg, run_dir=out)   # writes config.json, events.jsonl, summary.json
    trainer.run_to_end()
    if trainer.log.error:
        raise RuntimeError(f"{cfg.method} seed {cfg.train.seed}: {trainer.log.error}")
    return trainer.log.summary


def aggregate(rows: list[dict]) -> list[dict]:
    """Per method, in first-seen order: mean and (population) std over seeds of each metric."""
    table = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        entry = {"method": method, "seeds": len(mine)}
        for key in (*_columns(rows), "wall_s"):
            # RG is undefined (None) for a run where some task never scored above 0 right after training it
            values = np.array([r.get(key) for r in mine if r.get(key) is not None], dtype=float)
            entry[key] = (float(values.mean()), float(values.std())) if values.size else None
            if 0 < values.size < len(mine):
                entry.setdefault("defined", {})[key] = int(values.size)
        table.append(entry)
    return table


def _pm(key: str, pair) -> str:
    if pair is None:
        return "n/a"
    return f"{format_value(key, pair[0])} ± {format_value(key, pair[1])}"


def write_tables(rows: list[dict], out: Path) -> list[dict]:
    columns = _columns(rows)
    fields = ["method", "seed", *columns, "wall_s"]
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: r[k] for k in fields} for r in rows)
    table = aggregate(rows)
    with open(out / "table.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["method", "seeds"] + [f"{k}_{s}" for k in (*columns, "wall_s") for s in ("mean", "std")])
        for e in table:
            writer.writerow([e["method"], e["seeds"]]
                            + [v for k in (*columns, "wall_s") for v in (e[k] or ("", ""))])
    lines = ["| method | seeds | " + " | ".join(columns) + " | wall s |", "|---" * (len(columns) + 3) + "|"]
    for e in table:
        cells = [_pm(k, e[k]) + (f" ({e['defined'][k]} of {e['seeds']})" if k in e.get("defined", {}) else "")
                 for k in columns] + [f"{e['wall_s'][0]:.1f} ± {e['wall_s'][1]:.1f}"]
        lines.append(f"| {e['method']} | {e['seeds']} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table


def finished_summary(cfg: RunConfig, run_dir: Path) -> dict | None:
    """The summary of an earlier, finished run of exactly this config in `run_dir`, else None."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return summary if config == json.loads(json.dumps(cfg.to_dict())) else None


def sweep(base: RunConfig, methods: list[str], seeds: list[int], out: Path, log=print) -> list[dict]:
    """Run every (method, seed) pair; a pair whose run directory already finished with the same config is
    reused, so an interrupted sweep resumes, and several sweeps can fill one folder side by side."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in methods:
        for seed in seeds:
            cfg = resolve(RunConfig(method=method, model=base.model, lesson=base.lesson,
                                    train=replace(base.train, seed=seed)))
            run_dir = out / f"{method}-s{seed}"
            summary = finished_summary(cfg, run_dir)
            if summary is None:
                if run_dir.exists():         # a torn or different earlier run: start it over
                    shutil.rmtree(run_dir)
                summary = run_one(cfg, run_dir)
            rows.append({"method": method, "seed": seed, **summary["metrics"], "wall_s": summary["wall_s"],
                         GENERAL: (summary.get("general") or {}).get("final")})
            log(f"{method} seed {seed}: "
                + " ".join(f"{k}={format_value(k, summary['metrics'].get(k))}" for k in COLUMNS)
                + f" wall={summary['wall_s']:.1f}s")
    return write_tables(rows, out)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
