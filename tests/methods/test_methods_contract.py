"""Contract table over every registered method: 2 tasks x a few steps on the tiny model."""
import json
import math

import pytest

from cit_core.methods import METHODS
from cit_core.runs import RunWriter, read_run
from cit_core.trainer import Trainer

from support.contract import CONTRACT
from support.lessons import small_config, small_lesson


def test_every_method_has_a_contract_row():
    assert set(CONTRACT) == set(METHODS)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_method_contract(name, tmp_path):
    lesson = small_lesson(n_tasks=2)
    trainer = Trainer(small_config(name, steps=4, **CONTRACT[name]), lesson=lesson)
    with RunWriter(tmp_path / name, trainer.cfg.to_dict()) as writer:   # every event must be writable
        for event in trainer.events():
            writer.write(event)
    summary = trainer.log.summary
    log = trainer.log
    reread = read_run(tmp_path / name)
    assert reread.acc_matrix == log.acc_matrix and reread.task_end_info == json.loads(
        json.dumps(log.task_end_info, default=lambda v: v.tolist() if hasattr(v, "tolist") else list(v)))
    assert log.error is None
    assert all(math.isfinite(loss) for _, loss in log.losses)
    assert len(log.losses) == 2 * 4
    assert len(summary["acc_matrix"]) == 2 and all(len(r) == 2 for r in summary["acc_matrix"])
    assert len(summary["base_scores"]) == 2
    assert set(summary["metrics"]) == {"AP", "BWT", "FWT", "forgetting", "MAA", "RG"}
    # periodic evaluation: base + one mid-task point + the task end, per task
    assert summary["curves"]["steps"] == [0, 2, 4, 6, 8]
    assert summary["method"] == name


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
