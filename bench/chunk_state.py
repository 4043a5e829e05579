"""What a ZeroGPU chunk costs beyond its training steps (serve/chunks.py).

Every Play chunk on ZeroGPU unpacks the state in the GPU worker, trains, packs it, and the main process
unpacks a CPU copy for the views: one pack and two unpacks per call. For each method this trains into
the second task, then measures, side by side in one process: the state's size, pack and unpack
seconds, and the seconds of `--steps` training steps (the app's steps per GPU call), and prints
overhead = (pack + 2 unpack) / those steps. On the CPU here; on a GPU the steps get faster, the
(CPU-side) pickling does not.

    python bench/chunk_state.py --model tiny
    python bench/chunk_state.py --model smollm2 --batch 4 --steps 5 --methods seqft_lora ilora lcia
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

METHODS = ("seqft", "seqft_lora", "replay", "ewc", "switchcit", "ilora", "lcia")


def measure(method: str, model: str, batch: int, steps: int, rounds: int) -> dict:
    from serve import chunks
    from cit_core.config import ModelConfig, RunConfig, TrainConfig
    from cit_core.trainer import Trainer
    cfg = RunConfig(method=method, model=ModelConfig(name=model),
                    train=TrainConfig(steps_per_task=4 * steps * rounds, batch_size=batch, eval_every=0,
                                      threads=2))
    trainer = Trainer(cfg)
    trainer.advance(cfg.train.steps_per_task + steps)      # into task 2: snapshots, buffers, importance
    packs, unpacks, trains, size = [], [], [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        trainer.advance(steps)
        trains.append(time.perf_counter() - started)
        started = time.perf_counter()
        data = chunks.pack(trainer)
        packs.append(time.perf_counter() - started)
        started = time.perf_counter()
        trainer = chunks.unpack(data)
        unpacks.append(time.perf_counter() - started)
        size = len(data)
    best = min                                  # the least disturbed repeat of each, on a noisy machine
    return {"method": method, "mb": size / 2**20, "pack": best(packs), "unpack": best(unpacks),
            "train": best(trains), "overhead": (best(packs) + 2 * best(unpacks)) / best(trains)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="training steps per GPU call")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"model {args.model}, batch {args.batch}, {args.steps} steps per call, best of {args.rounds}")
    print(f"{'method':<12} {'state MB':>9} {'pack s':>8} {'unpack s':>9} {'steps s':>8} {'overhead':>9}")
    for method in args.methods:
        r = measure(method, args.model, args.batch, args.steps, args.rounds)
        print(f"{r['method']:<12} {r['mb']:>9.2f} {r['pack']:>8.3f} {r['unpack']:>9.3f} {r['train']:>8.3f} "
              f"{r['overhead']:>9.3f}")


if __name__ == "__main__":
    main()
