"""Where the app writes files for a visitor to download (exports, class tables): one temporary root per
process, removed when the process exits, holding at most KEEP folders (the oldest go first). Each Export
used to leave a fresh folder in /tmp (19 MB for a run with adapters) that nothing ever deleted (issue 14).
Gradio copies a returned file into its own cache, which app.py has Gradio clean (`delete_cache`)."""
from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import threading
from pathlib import Path

KEEP = 32
_lock = threading.Lock()
_root: Path | None = None
_count = itertools.count()


def _root_folder() -> Path:
    global _root
    if _root is None or not _root.is_dir():
        _root = Path(tempfile.mkdtemp(prefix="cit-downloads-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def fresh_folder(prefix: str, keep: int | None = None) -> Path:
    """A new empty folder for one download; older folders beyond the newest `keep` (KEEP) are removed."""
    keep = KEEP if keep is None else keep
    with _lock:
        root = _root_folder()
        folder = root / f"{next(_count):06d}-{prefix}"
        folder.mkdir()
        for old in sorted(root.iterdir())[:-keep]:       # names start with a counter: oldest first
            shutil.rmtree(old, ignore_errors=True)
        return folder


def root() -> Path:
    """The process's download root (for tests and cleanup checks)."""
    with _lock:
        return _root_folder()


__all__ = ["fresh_folder", "root", "KEEP"]
