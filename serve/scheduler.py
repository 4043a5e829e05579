"""Fair turns on the CPU for the runs that want to train (no gradio, no torch here).

Every Play or Step loop asks for a turn before each chunk and gives it back right after the chunk, then asks
again at the back of the line. Turns go out first come, first served, `slots` at a time (the runs that may
train at the same moment, as many as the compute threads), so runs take turns chunk by chunk: a long run
slows everyone a little instead of making them wait for its end. A waiting ticket knows how many turns are
ahead of it and about how long that is (from the recent turns' average length), for the status line.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

FIRST_GUESS_S = 0.5         # a turn's assumed length before any was measured
SMOOTHING = 0.2             # weight of the newest turn in the running average


class Ticket:
    """One loop's place in line for one chunk; `wait` until granted, then `done` (always, also on errors)."""

    def __init__(self, scheduler: "Scheduler", key: str):
        self.scheduler, self.key = scheduler, key
        self.granted_at: float | None = None
        self.finished = False

    def wait(self, timeout: float | None = None) -> bool:
        """True once this ticket holds a turn; False when `timeout` passed first (it keeps its place)."""
        return self.scheduler._wait(self, timeout)

    def ahead(self) -> int:
        """Turns before this one: the tickets in front of it in line and those training now."""
        return self.scheduler._ahead(self)

    def eta_s(self) -> float:
        """About how long until this ticket's turn."""
        s = self.scheduler
        return s.average_turn_s * self.ahead() / s.slots

    def done(self) -> None:
        self.scheduler._done(self)


class Scheduler:
    def __init__(self, slots: int = 1, clock: Callable[[], float] = time.monotonic):
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots, self.clock = slots, clock
        self.average_turn_s = FIRST_GUESS_S
        self._line: deque[Ticket] = deque()
        self._running = 0
        self._cond = threading.Condition()

    def resize(self, slots: int) -> None:
        """Set how many turns run at once (the app: as many as runs may train at once)."""
        if slots < 1:
            raise ValueError("slots must be at least 1")
        with self._cond:
            self.slots = slots
            self._cond.notify_all()

    def ticket(self, key: str) -> Ticket:
        """A place at the back of the line for one chunk of the run `key`."""
        ticket = Ticket(self, key)
        with self._cond:
            self._line.append(ticket)
        return ticket

    def waiting(self) -> int:
        with self._cond:
            return len(self._line)

    # -- the tickets' side ----------------------------------------------------------------------
    def _wait(self, ticket: Ticket, timeout: float | None) -> bool:
        with self._cond:
            if ticket.granted_at is not None:
                return True
            granted = self._cond.wait_for(lambda: self._running < self.slots and self._line[0] is ticket,
                                          timeout)
            if not granted:
                return False
            self._line.popleft()
            self._running += 1
            ticket.granted_at = self.clock()
            self._cond.notify_all()         # the next in line may fit in another slot
            return True

    def _ahead(self, ticket: Ticket) -> int:
        with self._cond:
            if ticket.granted_at is not None:
                return 0
            return self._line.index(ticket) + self._running if ticket in self._line else 0

    def _done(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.finished:
                return
            ticket.finished = True
            if ticket.granted_at is None:   # gave up its place (paused, cancelled) before its turn came
                self._line.remove(ticket)
            else:
                self._running -= 1
                took = self.clock() - ticket.granted_at
                self.average_turn_s += SMOOTHING * (took - self.average_turn_s)
            self._cond.notify_all()


def waiting_words(ahead: int, eta_s: float) -> str:
    """The status line's words for a run waiting for its turn."""
    runs = "1 run" if ahead == 1 else f"{ahead} runs"
    return f"waiting for the CPU: {runs} ahead, about {max(1, round(eta_s))} s"


__all__ = ["Scheduler", "Ticket", "waiting_words"]
