"""Wall time of a whole default SeqFT run (evaluations included), side by side with the classic lesson.

`new`: the default lesson on the instruction-tuned base with the default settings (the general suite
included). `classic`: the lesson and settings that were the default before (random-init 2-layer model,
150 steps per task, batch 32, evaluation every 25 steps, no general suite). Each run in a fresh process, alternating, medians compared.

    python bench/default_lesson_wall.py --repeats 3 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {
    "new": [],
    "classic": ["--lesson", "classic", "--model", "tiny-scratch", "--steps-per-task", "150", "--batch-size", "32",
                "--eval-every", "25", "--arch", "128,2,4,256"],
}


def child(extra: list[str], threads: int) -> dict:
    sys.path.insert(0, ROOT)
    ap = argparse.ArgumentParser()
    ap.add_argument("--lesson", default="default")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--steps-per-task", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--arch")
    a = ap.parse_args(extra)
    from cit_core.config import LessonConfig, ModelConfig, RunConfig, TrainConfig
    from cit_core.trainer import Trainer
    train = {k: v for k, v in (("steps_per_task", a.steps_per_task), ("batch_size", a.batch_size),
                               ("eval_every", a.eval_every)) if v is not None}
    if a.lesson == "classic":
        train["eval_general"] = False      # the classic run as it was: no general suite
    model = {"name": a.model}
    if a.arch:
        model.update(zip(("hidden", "layers", "heads", "intermediate"), map(int, a.arch.split(","))))
    cfg = RunConfig(method="seqft", model=ModelConfig(**model), lesson=LessonConfig(name=a.lesson),
                    train=TrainConfig(threads=threads, **train))
    s = Trainer(cfg).run_to_end()
    return {"wall_s": s["wall_s"], "setup_s": s["setup_s"], "eval_s": s["eval_s"], "AP": s["metrics"]["AP"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", choices=list(CASES))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(CASES[args.child], args.threads)))
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    got = {c: [] for c in CASES}
    for _ in range(args.repeats):
        for case in CASES:
            out = subprocess.run([sys.executable, __file__, "--child", case, "--threads", str(args.threads)],
                                 env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            got[case].append(json.loads(out))
            print(case, got[case][-1], flush=True)
    med = {c: statistics.median(r["wall_s"] for r in got[c]) for c in CASES}
    print(f"\n| lesson | runs | wall s (median; min–max) | of which evaluation s | setup s |")
    print("|---|---|---|---|---|")
    for c in CASES:
        w = [r["wall_s"] for r in got[c]]
        print(f"| {c} | {len(w)} | {med[c]:.1f} ({min(w):.1f}–{max(w):.1f}) | "
              f"{statistics.median(r['eval_s'] for r in got[c]):.1f} | {statistics.median(r['setup_s'] for r in got[c]):.2f} |")
    print(f"\nratio new / classic: {med['new'] / med['classic']:.3f}")


if __name__ == "__main__":
    main()
