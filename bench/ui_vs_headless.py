"""A default-lesson run driven through the live app (gradio_client Play) vs the same run headless.

Both sides use the same config, seed and torch thread count (the app's own choice: cores split between
the runs that may train at once). The app runs in this process on 127.0.0.1; the headless side is
Trainer.run_to_end() in this process too. Alternating runs; the ratio is headless wall / UI wall
(>= 0.90 means the UI costs at most ~10%).

    python bench/ui_vs_headless.py --repeats 2
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio_client  # noqa: E402

from app import build_app  # noqa: E402
from cit_core.config import RunConfig, TrainConfig  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402
from pages.train import torch_threads  # noqa: E402

DEFAULTS = dict(lesson="default", files=[], method="seqft", model="tiny", steps_per_task=150, lr=1e-3,
                batch_size=32, eval_every=25, seed=0, replay_per_task=64, replay_mix_ratio=0.25,
                method_options="")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def headless(method: str) -> tuple[float, dict]:
    cfg = RunConfig(method=method, train=TrainConfig(threads=torch_threads()))
    started = time.perf_counter()
    trainer = Trainer(cfg)
    summary = trainer.run_to_end()
    return time.perf_counter() - started, summary["metrics"]


def through_ui(url: str, method: str) -> tuple[float, int]:
    client = gradio_client.Client(url, verbose=False)
    started = time.perf_counter()
    job = client.submit(**{**DEFAULTS, "method": method}, api_name="/play")
    job.result()                         # returns when Play ends: the run finished
    elapsed = time.perf_counter() - started
    status = client.predict(api_name="/status")[0]
    assert "750 / 750" in status, status
    return elapsed, len(job.outputs())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--method", default="seqft")
    args = ap.parse_args()
    demo = build_app()
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    url = f"http://127.0.0.1:{port}"
    ui, hl = [], []
    try:
        for _ in range(args.repeats):
            wall, yields = through_ui(url, args.method)
            ui.append(wall)
            print(f"UI run {wall:.1f} s ({yields} yields)", flush=True)
            wall, metrics = headless(args.method)
            hl.append(wall)
            print(f"headless run {wall:.1f} s  forgetting {metrics['forgetting']:.3f}", flush=True)
    finally:
        demo.close()
    u, h = statistics.median(ui), statistics.median(hl)
    print(f"method={args.method} threads={torch_threads()} repeats={args.repeats}: UI {u:.1f} s, "
          f"headless {h:.1f} s, ratio headless/UI = {h / u:.3f}")


if __name__ == "__main__":
    main()
