"""Server-side runs for the web app, keyed by a short random id (no gradio, no plotly here).

A browser session holds only the run id; the Trainer (model, optimizer, adapters) lives here, and each run
has a lock so two events never advance the same trainer at the same time.

Sharing a room (issue 14): only a run that a Play or Step loop drives (training or waiting for its turn on
the CPU, serve/scheduler.py) holds one of the `max_runs` training slots. A finished, paused or idle run is
*parked*: it holds no slot, and when a new run needs room (memory, or the `max_held` cap on built runs) the
parked runs make way, those of sessions without a browser first, then the least recently used; its data is
in the run store already. A browser proves itself with `heartbeat(owner)` (a timer on the Train tab); a
session without one also loses its training runs when every slot is taken. `per_session` caps the live runs
of one session. Runs nobody touched for `idle_ttl_s` are evicted. Before building, each run's memory is
estimated from its config (`estimate_run_bytes`); a run that would take the registry past its memory budget
(env CIT_MEM_BUDGET_MB, default half the RAM available at start) and finds no parked run to make way is
refused with a "Server busy" message instead of being built.

Recorded runs (gallery playback, `add_recorded`) hold no model and cost no CPU: they do not take a
training slot or memory budget, and have a cap of their own (`max_recorded`).
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .scheduler import Scheduler


class RegistryFull(RuntimeError):
    """No slot (or not enough memory) for another run; the message is meant for the user."""


# -- memory estimate ----------------------------------------------------------------------------
# (vocab, hidden, layers, heads, intermediate, parameters) of the named pretrained model; an unknown
# Hub id is assumed to be at least this big (its config is not read before building).
SMOLLM2_SHAPE = (49152, 576, 30, 9, 1536, 134_515_008)
TINY_VOCAB = 258
TYPICAL_TOKENS = 64         # prompt + answer tokens assumed per example (capped by max_len); the lessons here are shorter
RUN_OVERHEAD_BYTES = 32 * 2**20   # lesson data, tokenizer, Python objects, evaluation buffers
MB = 2**20
BROWSER_TTL_S = 90.0        # a session is a browser while its last heartbeat is this recent (3 missed beats)
GRACE_S = 2.0               # a run this new never makes way: its Play loop is about to claim it
HELD_PER_SLOT = 4           # default cap on built runs (parked ones included): this many per training slot


def _shape(model_cfg) -> tuple[int, int, int, int, int, int]:
    if model_cfg.name not in ("tiny", "tiny-scratch"):
        return SMOLLM2_SHAPE
    v, h, n, a, i = TINY_VOCAB, model_cfg.hidden, model_cfg.layers, model_cfg.heads, model_cfg.intermediate
    per_layer = 4 * h * h + 3 * h * i + 2 * h      # q, k, v, o; gate, up, down; two norms
    return v, h, n, a, i, v * h + n * per_layer + h  # tied embedding + layers + final norm


def estimate_run_bytes(cfg) -> int:
    """A rough upper estimate of one run's memory, from its config alone (nothing is built).

    fp32 weights x 6 (weights, gradients, AdamW's two moments, and up to two copies that EWC/MAS/
    I-LoRA/replay-style methods keep), plus the activations kept for backward at batch_size x
    min(max_len, TYPICAL_TOKENS) tokens (per layer ~8 hidden + 3 MLP-width values + one attention row
    per head; logits 3 x vocab), plus a fixed overhead. Measured on the tiny default: ~8-20 MB of RSS
    per extra run against an estimate of ~80 MB, so it errs on the safe side.
    """
    model, train = getattr(cfg, "model", None), getattr(cfg, "train", None)
    if model is None or train is None:          # not a RunConfig (tests' stand-ins): nothing to count
        return 0
    vocab, hidden, layers, heads, inter, params = _shape(model)
    tokens_per_seq = min(train.max_len, TYPICAL_TOKENS)
    per_token = layers * (8 * hidden + 3 * inter + heads * tokens_per_seq) + 3 * vocab
    activations = train.batch_size * tokens_per_seq * per_token
    return 4 * (6 * params + activations) + RUN_OVERHEAD_BYTES


def default_mem_budget() -> float:
    """Bytes all runs together may use: env CIT_MEM_BUDGET_MB, else half the RAM available now."""
    from cit_core.settings import settings
    budget = settings().mem_budget_mb
    if budget is not None:
        return budget * MB if budget > 0 else float("inf")   # 0: no memory budget
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2
    except (ValueError, OSError, AttributeError):   # not Linux: no budget rather than a wrong one
        return float("inf")


@dataclass
class Run:
    id: str
    cfg: Any
    trainer: Any
    owner: str | None = None
    created: float = 0.0
    last_used: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Play loops compare their own token with this one and stop when it moved (Pause, Step, Reset):
    # cooperative pausing that works even when the client cannot cancel the Play event itself.
    play_token: int = 0
    failure: str | None = None          # an unexpected exception while advancing (the trainer is dead)
    mem_bytes: int = 0                  # estimate_run_bytes(cfg), held against the memory budget
    recorded: bool = False              # a gallery playback (no model): no training slot, no memory budget
    streaming: int | None = None        # the play token of the Play / Step loop driving the run right now
    retired: bool = False               # released while busy: whoever holds the lock frees it (free_if_retired)

    def is_training(self) -> bool:
        """A Play or Step loop is advancing this run now (a paused, finished or idle run is not training)."""
        return self.streaming is not None and self.streaming == self.play_token

    def parked(self) -> bool:
        """A live run that holds no training slot: nothing drives it (finished, paused, idle, never played)."""
        return not self.recorded and not self.is_training()

    def retire(self) -> None:
        """The run left the registry: stop its loop, and free its trainer now unless an event is using it."""
        self.play_token += 1            # a Play loop still holding it stops at its next chunk
        if not self.lock.acquire(blocking=False):
            self.retired = True         # the loop's chunk ends with free_if_retired
            return
        try:
            _close_events(self.trainer)
        finally:
            self.lock.release()

    def free_if_retired(self) -> None:
        """Called under the run's lock after a chunk: finish a retire that found the run busy."""
        if self.retired:
            _close_events(self.trainer)


