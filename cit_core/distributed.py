"""Data parallel training under `torchrun` / `accelerate launch`, without wrapping the model in DDP.

Methods reach into the model (peft adapters, forward hooks, EMA shadows), so the model stays as it is and
the trainer does three explicit collectives instead:

- at start, every parameter and buffer is broadcast from rank 0 (the seeds already agree; this makes the
  init identical even where a seeded init is not bitwise reproducible across devices);
- each step, every rank draws the same global batch (same sampler, same seed) and trains on rows
  rank::world of it; the numbers of the step are gathered so that every rank knows the global answer-token
  count, the global loss and the scalars to log;
- after backward, the gradients of the trainable parameters are averaged (one flat all-reduce), so the
  clipping, the optimizer and every method's after_step see the same gradient on every rank.

Exactness: the cross-entropy is a mean over answer tokens. A rank's CE is therefore weighted by
world * n_local / n_global before backward, and the averaged gradient equals the full-batch gradient of
the single-process run (up to float summation order). Method terms (`Method.loss`' extra) are averaged as
they are: exact for terms that do not depend on the rows (the EWC / MAS / TIR penalty), a mean of per-rank
means for row-dependent ones (I-LoRA's CE(C), CE(M) and consistency), as DDP would give.

With no launcher (one process) nothing here runs a collective and the trainer's numbers are unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .tokenize import IGNORE_INDEX


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, world size and the device accelerate picked."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: list) -> list:
        """This rank's rows of a global batch: rank, rank + world, ... (the global order is kept)."""
        return rows[self.rank::self.world] if self.active else rows


SINGLE = Dist()


def launched() -> bool:
    """True under torchrun / accelerate launch with more than one process (they set WORLD_SIZE)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def setup() -> Dist:
    """Initialise the process group through accelerate (once) and return this process's Dist.

    accelerate's PartialState only forms a CPU group when asked with cpu=True; without CUDA the group is
    therefore requested explicitly, with gloo (MPI is not wanted even where torch has it).
    """
    if not launched():
        return SINGLE
    from accelerate import PartialState
    if not torch.cuda.is_available() and not torch.distributed.is_initialized():
        state = PartialState(cpu=True, backend="gloo")
    else:
        state = PartialState()
    if state.num_processes <= 1:
        raise RuntimeError(f"launched with WORLD_SIZE={os.environ.get('WORLD_SIZE')} but accelerate formed no "
                           "process group (PartialState was created before the trainer?)")
    device = state.device
    if device.type == "cuda":
        torch.cuda.set_device(device)      # object collectives on NCCL use the current device
    else:
        device = torch.device(device.type)  # "cpu:0" -> "cpu", as build_model gives without a launcher
    return Dist(state.process_index, state.num_processes, device)


@torch.no_grad()
def broadcast_module(model: torch.nn.Module, dist: Dist) -> None:
    """Every parameter and buffer of rank 0, on every rank."""
    if not dist.active:
        return
    for tensor in list(model.parameters()) + list(model.buffers()):
        torch.distributed.broadcast(tensor.data, src=0)


def answer_tokens(labels: torch.Tensor) -> int:
    """The tokens a causal LM's CE averages over: labels after the one-position shift, not ignored."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


@dataclass(frozen=True)
class StepNumbers:
    ce_weight: float      # multiply this rank's CE by it before backward (see the module docstring)
    value: float          # the global loss: CE over all answer tokens + the mean of the ranks' extra terms
    ce: float             # the global CE
    n_tokens: int         # non-padding tokens of the global batch
    scalars: dict         # each method scalar averaged over the ranks that reported it


def combine_step(dist: Dist, ce: float, n_answer: int, n_tokens: int, extra: float | None,
                 scalars: dict) -> StepNumbers:
    """Gather one step's numbers from every rank; every rank gets the same result (same order of sums)."""
    mine = (ce, n_answer, n_tokens, 0.0 if extra is None else extra, {k: float(v) for k, v in scalars.items()})
    every = [None] * dist.world
    torch.distributed.all_gather_object(every, mine)
    total_answer = sum(r[1] for r in every)
    ce_global = sum(r[0] * r[1] for r in every) / max(total_answer, 1)
    extra_mean = sum(r[3] for r in every) / dist.world
    merged: dict[str, list[float]] = {}
    for r in every:
        for key, value in r[4].items():
            merged.setdefault(key, []).append(value)
    return StepNumbers(ce_weight=dist.world * n_answer / max(total_answer, 1),
                       value=ce_global + extra_mean,
                       ce=ce_global, n_tokens=sum(r[2] for r in every),
                       scalars={k: sum(v) / len(v) for k, v in merged.items()})


@torch.no_grad()
def average_gradients(params, dist: Dist) -> None:
    """Average the gradients of `params` over the ranks with one flat all-reduce.

    A parameter whose gradient is None on every rank stays None (AdamW then skips it, as it would in one
    process); None on some ranks only counts as zeros there.
    """
    if not dist.active:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    flags = torch.tensor([float(p.grad is not None) for p in params], device=device)
    flat = torch.cat([flags] + [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                                for p in params])
    torch.distributed.all_reduce(flat)
    flat[len(params):] /= dist.world
    offset = len(params)
    for p, present in zip(params, flat[:len(params)].tolist()):
        chunk = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        if present == 0:
            continue
        if p.grad is None:
            p.grad = chunk.to(p.dtype).clone()
        else:
            p.grad.copy_(chunk)


__all__ = ["Dist", "SINGLE", "launched", "setup", "broadcast_module", "answer_tokens", "combine_step",
           "average_gradients", "StepNumbers"]
