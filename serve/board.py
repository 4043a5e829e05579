"""The class board of a workshop room: every participant's run side by side (plain data, no gradio).

A teacher's link names a room (`?workshop=forgetting&room=monday-a`). A run joins the room through its
run directory's meta.json (cit_core.store.write_meta): `join(run_dir, room, display_name, owner)`. The
board (`room_runs`) then reads every run in the store whose meta names the room, plus, when asked, the
gallery's recordings as reference lines. `by_method` gives the per-method mean ± std the class discusses,
`class_csv` the table a teacher downloads. Nothing here names a server path: rows carry run names only.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cit_core import gallery, store
from cit_core.runs import read_run

ROOM = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
NAME_MAX = 40
# an unfinished run whose events were written this recently is training; older, it is paused (the app
# writes an event per step, so even a slow CPU step writes well within this)
TRAINING_WINDOW_S = 30.0
METRICS = ("AP", "forgetting", "BWT")
CSV_COLUMNS = ("participant", "method", "seed", "lesson", "state", *METRICS, "tasks", "final_matrix")


class BoardError(ValueError):
    """A room name or a run that cannot join a board; the message is for users."""


@dataclass
class Row:
    name: str                     # the participant's display name (or "recording: <name>")
    method: str
    seed: int | None
    lesson: str
    state: str                    # finished / training / paused / failed
    AP: float | None = None       # the metrics of a finished run (None before it finishes)
    forgetting: float | None = None
    BWT: float | None = None
    tasks: list[str] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)   # R: one row per finished task so far
    run: str = ""                 # the run's folder name in the store, or the recording's name
    recording: bool = False
    owner: str = ""               # owner_id of the session that made the run ("" for a recording)


# -- names ------------------------------------------------------------------------------------------
def check_room(room) -> str:
    """The room name, stripped; BoardError unless it is 1-40 letters, digits, '-' or '_'."""
    text = room.strip() if isinstance(room, str) else ""
    if not ROOM.fullmatch(text):
        shown = repr(room[:40]) if isinstance(room, str) else type(room).__name__
        raise BoardError(f"not a room name: {shown} (1-40 letters, digits, '-' or '_')")
    return text


def clean_name(text) -> str:
    """A display name as shown to the class: printable characters only, spaces collapsed, at most 40
    characters; "" when nothing is left."""
    if not isinstance(text, str):
        return ""
    kept = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in text)
    return " ".join(kept.split())[:NAME_MAX].strip()


def owner_id(session_hash: str) -> str:
    """A stable tag of a session for meta.json: the session hash itself is never written to disk (it is the
    key of that browser's session)."""
    return hashlib.sha256(f"cit-owner:{session_hash}".encode()).hexdigest()[:16]


def default_name(session_hash: str) -> str:
    """The name a participant has before choosing one: "participant-3fa9", the same for a whole session."""
    return f"participant-{owner_id(session_hash)[:4]}"


def join(run_dir, room: str, display_name: str, owner: str, label: str | None = None) -> dict:
    """Put the run in `run_dir` on `room`'s board under `display_name` (the session's default name when
    empty). `owner`: the session hash of the session that made the run. Returns the meta written."""
    room = check_room(room)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BoardError("this run has no run directory in the store, so it cannot join a room")
    fields = dict(room=room, display_name=clean_name(display_name) or default_name(owner),
                  owner=owner_id(owner), label=label or "")
    if "created" not in store.read_meta(run_dir):        # re-joining (a new name) keeps the first time
        fields["created"] = time.time()
    return store.write_meta(run_dir, **fields)


# -- reading the room -------------------------------------------------------------------------------
_finished: dict[str, tuple[tuple, Row]] = {}     # run folder -> (stamp of its files, row): finished runs only


def _stamp(path: Path) -> tuple | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _summary_row(run_dir: Path, meta: dict, summary: dict) -> Row:
    config = _read_json(run_dir / "config.json")
    metrics = summary.get("metrics") or {}
    return Row(meta.get("display_name") or "?", summary.get("method") or config.get("method", "?"),
               (config.get("train") or {}).get("seed", summary.get("seed")),
               (config.get("lesson") or {}).get("name", "?"), "finished",
               *(metrics.get(k) for k in METRICS), list(summary.get("tasks") or []),
               [list(r) for r in summary.get("acc_matrix") or []], run_dir.name, False, meta.get("owner", ""))


def _live_row(run_dir: Path, meta: dict, now: float) -> Row:
    """An unfinished run: its matrix so far from the events; metrics only once it finishes."""
    log = read_run(run_dir)
    config = log.config or _read_json(run_dir / "config.json")
    if log.error:
        state = "failed"
    else:
        written = _stamp(run_dir / "events.jsonl")
        state = "training" if written and now - written[0] / 1e9 < TRAINING_WINDOW_S else "paused"
    return Row(meta.get("display_name") or "?", log.method or config.get("method", "?"),
               (config.get("train") or {}).get("seed"), (config.get("lesson") or {}).get("name", "?"), state,
               tasks=list(log.tasks), matrix=[list(r) for r in log.acc_matrix], run=run_dir.name,
               owner=meta.get("owner", ""))


def _run_row(run_dir: Path, room: str, now: float) -> Row | None:
    """The run's row when its meta names `room`, else None. A finished run is read once per change of
    its files (the board polls every few seconds)."""
    meta = store.read_meta(run_dir)
    if meta.get("room") != room:
        return None
    stamp = (_stamp(run_dir / store.META), _stamp(run_dir / "summary.json"))
    hit = _finished.get(str(run_dir))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    summary = _read_json(run_dir / "summary.json") if stamp[1] else {}
    if not summary:
        return _live_row(run_dir, meta, now)
    row = _summary_row(run_dir, meta, summary)
    _finished[str(run_dir)] = (stamp, row)
    return row


def _recording_rows(include) -> list[Row]:
    """Gallery recordings as board rows: all of them for True, those named for a list of names."""
    try:
        names = gallery.names() if include is True else [n for n in include if n in gallery.names()]
        rows = []
        for name in names:
            log, entry = gallery.load(name), gallery.entry(name)
            metrics = (log.summary or {}).get("metrics") or entry.get("metrics") or {}
            rows.append(Row(f"recording: {name}", log.method or entry.get("method", "?"), entry.get("seed"),
                            entry.get("lesson", "?"), "finished", *(metrics.get(k) for k in METRICS),
                            list(log.tasks), [list(r) for r in log.acc_matrix], name, True))
        return rows
    except gallery.GalleryError:
        return []            # a damaged gallery must not take the class's own runs off the board


def room_runs(room: str, root=None, include_recordings: bool | Iterable[str] = False) -> list[Row]:
    """Every run in the store whose meta.json names `room` (oldest first: the order people joined), then
    the gallery recordings asked for. BoardError for a bad room name."""
    room = check_room(room)
    root = Path(root) if root is not None else store.runs_root()
    now, rows = time.time(), []
    names = store.list_runs(root)
    here = {str(root / name) for name in names}
    for gone in [key for key in _finished if Path(key).parent == root and key not in here]:
        _finished.pop(gone, None)                         # deleted runs leave the cache too
    for name in reversed(names):
        try:
            row = _run_row(root / name, room, now)
        except (OSError, ValueError, KeyError, TypeError):
            continue                # a run deleted or torn while read: it shows again on the next poll
        if row is not None:
            rows.append(row)
    if include_recordings:
        rows += _recording_rows(include_recordings)
    return rows


# -- the class's numbers ----------------------------------------------------------------------------
def by_method(rows: list[Row]) -> list[dict]:
    """Per method, in first-seen order: n finished runs and the mean and population std (numpy's default)
    of AP, forgetting and BWT over them; None where no finished run has the metric."""
    out = []
    for method in dict.fromkeys(r.method for r in rows):
        done = [r for r in rows if r.method == method and r.state == "finished"]
        entry = {"method": method, "n": len(done)}
        for name in METRICS:
            values = np.array([getattr(r, name) for r in done if getattr(r, name) is not None], dtype=float)
            entry[name] = (float(values.mean()), float(values.std())) if values.size else None
        out.append(entry)
    return out


def _cell(value):
    """A CSV cell: a text that a spreadsheet would run as a formula (a participant typed it) is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def class_csv(rows: list[Row]) -> str:
    """The class table as CSV: one line per run; tasks and the final accuracy matrix as JSON lists."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([_cell(v) for v in (r.name, r.method, r.seed, r.lesson, r.state,
                                           *(getattr(r, k) for k in METRICS))]
                        + [json.dumps(r.tasks), json.dumps(r.matrix)])
    return buffer.getvalue()
