"""Engine vs Hugging Face Trainer (+ peft for LoRA) on the same work.

Same tiny model and init, the same pre-drawn batches of the default lesson's first task, AdamW at a
constant learning rate, gradient clipping 1.0, no evaluation. The engine side is Trainer.advance() with
its task-end evaluation time subtracted; the HF side is transformers.Trainer.train() fed one
pre-collated batch per item. Alternating runs, medians compared.

    python bench/engine_vs_hf_trainer.py --steps 150 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from engine_vs_bare import config, engine_rate, one_task_lesson, same_batches  # noqa: E402

from cit_core.trainer import Trainer  # noqa: E402


class Batches(torch.utils.data.Dataset):
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        b = self.batches[i]
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}


def hf_rate(steps: int, method: str) -> float:
    from transformers import Trainer as HFTrainer, TrainingArguments
    built = Trainer(config(steps, method), lesson=one_task_lesson())   # same model, init and wrapping
    data = Batches(same_batches(built, steps))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=1,
                                 learning_rate=1e-3, weight_decay=0.0, max_grad_norm=1.0,
                                 lr_scheduler_type="constant", warmup_steps=0, logging_steps=10_000,
                                 save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                                 dataloader_num_workers=0, seed=0)
        hf = HFTrainer(model=built.model, args=args, train_dataset=data,
                       data_collator=lambda items: {k: v for k, v in items[0].items()})
        started = time.perf_counter()
        hf.train()
        return steps / (time.perf_counter() - started)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["seqft", "seqft_lora"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    for method in args.methods:
        engine, hf = [], []
        for _ in range(args.repeats):
            engine.append(engine_rate(args.steps, method))
            hf.append(hf_rate(args.steps, method))
        e, h = statistics.median(engine), statistics.median(hf)
        print(f"method={method} steps={args.steps} repeats={args.repeats}: engine {e:.2f} steps/s, "
              f"HF Trainer {h:.2f} steps/s, ratio engine/HF = {e / h:.3f}", flush=True)


if __name__ == "__main__":
    main()
