"""Step time of every method relative to SeqFT-LoRA, and routed inference relative to plain LoRA.

All methods train the first two tasks of the default lesson from the same init with the same batch order.
Task 1 runs to its end (so replay buffers, importance, EMA shadows, routers exist), then a few warm-up
steps of task 2, then the timed part: rounds of `--steps` optimizer steps per method, methods interleaved
round by round (this machine is noisy; interleaving spreads the noise over all methods) and the median
per-step time kept. Evaluation is off inside the timed part. Extra work a method does by design shows up
in the ratio: replay-style methods train on more examples per step, so tokens per step are printed too.

EWC/MAS/TIR and the replay methods train all weights, so their cost is also given against SeqFT (full
fine-tuning); the LoRA methods' against SeqFT-LoRA. Replay-style methods keep the batch size: buffer rows
replace current rows (`mix_ratio`), so they train on no more tokens per step.

Inference: after both tasks, `Trainer.generate` on all 128 held-out prompts of both tasks, methods
interleaved, median wall time; SwitchCIT / expansion / LCIA route every prompt, plain LoRA does not.

    python bench/method_step_ratio.py --steps 5 --rounds 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from cit_core.config import RunConfig, TrainConfig  # noqa: E402
from cit_core.lessons import Lesson, default_lesson  # noqa: E402
from cit_core.methods import METHODS  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402

BASELINE = "seqft_lora"
GOALS = {"lcia": 1.2, "ewc": 1.3, "mas": 1.3, "ilora": 2.5}
ROUTED = ["switchcit", "switchcit(base_lm)", "expansion", "lcia", "oracle_lora"]
# the plain method each one adds its machinery to: full fine-tuning for the penalty and replay methods
OWN_BASE = {"ewc": "seqft", "mas": "seqft", "tir": "seqft", "replay": "seqft", "inscl": "seqft",
            "multitask": "seqft"}


def two_tasks() -> Lesson:
    return Lesson("bench", default_lesson(0, n_eval=64).tasks[:2])


# variants timed beside the registered methods: name -> (method, options)
VARIANTS = {"switchcit(base_lm)": ("switchcit", {"features": "base_lm"})}


def trainer_at_task2(method: str, steps_per_task: int, warmup: int) -> Trainer:
    method, options = VARIANTS.get(method, (method, {}))
    cfg = RunConfig(method=method, train=TrainConfig(steps_per_task=steps_per_task, eval_every=0, threads=1),
                    method_options=options)
    trainer = Trainer(cfg, lesson=two_tasks())
    trainer.advance(steps_per_task + warmup)      # task 1 to its end, then the first steps of task 2
    return trainer


def timed_steps(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(seconds per step, tokens per step) over the next `steps` optimizer steps."""
    tokens = trainer.log.tokens
    started = time.perf_counter()
    trainer.advance(steps)
    return (time.perf_counter() - started) / steps, (trainer.log.tokens - tokens) / steps


def step_ratios(methods: list[str], steps: int, rounds: int) -> dict:
    warmup = 3
    per_task = warmup + steps * rounds + 2           # the timed part never reaches task 2's end
    trainers = {m: trainer_at_task2(m, per_task, warmup) for m in methods}
    seconds = {m: [] for m in methods}
    tokens = {}
    for _ in range(rounds):
        for m in methods:
            s, t = timed_steps(trainers[m], steps)
            seconds[m].append(s)
            tokens[m] = t
    for t in trainers.values():
        t.run_to_end()                                # finish task 2: routers and groups are complete
    return {"trainers": trainers, "seconds": {m: statistics.median(v) for m, v in seconds.items()},
            "tokens": tokens}


def inference_times(trainers: dict, rounds: int) -> tuple[dict, dict, int]:
    """Median wall time of answering every held-out prompt of both tasks, per method: `warm` with the
    MiniLM embeddings of these prompts already memoised (as in the periodic evaluations, which repeat
    the same prompts), `cold` with the memo cleared first (new prompts: the switch pays for MiniLM)."""
    from cit_core.similarity import get_embedder
    examples = [ex for task in two_tasks().tasks for ex in task.eval]
    names = [m for m in [BASELINE, *ROUTED] if m in trainers]
    warm = {m: [] for m in names}
    cold = {m: [] for m in names}
    for _ in range(rounds):
        for m in names:
            for times, clear in ((cold, True), (warm, False)):
                if clear:                            # bench only: forget the prompts' embeddings
                    get_embedder()._memo.clear()
                    getattr(trainers[m].method, "_memo", {}).clear()     # SwitchCIT's own feature memo
                started = time.perf_counter()
                trainers[m].generate(examples)
                times[m].append(time.perf_counter() - started)
    return ({m: statistics.median(v) for m, v in warm.items()},
            {m: statistics.median(v) for m, v in cold.items()}, len(examples))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5, help="optimizer steps per method per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--methods", nargs="+", default=[*sorted(METHODS), *VARIANTS])
    args = ap.parse_args()
    torch.set_num_threads(1)
    methods = [BASELINE, *[m for m in args.methods if m != BASELINE]]
    result = step_ratios(methods, args.steps, args.rounds)
    base_s, base_tok = result["seconds"][BASELINE], result["tokens"][BASELINE]
    print(f"torch threads 1; {args.rounds} rounds x {args.steps} steps per method; task 2 of the default lesson\n")
    print("| method | ms / step | ratio to seqft_lora | ratio to its own base | tokens / step (ratio) | goal |")
    print("|---|---|---|---|---|---|")
    for m in methods:
        s, tok = result["seconds"][m], result["tokens"][m]
        own = OWN_BASE.get(m, BASELINE)
        goal = f"≤ {GOALS[m]}" if m in GOALS else ""
        own_ratio = f"{s / result['seconds'][own]:.2f} ({own})" if own in result["seconds"] else "—"
        print(f"| {m} | {1000 * s:.1f} | {s / base_s:.2f} | {own_ratio} | {tok:.0f} ({tok / base_tok:.2f}) | "
              f"{goal} |")
    warm, cold, n = inference_times(result["trainers"], args.rounds)
    print(f"\nrouted inference: {n} held-out prompts of both tasks, median of {args.rounds}\n")
    print("Plain LoRA's time depends on what it answers (greedy decoding stops when every answer has ended),")
    print("so the routing cost alone is the ratio to oracle_lora: the same per-task adapters and answers,")
    print("routed by the task label instead of by a router.\n")
    print("| method | warm ms | ratio to seqft_lora | ratio to oracle_lora | cold ms (no memo) | ratio to "
          "seqft_lora | ratio to oracle_lora |")
    print("|---|---|---|---|---|---|---|")
    oracle = "oracle_lora" if "oracle_lora" in warm else BASELINE
    for m in warm:
        print(f"| {m} | {1000 * warm[m]:.1f} | {warm[m] / warm[BASELINE]:.2f} | {warm[m] / warm[oracle]:.2f} | "
              f"{1000 * cold[m]:.1f} | {cold[m] / cold[BASELINE]:.2f} | {cold[m] / cold[oracle]:.2f} |")


if __name__ == "__main__":
    main()
