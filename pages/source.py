"""Where an analysis view reads its data: this session's live run, or a saved run directory.

Views never touch the model directly for drawing: they read a RunLog (live: the trainer's log, which only
grows; saved: folded from events.jsonl). `Source.key` changes exactly when the data changed, so a view
redraws only then (gr.skip() otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cit_core.events import RunLog
from cit_core.runs import read_run
from cit_core.store import RunNotFound, list_runs, run_path

LIVE = "this session's run"
TIMER_S = 2.0          # how often a visible view looks for new data (a cheap check; no redraw if unchanged)


@dataclass
class Source:
    log: RunLog
    key: tuple                      # changes when the data changes
    trainer: object | None = None   # the live Trainer (None for a saved run)
    run_dir: Path | None = None     # the saved run's folder (None for a live run without one)
    label: str = ""


def choices() -> list[str]:
    return [LIVE, *list_runs()]


_saved_cache: dict[tuple, RunLog] = {}


def _read_saved(path: Path) -> tuple[RunLog, tuple]:
    events = path / "events.jsonl"
    stat = events.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    log = _saved_cache.get(key)
    if log is None:
        log = read_run(path)
        _saved_cache.clear()                 # one saved run per process is plenty for a view
        _saved_cache[key] = log
    return log, key


def resolve(registry, run_id, choice: str | None) -> tuple[Source | None, str]:
    """(source, message): the data to draw, or None and a line saying why there is nothing to draw."""
    if not choice or choice == LIVE:
        run = registry.get(run_id) if run_id else None
        if run is None:
            return None, "No run in this session yet: press Play on the Train tab, or pick a saved run."
        log = run.trainer.log
        return Source(log, ("live", run.id, log.version), run.trainer, None, f"live run {run.id[:8]}"), ""
    try:
        path = run_path(choice)
        log, key = _read_saved(path)
    except (RunNotFound, OSError) as err:
        return None, f"Cannot open saved run {choice!r}: {err}"
    return Source(log, key, None, path, f"saved run {choice}"), ""
