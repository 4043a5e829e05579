"""cit_core.ask: a typed question answered by the current model and by every task-end snapshot."""
from __future__ import annotations

import pytest
import torch

from cit_core.ask import AskError, ask, make_example, trainer_snapshots
from cit_core.connectivity import SavedRun
from cit_core.trainer import Trainer

from support.lessons import small_config, small_lesson


def _weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-7) for k in a)


def test_snapshot_rows_answer_as_the_model_did_at_that_task_end(tmp_path):
    lesson = small_lesson()
    trainer = Trainer(small_config("seqft", steps=6), lesson=lesson, run_dir=tmp_path / "run")
    prompts = lesson.tasks[0].eval[:4]
    trainer.advance(6)                                   # task 1 ends (its snapshot is taken)
    assert set(trainer.snapshots) == {0}
    then = trainer.generate(prompts)
    trainer.advance(6)                                   # task 2 trains: the weights move on
    now = trainer.generate(prompts)
    before = _weights(trainer.model)
    for ex, old, new in zip(prompts, then, now):
        rows = ask(trainer, trainer_snapshots(trainer), ex.instruction, ex.input)
        assert [r.stage for r in rows] == ["after task 1 (last_two)", "after task 2 (has_seven)", "now"]
        assert rows[0].answer == old and rows[-1].answer == new
        assert rows[0].task == 0 and rows[-1].task is None
        assert all(r.adapter is None for r in rows)           # full fine-tuning: no adapter
    assert _same(before, _weights(trainer.model))            # the model's own weights came back
    assert trainer.model.training                            # and its mode


def test_a_routing_method_reports_which_adapter_answered(tmp_path):
    lesson = small_lesson()
    trainer = Trainer(small_config("switchcit", steps=3), lesson=lesson)
    trainer.advance(3)
    trainer.advance(3)                                   # two adapters, a switch trained on both tasks
    assert trainer.finished
    ex = lesson.tasks[1].eval[0]
    routed = trainer.method.route([ex])[0]
    assert routed in ("task0", "task1")
    rows = ask(trainer, trainer_snapshots(trainer), ex.instruction, ex.input)
    assert rows[-1].stage == "now" and rows[-1].adapter == routed
    assert rows[-1].answer == trainer.generate([ex])[0]
    first = rows[0]                                      # after task 1 only task0 existed
    if routed == "task1":
        assert first.adapter == "task0" and "did not exist yet" in first.note
    else:
        assert first.adapter == "task0" and first.note == ""
    assert rows[1].adapter == routed and rows[1].note == ""


def test_a_saved_run_answers_from_its_checkpoints(tmp_path):
    lesson = small_lesson()
    trainer = Trainer(small_config("seqft_lora", steps=4), lesson=lesson, run_dir=tmp_path / "run")
    trainer.advance(4)
    ex = lesson.tasks[0].eval[0]
    then = trainer.generate([ex])[0]
    trainer.run_to_end()
    saved = SavedRun(tmp_path / "run", lesson=lesson)
    rows = ask(saved.trainer, {t: saved.snapshot(t) for t in sorted(saved.refs)}, ex.instruction, ex.input,
               current=False, use_router=False)
    assert [r.task for r in rows] == [0, 1]
    assert rows[0].answer == then and rows[0].adapter == "default"


def test_bad_questions_say_what_to_fix():
    with pytest.raises(AskError, match="type an instruction"):
        make_example("   ", "x")
    with pytest.raises(AskError, match="too long"):
        make_example("a" * 501, "")
