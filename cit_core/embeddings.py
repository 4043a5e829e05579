"""Instruction-embedding clusters: a lesson's instructions in MiniLM space, projected to 2-D, and the
task-similarity matrices the methods use.

- Embeddings: the packaged MiniLM of `similarity.py` (offline, memoised per text), one point per distinct
  instruction of each task, optionally the first few held-out prompts of each task (capped).
- Projections: PCA (scikit-learn, instant and deterministic) and UMAP (umap-learn, seeded, cosine
  distances passed as a precomputed matrix). UMAP's first fit in a process pays 10-50 s of numba JIT (machine load),
  so `ProjectionJob` computes PCA first and UMAP in a background thread; umap is imported only inside
  `umap_2d`, never when this module is imported.
- Caching: vectors and coordinates are kept in memory and, when a run directory is known, in
  `DIR/embeddings_cache/<key>.npy` (key = hash of the texts and the projection's settings). The gallery
  ships those of its recordings' lessons in `assets/gallery/embeddings/<key>.npy` (`ship`, called by
  `gallery build`), read before anything is computed: a recording's map opens at once, with no MiniLM load
  and no UMAP JIT.
- Matrices: read from the run log where a method logged them (InsCL, LCIA, TIR, SwitchCIT), plus two
  that are always computable (cosine of the tasks' mean instruction embeddings, TF-IDF similarity).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .panels import matrix

SEED = 0                  # UMAP's random_state: the same lesson gives the same map
MAX_PROMPTS_PER_TASK = 50  # prompts are optional extra points; a cap keeps the map readable and fast
CACHE_DIR = "embeddings_cache"
OUT_NAME = "embeddings.json"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "assets" / "gallery" / "embeddings"


# -- points ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Points:
    """What is embedded: parallel lists, one entry per point."""

    texts: tuple[str, ...]
    tasks: tuple[str, ...]
    kinds: tuple[str, ...]        # "instruction" or "prompt"
    task_names: tuple[str, ...]   # the lesson's tasks in order (legend and matrix order)

    @property
    def key(self) -> str:
        blob = json.dumps([self.texts, self.tasks, self.kinds], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]

    def __len__(self) -> int:
        return len(self.texts)


def lesson_points(tasks, prompts_per_task: int = 0) -> Points:
    """Every distinct instruction of every task, then up to `prompts_per_task` held-out prompts each."""
    if not 0 <= prompts_per_task <= MAX_PROMPTS_PER_TASK:
        raise ValueError(f"prompts_per_task must be in [0, {MAX_PROMPTS_PER_TASK}], got {prompts_per_task}")
    texts, names, kinds = [], [], []
    for task in tasks:
        for text in task.instructions:
            texts.append(text), names.append(task.name), kinds.append("instruction")
    for task in tasks:
        for ex in task.eval[:prompts_per_task]:
            texts.append(f"{ex.instruction}\n{ex.input}"), names.append(task.name), kinds.append("prompt")
    return Points(tuple(texts), tuple(names), tuple(kinds), tuple(t.name for t in tasks))


# -- cache ----------------------------------------------------------------------------------------
_memory: dict[str, np.ndarray] = {}
_memory_lock = threading.Lock()


def _cached(key: str, run_dir, compute) -> np.ndarray:
    """compute() once per key: memory first, then DIR/embeddings_cache/key.npy, then the gallery's shipped
    copy, then compute and store."""
    path = Path(run_dir) / CACHE_DIR / f"{key}.npy" if run_dir is not None else None
    with _memory_lock:
        hit = _memory.get(key)
    if hit is not None:
        if path is not None and not path.is_file():    # computed for another run or none: keep a copy
            _save_npy(path, hit)
        return hit
    value = None
    for candidate in (path, SHIPPED_DIR / f"{key}.npy"):
        if value is None and candidate is not None and candidate.is_file():
            try:
                value = np.load(candidate, allow_pickle=False)
            except (OSError, ValueError):      # a damaged cache file is recomputed, never trusted
                value = None
    if value is None:
        value = np.asarray(compute())
        if path is not None:
            _save_npy(path, value)
    with _memory_lock:
        _memory[key] = value
    return value


def _save_npy(path: Path, value: np.ndarray) -> None:
    """Atomic write; a read-only run folder only costs the disk cache, never the result."""
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, value, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass


def clear_memory_cache() -> None:
    with _memory_lock:
        _memory.clear()


# -- embeddings and projections --------------------------------------------------------------------
def embed(points: Points, run_dir=None, run_torch=None) -> np.ndarray:
    """(n, 384) L2-normalised MiniLM embeddings of the points' texts. `run_torch(fn, *args)` runs the
    encoder where the caller wants torch work to run (the web app: its compute threads); default: here."""
    def vectors():
        from .similarity import get_embedder
        encode = get_embedder().encode
        texts = list(points.texts)
        return (run_torch(encode, texts) if run_torch else encode(texts)).astype(np.float32)
    return _cached(f"vectors-{points.key}", run_dir, vectors)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """First two principal components (zeros where fewer points than components); deterministic."""
    from sklearn.decomposition import PCA
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    out = np.zeros((n, 2))
    k = min(2, n - 1, vectors.shape[1]) if n else 0    # n points span at most n - 1 directions
    if k > 0:
        out[:, :k] = PCA(n_components=k, svd_solver="full").fit_transform(vectors)
    return out


def umap_neighbors(n: int) -> int:
    """UMAP's default 15 neighbours, fewer for small point sets (it needs n_neighbors < n)."""
    return max(2, min(15, n - 1))


