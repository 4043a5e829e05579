"""Contract table over every registered method: 2 tasks x a few steps on the tiny model."""
import pytest

from cit_core.methods import METHODS
from cit_core.trainer import Trainer

from support.contract import CONTRACT, check_contract
from support.lessons import small_config, small_lesson


def test_every_method_has_a_contract_row():
    assert set(CONTRACT) == set(METHODS)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_method_contract(name, tmp_path):
    check_contract(name, CONTRACT[name], tmp_path)


def test_lora_trains_only_the_adapter():
    trainer = Trainer(small_config("seqft_lora", steps=2), lesson=small_lesson())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run_to_end()
    changed = {n for n, p in trainer.model.named_parameters() if not p.detach().equal(before[n])}
    assert changed and all("lora_" in n for n in changed)


def test_replay_mixes_old_examples_at_the_ratio():
    trainer = Trainer(small_config("replay", steps=3, per_task=8, mix_ratio=0.25), lesson=small_lesson())
    from cit_core.events import TaskStarted
    starts = [e for e in trainer.events() if isinstance(e, TaskStarted)]
    assert starts[0].info == {"replayed": 0}
    assert starts[1].info == {"replayed": 8}


def test_multitask_trains_on_all_seen_tasks():
    trainer = Trainer(small_config("multitask", steps=2), lesson=small_lesson())
    from cit_core.events import TaskStarted
    starts = [e for e in trainer.events() if isinstance(e, TaskStarted)]
    assert [s.info["tasks_mixed"] for s in starts] == [2, 2]
    trainer = Trainer(small_config("multitask", steps=2, mode="cumulative"), lesson=small_lesson())
    starts = [e for e in trainer.events() if isinstance(e, TaskStarted)]
    assert [s.info["tasks_mixed"] for s in starts] == [1, 2]
