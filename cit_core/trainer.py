"""The training loop: the only place that calls optimizer.step().

`Trainer(cfg).events()` is a generator of plain events. It is pausable and resumable at any step: a
consumer that stops pulling has paused it, and pulling again resumes exactly where it stopped (same
batches, same numbers). Where the loop stands is kept on the Trainer (`Cursor`), not in the
generator's locals, so that at any step boundary `export_state()` can take the whole run and
`Trainer.from_state()` continue it in another process (serve/chunks.py, for ZeroGPU).
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from . import distributed
from .config import RunConfig
from .data import BatchSampler, Pool
from .evaluate import generate_answers, score_task
from .events import (Checkpointed, CoefficientsLogged, DriftLogged, Evaluated, RunEnded, RunFailed, RunLog,
                     RunStarted, StepLogged, TaskEnded, TaskStarted)
from .lessons import load_lesson
from .lessons.corpus import general_suite
from .methods import METHODS, RunContext, method_options, resolve
from .model import ModelBundle, build_model, count_parameters
from .rng import RunRandomness
from .runs import RunWriter
from .snapshots import MEMORY_LIMIT_PARAMS, Snapshot, drift, take_snapshot, write_checkpoint
from .tokenize import Encoder


_BOUNDARY = object()   # internal marker between optimizer steps; never leaves this module


@dataclass
class Cursor:
    """Where the loop stands, kept on the Trainer (not in the generator's locals) so that the whole
    training state can be taken at a step boundary and continued elsewhere (serve/chunks.py)."""

    sample_rng: random.Random
    phase: str = "new"                  # new -> task -> done | failed
    task: int = 0                       # the task being trained (or next to set up)
    local_step: int = 0                 # optimizer steps done in that task
    sampler: BatchSampler | None = None  # None: the task's setup (before_task, optimizer) has not run
    optimizer: torch.optim.Optimizer | None = None
    start: Snapshot | None = None       # the task's start weights (for drift)
    wall_s: float = 0.0                 # seconds spent inside the loop (paused time not counted)


class Trainer:
    has_weights = True       # a live model (a played-back recording has none)
    steps_per_call = 5       # serve.handles.RunHandle: optimizer steps per Play chunk of the web app

    def __init__(self, cfg: RunConfig, lesson=None, bundle: ModelBundle | None = None, run_dir=None):
        """run_dir: when set, the trainer writes that run directory itself (config.json, every event to
        events.jsonl, summary.json at the end); the writer closes when the run ends, fails or raises."""
        self.cfg = cfg = resolve(cfg)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        started = time.perf_counter()
        # under torchrun / accelerate launch: this process's rank (one process: rank 0 of 1, no collectives)
        self.dist = distributed.setup()
        if cfg.train.batch_size < self.dist.world:
            raise ValueError(f"batch_size ({cfg.train.batch_size}) must be at least the number of processes "
                             f"({self.dist.world}): each process trains on its share of every batch")
        self.lesson = lesson or load_lesson(cfg.lesson, seed=cfg.train.seed)
        # every draw of this run (a scratch init, adapters, routers) comes from its own streams: another run
        # in the process seeding torch meanwhile changes nothing here (cit_core/rng.py)
        self.randomness = RunRandomness(cfg.train.seed)
        with self.randomness.active():
            self._build(cfg, bundle)
        self._mixed = _use_mixed_precision(self.bundle.device)
        if self._mixed:
            _trainable_to_fp32(self.model)
        distributed.broadcast_module(self.model, self.dist)   # rank 0's init everywhere
        self.setup_seconds = time.perf_counter() - started
        self.log = RunLog()
        self.steps_done = 0
        self.run_dir = Path(run_dir) if run_dir is not None else None
        # only rank 0 writes; the other ranks run the same loop (same events) without files
        self._writer = RunWriter(self.run_dir, cfg.to_dict()) \
            if self.run_dir is not None and self.dist.is_main else None
        # task index -> task-end Snapshot (CPU copies), for the live Connectivity view; with a run_dir and
        # more than MEMORY_LIMIT_PARAMS trainable parameters they stay on disk only (checkpoints/)
        self.snapshots: dict[int, Snapshot] = {}
        self.cursor = Cursor(random.Random(f"batches-{cfg.train.seed}"))
        self._raw = self._run()

    def _build(self, cfg: RunConfig, bundle: ModelBundle | None) -> None:
        """The model, the encoder and the method, set up (on the run's own random streams)."""
        self.bundle = bundle or build_model(cfg.model, seed=cfg.train.seed, device=self.dist.device)
        self.encoder = Encoder(self.bundle.tokenizer, self.bundle.fmt, cfg.train.max_len)
        # what the base already knew, scored at every evaluation beside the lesson (not a lesson task)
        self.general = general_suite() if cfg.train.eval_general else None
        ctx = RunContext(cfg, self.lesson, self.bundle, self.encoder, random.Random(f"method-{cfg.train.seed}"))
        self.method = METHODS[cfg.method](method_options(cfg.method, cfg.method_options), ctx)
        torch.manual_seed(cfg.train.seed)       # where the method's setup draws from, as it always did
        pretrained = dict(self.bundle.model.named_parameters())   # names before adapters rename them
        self.model = self.method.setup(self.bundle.model)
        # the base weights the method froze: a state for chunked training refers to them by name only
        self.frozen_base = {n: p for n, p in pretrained.items() if not p.requires_grad}

    # -- the state, for training in chunks in other processes (ZeroGPU) -------------------------
    _TRANSIENT = ("_raw", "_writer", "dist")

    def export_state(self) -> dict:
        """Everything the run needs to continue, as plain attributes (its random streams included:
        `randomness`); only valid at a step boundary (after advance() returned). serve/chunks.py pickles it."""
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    @classmethod
    def from_state(cls, state: dict) -> "Trainer":
        """The run of export_state(), continuing at the same step; it appends to the same run directory."""
        self = cls.__new__(cls)
        self.__dict__.update(state)
        if self.cfg.train.threads:
            torch.set_num_threads(self.cfg.train.threads)
        self._mixed = _use_mixed_precision(self.bundle.device)
        self.dist = distributed.setup()
        if self.dist.active:
            raise RuntimeError("a training state continues in a single process, not under a launcher")
        self._writer = None          # reopened (appending to events.jsonl) by the first event it emits
        self._raw = self._run()
        return self

    def close(self) -> None:
        """Close the run directory's event file (every event is already flushed); a later event reopens it."""
        self._close_writer()

    # -- public -----------------------------------------------------------------------------
    def events(self) -> Iterator:
        """The run's event stream; pulling resumes the run where any earlier consumer left it."""
        for item in self._raw:
            if item is not _BOUNDARY:
                yield item

    def advance(self, steps: int) -> list:
        """Run `steps` more optimizer steps (with the evaluations that follow them); return their events."""
        target, out = self.steps_done + steps, []
        for item in self._raw:
            if item is _BOUNDARY:
                if self.steps_done >= target:
                    break
                continue
            out.append(item)
        return out

    def close(self) -> None:
        """End the run's event generator, for good. The trainer keeps that generator (a generator of its
        own method) as an attribute: trainer -> generator -> frame -> trainer, a cycle only the cyclic GC
        would free, minutes later, with the model in it. Closing it ends the frame (the run directory's
        writer closes in its `finally`), so the trainer is freed as soon as its last user lets go."""
        self._raw.close()

    def run_to_end(self) -> dict:
        for _ in self._raw:
            pass
        return self.log.summary or {}

    @property
    def finished(self) -> bool:
        return self.log.finished

    def evaluate(self, tasks=None) -> list[float]:
        """Scores of every task (routing through the method) with the model as it is now."""
        tasks = tasks if tasks is not None else self.lesson.tasks
        was_training = self.model.training
        self.model.eval()
        try:
            return [self._score(task) for task in tasks]
        finally:
            self.model.train(was_training)

    def generate(self, examples) -> list[str]:
        """Answers to arbitrary examples, routed like evaluation."""
        self.model.eval()
        try:
            return self._routed_answers(list(examples))
        finally:
            self.model.train()

    # -- the loop ---------------------------------------------------------------------------
    def _emit(self, event):
        if self._writer is None and self.run_dir is not None and self.dist.is_main and not self.log.finished:
            self._writer = RunWriter(self.run_dir, self.cfg.to_dict())   # restored or closed: append
        self.log.add(event)
        if self._writer is not None:
            self._writer.write(event)
            if isinstance(event, (RunEnded, RunFailed)):
                self._close_writer()   # the consumer may stop pulling right after the last event
        return event

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _run(self):
        try:
            yield from self._loop()
        finally:
            self._close_writer()   # also when a method raises or the generator is closed

    def _loop(self):
        """The run from wherever the cursor stands: a fresh Trainer starts at phase "new"; one restored
        by from_state() continues at the step boundary where its state was taken."""
        cfg, tasks, cur = self.cfg, self.lesson.tasks, self.cursor
        resumed = time.perf_counter()
        if cur.phase == "new":
            trainable, total = count_parameters(self.model)
            yield self._emit(RunStarted(tuple(t.name for t in tasks), cfg.method, cfg.train.steps_per_task,
                                        cfg.train.steps_per_task * len(tasks),
                                        {**cfg.to_dict(), "trainable_params": trainable, "total_params": total}))
            yield self._emit(self._evaluation(-1))
            cur.phase = "task"
        while cur.task < len(tasks):
            index, task = cur.task, tasks[cur.task]
            if cur.sampler is None:           # the task's setup has not run yet
                pools = [Pool([(ex, index) for ex in task.train], 1.0, name=task.name)]
                with self.randomness.active():        # a method may add an adapter here
                    pools, info = self.method.before_task(index, task, pools)
                cur.sampler = BatchSampler(pools, cfg.train.batch_size, cur.sample_rng)
                cur.optimizer = self._optimizer()
                cur.local_step = 0
                yield self._emit(TaskStarted(index, self.steps_done, info))
                cur.start = take_snapshot(self.model, index, "start", self.method.uses_lora)
            while cur.local_step < cfg.train.steps_per_task:
                cur.wall_s += time.perf_counter() - resumed
                yield _BOUNDARY   # a safe place to pause (or to take the state): between two optimizer steps
                resumed = time.perf_counter()
                event = self._train_step(index, cur.sampler, cur.optimizer)
                yield self._emit(event)
                if isinstance(event, RunFailed):
                    cur.phase = "failed"
                    return
                cur.local_step += 1
                coefficients = self.method.after_step_values
                if coefficients:
                    yield self._emit(CoefficientsLogged(index, self.steps_done, coefficients))
                if cfg.train.eval_every and cur.local_step % cfg.train.eval_every == 0 \
                        and cur.local_step < cfg.train.steps_per_task:
                    yield self._emit(self._evaluation(index))
            with self.randomness.active():           # a method may train a router here
                extras = self.method.extra_states()      # before after_task: LCIA's EMA is gone after it
                info = self.method.after_task(index, task)
            for event in self._task_end_weights(cur.start, extras):   # before TaskEnded: it closes the task
                yield self._emit(event)
            final = self._evaluation(index)
            yield self._emit(final)
            yield self._emit(TaskEnded(index, self.steps_done, final.scores, info or {}, final.general))
            cur.task, cur.sampler, cur.optimizer, cur.start = index + 1, None, None, None
            if cur.task < len(tasks):   # after the last task the run ends in the same advance()
                cur.wall_s += time.perf_counter() - resumed
                yield _BOUNDARY       # pause here rather than after the next task's setup
                resumed = time.perf_counter()
        summary = self.log.build_summary(cfg.train.seed, cur.wall_s + time.perf_counter() - resumed,
                                         {"setup_s": round(self.setup_seconds, 3)})
        cur.phase = "done"
        yield self._emit(RunEnded(summary))
        yield _BOUNDARY

    def _task_end_weights(self, start: Snapshot, extras: dict) -> list:
        """DriftLogged for the task, a checkpoint (with a run_dir) and the in-memory task-end snapshot."""
        end = take_snapshot(self.model, start.task, "end", self.method.uses_lora, extras)
        events = [DriftLogged(start.task, drift(start, end, self.model))]
        if self.run_dir is not None and self.dist.is_main:
            ref = f"checkpoints/task{start.task}.safetensors"
            write_checkpoint(self.run_dir / ref, end)
            events.append(Checkpointed(start.task, ref))
        if self.run_dir is None or end.numel_trainable() <= MEMORY_LIMIT_PARAMS:
            self.snapshots[start.task] = end
        return events

    def autocast(self):
        """bf16 compute on CUDA (trainable weights stay fp32: AdamW on bf16 weights loses small updates)."""
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self._mixed)

    def _optimizer(self):
        # a fresh optimizer per task: methods may add or freeze parameters between tasks
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.cfg.train.lr, weight_decay=self.cfg.train.weight_decay)

    def _train_step(self, index, sampler, optimizer):
        started = time.perf_counter()
        # every rank draws the same global batch and keeps its rows: the data order of one process
        examples, sources, task_ids = (self.dist.shard(rows) for rows in sampler.next_batch())
        batch = self.encoder.collate(examples, sources, task_ids).to(self.bundle.device)
        self.model.train()      # hooks may have switched to eval mode (feature extraction)
        with self.autocast():
            out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
            extra, scalars = self.method.loss(batch, out)
        loss = out.loss if extra is None else out.loss + extra
        value, ce, n_tokens = float(loss.detach()), float(out.loss.detach()), batch.n_tokens
        if self.dist.active:
            step = distributed.combine_step(self.dist, ce, distributed.answer_tokens(batch.labels), n_tokens,
                                            None if extra is None else float(extra.detach()), scalars)
            # CE weighted by this rank's share of the answer tokens: the averaged gradient is the full batch's
            loss = out.loss * step.ce_weight if extra is None else out.loss * step.ce_weight + extra
            value, ce, n_tokens, scalars = step.value, step.ce, step.n_tokens, step.scalars
        if not math.isfinite(value):   # the global value: every rank stops at the same step
            return RunFailed(index, self.steps_done + 1,
                             f"loss became {value} at step {self.steps_done + 1} (task {index + 1}); "
                             "lower the learning rate. Every event before this one is kept.")
        loss.backward()
        distributed.average_gradients([p for g in optimizer.param_groups for p in g["params"]], self.dist)
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], self.cfg.train.grad_clip)
        optimizer.step()
        with self.randomness.active():
            self.method.after_step_values = self.method.after_step(self.steps_done + 1)
        optimizer.zero_grad(set_to_none=True)
        self.steps_done += 1
        scalars = {"ce": ce, **{k: float(v) for k, v in scalars.items()}}
        return StepLogged(index, self.steps_done, value, scalars, n_tokens,
                          time.perf_counter() - started)

    def _evaluation(self, index) -> Evaluated:
        started = time.perf_counter()
        scores = tuple(round(s, 6) for s in self.evaluate())
        general = None
        if self.general is not None:
            general = round(self.evaluate([self.general])[0], 6)
        return Evaluated(index, self.steps_done, scores, time.perf_counter() - started, general)

    def _score(self, task) -> float:
        return score_task(task, self._routed_answers(task.eval))

    def _routed_answers(self, examples) -> list[str]:
        routes = self.method.route(examples)
        answers: list[str | None] = [None] * len(examples)
        for adapter in dict.fromkeys(routes):
            idx = [i for i, r in enumerate(routes) if r == adapter]
            with self.method.use_for_inference(adapter), self.autocast():
                group = generate_answers(self.model, self.encoder, [examples[i] for i in idx],
                                         self.cfg.train.eval_batch, device=self.bundle.device)
            for i, a in zip(idx, group):
                answers[i] = a
        return answers


def _use_mixed_precision(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def _trainable_to_fp32(model) -> None:
    """fp32 master copies of what trains (the frozen base stays bf16); autocast does the bf16 matmuls."""
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def run(cfg: RunConfig) -> Iterator:
    """run(cfg) -> Iterator[Event]: the whole run as one event stream."""
    return Trainer(cfg).events()


__all__ = ["Trainer", "run"]
