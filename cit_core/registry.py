"""Server-side runs for the web app, keyed by a short random id (no gradio, no plotly here).

A browser session holds only the run id; the Trainer (model, optimizer, adapters) lives here.
The registry caps how many runs exist at once, evicts runs nobody touched for `idle_ttl_s`, and gives
each run a lock so two events never advance the same trainer at the same time.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class RegistryFull(RuntimeError):
    """No slot for another run; the message is meant for the user."""


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


def _default_factory(cfg):
    from .trainer import Trainer      # late: importing the registry must not import torch
    return Trainer(cfg)


class RunRegistry:
    def __init__(self, max_runs: int = 8, idle_ttl_s: float = 1800.0,
                 clock: Callable[[], float] = time.monotonic,
                 factory: Callable[[Any], Any] = _default_factory):
        if max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self.max_runs = max_runs
        self.idle_ttl_s = idle_ttl_s
        self.clock = clock
        self.factory = factory
        self._runs: dict[str, Run] = {}
        self._pending = 0               # slots reserved by create() calls still building a trainer
        self._lock = threading.Lock()

    # -- creating and finding -------------------------------------------------------------------
    def create(self, cfg, owner: str | None = None) -> str:
        """Build a trainer for `cfg` and return its new run id.

        Idle runs past the TTL are evicted first. Raises RegistryFull when every slot is taken; any
        error from building the trainer (bad lesson file, unavailable model) propagates unchanged.
        """
        with self._lock:
            self._evict_idle_locked()
            active = len(self._runs) + self._pending
            if active >= self.max_runs:
                raise RegistryFull(
                    f"The server is busy: {active} runs are active and the limit is {self.max_runs}. "
                    f"Try again in a few minutes (idle runs are freed after {self._ttl_words()}).")
            self._pending += 1
        try:
            trainer = self.factory(cfg)     # slow (model build): outside the registry lock
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        now = self.clock()
        with self._lock:
            self._pending -= 1
            run_id = self._new_id_locked()
            self._runs[run_id] = Run(run_id, cfg, trainer, owner, now, now)
        return run_id

    def get(self, run_id: str | None) -> Run | None:
        """The run, touched; None when the id is unknown or the run was evicted or released."""
        if not run_id:
            return None
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.last_used = self.clock()
            return run

    def touch(self, run_id: str | None) -> bool:
        return self.get(run_id) is not None

    def release(self, run_id: str | None) -> bool:
        """Forget a run (its trainer is freed once no event still holds it). True if it existed."""
        if not run_id:
            return False
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is not None:
            run.play_token += 1         # a Play loop still holding it stops at its next chunk
        return run is not None

    def release_owner(self, owner: str | None) -> int:
        """Release every run created for `owner` (a browser session); returns how many."""
        if owner is None:
            return 0
        with self._lock:
            ids = [rid for rid, run in self._runs.items() if run.owner == owner]
        return sum(self.release(rid) for rid in ids)

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

    # -- internals ------------------------------------------------------------------------------
    def _evict_idle_locked(self) -> list[str]:
        now, gone = self.clock(), []
        for run_id, run in list(self._runs.items()):
            if now - run.last_used <= self.idle_ttl_s:
                continue
            if run.lock.locked():       # being advanced right now: not idle, whatever the clock says
                continue
            del self._runs[run_id]
            run.play_token += 1
            gone.append(run_id)
        return gone

    def _new_id_locked(self) -> str:
        while True:
            run_id = secrets.token_urlsafe(6)
            if run_id not in self._runs:
                return run_id

    def _ttl_words(self) -> str:
        minutes = self.idle_ttl_s / 60
        return f"{minutes:g} minutes" if minutes >= 1 else f"{self.idle_ttl_s:g} seconds"


__all__ = ["Run", "RunRegistry", "RegistryFull"]
