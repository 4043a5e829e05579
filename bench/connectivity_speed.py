"""Connectivity sweep speed: seconds per task pair, 11 points x all seen tasks, default lesson.

    OMP_NUM_THREADS=2 python bench/connectivity_speed.py [--steps 20] [--methods seqft seqft_lora]

Trains a short run per method on the default lesson (the probe's cost does not depend on how long the
tasks trained), then times probe_run on the saved run directory (the model rebuilt from config.json +
checkpoints, every consecutive pair, every variant). Goal (issue 4): <= 3 s per pair on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from anywhere

from cit_core.config import RunConfig, TrainConfig  # noqa: E402
from cit_core.connectivity import probe_run  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--points", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=["seqft", "seqft_lora"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("command:", "python " + " ".join(sys.argv), f"(torch threads {args.threads})")
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            cfg = RunConfig(method=method, train=TrainConfig(steps_per_task=args.steps, threads=args.threads))
            run_dir = Path(tmp) / method
            Trainer(cfg, run_dir=run_dir).run_to_end()
            lines = []
            started = time.perf_counter()
            probe_run(run_dir, points=args.points, log=lines.append)
            wall = time.perf_counter() - started
            pairs = json.loads((run_dir / "connectivity.json").read_text())["pairs"]
            per_pair = [p["seconds"] for p in pairs]
            worst = max(per_pair)
            print(f"{method}: {len(pairs)} pairs (variants x consecutive task pairs), {args.points} points, "
                  f"eval {pairs[-1]['eval_per_task'][0]} per task; seconds per pair: mean "
                  f"{sum(per_pair) / len(per_pair):.2f}, worst {worst:.2f} (last pair: {len(pairs[-1]['tasks'])} "
                  f"seen tasks); probe_run wall incl. model rebuild {wall:.1f} s; goal <= 3 s per pair: "
                  f"{'met' if worst <= 3.0 else 'NOT met'}")
            for line in lines:
                print("   ", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
