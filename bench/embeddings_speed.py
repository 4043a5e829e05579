"""Embeddings view speed on the default lesson: MiniLM embedding, PCA, UMAP cold and warm, cache reads.

Goals (issue 4): PCA ≤ 1 s; UMAP after warm-up ≤ 2 s; results cached per run.
"Cold" UMAP is the first fit in a fresh process (umap import + numba JIT), which the page hides behind
PCA by running it in a background thread.

    python bench/embeddings_speed.py [--repeats 3] [--prompts-per-task 0]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cit_core import embeddings as emb  # noqa: E402
from cit_core.lessons import default_lesson  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompts-per-task", type=int, default=0)
    args = ap.parse_args()
    print("command: python bench/embeddings_speed.py " + " ".join(sys.argv[1:]))
    import torch
    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")

    points = emb.lesson_points(default_lesson(seed=0).tasks, args.prompts_per_task)
    print(f"default lesson: {len(points)} points ({len(points.task_names)} tasks)")

    from cit_core.similarity import get_embedder
    embedder, load_s = timed(get_embedder)
    vectors, embed_s = timed(lambda: embedder.encode(list(points.texts)))

    pca_runs = [timed(lambda: emb.pca_2d(vectors))[1] for _ in range(args.repeats)]
    _, umap_cold = timed(lambda: emb.umap_2d(vectors))
    umap_warm = [timed(lambda: emb.umap_2d(vectors))[1] for _ in range(args.repeats)]

    with tempfile.TemporaryDirectory() as run_dir:
        emb.project(points, "umap", run_dir)                    # fills memory + disk cache
        _, memory_s = timed(lambda: emb.project(points, "umap", run_dir))
        emb.clear_memory_cache()
        _, disk_s = timed(lambda: emb.project(points, "umap", run_dir))

    pca_s, warm_s = statistics.median(pca_runs), statistics.median(umap_warm)
    rows = [
        ("MiniLM load (once per process)", load_s, None),
        (f"MiniLM embed {len(points)} texts", embed_s, None),
        ("PCA (median)", pca_s, 1.0),
        ("UMAP cold (import + numba JIT + fit)", umap_cold, None),
        ("UMAP warm (median)", warm_s, 2.0),
        ("cached projection, memory", memory_s, None),
        ("cached projection, run folder", disk_s, None),
    ]
    for name, seconds, goal in rows:
        verdict = "" if goal is None else f"   goal ≤ {goal:g} s: {'met' if seconds <= goal else 'MISSED'}"
        print(f"{name:40s} {seconds:9.4f} s{verdict}")
    print(f"ratio UMAP warm / cold: {warm_s / umap_cold:.4f};  PCA / goal: {pca_s / 1.0:.4f};  "
          f"UMAP warm / goal: {warm_s / 2.0:.4f}")


if __name__ == "__main__":
    main()
