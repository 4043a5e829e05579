"""A run's own random streams, so that its numbers do not depend on what other runs in the process do.

torch's default generator (and Python's `random` module) are one per process. peft draws a new LoRA
adapter's initial weights from it, the tiny model's scratch init and SwitchCIT's router seed it, and a web
server trains many runs in one process: another session pressing Reset (which seeds the generator while
building its model) moved the draws of a run that was adding an adapter, and its losses left those of the
same run on the command line (issue 14: from step 62 of an `expansion` run).

`RunRandomness.active()` runs a block with the run's own streams installed as the process's default ones
(under one process-wide lock, so two runs never interleave inside such a block) and keeps what the block
drew for next time. The trainer enters it wherever a run may draw: building the model and the method, and
every method hook. A run on its own draws exactly what it drew before (its streams start where
`torch.manual_seed(seed)` starts them), so a run's numbers equal its solo command-line run's.
"""
from __future__ import annotations

import contextlib
import random
import threading

import torch

_LOCK = threading.RLock()        # re-entrant: a hook may call code that enters the block again


class RunRandomness:
    def __init__(self, seed: int):
        with _LOCK, _saved_global_streams():
            torch.manual_seed(seed)              # the stream a solo run starts from
            random.seed(seed)
            self._torch = torch.get_rng_state()
            self._cuda = _cuda_states()
            self._python = random.getstate()

    @contextlib.contextmanager
    def active(self):
        """Run the block on this run's streams; what it draws advances them, and only them."""
        with _LOCK, _saved_global_streams():
            torch.set_rng_state(self._torch)
            if self._cuda is not None:
                torch.cuda.set_rng_state_all(self._cuda)
            random.setstate(self._python)
            try:
                yield
            finally:
                self._torch = torch.get_rng_state()
                self._cuda = _cuda_states()
                self._python = random.getstate()


def _cuda_states():
    return torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None


@contextlib.contextmanager
def _saved_global_streams():
    """Leave the process's default streams as they were found (code outside any run keeps its own)."""
    torch_state, cuda_state, python_state = torch.get_rng_state(), _cuda_states(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        random.setstate(python_state)


__all__ = ["RunRandomness"]
