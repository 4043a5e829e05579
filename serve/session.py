"""One web session's hold on its run (no gradio here): obtain a run for the controls, Play, Pause, Step,
watch a gallery recording in its place, Reset, release.

The browser session holds only a run id; the run (a serve.handles.RunHandle) lives in the RunRegistry. A
`Session` is made per event from that id. Every advance happens under the run's lock, so two events never
move one trainer at once, and `advance()` is atomic per call, so a stopped loop always leaves the run at a
clean step boundary. Loops stop cooperatively: each claims the run's play token, and Pause, Step, Reset,
another Play or Watch and eviction move the token, so a loop stops at its next chunk even when the client
cannot cancel the event itself. What a loop shows after each chunk is the caller's `frame(run, over, moved)`,
called under the lock (the page renders there).

Sharing the CPU (issue 14): before each chunk a loop asks the registry's scheduler for a turn, and while it
waits it shows the caller's `waiting(run, words)` ("waiting for the CPU: 3 runs ahead, about 20 s") every
WAIT_FRAME_S; runs take turns chunk by chunk. A chunk also stops after CHUNK_MAX_S (it trains one step at a
time), so no lesson's shape makes one turn long. A public server caps the work of one run (steps per task x
tasks, settings().max_run_steps).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from cit_core.config import ConfigError
from cit_core.gallery import GalleryError
from cit_core.lessons import load_lesson
from cit_core.lessons.files import MAX_TASKS
from cit_core.settings import settings

from . import compute
from .controls import Controls, UserError, build_config, friendly, is_user_error, number, user_message, user_settings
from .playback import Recording
from .registry import RegistryFull, Run, RunRegistry
from .scheduler import waiting_words
from .spaces_gpu import on_zero_gpu

logger = logging.getLogger("cit.serve.session")

MAX_STEP_CLICK = 1000           # Step is for small moves; Play is for long ones
LOCK_WAIT_S = 60.0              # Pause / status wait at most this long for a chunk in flight
WATCH_FRAME_S = 0.08            # a recording plays one chunk (its steps_per_call) this often
WAIT_FRAME_S = 1.0              # a loop waiting for its turn on the CPU updates its status line this often
CHUNK_MAX_S = 2.0               # a chunk stops stepping after this long, so a turn stays short
SETTINGS_CHANGED = "Settings changed: they apply when you press Reset."

T = TypeVar("T")
Frame = Callable[[Run, bool, int], T]       # (run, this is the loop's last frame, steps this loop moved)
Waiting = Callable[[Run, str], T]           # (run, "waiting for the CPU: ...")


class CannotStart(RuntimeError):
    """No run could be made (or played back); the message is meant for the user."""


def advance(run: Run, steps: int) -> None:
    """One atomic advance under the caller's lock; an unexpected crash marks the run failed."""
    if stopped(run):
        return
    try:
        if run.recorded:
            run.trainer.advance(steps)        # a playback folds events: no torch, no compute thread
        elif on_zero_gpu():
            compute.run(run.trainer.advance, steps)   # one GPU call: each has a fixed cost, so no slicing
        else:
            compute.run(_advance_for, run.trainer, steps, CHUNK_MAX_S)
    except Exception as err:           # noqa: BLE001 - the run is dead; its status says why
        logger.exception("run %s crashed while advancing", run.id)
        run.failure = f"{type(err).__name__}: {err}"


def _advance_for(trainer, steps: int, budget_s: float) -> None:
    """Up to `steps` steps, one at a time, stopping once `budget_s` has passed (at least one step). A lesson
    of many short tasks evaluates after every step: five steps of a 400-task lesson took 58 s in one call."""
    end = time.monotonic() + budget_s
    for _ in range(steps):
        trainer.advance(1)
        if trainer.finished or time.monotonic() >= end:
            return


