"""SwitchCIT invariants: the switch routes every trained task (the first included); experts are isolated."""
import torch

from cit_core.config import RunConfig, TrainConfig
from cit_core.events import TaskEnded, TaskStarted
from cit_core.lessons import Lesson, default_lesson
from cit_core.trainer import Trainer

from support.lessons import small_lesson


def _trainer(lesson, steps=2):
    cfg = RunConfig(method="switchcit", train=TrainConfig(steps_per_task=steps, batch_size=8, eval_every=0))
    return Trainer(cfg, lesson=lesson)


def test_switch_routes_held_out_prompts_of_every_trained_task():
    full = default_lesson(seed=0)
    lesson = Lesson("three", full.tasks[:3])
    trainer = _trainer(lesson)
    m = trainer.method
    # the switch does not need the LM to be trained: run the stage hooks only
    for index, task in enumerate(lesson.tasks):
        _, info = m.before_task(index, task, [])
        assert info["retained"] >= 8
        assert len(info["switch_confusion"]) == index + 1
    assert info["switch_train_size"] == sum(len(r) for r in m.retained)
    for index, kept in enumerate(m.retained):                    # task 0 included (the released code drops it)
        routes = m.route(kept)                                     # the switch's own training examples
        assert routes.count(f"task{index}") >= 0.95 * len(routes), (index, routes)
    # held-out prompts (phrasings never trained on): has_seven's differ from every other task's and route
    # home; last_two's and first_two's differ by one word ("last"/"first", "close"/"open") and the switch
    # confuses them (seed 0: 38 of last_two's 64 at home) - the Train tab's matrix shows what that costs
    routes = m.route(lesson.tasks[1].eval)
    assert routes.count("task1") >= 0.95 * len(routes)
    assert info["switch_accuracy_per_task"][1] >= 0.95


def test_only_the_current_expert_trains_and_earlier_experts_never_change():
    trainer = _trainer(small_lesson(n_tasks=2, n_train=16, n_eval=2))
    m = trainer.method
    init0 = m.expert_state(0)
    after_first = init1 = None
    for event in trainer.events():
        if isinstance(event, TaskEnded) and event.task == 0:
            after_first = m.expert_state(0)
            assert "task1" not in trainer.model.peft_config          # task 1's expert appears with task 1
        if isinstance(event, TaskStarted) and event.task == 1:
            init1 = m.expert_state(1)
    assert any(not torch.equal(init0[n], after_first[n]) for n in init0)      # expert 0 trained
    final0 = m.expert_state(0)
    assert all(torch.equal(after_first[n], final0[n]) for n in final0)        # ... then never changed
    # expert 1 starts from the base model (B = 0), not from expert 0, and trains
    assert all(not bool(p.any()) for n, p in init1.items() if "lora_B" in n)
    final1 = m.expert_state(1)
    assert any(not torch.equal(init1[n], final1[n]) for n in final1)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all(".task1." in n for n in trainable)
