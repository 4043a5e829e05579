"""The run store: one folder of run directories (CLI and app), never inside the repository.

Location: env CIT_RUNS_DIR, else <user cache>/cit-explorer/runs. Run names are plain folder names; a name
that could leave the store (`..`, slashes, odd characters) is refused, so a name typed or sent by a user
can never reach a file outside it.
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
import time
import weakref
from pathlib import Path

from .runs import write_json_atomic
from .settings import settings

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RunNotFound(ValueError):
    pass


def runs_root() -> Path:
    return settings().runs_dir


def run_path(name: str, root: Path | None = None) -> Path:
    """The directory of run `name` in the store; ValueError for a name that is not a plain folder name."""
    root = Path(root) if root is not None else runs_root()
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
        raise RunNotFound(f"not a run name: {name!r} (letters, digits, '.', '_' and '-' only)")
    path = root / name
    if path.resolve().parent != root.resolve():
        raise RunNotFound(f"not a run name: {name!r}")
    return path


def list_runs(root: Path | None = None) -> list[str]:
    """Names of the run directories in the store (those with an events.jsonl), newest first."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir() if d.is_dir() and NAME.fullmatch(d.name) and (d / "events.jsonl").is_file()]
    found.sort(key=lambda d: (d / "events.jsonl").stat().st_mtime, reverse=True)
    return [d.name for d in found]


# -- runs written by this process ------------------------------------------------------------------
# Trainers the app built with a run directory; weak, so a released run is forgotten once it is freed.
_writers: "weakref.WeakSet" = weakref.WeakSet()
RECENT_WRITE_S = 60.0    # an unfinished run written this recently may belong to another process


def new_run_name(cfg) -> str:
    """A readable, unique folder name: 20261125-104500-lcia-s0-3fa9c2 (time, method, seed, random tag)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.method}-s{cfg.train.seed}-{secrets.token_hex(3)}"


def new_run_dir(cfg, root: Path | None = None) -> Path:
    """A fresh run directory's path; the store is first pruned to its size cap (`prune`)."""
    prune(root=root)
    return run_path(new_run_name(cfg), root)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def prune(max_bytes: float | None = None, root: Path | None = None, busy: set[Path] | None = None) -> list[str]:
    """Delete the oldest finished runs (summary.json written) until the store is under its size cap
    (env CIT_STORE_MAX_MB). Unfinished runs are never deleted here: one may still be training, and a
    paused run's owner may come back. Returns the names deleted."""
    root = Path(root) if root is not None else runs_root()
    limit = settings().store_max_mb * 2**20 if max_bytes is None else max_bytes
    if not root.is_dir():
        return []
    busy = writing_dirs() if busy is None else busy
    runs = [root / name for name in reversed(list_runs(root))]          # oldest first
    sizes = {run: _size(run) for run in runs}
    total, deleted = sum(sizes.values()), []
    for run in runs:
        if total <= limit:
            break
        if (run / "summary.json").is_file() and run.resolve() not in busy:
            shutil.rmtree(run, ignore_errors=True)
            total -= sizes[run]
            deleted.append(run.name)
    return deleted


def track(trainer) -> None:
    """Remember a trainer that writes a run directory, so that directory cannot be deleted under it."""
    _writers.add(trainer)


def writing_dirs() -> set[Path]:
    """Directories of this process's trainers that have not finished (their files are still open)."""
    return {Path(t.run_dir).resolve() for t in list(_writers)
            if getattr(t, "run_dir", None) is not None and not t.finished}


def find_trainer(path) -> object | None:
    """The live trainer of this process that writes (or wrote) run directory `path`, if any."""
    target = Path(path).resolve()
    for trainer in list(_writers):
        if getattr(trainer, "run_dir", None) is not None and Path(trainer.run_dir).resolve() == target:
            return trainer
    return None


def delete_run(name: str, root: Path | None = None, busy: set[Path] | None = None) -> Path:
    """Delete run `name` from the store. Refuses names that leave the store, folders that are not run
    directories (no events.jsonl / config.json), symlinks, and runs being written (here or, judging by
    an unfinished run's recent writes, by another process). Returns the deleted path."""
    path = run_path(name, root)
    if path.is_symlink() or not path.is_dir():
        raise RunNotFound(f"no run named {name!r} in the run store")     # never a server path
    if not ((path / "events.jsonl").is_file() or (path / "config.json").is_file()):
        raise RunNotFound(f"{name!r} is not a run directory; not deleting it")
    busy = writing_dirs() if busy is None else busy
    if path.resolve() in busy:
        raise RunBusy(f"run {name!r} is still being trained in a session; pause and reset it first")
    events = path / "events.jsonl"
    if not (path / "summary.json").exists() and events.is_file() \
            and time.time() - events.stat().st_mtime < RECENT_WRITE_S:
        raise RunBusy(f"run {name!r} is unfinished and was written in the last {RECENT_WRITE_S:.0f} s; "
                      "it may still be running")
    shutil.rmtree(path)
    return path


class RunBusy(ValueError):
    pass


# -- a run's metadata ------------------------------------------------------------------------------
META = "meta.json"


def write_meta(run_dir, **fields) -> dict:
    """Merge `fields` into the run directory's meta.json (who made the run, where it is shown: plain JSON
    values) and return the whole record. Atomic, so a reader polling the store never sees half a file."""
    record = {**read_meta(run_dir), **fields}
    write_json_atomic(Path(run_dir) / META, record)
    return record


def read_meta(run_dir) -> dict:
    """The run's meta.json as a dict; {} when there is none or it is unreadable (a run without metadata is
    still a run: metadata only adds to it)."""
    try:
        data = json.loads((Path(run_dir) / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
