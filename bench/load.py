"""Load: N gradio_client sessions play the default lesson at once against one app on 127.0.0.1.

    OMP_NUM_THREADS=1 python bench/load.py --sessions 8            # normal default steps (150 per task)
    python bench/load.py --sessions 4 --steps-per-task 10 --solo all   # what tests/test_load.py runs

Each session gets its own seed (0..N-1). Prints the wall time until every session finished, each
session's wall time, the peak RSS of this process (the server runs in it, so that is the server's peak)
and, for `--solo` sessions, whether the session's summary equals a solo Trainer run of the same config
(no cross-talk between sessions). The functions are reused by tests/test_load.py.
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradio_client  # noqa: E402

TIMING_KEYS = {"wall_s", "eval_s", "setup_s", "train_s"}   # the only summary entries allowed to differ (clocks)
BASE = dict(lesson="default", files=[], method="seqft", model="tiny", lr=1e-3, batch_size=32,
            replay_per_task=64, replay_mix_ratio=0.25, method_options="")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(max_runs: int):
    """The app on a free loopback port, in this process: (demo, url, registry)."""
    from app import build_app
    from cit_core.registry import RunRegistry
    registry = RunRegistry(max_runs=max_runs, idle_ttl_s=1800)
    demo = build_app(registry)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return demo, f"http://127.0.0.1:{port}", registry


def play_sessions(url: str, params: list[dict]) -> list[dict]:
    """Start one client per params dict, all at once; each presses Play and waits for the run's end.

    Returns per session: client, session_hash, wall_s, error (None when it finished)."""
    results = [dict() for _ in params]
    start = threading.Barrier(len(params))

    def one(i: int) -> None:
        res = results[i]
        try:
            client = gradio_client.Client(url, verbose=False, httpx_kwargs={"timeout": 600})
            res.update(client=client, session_hash=client.session_hash)
            start.wait(timeout=120)
            t0 = time.perf_counter()
            client.submit(**params[i], api_name="/play").result(timeout=3600)
            res["wall_s"] = time.perf_counter() - t0
            res["status"] = client.predict(api_name="/status")[0]
            res["error"] = None
        except Exception as err:  # noqa: BLE001 - reported per session
            res["error"] = f"{type(err).__name__}: {err}"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(params))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def session_run(registry, session_hash: str):
    runs = [registry.get(rid) for rid in registry.ids()]
    mine = [r for r in runs if r is not None and r.owner == session_hash]
    assert len(mine) == 1, f"session {session_hash} owns {len(mine)} runs"
    return mine[0]


def solo_summary(cfg) -> dict:
    from cit_core.trainer import Trainer
    return Trainer(cfg).run_to_end()


def differences(a: dict, b: dict) -> list[str]:
    keys = (set(a) | set(b)) - TIMING_KEYS
    return sorted(k for k in keys if a.get(k) != b.get(k))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KiB on Linux


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
