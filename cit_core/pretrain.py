"""Multi-task instruction tuning of the tiny byte-level model: the base every default run starts from.

`python -m cit_core pretrain --out DIR` trains the seeded random init (`model.build_tiny_scratch`) on the
generated corpus of 40 task families (`lessons/corpus.py`) and writes DIR/model.safetensors (float16)
and DIR/manifest.json: the exact command, seed, architecture, corpus hash, steps, wall time, the loss at
fixed steps and the base's exact-match score per family on held-out inputs. The shipped base lives in
`assets/tiny-instruct/`; `tests/test_pretrain.py` re-runs the first steps and reproduces the manifest's
losses within a tolerance.

Why these choices (measured on the 2-core machine, README "The instruction-tuned base"):
- loss on answer tokens only, as in instruction tuning (and as the continual runs train);
- linear warm-up then cosine decay: the byte model is unstable at its peak rate from a random init;
- every family equally often: the rare long answers (reverse, sort) need as many draws as the labels.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .config import ModelConfig
from .evaluate import generate_answers, score_task
from .lessons.corpus import FAMILIES, GENERAL_FAMILIES, draw, general_suite, stream
from .tokenize import COMPACT, ByteTokenizer, Encoder

LOG_EVERY = 100            # the manifest keeps the mean loss of every LOG_EVERY steps
FIRST_STEPS = 20           # ... and each of the first FIRST_STEPS losses (the reproduction test reads them)


@dataclass
class PretrainConfig:
    steps: int = 7000
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 200
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 2
    eval_every: int = 1000


def learning_rate(cfg: PretrainConfig, step: int) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def example_bytes(ex) -> bytes:
    """How one corpus example enters the manifest's corpus hash (unit and record separators)."""
    return f"{ex.instruction}\x1f{ex.input}\x1f{ex.output}\x1e".encode("utf-8")


class Pretrainer:
    """The pretraining loop, steppable so that a test can run its first steps only."""

    def __init__(self, cfg: PretrainConfig, model_cfg: ModelConfig | None = None):
        from .model import build_tiny_scratch
        self.cfg, self.model_cfg = cfg, model_cfg or ModelConfig()
        torch.set_num_threads(cfg.threads)
        self.model, tokenizer = build_tiny_scratch(self.model_cfg, seed=cfg.seed)
        self.encoder = Encoder(tokenizer, COMPACT, max_len=128)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.corpus = stream(cfg.seed)
        self.corpus_hash = hashlib.sha256()
        self.step = 0
        self.losses: list[float] = []

    def next_batch(self):
        examples = []
        for _ in range(self.cfg.batch_size):
            _, ex = next(self.corpus)
            self.corpus_hash.update(example_bytes(ex))
            examples.append(ex)
        return self.encoder.collate(examples)

    def train_step(self) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.cfg, self.step)
        batch = self.next_batch()
        self.model.train()
        out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        loss = float(out.loss.detach())
        self.losses.append(loss)
        return loss

    def family_scores(self, n_per_family: int = 12) -> dict[str, float]:
        """Exact match per family on held-out inputs (the general suite's families and all others)."""
        self.model.eval()
        scores = {}
        with torch.no_grad():
            for name, family in FAMILIES.items():
                rng = random.Random(f"family-check-{name}")
                examples = [draw(family, rng, reserved=True) for _ in range(n_per_family)]
                answers = generate_answers(self.model, self.encoder, examples, batch_size=128)
                scores[name] = round(sum(a == ex.output for a, ex in zip(answers, examples)) / len(examples), 3)
        self.model.train()
        return scores

    def general_score(self) -> float:
        suite = general_suite()
        self.model.eval()
        answers = generate_answers(self.model, self.encoder, suite.eval, batch_size=128)
        self.model.train()
        return round(score_task(suite, answers), 4)


def save_weights(model, path: Path) -> None:
    from safetensors.torch import save_file
    # 16-bit storage halves the file; the runs load it back into float32 (rounding error < 1e-3 relative)
    tensors = {n: p.detach().to(torch.float16).contiguous() for n, p in model.state_dict().items()
               if n != "lm_head.weight"}   # tied to the embedding
    save_file(tensors, str(path), metadata={"format": "pt"})


def pretrain(out: Path, cfg: PretrainConfig, model_cfg: ModelConfig | None = None, command: str = "",
             log=print) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    trainer = Pretrainer(cfg, model_cfg)
    checks = []
    window = []
    loss_at = {}
    for _ in range(cfg.steps):
        window.append(trainer.train_step())
        if trainer.step % LOG_EVERY == 0:
            loss_at[trainer.step] = round(sum(window) / len(window), 5)
            window = []
            log(f"step {trainer.step}/{cfg.steps} loss {loss_at[trainer.step]:.4f} "
                f"lr {learning_rate(cfg, trainer.step):.2e} {time.perf_counter() - started:.0f} s")
        if cfg.eval_every and trainer.step % cfg.eval_every == 0 and trainer.step < cfg.steps:
            general = trainer.general_score()
            checks.append({"step": trainer.step, "general": general,
                           "wall_s": round(time.perf_counter() - started, 1)})
            log(f"step {trainer.step}: general suite exact match {general:.3f}")
    wall = time.perf_counter() - started
    save_weights(trainer.model, out / "model.safetensors")
    families = trainer.family_scores()
    general = trainer.general_score()
    manifest = {
        "command": command,
        "seed": cfg.seed,
        "pretrain": asdict(cfg),
        "architecture": architecture(trainer.model_cfg),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "corpus": {"families": len(FAMILIES), "general_families": list(GENERAL_FAMILIES),
                   "examples": cfg.steps * cfg.batch_size, "sha256": trainer.corpus_hash.hexdigest()},
        "steps": cfg.steps,
        "wall_s": round(wall, 1),
        "first_losses": [round(x, 6) for x in trainer.losses[:FIRST_STEPS]],
        "loss_at": loss_at,
        "checks": checks,
        "general": general,
        "family_exact_match": families,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"done in {wall:.0f} s: general {general:.3f}; weights and manifest in {out}")
    return manifest


def architecture(model_cfg: ModelConfig) -> dict:
    return {"hidden": model_cfg.hidden, "layers": model_cfg.layers, "heads": model_cfg.heads,
            "intermediate": model_cfg.intermediate, "vocab": ByteTokenizer.vocab_size}

