"""Where an analysis view reads its data: this session's live run, a recorded run shipped in the gallery
(assets/gallery, see cit_core/gallery.py), or a saved run directory.

Views never touch the model directly for drawing: they read a RunLog (live: the trainer's log, which only
grows; saved: folded from events.jsonl). `Source.key` changes exactly when the data changed, so a view
redraws only then (gr.skip() otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cit_core import gallery
from cit_core.events import RunLog
from cit_core.runs import read_run
from cit_core.store import RunNotFound, list_runs, run_path

LIVE = "this session's run"
GALLERY = "gallery: "   # prefix of a gallery choice; saved-run names cannot contain ':' or ' ', so no clash
TIMER_S = 2.0          # how often a visible view looks for new data (a cheap check; no redraw if unchanged)


@dataclass
class Source:
    log: RunLog
    key: tuple                      # changes when the data changes
    trainer: object | None = None   # the live Trainer (None for a saved run)
    run_dir: Path | None = None     # the saved run's folder (None for a live run without one)
    label: str = ""
    recording: str | None = None    # the gallery recording's name (a recording picked or played back)


def choices() -> list[str]:
    return [LIVE, *gallery_choices(), *list_runs()]


def gallery_choices() -> list[str]:
    try:
        return [GALLERY + name for name in gallery.names()]
    except gallery.GalleryError:
        return []          # a damaged gallery must not take the run pickers down; resolve() says why


def _resolve_gallery(name: str) -> tuple[Source | None, str]:
    try:
        log = gallery.load(name)
        path = gallery.recording_path(name)
        stat = path.stat()
    except (gallery.GalleryError, OSError) as err:
        return None, f"Cannot open recorded run {name!r}: {err}"
    # stable while the shipped file is unchanged: a view draws a recording once
    key = ("gallery", name, stat.st_size, stat.st_mtime_ns)
    return Source(log, key, None, None, f"recorded run (gallery): {name}", name), ""


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
        if not run.trainer.has_weights:
            # a gallery playback: its log grows like a live run's, but there is no model to probe
            label = f"recorded run {run.trainer.name} (gallery playback)"
            return Source(log, ("live", run.id, log.version), None, None, label, run.trainer.name), ""
        return Source(log, ("live", run.id, log.version), run.trainer, None, f"live run {run.id[:8]}"), ""
    if choice.startswith(GALLERY):
        return _resolve_gallery(choice[len(GALLERY):])
    try:
        path = run_path(choice)
        log, key = _read_saved(path)
    except (RunNotFound, OSError) as err:
        return None, f"Cannot open saved run {choice!r}: {err}"
    return Source(log, key, None, path, f"saved run {choice}"), ""
