"""A workshop: N gradio_client sessions press Play on the default lesson at once and keep their tabs open.

    python bench/workshop.py                              # 30 sessions, the default lesson's settings
    python bench/workshop.py --sessions 30 --steps-per-task 10     # shorter runs on a busy machine

Each session sends the Train tab's heartbeat like a browser (/heartbeat at once and every HEARTBEAT_S) and
reads its status every few seconds while its run trains. The app runs in this process with the default
registry (CIT_MAX_RUNS, one turn on the CPU per training slot), so the peak RSS is the server's. Prints how
many sessions got their result, each session's time to its first chart (the first streamed output with a
matrix) and to its first trained chunk, the time to the last result, the peak RSS and the status-read
latency. tests/serve/test_fairness.py is the lean version.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cit_core.config import TrainConfig  # noqa: E402
from cit_core.settings import settings  # noqa: E402
from tests.support.load import BASE, launch, peak_rss_mb, play_sessions  # noqa: E402


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    q = statistics.quantiles(values, n=20) if len(values) > 1 else values
    return (f"median {statistics.median(values):.1f} s, p95 {q[-1]:.1f} s, max {max(values):.1f} s "
            f"(min {min(values):.1f} s)")


def main(argv=None) -> int:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=30)
    p.add_argument("--steps-per-task", type=int, default=d.steps_per_task)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--poll-every", type=float, default=5.0, help="seconds between one session's status reads")
    args = p.parse_args(argv)
    params = [dict(BASE, batch_size=d.batch_size, steps_per_task=args.steps_per_task, eval_every=args.eval_every,
                   seed=i) for i in range(args.sessions)]
    rss0 = peak_rss_mb()
    demo, url, registry = launch(max_runs=settings().max_runs)
    try:
        t0 = time.perf_counter()
        results = play_sessions(url, params, poll_every_s=args.poll_every)
        wall = time.perf_counter() - t0
        report(args, results, wall, rss0, registry)
        return 0 if all(r.get("error") is None for r in results) else 1
    finally:
        demo.close()


def report(args, results: list[dict], wall: float, rss0: float, registry) -> None:
    done = [r for r in results if r.get("error") is None]
    polls = [s for r in results for s in r.get("poll_s", [])]
    print(f"sessions {args.sessions}, steps/task {args.steps_per_task}, eval every {args.eval_every}, "
          f"cpus {os.cpu_count()}, training slots {registry.max_runs}, turns at once {registry.scheduler.slots}")
    print(f"got their result: {len(done)} of {len(results)}")
    print(f"first chart (first output with a matrix): {spread([r['first_chart_s'] for r in done if 'first_chart_s' in r])}")
    print(f"first trained chunk on screen: {spread([r['first_step_s'] for r in done if 'first_step_s' in r])}")
    print(f"result: {spread([r['wall_s'] for r in done])}; last result after {wall:.1f} s")
    print(f"status reads ({len(polls)}): {spread(polls)}")
    print(f"peak RSS {peak_rss_mb():.0f} MB (before launch {rss0:.0f} MB)")
    for r in results:
        if r.get("error"):
            print("error:", r["error"])


if __name__ == "__main__":
    sys.exit(main())
