"""Many gradio_client sessions against one app in this process: the harness of the load test
(tests/serve/test_load.py) and of bench/load.py."""
from __future__ import annotations

import contextlib
import re
import resource
import threading
import time

import gradio_client

from .app import free_port

STEP_RE = re.compile(r"step (\d+) / (\d+)")
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


@contextlib.contextmanager
def running_app(max_runs: int = 4):
    """The app served on a free loopback port while the block runs: yields (url, registry)."""
    demo, url, registry = launch(max_runs)
    try:
        yield url, registry
    finally:
        demo.close()


def play_sessions(url: str, params: list[dict], heartbeat: bool = True, poll_every_s: float = 5.0) -> list[dict]:
    """Start one client per params dict, all at once; each presses Play and waits for the run's end, with its
    tab open: like a browser it sends /heartbeat at once and every HEARTBEAT_S (`heartbeat=False`: a script
    that never opened the page), and it reads its status every `poll_every_s` while it waits.

    Returns per session: client, session_hash, wall_s, first_chart_s (the first streamed output with a
    matrix), first_step_s (the first output drawn after a trained chunk), poll_s (each status read's
    latency), status (at the end), error (None when it finished)."""
    results = [dict() for _ in params]
    start = threading.Barrier(len(params))

    def one(i: int) -> None:
        res = results[i]
        try:
            client = gradio_client.Client(url, verbose=False, httpx_kwargs={"timeout": 600})
            res.update(client=client, session_hash=client.session_hash, poll_s=[])
            if heartbeat:
                client.predict(api_name="/heartbeat")
            start.wait(timeout=120)
            t0 = time.perf_counter()
            job = client.submit(**params[i], api_name="/play")
            _follow(client, job, res, t0, heartbeat, poll_every_s)
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


def _follow(client, job, res: dict, t0: float, heartbeat: bool, poll_every_s: float) -> None:
    """Watch a Play job's stream until it ends, as an open tab would: heartbeats, status reads."""
    from pages.train import HEARTBEAT_S
    seen, beat_at, poll_at = 0, t0, t0 + poll_every_s
    while True:
        done = job.done()
        outputs = job.outputs()
        for out in outputs[seen:]:
            now = time.perf_counter() - t0
            if out[1] is not None and "first_chart_s" not in res:          # out: status, matrix, ...
                res["first_chart_s"] = now
            step = STEP_RE.search(out[0] or "")
            if step and int(step.group(1)) > 0 and "waiting" not in out[0] and "first_step_s" not in res:
                res["first_step_s"] = now
        seen = len(outputs)
        if done:
            job.result()                                # raises what the job raised
            return
        now = time.perf_counter()
        if heartbeat and now - beat_at >= HEARTBEAT_S:
            client.predict(api_name="/heartbeat")
            beat_at = now
        if now >= poll_at:
            client.predict(api_name="/session_status")
            res["poll_s"].append(time.perf_counter() - now)
            poll_at = time.perf_counter() + poll_every_s
        time.sleep(0.2)


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