def check_work(cfg) -> None:
    """UserError when the run is more work than this server allows one run (steps per task x tasks)."""
    cap, spt = settings().max_run_steps, cfg.train.steps_per_task
    if cap is None:
        return
    if spt > cap:
        raise UserError(_too_much(cap, f"{spt:,} steps per task alone is more", max(1, cap)))
    if cfg.lesson.files and spt * MAX_TASKS <= cap:
        return                          # within the cap whatever the files hold: no need to read them twice
    tasks = len(load_lesson(cfg.lesson, seed=cfg.train.seed).tasks)
    if spt * tasks > cap:
        raise UserError(_too_much(cap, f"{spt:,} steps x {tasks} tasks = {spt * tasks:,} is more",
                                  max(1, cap // tasks)))


def _too_much(cap: int, what: str, most: int) -> str:
    return (f"This server trains at most {cap:,} steps per run (steps per task x tasks), so that one run cannot "
            f"hold the CPU for everyone: {what}. Set the steps per task to {most:,} or less.")


def stopped(run: Run) -> bool:
    """Nothing more to advance: the run finished or crashed."""
    return bool(run.failure) or run.trainer.finished


def step_count(value) -> int:
    """The Step box's number of steps, checked; UserError with the reason."""
    steps = number(value, "Steps", True)
    if not 1 <= steps <= MAX_STEP_CLICK:
        raise UserError(f"Steps must be between 1 and {MAX_STEP_CLICK}, got {steps}; use Play for more.")
    return steps


class Session:
    """The run of one browser session (`owner`), known by its id; None until one is made."""

    def __init__(self, registry: RunRegistry, run_id: str | None = None, owner: str | None = None):
        self.registry, self.run_id, self.owner = registry, run_id, owner

    @property
    def run(self) -> Run | None:
        return self.registry.get(self.run_id)

    def is_training(self) -> bool:
        """A Play or Step loop advances the session's run now."""
        run = self.run
        return run is not None and run.is_training()

    # -- making runs ----------------------------------------------------------------------------
    def _create(self, controls: Controls) -> Run:
        try:
            cfg = build_config(controls)
            check_work(cfg)
            run_id = self.registry.create(cfg, owner=self.owner, replaces=self.run_id)
        except Exception as err:
            if not is_user_error(err):
                logger.exception("could not create a run")
            raise
        run = self.registry.get(run_id)
        if run is None:                      # evicted between create and get: practically never
            raise RegistryFull("The run was freed before it started; press Reset again.")
        return run

    def _adopt(self, run: Run) -> Run:
        """Make `run` the session's run, releasing the one it had."""
        if self.run_id != run.id:
            self.registry.release(self.run_id)
            self.run_id = run.id
        return run

    def settings_note(self, run: Run, controls: Controls) -> str:
        """Why the controls on the page differ from the run's settings, if they do."""
        try:
            cfg = build_config(controls)
        except (UserError, ConfigError) as err:
            return f"The settings on the left are not valid ({friendly(str(err))}); this run keeps its own."
        return SETTINGS_CHANGED if user_settings(cfg) != user_settings(run.cfg) else ""

    def obtain(self, controls: Controls) -> tuple[Run, str]:
        """The session's run, made from the controls when there is none (or it finished and the settings
        changed): (run, a note for the user). CannotStart when no run could be made."""
        run = self.run
        if run is None:
            note = ("Your earlier run was freed after being idle; this is a new run from the settings on the left."
                    if self.run_id else "")
            try:
                return self._adopt(self._create(controls)), note
            except Exception as err:         # noqa: BLE001 - every failure becomes one line for the user
                raise CannotStart(user_message(err)) from err
        note = self.settings_note(run, controls)
        if note != SETTINGS_CHANGED or not stopped(run):
            return run, note
        # a finished run has nothing left to lose: Play/Step start over with the new settings
        try:
            fresh = self._create(controls)
        except Exception as err:             # noqa: BLE001 - keep the finished run, say why
            return run, f"Could not start a new run: {user_message(err)}"
        return self._adopt(fresh), "The previous run had finished: this is a new run with the changed settings."

    def reset(self, controls: Controls) -> Run:
        """A new run from the controls in place of the session's; CannotStart keeps the old one."""
        try:
            return self._adopt(self._create(controls))
        except Exception as err:             # noqa: BLE001
            raise CannotStart(user_message(err)) from err

    def watch(self, name: str) -> tuple[Run, str]:
        """The gallery recording `name` as the session's run (a paused playback of it continues):
        (run, note). CannotStart keeps the session's run."""
        run = self.run
        if run is not None and run.recorded and run.trainer.name == name and not run.trainer.finished:
            return run, ""
        try:
            new = self.registry.get(self.registry.add_recorded(Recording(name), self.owner))
        except (GalleryError, RegistryFull) as err:
            raise CannotStart(f"Cannot play the recording: {err}") from err
        note = ""
        if run is not None and run.trainer.run_dir is not None:
            note = f"your previous run is kept in the run store as {run.trainer.run_dir.name}"
        return self._adopt(new), note       # a live run stops at its next chunk; its directory stays

    def release(self) -> bool:
        return self.registry.release(self.run_id)

    # -- moving runs ----------------------------------------------------------------------------
    def pause(self) -> Run | None:
        """Stop the loop driving the session's run (even when its event was not cancelled)."""
        run = self.run
        if run is not None:
            run.play_token += 1
        return run

    def read(self, run: Run, fn: Callable[[Run], T]) -> T:
        """fn(run) between two chunks: waits up to LOCK_WAIT_S for a chunk in flight, then reads anyway."""
        got = run.lock.acquire(timeout=LOCK_WAIT_S)
        try:
            return fn(run)
        finally:
            if got:
                run.lock.release()

    def play(self, run: Run, frame: Frame, first: Callable[[Run], T] | None = None,
             pause_s: float = 0.0, waiting: Waiting | None = None) -> Iterator[T]:
        """Advance `run` one chunk (its handle's steps_per_call) at a time until it finishes or the play
        token moves, yielding frame(...) after each chunk (and first(run) before the first), and
        waiting(run, words) while it waits for its turn on the CPU."""
        return self._drive(run, frame, None, first, pause_s, waiting)

    def step(self, run: Run, steps: int, frame: Frame, waiting: Waiting | None = None) -> Iterator[T]:
        """Advance `run` exactly `steps` steps (fewer if it finishes first), a chunk at a time, then stop."""
        return self._drive(run, frame, steps, None, 0.0, waiting)

    def watch_frames(self, run: Run, frame: Frame, first: Callable[[Run], T]) -> Iterator[T]:
        """Play a recording back at WATCH_FRAME_S per chunk."""
        return self._drive(run, frame, None, first, WATCH_FRAME_S, None)

    def _drive(self, run: Run, frame: Frame, limit: int | None, first, pause_s: float,
               waiting: Waiting | None) -> Iterator[T]:
        run.play_token += 1                  # this loop's claim: any other loop on this run stops
        token = run.streaming = run.play_token
        start = run.trainer.log.step
        try:
            if first is not None:
                yield first(run)
            while True:
                if pause_s:
                    time.sleep(pause_s)
                if not self._still_mine(run, token):
                    return                   # paused, stepped, reset or evicted: stop quietly
                ticket = None if run.recorded else self.registry.scheduler.ticket(run.id)
                try:
                    yield from self._wait_turn(run, token, ticket, waiting)
                    if not self._still_mine(run, token):
                        return
                    with run.lock:
                        if run.play_token != token:
                            return
                        moved, over = self._chunk(run, start, limit, ticket)
                        shown = frame(run, over, moved)
                finally:
                    if ticket is not None:
                        ticket.done()        # also when the loop was closed while waiting
                yield shown
                if over:
                    return
        finally:
            # advance() is atomic per call, so the run is already at a clean step boundary; only this
            # loop's claim on the run ends here (Pause/close cancel a loop at a yield).
            if run.play_token == token:
                run.play_token += 1
            if run.streaming == token:
                run.streaming = None

    def _still_mine(self, run: Run, token: int) -> bool:
        """The loop still drives the run, and the run is still in the registry (touched: it is in use)."""
        return run.play_token == token and self.registry.get(run.id) is not None

    @staticmethod
    def _wait_turn(run: Run, token: int, ticket, waiting: Waiting | None) -> Iterator[T]:
        """Wait for the ticket's turn, showing the place in line every WAIT_FRAME_S; stop waiting when the
        loop's token moved (its caller checks that again)."""
        while ticket is not None and not ticket.wait(WAIT_FRAME_S):
            if run.play_token != token:
                return
            if waiting is not None:
                yield waiting(run, waiting_words(ticket.ahead(), ticket.eta_s()))

    @staticmethod
    def _chunk(run: Run, start: int, limit: int | None, ticket) -> tuple[int, bool]:
        """One chunk under the lock, its turn given back as soon as it trained: (steps moved since `start`,
        whether the loop is over)."""
        want = run.trainer.steps_per_call
        if limit is not None:
            want = min(want, limit - (run.trainer.log.step - start))
        if want > 0:
            advance(run, want)
        if ticket is not None:
            ticket.done()                    # drawing the frame needs no turn on the CPU's queue
        run.free_if_retired()                # released during the chunk: free the trainer now
        moved = run.trainer.log.step - start
        return moved, stopped(run) or (limit is not None and moved >= limit)


__all__ = ["Session", "CannotStart", "advance", "check_work", "stopped", "step_count", "MAX_STEP_CLICK",
           "LOCK_WAIT_S", "WATCH_FRAME_S", "WAIT_FRAME_S", "CHUNK_MAX_S", "SETTINGS_CHANGED"]