def _close_events(trainer) -> None:
    """Free a released run's trainer at once (RunHandle.close: a live Trainer holds a reference cycle
    through its event generator, which only the cyclic GC would break, minutes later). The registry also
    holds the tests' stand-ins, which are no run handles and hold nothing to free."""
    from .handles import RunHandle
    if isinstance(trainer, RunHandle):
        trainer.close()


def _default_factory(cfg):
    from cit_core import store
    from . import compute, spaces_gpu
    # every app run is saved in the run store as it trains (the Runs tab lists, reopens, deletes them);
    # built on a compute thread, like every other torch call of the app (compute.py says why)
    run_dir = store.new_run_dir(cfg)
    if spaces_gpu.on_zero_gpu():     # the GPU exists only inside spaces.GPU calls: train in chunks
        from .chunks import ChunkedTrainer
        trainer = compute.run(ChunkedTrainer, cfg, run_dir=run_dir, chunk=spaces_gpu.zero_gpu_train_chunk())
    else:
        from cit_core.trainer import Trainer      # late: importing the registry must not import torch
        trainer = compute.run(Trainer, cfg, run_dir=run_dir)
    store.track(trainer)
    return trainer


class RunRegistry:
    def __init__(self, max_runs: int = 8, idle_ttl_s: float = 1800.0,
                 clock: Callable[[], float] = time.monotonic,
                 factory: Callable[[Any], Any] = _default_factory,
                 mem_budget_bytes: float | None = None,
                 estimate: Callable[[Any], int] = estimate_run_bytes, max_recorded: int = 256,
                 per_session: int | None = None, max_held: int | None = None,
                 scheduler: Scheduler | None = None):
        if max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self.mem_budget = default_mem_budget() if mem_budget_bytes is None else mem_budget_bytes
        self.estimate = estimate
        self._pending_bytes = 0
        self.max_runs = max_runs
        self.max_held = max_held or HELD_PER_SLOT * max_runs
        self.per_session = per_session          # live runs one session may hold; None: no limit
        self.max_recorded = max_recorded
        self.idle_ttl_s = idle_ttl_s
        self.clock = clock
        self.factory = factory
        self.scheduler = scheduler or Scheduler(1, clock=clock)   # turns on the CPU for the Play loops
        self._runs: dict[str, Run] = {}
        self._browsers: dict[str, float] = {}   # owner -> time of its last heartbeat
        self._pending: list[str | None] = []    # owners of create() calls still building a trainer
        self._lock = threading.Lock()

    # -- creating and finding -------------------------------------------------------------------
    def create(self, cfg, owner: str | None = None, replaces: str | None = None) -> str:
        """Build a trainer for `cfg` and return its new run id.

        Idle runs past the TTL are evicted first, and parked runs make way when room is short. Raises
        RegistryFull when every training slot is taken, the run's memory estimate does not fit the budget,
        or `owner` already holds its share of live runs (`replaces`, the run this one will replace, does
        not count); any error from building the trainer (bad lesson file, unavailable model) propagates
        unchanged.
        """
        need = self.estimate(cfg)
        with self._lock:
            self._evict_idle_locked()
            self._check_owner_locked(owner, replaces)
            self._check_room_locked(need)
            self._pending.append(owner)
            self._pending_bytes += need
        try:
            trainer = self.factory(cfg)     # slow (model build): outside the registry lock
        except BaseException:
            with self._lock:
                self._pending.remove(owner)
                self._pending_bytes -= need
            raise
        now = self.clock()
        with self._lock:                    # the reservation becomes the run in one step
            self._pending.remove(owner)
            self._pending_bytes -= need
            run_id = self._new_id_locked()
            self._runs[run_id] = Run(run_id, cfg, trainer, owner, now, now, mem_bytes=need)
        return run_id

    def add_recorded(self, trainer, owner: str | None = None) -> str:
        """Register a recorded run's playback (serve.playback.Recording); RegistryFull past the cap."""
        now = self.clock()
        with self._lock:
            self._evict_idle_locked()
            if sum(run.recorded for run in self._runs.values()) >= self.max_recorded:
                raise RegistryFull(f"Server busy: {self.max_recorded} recorded runs are open. Try again in a "
                                   f"minute (idle ones are freed after {self._ttl_words()}).")
            run_id = self._new_id_locked()
            self._runs[run_id] = Run(run_id, trainer.cfg, trainer, owner, now, now, recorded=True)
        return run_id

    def _check_owner_locked(self, owner: str | None, replaces: str | None) -> None:
        """A session holds at most `per_session` live runs: its parked ones make way, training ones refuse."""
        if self.per_session is None or owner is None:
            return
        mine = sorted((run for run in self._runs.values()
                       if run.owner == owner and not run.recorded and run.id != replaces),
                      key=lambda run: (not run.parked(), run.last_used))
        held = len(mine) + self._pending.count(owner)
        for run in mine:
            if held < self.per_session or not run.parked():
                break
            self._drop_locked(run.id)
            held -= 1
        if held >= self.per_session:
            raise RegistryFull(f"This session already has {held} run(s) training, the most this server allows "
                               f"one session ({self.per_session}): pause it or press Reset instead.")

    def _check_room_locked(self, need: int) -> None:
        """A training slot and memory for a new run, parked runs (then browserless ones) making way."""
        retry = "Try again in a minute: finished and paused runs make way for new ones."
        while self._slots_used_locked() >= self.max_runs:
            if not self._make_way_locked(parked_too=False):
                raise RegistryFull(f"Server busy: {self._slots_used_locked()} runs are training (the limit is "
                                   f"{self.max_runs}). {retry}")
        if need > self.mem_budget:
            raise RegistryFull(f"This run needs about {need / MB:,.0f} MB, more than this server's memory budget "
                               f"of {self.mem_budget / MB:,.0f} MB: choose a smaller model, batch size or max length.")
        while self.mem_used() + need > self.mem_budget or self._held_locked() >= self.max_held:
            if not self._make_way_locked(parked_too=True):
                used = self.mem_used()
                raise RegistryFull(f"Server busy: {self._slots_used_locked()} runs are training and "
                                   f"{self._held_locked()} are held, with about {used / MB:,.0f} MB of the "
                                   f"{self.mem_budget / MB:,.0f} MB memory budget; this run needs about "
                                   f"{need / MB:,.0f} MB. {retry}")

    def _make_way_locked(self, parked_too: bool) -> bool:
        """Release one run to make room; False when none may go. Order: parked runs of sessions without a
        browser, parked runs by age of last use, then training runs of sessions without a browser."""
        now, order = self.clock(), []
        for run in self._runs.values():
            if run.recorded or now - run.created < GRACE_S:
                continue
            browser = self.has_browser(run.owner)
            if run.parked() and parked_too and not run.lock.locked():
                order.append((0 if not browser else 1, run.last_used, run.id))
            elif not run.parked() and not browser:
                order.append((2, run.last_used, run.id))
        if not order:
            return False
        self._drop_locked(min(order)[2])
        return True

    def _slots_used_locked(self) -> int:
        return sum(not run.parked() for run in self._runs.values() if not run.recorded) + len(self._pending)

    def _held_locked(self) -> int:
        return sum(not run.recorded for run in self._runs.values()) + len(self._pending)

    def mem_used(self) -> int:
        """Estimated bytes of the runs that exist or are being built (call with or without the lock)."""
        return sum(run.mem_bytes for run in list(self._runs.values())) + self._pending_bytes

    # -- browsers -------------------------------------------------------------------------------
    def heartbeat(self, owner: str | None) -> None:
        """`owner` has a browser page open (the Train tab's timer says so every few seconds)."""
        if owner is not None:
            with self._lock:
                self._browsers[owner] = self.clock()

    def has_browser(self, owner: str | None) -> bool:
        seen = self._browsers.get(owner) if owner is not None else None
        return seen is not None and self.clock() - seen <= BROWSER_TTL_S

    def get(self, run_id: str | None) -> Run | None:
        """The run, touched; None when the id is unknown or the run was evicted or released."""
        if not run_id:
            return None
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.last_used = self.clock()
            return run

    def peek(self, run_id: str | None) -> Run | None:
        """The run without touching it: reading a status must not keep a run from being idle."""
        with self._lock:
            return self._runs.get(run_id) if run_id else None

    def touch(self, run_id: str | None) -> bool:
        return self.get(run_id) is not None

    def release(self, run_id: str | None) -> bool:
        """Forget a run and free its trainer (at once, or when the event using it ends). True if it existed."""
        if not run_id:
            return False
        with self._lock:
            return self._drop_locked(run_id)

    def release_owner(self, owner: str | None) -> int:
        """Release every run created for `owner` (a browser session that closed); returns how many."""
        if owner is None:
            return 0
        with self._lock:
            self._browsers.pop(owner, None)
            ids = [rid for rid, run in self._runs.items() if run.owner == owner]
            return sum(self._drop_locked(rid) for rid in ids)

    def evict_idle(self) -> list[str]:
        with self._lock:
            return self._evict_idle_locked()

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def __contains__(self, run_id) -> bool:
        with self._lock:
            return run_id in self._runs

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def training(self) -> int:
        """Runs holding a training slot now (driven by a loop, or being built)."""
        with self._lock:
            return self._slots_used_locked()

    # -- internals ------------------------------------------------------------------------------
    def _drop_locked(self, run_id: str) -> bool:
        run = self._runs.pop(run_id, None)
        if run is not None:
            run.retire()
        return run is not None

    def _evict_idle_locked(self) -> list[str]:
        now, gone = self.clock(), []
        for run_id, run in list(self._runs.items()):
            if now - run.last_used <= self.idle_ttl_s:
                continue
            if run.lock.locked():       # being advanced right now: not idle, whatever the clock says
                continue
            self._drop_locked(run_id)
            gone.append(run_id)
        for owner, seen in list(self._browsers.items()):
            if now - seen > BROWSER_TTL_S:
                del self._browsers[owner]
        return gone

    def _new_id_locked(self) -> str:
        while True:
            run_id = secrets.token_urlsafe(6)
            if run_id not in self._runs:
                return run_id

    def _ttl_words(self) -> str:
        minutes = self.idle_ttl_s / 60
        return f"{minutes:g} minutes" if minutes >= 1 else f"{self.idle_ttl_s:g} seconds"


__all__ = ["Run", "RunRegistry", "RegistryFull", "estimate_run_bytes", "default_mem_budget", "BROWSER_TTL_S",
           "GRACE_S"]
