"""Every run draws from its own random streams (cit_core/rng.py): a run trained while other runs start
and draw in the same process (another session's Reset builds a model, seeding torch) gives exactly the
numbers of the same run trained alone — for every method (issue 14). Both runs are computed here, in one
process on one machine, so equality is exact."""
import random
from dataclasses import replace

import pytest
import torch

from cit_core.trainer import Trainer
from support.contract import CONTRACT
from support.lessons import small_config, small_lesson


def _numbers(trainer) -> tuple[list, list, list]:
    log = trainer.log
    return log.losses, log.curve_scores, log.acc_matrix


def _config(name: str):
    """Three steps per task, evaluated at task ends only: every hook runs, and the test stays quick."""
    cfg = small_config(name, steps=3, **CONTRACT[name])
    cfg.train = replace(cfg.train, eval_every=0)
    return cfg


def _solo(name: str):
    trainer = Trainer(_config(name), lesson=small_lesson())
    trainer.run_to_end()
    return _numbers(trainer)


def _another_session(seed: int) -> None:
    """What a second session's Reset does to the process's streams between two steps of ours: it seeds
    torch (building its model) and draws (its adapters)."""
    torch.manual_seed(seed)
    torch.rand(17)
    random.seed(seed)
    random.random()


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_a_run_interleaved_with_other_sessions_equals_its_solo_run(name):
    solo = _solo(name)
    trainer = Trainer(_config(name), lesson=small_lesson())
    other = small_config("expansion", steps=2)
    other.train = replace(other.train, seed=7)
    Trainer(other, lesson=small_lesson())                  # a whole other run built in between
    while not trainer.finished:
        trainer.advance(1)
        _another_session(100 + trainer.steps_done)
    assert _numbers(trainer) == solo