def umap_2d(vectors: np.ndarray, seed: int = SEED) -> np.ndarray:
    """Seeded UMAP on cosine distances (precomputed, so the neighbourhoods are exactly MiniLM cosine)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    if n < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {n}")
    import umap   # heavy (numba): imported only here
    dist = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    k = umap_neighbors(n)
    # spectral init needs a graph larger than the neighbourhood; tiny sets start from random (seeded)
    init = "spectral" if n > k + 1 else "random"
    reducer = umap.UMAP(n_neighbors=k, n_components=2, metric="precomputed", random_state=seed, n_jobs=1,
                        init=init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # "inverse_transform unavailable" / "n_jobs overridden"
        return np.asarray(reducer.fit_transform(dist), dtype=np.float64)


def project(points: Points, projection: str = "umap", run_dir=None, seed: int = SEED) -> np.ndarray:
    """(n, 2) coordinates of the points, cached per (texts, projection, seed)."""
    if projection not in ("umap", "pca"):
        raise ValueError(f"projection must be 'umap' or 'pca', got {projection!r}")
    vectors = embed(points, run_dir)
    if projection == "pca":
        return _cached(f"pca-{points.key}", run_dir, lambda: pca_2d(vectors))
    return _cached(f"umap-s{seed}-{points.key}", run_dir, lambda: umap_2d(vectors, seed))


def ship(tasks, out_dir, seed: int = SEED) -> list[Path]:
    """Write a lesson's instruction embeddings, PCA and seeded UMAP maps to out_dir/<key>.npy (what a view
    asks `_cached` for), so a gallery recording's map needs no computation. Returns the files written."""
    points = lesson_points(tasks)
    vectors = embed(points)
    arrays = {f"vectors-{points.key}": vectors, f"pca-{points.key}": project(points, "pca"),
              f"umap-s{seed}-{points.key}": project(points, "umap", seed=seed)}
    out = []
    for key, value in arrays.items():
        path = Path(out_dir) / f"{key}.npy"
        _save_npy(path, np.asarray(value))
        os.chmod(path, 0o644)               # mkstemp makes it private; shipped files are world-readable
        out.append(path)
    return out


