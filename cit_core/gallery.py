"""The gallery: finished runs shipped with the app (assets/gallery/), replayable offline and instantly.

Each recording is `<name>.jsonl.gz`, the gzip of a run's events.jsonl without Checkpointed events (no
weights are shipped, so a checkpoint reference would point at nothing), plus one `index.json` listing the
recordings with their config and headline metrics. A recording packed from a run with its task-end
checkpoints also ships `<name>.connectivity.json.gz`: the connectivity probe measured at build time (every
consecutive task pair and first -> last, every variant, the EMA / slow marks, and the blended model's
answers to a few held-out prompts per seen task at every grid point), so the Connectivity view shows a
recording's curves and answers without weights (`connectivity`). `embeddings/` holds the MiniLM
embeddings and PCA / UMAP maps of the recordings' lessons (`embeddings.ship`): their Embeddings view opens
at once. Rebuild from a sweep:

    python -m cit_core sweep --lesson default --methods all --seeds 0 --out DIR
    python -m cit_core gallery build --from DIR --out assets/gallery

A view reads a recording as a RunLog (`load`), or folded up to a global step (`replay`) to show the run
unfolding; `events` yields the stored events one by one (serve/playback.py plays one back as if it were
training, for the web app's Watch).

A run with non-default method options is packed under a name that carries them (`lcia-tau0.05`): the
gallery can hold a default recording of every method plus variants that show something the default
settings do not (LCIA's adaptive EMA only runs when a task retrains a group, i.e. with a lower τ).
"""
from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

from .events import Checkpointed, RunEnded, RunLog, TaskStarted, event_from_dict
from .runs import write_json_atomic

GALLERY_DIR = Path(__file__).resolve().parent.parent / "assets" / "gallery"
INDEX = "index.json"
SUFFIX = ".jsonl.gz"
CONNECTIVITY_SUFFIX = ".connectivity.json.gz"
PROBE_POINTS = 11          # the α grid of the shipped connectivity lines (the slider snaps to it)
METRICS = ("AP", "BWT", "forgetting", "FWT")
DROPPED = {Checkpointed.__name__}     # refers to weights, which the gallery does not ship


class GalleryError(ValueError):
    """A recording that is missing, unreadable, or a run directory that cannot be packed."""


