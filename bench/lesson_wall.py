"""Wall time and lesson numbers of the default lesson per method and seed, on this machine.

Runs `python -m cit_core run` for each method and seed (one at a time, so runs do not share cores) and
prints a markdown table: R[i][i] (min over tasks), AP, BWT, FWT, forgetting, run wall time (the
trainer's own clock, model build excluded) and process wall time (imports and model build included).

    python bench/lesson_wall.py --methods seqft replay multitask seqft_lora --seeds 0 1 2 --out bench/out
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(method: str, seed: int, out: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cit_core", "run", "--method", method, "--seed", str(seed),
                    "--out", str(out)], check=True, env=env, cwd=ROOT, capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    summary["process_s"] = time.perf_counter() - started
    return summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["seqft", "seqft_lora", "multitask", "replay"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    print("| method | seed | min R[i][i] | AP | BWT | FWT | forgetting | run wall s | process s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        for seed in args.seeds:
            s = run(method, seed, Path(args.out) / f"{method}-{seed}")
            m = s["metrics"]
            diag = min(s["acc_matrix"][i][i] for i in range(len(s["tasks"])))
            print(f"| {method} | {seed} | {diag:.2f} | {m['AP']:.3f} | {m['BWT']:.3f} | {m['FWT']:.3f} | "
                  f"{m['forgetting']:.3f} | {s['wall_s']:.1f} | {s['process_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
