"""Run directories: config.json, events.jsonl (append-only, flushed per event), summary.json (atomic)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .events import RunEnded, RunLog, event_from_dict, event_to_dict


def _plain(value):
    """json.dumps fallback for what methods log: numpy scalars/arrays and tensors become lists/numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to a run file")


def write_json_atomic(path: Path, data) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=_plain)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class RunWriter:
    """Writes one run directory as the events arrive."""

    def __init__(self, directory, config: dict):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.dir / "config.json", config)
        self._events = open(self.dir / "events.jsonl", "a", encoding="utf-8")

    def write(self, event) -> None:
        self._events.write(json.dumps(event_to_dict(event), default=_plain) + "\n")
        self._events.flush()
        if isinstance(event, RunEnded):
            write_json_atomic(self.dir / "summary.json", event.summary)

    def close(self) -> None:
        self._events.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_run(directory) -> RunLog:
    """Fold a run directory's events back into a RunLog; a torn last line (crash) is ignored."""
    log = RunLog()
    with open(Path(directory) / "events.jsonl", encoding="utf-8") as fh:
        for line in fh:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                break
            log.add(event_from_dict(data))
    return log