def nearest(vectors: np.ndarray, index: int, k: int = 5) -> list[tuple[int, float]]:
    """The k points most cosine-similar to point `index` (itself excluded), most similar first."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if not 0 <= index < len(vectors):
        raise ValueError(f"point {index} does not exist (0..{len(vectors) - 1})")
    sims = vectors @ vectors[index]
    order = [j for j in np.lexsort((np.arange(len(sims)), -sims)) if j != index]
    return [(int(j), float(sims[j])) for j in order[:k]]


# -- background projection -------------------------------------------------------------------------
class ProjectionJob:
    """Embeds and projects in a background thread: PCA as soon as the embeddings exist, then UMAP.

    `snapshot()` never blocks: it returns the best coordinates available now and a status line."""

    def __init__(self, points: Points, run_dir=None, seed: int = SEED, run_torch=None):
        self.points, self.run_dir, self.seed, self._run_torch = points, run_dir, seed, run_torch
        self.vectors: np.ndarray | None = None
        self.pca: np.ndarray | None = None
        self.umap: np.ndarray | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._work, name="umap-projection", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self.vectors = embed(self.points, self.run_dir, self._run_torch)
            self.pca = project(self.points, "pca", self.run_dir)
            if len(self.points) < 3:
                self.error = "UMAP needs at least 3 points; PCA shown"
                return
            self.umap = project(self.points, "umap", self.run_dir, self.seed)
        except Exception as err:            # shown on the page; the PCA map stays usable
            self.error = f"{type(err).__name__}: {err}"

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done()

    def snapshot(self) -> tuple[np.ndarray | None, str | None, str]:
        """(coordinates or None, "umap" | "pca" | None, a line saying what is shown)."""
        if self.umap is not None:
            return self.umap, "umap", f"UMAP (seeded, random_state={self.seed}, cosine, " \
                                      f"{umap_neighbors(len(self.points))} neighbours)"
        if self.pca is not None:
            if self.error:
                return self.pca, "pca", f"PCA — UMAP unavailable ({self.error})"
            return self.pca, "pca", "PCA — UMAP warming up…"
        if self.error:
            return None, None, f"Could not embed the instructions ({self.error})"
        return None, None, "Embedding the instructions with MiniLM…"


_jobs: dict[tuple, ProjectionJob] = {}
_jobs_lock = threading.Lock()


def projection_job(points: Points, run_dir=None, seed: int = SEED, run_torch=None) -> ProjectionJob:
    """One job per (texts, seed) in this process: views and sessions share it (`run_torch`: see `embed`)."""
    key = (points.key, seed)
    with _jobs_lock:
        job = _jobs.get(key)
        if job is None or (job.done() and job.error and job.pca is None):   # retry a failed embedding
            if len(_jobs) >= 16:
                _jobs.pop(next(iter(_jobs)))
            job = _jobs[key] = ProjectionJob(points, run_dir, seed, run_torch)
        return job


_warm_thread: threading.Thread | None = None


def warm_up_umap() -> threading.Thread:
    """Start (once per process) a background fit on random points so numba's JIT is paid before the
    first real UMAP; returns the thread."""
    global _warm_thread
    with _jobs_lock:
        if _warm_thread is None:
            points = np.random.default_rng(SEED).normal(size=(20, 8))
            points /= np.linalg.norm(points, axis=1, keepdims=True)
            _warm_thread = threading.Thread(target=lambda: _quiet(umap_2d, points), name="umap-warm-up",
                                            daemon=True)
            _warm_thread.start()
        return _warm_thread


def _quiet(fn, *args):
    try:
        fn(*args)
    except Exception:       # warm-up only: the real fit reports its own error
        pass


# -- similarity matrices ---------------------------------------------------------------------------
def logged_matrices(log) -> dict[str, dict]:
    """The matrices the run's method logged, by name (each method reads its own typed info records);
    empty for methods that log none."""
    from .displays import logged_matrices as method_matrices     # the method registry loads torch: on use

    return method_matrices(log)


def computed_matrices(points: Points, vectors: np.ndarray) -> dict[str, dict]:
    """Task × task similarities any run has: cosine of mean instruction embeddings, TF-IDF (LCIA's)."""
    from .similarity import tfidf_similarity
    names = list(points.task_names)
    by_task = {n: [i for i, (t, k) in enumerate(zip(points.tasks, points.kinds)) if t == n and k == "instruction"]
               for n in names}
    means = []
    for n in names:
        vec = np.asarray(vectors, np.float64)[by_task[n]].mean(0)
        means.append(vec / max(float(np.linalg.norm(vec)), 1e-12))
    means = np.stack(means)
    cosine = np.clip(means @ means.T, -1.0, 1.0)
    texts = {n: [points.texts[i] for i in by_task[n]] for n in names}
    tfidf = [[tfidf_similarity(texts[a], texts[b]) for b in names] for a in names]
    return {
        "Instruction cosine (task means)": matrix(
            names, cosine.tolist(), source="computed",
            note="cosine of the tasks' mean MiniLM instruction embeddings (TIR's similarity)"),
        "TF-IDF similarity": matrix(
            names, tfidf, source="computed",
            note="mean TF-IDF cosine over all instruction pairs (LCIA's similarity)"),
    }


def all_matrices(log, points: Points, vectors: np.ndarray) -> dict[str, dict]:
    """Logged matrices first (what the method used), then the computed ones."""
    out = logged_matrices(log) if log is not None else {}
    out.update(computed_matrices(points, vectors))
    return out


# -- saved runs ------------------------------------------------------------------------------------
def run_tasks(run_dir, log=None):
    """The run's tasks, rebuilt from its config.json and ordered as its log names them."""
    from .config import ConfigError
    from .runs import read_run
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        log = log if log is not None else read_run(run_dir)
    except FileNotFoundError as err:
        raise ValueError(f"{run_dir} is not a run directory (missing {Path(err.filename).name})") from err
    except (json.JSONDecodeError, ConfigError) as err:
        raise ValueError(f"{run_dir}/config.json cannot be read: {err}") from err
    return config_tasks(config, log, str(run_dir)), log


def config_tasks(config: dict, log, where: str) -> list:
    """The tasks of the lesson a run config names (a run's config.json, or the config a RunLog carries
    from RunStarted, e.g. a recorded gallery run), ordered as the log names them."""
    from .config import ConfigError, RunConfig
    from .methods import resolve
    from .lessons import load_lesson
    # RunStarted adds parameter counts to the config; they are not settings
    config = {k: v for k, v in config.items() if k not in ("trainable_params", "total_params")}
    try:
        cfg = resolve(RunConfig.from_dict(config))
    except ConfigError as err:
        raise ValueError(f"the config of {where} cannot be read: {err}") from err
    try:
        lesson = load_lesson(cfg.lesson, seed=cfg.train.seed)
    except OSError as err:     # lesson files moved or deleted since the run
        raise ValueError(f"cannot rebuild the lesson of {where}: {err}") from err
    if not log.tasks:
        return lesson.tasks
    by_name = {t.name: t for t in lesson.tasks}
    missing = [n for n in log.tasks if n not in by_name]
    if missing:   # a run given a lesson object in code: its config cannot rebuild it
        raise ValueError(f"the lesson in the config of {where} has no task(s) {missing}; "
                         "the run was trained on another lesson")
    return [by_name[n] for n in log.tasks]


def probe_run(run_dir, projection: str = "umap", log=print, prompts_per_task: int = 0) -> Path:
    """Write DIR/embeddings.json: points [[x, y]], task and text per point, projection, matrices by name."""
    from .runs import write_json_atomic
    run_dir = Path(run_dir)
    if projection not in ("umap", "pca"):
        raise ValueError(f"projection must be 'umap' or 'pca', got {projection!r}")
    tasks, run_log = run_tasks(run_dir)
    points = lesson_points(tasks, prompts_per_task)
    log(f"embedding {len(points)} texts of {len(tasks)} tasks with MiniLM")
    vectors = embed(points, run_dir)
    log(f"projecting with {projection.upper()}" + (" (the first UMAP in a process compiles numba code: 10-50 s)"
                                                     if projection == "umap" else ""))
    coords = project(points, projection, run_dir)
    data = {"projection": projection, "seed": SEED if projection == "umap" else None,
            "points": np.round(coords, 6).tolist(), "task": list(points.tasks), "text": list(points.texts),
            "kind": list(points.kinds), "tasks": list(points.task_names),
            "matrices": all_matrices(run_log, points, vectors)}
    out = run_dir / OUT_NAME
    write_json_atomic(out, data)
    return out


def read_probe(run_dir) -> dict | None:
    """DIR/embeddings.json if present and well-formed, else None (the view then computes; also for a
    source without a directory, such as a recorded gallery run)."""
    if run_dir is None:
        return None
    path = Path(run_dir) / OUT_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    keys = ("points", "task", "text", "projection", "matrices")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        return None
    if not len(data["points"]) == len(data["task"]) == len(data["text"]):
        return None
    return data


__all__ = ["Points", "ProjectionJob", "all_matrices", "computed_matrices", "embed", "lesson_points",
           "logged_matrices", "nearest", "pca_2d", "probe_run", "project", "projection_job", "read_probe",
           "run_tasks", "config_tasks", "ship", "umap_2d", "warm_up_umap"]
