"""Engine step throughput vs a bare PyTorch loop on the same model, batches and seed.

Both sides: the tiny default model, the same pre-drawn batches of the default lesson's first task,
AdamW, gradient clipping, zero_grad. The engine side runs through Trainer.advance() (events, logging,
method hooks); evaluation time is subtracted so only the training path is compared. Runs alternate
(engine, bare, engine, bare, ...) and the medians are compared, because this machine is noisy.

    python bench/engine_vs_bare.py --steps 150 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import random
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from cit_core.config import RunConfig, TrainConfig  # noqa: E402
from cit_core.data import BatchSampler, Pool  # noqa: E402
from cit_core.lessons import Lesson, default_lesson  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402


def one_task_lesson() -> Lesson:
    return Lesson("bench", default_lesson(0, n_eval=8).tasks[:1])


def config(steps: int, method: str = "seqft") -> RunConfig:
    return RunConfig(method=method, train=TrainConfig(steps_per_task=steps, eval_every=0))


def same_batches(trainer, steps: int) -> list:
    """The batches the engine draws for the first task (same sampler, same seed), collated up front."""
    task = trainer.lesson.tasks[0]
    sampler = BatchSampler([Pool([(ex, 0) for ex in task.train], 1.0)], 32, random.Random("batches-0"))
    return [trainer.encoder.collate(*sampler.next_batch()) for _ in range(steps)]


def engine_rate(steps: int, method: str = "seqft") -> float:
    trainer = Trainer(config(steps, method), lesson=one_task_lesson())
    trainer.advance(0)                           # base evaluation, outside the timed part
    base_eval = trainer.log.eval_seconds
    started = time.perf_counter()
    trainer.advance(steps)
    # the task-end evaluation runs inside advance(): subtract its measured time
    elapsed = time.perf_counter() - started - (trainer.log.eval_seconds - base_eval)
    return steps / elapsed


def bare_rate(steps: int, method: str = "seqft") -> float:
    """Same init, same batches (pre-collated: the strictest baseline), plain loop."""
    trainer = Trainer(config(steps, method), lesson=one_task_lesson())
    batches = same_batches(trainer, steps)
    model = trainer.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    model.train()
    started = time.perf_counter()
    for b in batches:
        out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(out.loss.detach())
    return steps / (time.perf_counter() - started)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--method", default="seqft")
    args = ap.parse_args()
    torch.set_num_threads(2)
    engine, bare = [], []
    for _ in range(args.repeats):
        engine.append(engine_rate(args.steps, args.method))
        bare.append(bare_rate(args.steps, args.method))
    e, b = statistics.median(engine), statistics.median(bare)
    print(f"method={args.method} steps={args.steps} repeats={args.repeats}")
    print(f"engine {e:.2f} steps/s  bare {b:.2f} steps/s  ratio engine/bare = {e / b:.3f}")


if __name__ == "__main__":
    main()
