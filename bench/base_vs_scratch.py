"""The instruction-tuned base vs the random init on the default lesson, SeqFT, side by side.

For each base and seed, one SeqFT run at the default schedule (R[i][i], row 0, FWT, forgetting, the
general suite) and one long run (150 steps per task, evaluation every 5 steps) that tells how many steps
each task needs to reach 0.90 on its held-out prompts. Runs of the two bases alternate.

    python bench/base_vs_scratch.py --seeds 0 1 2 --threads 2 --out /tmp/base_vs_scratch.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cit_core.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402

BASES = ("tiny", "tiny-scratch")
TARGET = 0.90


def run(base: str, seed: int, threads: int, **train) -> dict:
    cfg = RunConfig(method="seqft", model=ModelConfig(name=base), train=TrainConfig(seed=seed, threads=threads, **train))
    started = time.perf_counter()
    summary = Trainer(cfg).run_to_end()
    summary["bench_wall_s"] = time.perf_counter() - started
    return summary


def steps_to_target(summary: dict, steps_per_task: int) -> list[int | None]:
    """Per task: steps into its own training at the first evaluation scoring >= TARGET (None: never)."""
    curves, out = summary["curves"], []
    for i in range(len(summary["tasks"])):
        start, end = i * steps_per_task, (i + 1) * steps_per_task
        hit = next((s - start for s, row in zip(curves["steps"], curves["scores"])
                    if start < s <= end and row[i] >= TARGET), None)
        out.append(hit)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-steps", type=int, default=150)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    d = TrainConfig()
    results = {b: [] for b in BASES}
    for seed in args.seeds:
        for base in BASES:
            short = run(base, seed, args.threads)
            long = run(base, seed, args.threads, steps_per_task=args.long_steps, eval_every=5)
            results[base].append({
                "seed": seed, "diagonal": [short["acc_matrix"][i][i] for i in range(len(short["tasks"]))],
                "row0": short["base_scores"], "metrics": short["metrics"], "general": short.get("general"),
                "steps_to_090": steps_to_target(long, args.long_steps), "wall_s": short["wall_s"]})
            r = results[base][-1]
            print(f"{base:13s} seed {seed}: R[i][i] {[round(x, 2) for x in r['diagonal']]} "
                  f"row0 {[round(x, 2) for x in r['row0']]} steps-to-{TARGET} {r['steps_to_090']} "
                  f"FWT {r['metrics']['FWT']:.3f} F {r['metrics']['forgetting']:.3f} wall {r['wall_s']:.1f}s",
                  flush=True)
    print(f"\ndefault schedule: {d.steps_per_task} steps/task, batch {d.batch_size}, lr {d.lr}; "
          f"steps to {TARGET} from {args.long_steps}-step runs evaluated every 5 steps")
    tasks = short["tasks"]
    print("| base | mean R[i][i] | mean row 0 | FWT | forgetting | " + " | ".join(f"steps to 0.90: {t}" for t in tasks) + " |")
    print("|---|---|---|---|---|" + "---|" * len(tasks))
    for base in BASES:
        rs = results[base]
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        diag = mean([mean(r["diagonal"]) for r in rs])
        row0 = mean([mean(r["row0"]) for r in rs])
        fwt = mean([r["metrics"]["FWT"] for r in rs])
        fgt = mean([r["metrics"]["forgetting"] for r in rs])
        steps = [" / ".join("—" if r["steps_to_090"][i] is None else str(r["steps_to_090"][i]) for r in rs)
                 for i in range(len(tasks))]
        print(f"| {base} | {diag:.3f} | {row0:.3f} | {fwt:.3f} | {fgt:.3f} | " + " | ".join(steps) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
