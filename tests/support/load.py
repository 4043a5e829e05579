"""Many gradio_client sessions against one app in this process: the harness of the load test
(tests/serve/test_load.py) and of bench/load.py."""
from __future__ import annotations

import os
import resource
import threading
import time

import gradio_client

from .app import free_port

TIMING_KEYS = {"wall_s", "eval_s", "setup_s", "train_s"}   # the only summary entries allowed to differ (clocks)
BASE = dict(lesson="default", files=[], method="seqft", model="tiny", lr=1e-3, batch_size=32,
            replay_per_task=64, replay_mix_ratio=0.25, method_options="")


def launch(max_runs: int):
    """The app on a free loopback port, in this process: (demo, url, registry)."""
    from app import build_app
    from serve.registry import RunRegistry
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
            res["status"] = client.predict(api_name="/session_status")[0]
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
