"""The run store: one folder of run directories (CLI and app), never inside the repository.

Location: env CIT_RUNS_DIR, else <user cache>/cit-explorer/runs. Run names are plain folder names; a name
that could leave the store (`..`, slashes, odd characters) is refused, so a name typed or sent by a user
can never reach a file outside it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RunNotFound(ValueError):
    pass


def runs_root() -> Path:
    env = os.environ.get("CIT_RUNS_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return Path(cache) / "cit-explorer" / "runs"


def run_path(name: str, root: Path | None = None) -> Path:
    """The directory of run `name` in the store; ValueError for a name that is not a plain folder name."""
    root = Path(root) if root is not None else runs_root()
    if not isinstance(name, str) or not NAME.match(name) or name in (".", ".."):
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
    found = [d for d in root.iterdir() if d.is_dir() and NAME.match(d.name) and (d / "events.jsonl").is_file()]
    found.sort(key=lambda d: (d / "events.jsonl").stat().st_mtime, reverse=True)
    return [d.name for d in found]