# -- reading ---------------------------------------------------------------------------------------
_index_cache: dict[tuple, list[dict]] = {}
_log_cache: dict[tuple, RunLog] = {}
_connectivity_cache: dict[tuple, dict] = {}


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def index(root: Path | None = None) -> list[dict]:
    """The gallery's entries (empty when there is no gallery); re-read only when index.json changed."""
    path = Path(root or GALLERY_DIR) / INDEX
    try:
        key = _stamp(path)
    except OSError:
        return []
    if key not in _index_cache:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["recordings"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise GalleryError(f"cannot read the gallery index {path}: {err}") from err
        _index_cache.clear()
        _index_cache[key] = entries
    return _index_cache[key]


def names(root: Path | None = None) -> list[str]:
    return [entry["name"] for entry in index(root)]


def entry(name: str, root: Path | None = None) -> dict:
    for item in index(root):
        if item["name"] == name:
            return item
    raise GalleryError(f"no recording {name!r} in the gallery; it has {names(root)}")


def recording_path(name: str, root: Path | None = None) -> Path:
    # the file name comes from the index, never from the caller: a name cannot reach outside the folder
    return Path(root or GALLERY_DIR) / entry(name, root)["file"]


def events(name: str, root: Path | None = None) -> Iterator:
    """The recording's events in the order the trainer emitted them."""
    path = recording_path(name, root)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                yield event_from_dict(json.loads(line))
    except (OSError, EOFError, ValueError, KeyError) as err:
        raise GalleryError(f"cannot read recording {name!r} ({path.name}): {err}") from err


def load(name: str, root: Path | None = None) -> RunLog:
    """The whole recording folded into a RunLog (cached: the same object while the file is unchanged).
    Callers must not mutate it; `RunLog.snapshot()` gives a private copy."""
    key = _stamp(recording_path(name, root))
    log = _log_cache.get(key)
    if log is None:
        log = RunLog()
        for event in events(name, root):
            log.add(event)
        if len(_log_cache) > 32:        # a bounded cache: the gallery holds one run per method
            _log_cache.clear()
        _log_cache[key] = log
    return log


def connectivity(name: str, root: Path | None = None) -> dict | None:
    """The recording's shipped connectivity data (the format of `connectivity.probe_saved`), or None for a
    recording packed without checkpoints (e.g. the SmolLM2 ones). Cached while the file is unchanged;
    callers must not mutate it."""
    item = entry(name, root).get("connectivity")
    if not item:
        return None
    path = Path(root or GALLERY_DIR) / item["file"]
    try:
        key = _stamp(path)
        data = _connectivity_cache.get(key)
        if data is None:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
            if len(_connectivity_cache) > 32:
                _connectivity_cache.clear()
            _connectivity_cache[key] = data
    except (OSError, EOFError, ValueError) as err:
        raise GalleryError(f"cannot read the connectivity of recording {name!r} ({path.name}): {err}") from err
    return data


def connectivity_pair(name: str, start: int, end: int, variant: str, root: Path | None = None) -> dict | None:
    """One shipped line (task indices from 0), or None when it was not recorded."""
    for pair in (connectivity(name, root) or {}).get("pairs", []):
        if (pair["from"], pair["to"], pair["variant"]) == (start, end, variant):
            return pair
    return None


def _after(event, step: int) -> bool:
    """True for the first event past global step `step`, where the live trainer would have paused:
    a later optimizer step, or the start of the next task (the trainer pauses right after TaskEnded)."""
    at = getattr(event, "step", None)
    if at is not None and at > step:
        return True
    return isinstance(event, TaskStarted) and event.task > 0 and at >= step


def replay_events(name: str, upto_step: int | None = None, root: Path | None = None) -> list:
    """The events a live run would have emitted by global step `upto_step` (all of them when None or at or
    past the last step, RunEnded included)."""
    out = []
    for event in events(name, root):
        if upto_step is not None and _after(event, upto_step):
            break
        out.append(event)
    return out


def replay(name: str, upto_step: int | None = None, root: Path | None = None) -> RunLog:
    """A fresh RunLog folded up to global step `upto_step` (see replay_events): a view can step through a
    recorded run as if it were training."""
    if upto_step is None:
        return load(name, root).snapshot()
    log = RunLog()
    for event in replay_events(name, upto_step, root):
        log.add(event)
    return log


# -- packing ---------------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise GalleryError(f"cannot read {path}: {err}") from err


def _run_events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except ValueError as err:
        raise GalleryError(f"{run_dir}: events.jsonl is damaged: {err}") from err


def recording_name(config: dict) -> str:
    """`method`, or `method-key1value1-key2value2` for the method options that differ from the method's
    defaults (sorted by key; a run directory's config lists every option, defaults included); prefixed
    with the model's name when it is not the tiny default (`smollm2-ilora`)."""
    from .methods import METHODS            # late: reading the gallery stays torch-free
    cls = METHODS.get(config["method"])
    defaults = {f.name: f.default for f in fields(cls.Options)} if cls is not None else {}
    options = {k: v for k, v in (config.get("method_options") or {}).items()
               if k not in defaults or defaults[k] != v}
    model = (config.get("model") or {}).get("name", "tiny")
    parts = [*([model] if model != "tiny" else []), config["method"], *(f"{k}{options[k]}" for k in sorted(options))]
    name = "-".join(str(p) for p in parts)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def pack_run(run_dir, out_dir, name: str | None = None) -> dict:
    """Write `<name>.jsonl.gz` for one finished run directory into out_dir; return its index entry."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = _read_json(run_dir / "config.json")
    records = _run_events(run_dir)
    if not records or records[-1].get("type") != RunEnded.__name__:
        raise GalleryError(f"{run_dir} has not finished (no RunEnded at the end of events.jsonl)")
    summary = records[-1]["summary"]
    kept = [r for r in records if r.get("type") not in DROPPED]
    name = name or recording_name(config)
    file = name + SUFFIX
    for record in kept:                     # every kept line must load back, or the gallery would break later
        try:
            event_from_dict(record)
        except (KeyError, TypeError) as err:
            raise GalleryError(f"{run_dir}: unknown or malformed event {str(record)[:80]}: {err}") from err
    text = "".join(json.dumps(record) + "\n" for record in kept)
    out_dir.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no file name in the header: the same run packs to the same bytes
    with open(out_dir / file, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    types = {r["type"] for r in kept}
    return {
        "name": name,
        "file": file,
        "method": config["method"],
        "seed": config["train"]["seed"],
        "lesson": config["lesson"]["name"] if not config["lesson"].get("files") else "files",
        "tasks": summary.get("tasks", []),
        "steps": summary.get("steps"),
        "metrics": {k: summary["metrics"][k] for k in METRICS if k in summary.get("metrics", {})},
        # recordings made before the trainer emitted DriftLogged have no drift heatmap to show
        "has_drift": "DriftLogged" in types,
        "has_coefficients": "CoefficientsLogged" in types,
        "events": len(kept),
        "size": (out_dir / file).stat().st_size,
        "recorded_wall_s": summary.get("wall_s"),
        "config": config,
    }


def _rounded(pair: dict) -> dict:
    """A probe line with its floats rounded (losses to 1e-5, accuracies and a* to 1e-6): smaller files, far
    below the differences a re-run on another processor shows."""
    out = dict(pair)
    out["loss"] = [[round(v, 5) for v in row] for row in pair["loss"]]
    out["accuracy"] = [[round(v, 6) for v in row] for row in pair["accuracy"]]
    out["marks"] = [{**m, "a": round(m["a"], 6), "loss": [round(v, 5) for v in m["loss"]],
                     "accuracy": [round(v, 6) for v in m["accuracy"]]} for m in pair.get("marks", [])]
    out.pop("seconds", None)          # wall time: differs between two identical builds
    return out


def run_connectivity(run_dir, points: int | None = None, max_eval=None, samples: int | None = None,
                     log=print) -> dict | None:
    """The run's connectivity data for the gallery: DIR/connectivity.json when it was probed with these
    settings (every line of `run_pairs`, samples included), else probed now and written there (a cache:
    probing several runs side by side, then building, costs no second probe). None without checkpoints."""
    from . import connectivity as conn      # late: torch
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoints").is_dir():
        return None
    points = PROBE_POINTS if points is None else points
    max_eval = conn.DEFAULT_MAX_EVAL if max_eval is None else max_eval
    samples = conn.RECORDED_SAMPLES if samples is None else samples
    want = {"version": conn.FORMAT, "points": points, "max_eval": max_eval, "samples_per_task": samples}
    old = conn.read_connectivity(run_dir)
    if old is not None and all(old.get(k) == v for k, v in want.items()) and old.get("pairs"):
        tasks = sorted({p["from"] for p in old["pairs"]} | {p["to"] for p in old["pairs"]})
        lines = {(p["from"], p["to"], p["variant"]) for p in old["pairs"]}
        if all((s, e, v) in lines for s, e in conn.run_pairs(tasks) for v in old["variants"]) and \
                all("samples" in p for p in old["pairs"]):
            log(f"{run_dir.name}: connectivity.json reused")
            return old
    data = conn.probe_saved(run_dir, points, lambda line: log(f"{run_dir.name}: {line}"), max_eval=max_eval,
                            samples_per_task=samples)
    try:
        write_json_atomic(run_dir / "connectivity.json", data)
    except OSError:
        pass                                # a read-only run folder only costs the cache
    return data


def pack_connectivity(data: dict, out_dir, name: str) -> dict:
    """Write `<name>.connectivity.json.gz` (deterministic gzip); return the index entry's summary of it."""
    out_dir = Path(out_dir)
    packed = {**data, "pairs": [_rounded(p) for p in data["pairs"]]}
    file = name + CONNECTIVITY_SUFFIX
    text = json.dumps(packed, separators=(",", ":"), ensure_ascii=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / file, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    return {"file": file, "size": (out_dir / file).stat().st_size, "points": data["points"],
            "max_eval": data.get("max_eval"), "variants": data["variants"],
            "pairs": [list(x) for x in sorted({(p["from"], p["to"]) for p in data["pairs"]})],
            "samples_per_task": data.get("samples_per_task", 0)}


def finished_runs(from_dir, seed: int = 0) -> list[Path]:
    """Run directories under from_dir (itself or its children) with a summary.json and the given seed."""
    from_dir = Path(from_dir)
    if not from_dir.is_dir():
        raise GalleryError(f"{from_dir} is not a folder")
    candidates = [from_dir] if (from_dir / "config.json").is_file() else sorted(p for p in from_dir.iterdir()
                                                                                  if p.is_dir())
    found = []
    for run_dir in candidates:
        if not (run_dir / "summary.json").is_file() or not (run_dir / "config.json").is_file():
            continue
        if _read_json(run_dir / "config.json").get("train", {}).get("seed") == seed:
            found.append(run_dir)
    return found


def build(from_dir, out_dir=None, seed: int = 0, log=print, connectivity: bool = True,
          embeddings: bool = True) -> list[dict]:
    """Pack every finished run of `seed` under from_dir (one per method) into out_dir and update its index:
    entries of methods not found in from_dir are kept, so a gallery can be filled in several passes.
    With `connectivity`, a run with task-end checkpoints is probed (see run_connectivity) and ships its
    lines; a run without them ships none (its entry's "connectivity" is None). With `embeddings`, the
    lessons of all entries get their shipped embeddings (see ship_embeddings)."""
    from .methods import METHODS
    out_dir = Path(out_dir or GALLERY_DIR)
    runs = finished_runs(from_dir, seed)
    if not runs:
        raise GalleryError(f"no finished run with seed {seed} in {from_dir}")
    packed: dict[str, dict] = {}
    for run_dir in runs:
        item = pack_run(run_dir, out_dir)
        if item["name"] in packed:
            raise GalleryError(f"two finished runs of {item['name']!r} with seed {seed} in {from_dir}")
        data = run_connectivity(run_dir, log=log) if connectivity else None
        stale = out_dir / (item["name"] + CONNECTIVITY_SUFFIX)
        if data is not None:
            item["connectivity"] = pack_connectivity(data, out_dir, item["name"])
        else:
            item["connectivity"] = None
            stale.unlink(missing_ok=True)       # an earlier build's lines would no longer match the run
        packed[item["name"]] = item
        extra = f", connectivity {item['connectivity']['size']} bytes" if item["connectivity"] else ""
        log(f"packed {run_dir.name} -> {item['file']} ({item['size']} bytes, drift: {item['has_drift']}{extra})")
    try:
        old = {e["name"]: e for e in index(out_dir)}
    except GalleryError:
        old = {}
    merged = {**old, **packed}
    order = {name: i for i, name in enumerate(METHODS)}      # registry order, as in the method picker
    # each method's default recording first, then its variants
    entries = sorted(merged.values(), key=lambda e: (order.get(e["method"], len(order)),
                                                     e["name"] != e["method"], e["name"]))
    write_json_atomic(out_dir / INDEX, {"format": 1, "recordings": entries})
    os.chmod(out_dir / INDEX, 0o644)      # mkstemp makes it private; shipped files are world-readable
    if embeddings:
        ship_embeddings(entries, out_dir, log)
    missing = [m for m in METHODS if m not in merged]   # variants do not count: the default recording
    if missing:
        log(f"no recording yet for: {', '.join(missing)}")
    return entries


EMBEDDINGS_DIR = "embeddings"


def ship_embeddings(entries: list[dict], out_dir, log=print) -> list[Path]:
    """The instruction embeddings and maps of every distinct lesson among the entries, written to
    out_dir/embeddings/ (files of lessons no longer in the gallery are removed)."""
    from . import embeddings as emb          # late: MiniLM, umap
    from .config import RunConfig
    from .methods import resolve
    from .lessons import load_lesson
    folder = Path(out_dir) / EMBEDDINGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written, seen = [], set()
    for item in entries:
        cfg = resolve(RunConfig.from_dict(item["config"]))
        if cfg.lesson.files:
            continue                          # a file lesson is not on every machine
        try:
            tasks = load_lesson(cfg.lesson, seed=cfg.train.seed).tasks
        except (OSError, ValueError) as err:
            log(f"{item['name']}: lesson not rebuilt, no shipped embeddings ({err})")
            continue
        key = emb.lesson_points(tasks).key
        if key in seen:
            continue
        seen.add(key)
        written += emb.ship(tasks, folder)
        log(f"embeddings of lesson {cfg.lesson.name!r} ({len(emb.lesson_points(tasks))} instructions) shipped")
    for stale in set(folder.glob("*.npy")) - set(written):
        stale.unlink()
    return written
