"""Why the app runs all its torch work on one compute thread (serve/compute.py).

60 SeqFT steps of the tiny model (2 torch threads), each setting in a fresh process:
- `main`: on the main thread;
- `worker`: on one worker thread, nothing else in the process having used torch;
- `worker-after-main`: on one worker thread after the main thread ran one matrix product (so two threads
  own an OpenMP team, as when Gradio's pool threads take turns running a Play chunk).

    python bench/torch_threads.py --repeats 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("main", "worker", "worker-after-main")


def steps_seconds() -> float:
    sys.path.insert(0, ROOT)
    from cit_core.config import RunConfig, TrainConfig
    from cit_core.trainer import Trainer
    trainer = Trainer(RunConfig(method="seqft", train=TrainConfig(threads=2, steps_per_task=100, eval_every=0)))
    trainer.advance(5)                      # warm-up
    started = time.perf_counter()
    trainer.advance(60)
    return time.perf_counter() - started


def child(mode: str) -> None:
    if mode == "main":
        print(steps_seconds())
        return
    if mode == "worker-after-main":
        import torch
        a = torch.randn(1000, 1000)
        a @ a                               # the main thread now owns an OpenMP team too
    print(ThreadPoolExecutor(1).submit(steps_seconds).result())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", choices=MODES)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    times = {m: [] for m in MODES}
    for _ in range(args.repeats):           # alternating modes, so machine noise hits all alike
        for mode in MODES:
            out = subprocess.run([sys.executable, __file__, "--child", mode], env=env, capture_output=True,
                                 text=True, check=True).stdout.split()
            times[mode].append(float(out[-1]))
    print(f"60 SeqFT steps, tiny model, 2 torch threads, median of {args.repeats} fresh processes\n")
    print("| where the steps run | s | ratio to main |")
    print("|---|---|---|")
    base = statistics.median(times["main"])
    for mode in MODES:
        t = statistics.median(times[mode])
        print(f"| {mode} | {t:.2f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
