"""Load: N gradio_client sessions play the default lesson at once against one app on 127.0.0.1.

    OMP_NUM_THREADS=1 python bench/load.py --sessions 8            # normal default steps (150 per task)
    python bench/load.py --sessions 4 --steps-per-task 10 --solo all   # what tests/serve/test_load.py runs

Each session gets its own seed (0..N-1). Prints the wall time until every session finished, each
session's wall time, the peak RSS of this process (the server runs in it, so that is the server's peak)
and, for `--solo` sessions, whether the session's summary equals a solo Trainer run of the same config
(no cross-talk between sessions). The harness lives in tests/support/load.py (the load test uses it too).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.load import (BASE, differences, launch, peak_rss_mb, play_sessions,  # noqa: E402
                                session_run, solo_summary)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--steps-per-task", type=int, default=150)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--solo", default="2", help="how many sessions to check against a solo run, or 'all'")
    args = p.parse_args(argv)
    params = [dict(BASE, steps_per_task=args.steps_per_task, eval_every=args.eval_every, seed=i)
              for i in range(args.sessions)]
    rss0 = peak_rss_mb()
    demo, url, registry = launch(max_runs=args.sessions)
    try:
        t0 = time.perf_counter()
        results = play_sessions(url, params)
        wall = time.perf_counter() - t0
        peak = peak_rss_mb()
        failed = [r["error"] for r in results if r.get("error")]
        print(f"sessions {args.sessions}, steps/task {args.steps_per_task}, eval every {args.eval_every}, "
              f"cpus {os.cpu_count()}, train concurrency {os.environ.get('CIT_TRAIN_CONCURRENCY', 'default')}")
        print(f"all finished: {not failed}  wall {wall:.1f} s  peak RSS {peak:.0f} MB "
              f"(before launch {rss0:.0f} MB)")
        print("per-session wall s: " + " ".join(f"{r.get('wall_s', float('nan')):.1f}" for r in results))
        if failed:
            print("errors:", failed)
            return 1
        n_solo = args.sessions if args.solo == "all" else min(int(args.solo), args.sessions)
        ok = True
        for r in results[:n_solo]:
            run = session_run(registry, r["session_hash"])
            diff = differences(run.trainer.log.summary, solo_summary(run.cfg))
            ok &= not diff
            print(f"seed {run.cfg.train.seed}: summary equals solo run: {not diff} {diff or ''} "
                  f"AP={run.trainer.log.summary['metrics']['AP']:.3f}")
        return 0 if ok else 1
    finally:
        demo.close()


if __name__ == "__main__":
    sys.exit(main())
