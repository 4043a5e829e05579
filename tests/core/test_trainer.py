"""Trainer behaviour: pause/resume is exact, periodic evaluation, NaN stops cleanly, sampling ratios."""
import random

import pytest

from cit_core.config import ConfigError, RunConfig, TrainConfig
from cit_core.data import BatchSampler, Pool
from cit_core.events import RunFailed, StepLogged
from cit_core.lessons.base import Example
from cit_core.methods import resolve
from cit_core.trainer import Trainer

from support.lessons import small_config, small_lesson


def _strip_timing(summary):
    return {k: v for k, v in summary.items() if not k.endswith("_s")}


def test_pause_and_resume_give_the_same_run():
    whole = Trainer(small_config(steps=6), lesson=small_lesson()).run_to_end()
    stepped = Trainer(small_config(steps=6), lesson=small_lesson())
    sizes = []
    while not stepped.finished:
        before = stepped.steps_done
        stepped.advance(5)
        sizes.append(stepped.steps_done - before)
    assert sizes[:2] == [5, 5]
    assert _strip_timing(stepped.log.summary) == _strip_timing(whole)


def test_advance_stops_between_steps_with_evaluations_done():
    trainer = Trainer(small_config(steps=4), lesson=small_lesson())
    events = trainer.advance(4)
    names = [type(e).__name__ for e in events]
    # the task-end evaluation and matrix row belong to step 4 and come before the pause
    assert names[-2:] == ["Evaluated", "TaskEnded"]
    assert sum(isinstance(e, StepLogged) for e in events) == 4


def test_nan_loss_stops_with_message_and_keeps_events():
    cfg = RunConfig(train=TrainConfig(steps_per_task=50, batch_size=8, eval_every=0, lr=1.0, grad_clip=0.0))
    trainer = Trainer(cfg, lesson=small_lesson())
    for p in trainer.model.parameters():          # make the loss blow up on the first step
        p.data.fill_(float("nan"))
    events = list(trainer.events())
    assert isinstance(events[-1], RunFailed) and "loss became nan" in events[-1].message
    assert trainer.log.error and trainer.finished
    assert trainer.log.base_scores            # the events before the failure are kept


def test_bad_values_are_rejected_with_the_range():
    with pytest.raises(ConfigError, match=r"steps_per_task must be in \[1, 100000\]"):
        TrainConfig(steps_per_task=-3)
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=1e9)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="mix_ratio"):
        resolve(RunConfig(method="replay", method_options={"mix_ratio": 1.5}))
    with pytest.raises(ConfigError, match="no options"):
        resolve(RunConfig(method="seqft", method_options={"per_task": 3}))
    with pytest.raises(ConfigError, match="unknown method"):
        resolve(RunConfig(method="nope"))
    with pytest.raises(ConfigError, match="unknown method"):     # a run is resolved before it trains
        Trainer(RunConfig(method="nope"))


def test_sampler_keeps_proportions_and_covers_each_pool():
    a = [(Example("i", str(n), "x"), 0) for n in range(40)]
    b = [(Example("i", f"b{n}", "y"), 1) for n in range(10)]
    sampler = BatchSampler([Pool(a, 0.9), Pool(b, 0.1)], batch_size=32, rng=random.Random(0))
    rows = [sampler.next_batch() for _ in range(10)]
    from_b = sum(src.count(1) for _, src, _ in rows)
    assert from_b == 32          # 0.1 * 32 * 10 rows, exactly, thanks to carried-over credit
    drawn_a = [ex for examples, src, _ in rows for ex, s in zip(examples, src) if s == 0]
    assert len(drawn_a) == 288
    # shuffled epochs: every example of a pool once before any repeats
    assert len(set(drawn_a[:40])) == 40


def test_mixed_precision_keeps_trainable_weights_fp32_and_the_frozen_base_bf16():
    import torch
    from cit_core.trainer import _trainable_to_fp32, _use_mixed_precision

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)).to(torch.bfloat16)
    model[0].requires_grad_(False)
    _trainable_to_fp32(model)
    assert model[0].weight.dtype == torch.bfloat16          # frozen base stays small
    assert model[1].weight.dtype == torch.float32           # optimizer updates an fp32 master copy
    assert not _use_mixed_precision(torch.device("cpu"))     # the CPU path trains in fp32 as before


def test_the_general_suite_is_a_column_and_a_curve_beside_the_lesson(lesson2):
    """Every evaluation also scores the general suite; it is in the run log and summary.json, not in the metrics."""
    from cit_core.events import Evaluated, TaskEnded
    from cit_core.evaluate import generate_answers, score_task
    from cit_core.lessons.corpus import general_suite
    trainer = Trainer(small_config(steps=4), lesson=lesson2)
    base_general = score_task(general_suite(), generate_answers(trainer.model.eval(), trainer.encoder,
                                                                general_suite().eval))
    events = list(trainer.events())
    evaluated = [e for e in events if isinstance(e, Evaluated)]
    assert all(e.general is not None for e in evaluated)
    assert abs(evaluated[0].general - base_general) < 1e-6         # the untrained base, scored independently
    ends = [e for e in events if isinstance(e, TaskEnded)]
    summary = trainer.log.summary
    assert summary["general"]["base"] == evaluated[0].general
    assert summary["general"]["after_task"] == [e.general for e in ends]
    assert summary["general"]["drop"] == pytest.approx(summary["general"]["base"] - ends[-1].general)
    assert summary["curves"]["general"] == [e.general for e in evaluated]
    assert len(summary["curves"]["general"]) == len(summary["curves"]["steps"])
    assert "general" not in summary["metrics"]


def test_the_general_suite_can_be_switched_off(lesson2):
    cfg = small_config(steps=2)
    cfg.train.eval_general = False
    summary = Trainer(cfg, lesson=lesson2).run_to_end()
    assert "general" not in summary and "general" not in summary["curves"]


def test_a_closed_trainer_is_freed_without_the_cyclic_gc():
    """close() breaks trainer -> event generator -> trainer: the registry frees a released run at once."""
    import gc
    import weakref
    trainer = Trainer(small_config("seqft", steps=2), lesson=small_lesson())
    trainer.advance(1)
    ref = weakref.ref(trainer)
    gc.disable()
    try:
        trainer.close()
        del trainer
        assert ref() is None
    finally:
        gc.enable()
