"""Do the analysis views slow a live run? A run driven through the app (gradio_client Play) while every
view's timer endpoint is called as if all tabs were open, vs the same run headless, side by side.

Goal (issue 4): UI-with-views ÷ headless speed ≥ 0.90, i.e. headless wall / UI wall ≥ 0.90.
The poller calls each view's tick endpoint (every gr.Timer tick of the app) in the Play session, every
TIMER_S seconds, all of them at once: harsher than a browser, which only ticks the shown tab's timer.
Each view redraws only when the run's data changed (a live run changes every step, so they redraw on
every tick). Also measured: the same UI run with no view polling, to separate the Train tab's own cost.

The client (Play and the polls) runs in a child process, as a browser would: in the server's own
process its decoding of every streamed update would compete with training for the GIL, which the tiny
model's Python-bound steps feel at once (`--same-process` measures that harsher setting).

    python bench/views_overhead.py --method lcia --repeats 3
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import gradio_client  # noqa: E402

from app import build_app  # noqa: E402
from serve import compute  # noqa: E402
from cit_core.config import RunConfig, TrainConfig  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402
from pages.source import TIMER_S  # noqa: E402
from serve.controls import torch_threads  # noqa: E402

DEFAULTS = dict(lesson="default", files=[], method="seqft", model="tiny", steps_per_task=150, lr=1e-3,
                batch_size=32, eval_every=25, seed=0, replay_per_task=64, replay_mix_ratio=0.25,
                method_options="")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tick_endpoints(demo) -> list[tuple[str, list]]:
    """(api name, arguments) of every gr.Timer tick handler: its non-State inputs at their initial values
    (a view's run picker starts on this session's live run)."""
    out = []
    for fn in demo.fns.values():
        if any(event == "tick" for _, event in fn.targets) and fn.api_name:
            args = [block.value for block in fn.inputs if not isinstance(block, gr.State)]
            out.append((fn.api_name, args))
    return out


def headless(method: str, steps: int) -> float:
    """The same run without the app, on the app's compute thread: in this process that thread already has
    torch's OpenMP team, and a second team (this thread's) would slow both (serve/compute.py)."""
    cfg = RunConfig(method=method, train=TrainConfig(threads=torch_threads(), steps_per_task=steps))
    started = time.perf_counter()
    compute.run(lambda: Trainer(cfg).run_to_end())
    return time.perf_counter() - started


def poll_views(client, endpoints, stop: threading.Event, stats: dict) -> None:
    """Call every tick endpoint every TIMER_S s (as the timers would); count calls and their latency."""
    while not stop.wait(TIMER_S):
        for name, args in endpoints:
            started = time.perf_counter()
            try:
                client.predict(*args, api_name=f"/{name}")
            except Exception as err:  # a view failing is a finding, not a reason to stop the bench
                stats.setdefault("errors", []).append(f"{name}: {err}")
                continue
            stats.setdefault(name, []).append(time.perf_counter() - started)


def through_ui(url: str, method: str, steps: int, endpoints) -> tuple[float, dict]:
    client = gradio_client.Client(url, verbose=False, httpx_kwargs={"timeout": 120})
    stop, stats = threading.Event(), {}
    poller = threading.Thread(target=poll_views, args=(client, endpoints, stop, stats), daemon=True)
    started = time.perf_counter()
    job = client.submit(**{**DEFAULTS, "method": method, "steps_per_task": steps}, api_name="/play")
    if endpoints:
        poller.start()
    job.result()                          # Play returns when the run has finished
    elapsed = time.perf_counter() - started
    stop.set()
    if endpoints:
        poller.join()
    status = client.predict(api_name="/status")[0]
    total = steps * 5
    assert f"{total} / {total}" in status, status
    return elapsed, stats


def _client_process(url, method, steps, endpoints, results) -> None:
    results.put(through_ui(url, method, steps, endpoints))


def through_ui_elsewhere(url: str, method: str, steps: int, endpoints) -> tuple[float, dict]:
    """through_ui in a child process (spawned: it imports this module; timing starts once it is ready)."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_client_process, args=(url, method, steps, endpoints, results))
    child.start()
    try:
        return results.get(timeout=1800)
    finally:
        child.join(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="lcia")
    ap.add_argument("--steps-per-task", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--same-process", action="store_true", help="run the client in the server's process")
    ap.add_argument("--one-view", default="coefficients_refresh",
                    help="the single view polled in the 'UI + one view' runs (a browser ticks only the shown tab)")
    args = ap.parse_args()
    drive = through_ui if args.same_process else through_ui_elsewhere
    demo = build_app()
    endpoints = tick_endpoints(demo)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    url = f"http://127.0.0.1:{port}"
    print("polling every", TIMER_S, "s:", ", ".join(name for name, _ in endpoints), flush=True)
    walls = {"headless": [], "ui": [], "ui+view": [], "ui+views": []}
    one = [(name, a) for name, a in endpoints if name == args.one_view]
    calls: dict[str, list[float]] = {}
    try:
        for _ in range(args.repeats):     # alternating, so drifting machine load hits all three alike
            walls["headless"].append(headless(args.method, args.steps_per_task))
            print(f"headless      {walls['headless'][-1]:.1f} s", flush=True)
            wall, _ = drive(url, args.method, args.steps_per_task, [])
            walls["ui"].append(wall)
            print(f"UI            {wall:.1f} s", flush=True)
            wall, _ = drive(url, args.method, args.steps_per_task, one)
            walls["ui+view"].append(wall)
            print(f"UI + one view {wall:.1f} s ({args.one_view})", flush=True)
            wall, stats = drive(url, args.method, args.steps_per_task, endpoints)
            walls["ui+views"].append(wall)
            for name, values in stats.items():
                calls.setdefault(name, []).extend(values)
            print(f"UI + views    {wall:.1f} s", flush=True)
    finally:
        demo.close()
    for name, values in calls.items():
        if name == "errors":
            print(f"ERRORS ({len(values)}): {values[:3]}")
        else:
            print(f"  {name}: {len(values)} calls, median {statistics.median(values) * 1000:.0f} ms, "
                  f"max {max(values) * 1000:.0f} ms")
    h, u, o, v = (statistics.median(walls[k]) for k in ("headless", "ui", "ui+view", "ui+views"))
    where = "same process" if args.same_process else "client in a child process"
    print(f"method={args.method} steps/task={args.steps_per_task} threads={torch_threads()} repeats={args.repeats} "
          f"({where}): headless {h:.1f} s, UI {u:.1f} s, UI + one view {o:.1f} s, UI + all views {v:.1f} s; "
          f"ratio headless/UI = {h / u:.3f}, headless/(UI + one view) = {h / o:.3f}, "
          f"headless/(UI + all views) = {h / v:.3f} (goal >= 0.90)")
    print("command: python bench/views_overhead.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
