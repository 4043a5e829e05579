"""Expansion and oracle_lora: isolated per-task adapters, nearest-key and oracle routing."""
import random

from cit_core.config import RunConfig, TrainConfig
from cit_core.lessons import default_lesson
from cit_core.methods import METHODS, RunContext, method_options
from cit_core.methods.lora_tools import state_of
from cit_core.model import build_model
from cit_core.trainer import Trainer

from support.lessons import small_lesson


def _bare(name: str, lesson, **options):
    """The method set up on the tiny model, without a trainer (no training needed for routing)."""
    cfg = RunConfig(method=name, method_options=options)
    bundle = build_model(cfg.model, seed=0)
    method = METHODS[name](method_options(name, cfg.method_options),
                           RunContext(cfg, lesson, bundle, None, random.Random(0)))
    method.setup(bundle.model)
    return method


def test_earlier_adapters_are_bit_for_bit_unchanged_by_later_tasks():
    lesson = small_lesson(n_tasks=3, n_eval=4)
    train = TrainConfig(steps_per_task=2, batch_size=8, eval_every=0, threads=1)   # 1 thread: shared CPU
    cfg = RunConfig(method="expansion", train=train)
    trainer = Trainer(cfg, lesson=lesson)
    model = trainer.model
    snapshots = {}
    for event in trainer.events():
        if type(event).__name__ == "TaskEnded":
            name = f"task{event.task}"
            snapshots[name] = state_of(model, name)
            assert event.info["routing_accuracy_per_task"].keys() == set(lesson.task_names[:event.task + 1])
            # only the adapter being trained is trainable
            assert all(f".{name}." in n for n, p in model.named_parameters() if p.requires_grad)
    assert set(snapshots) == {"task0", "task1", "task2"}
    for name, before in snapshots.items():
        after = state_of(model, name)
        assert after.keys() == before.keys() and after
        assert all(after[k].equal(before[k]) for k in before), f"adapter {name} changed after its task"
    # and each adapter did train (LoRA B starts at 0)
    assert all(any(v.abs().sum() > 0 for k, v in s.items() if "lora_B" in k) for s in snapshots.values())


def test_routing_sends_held_out_prompts_of_every_default_task_to_its_own_adapter():
    lesson = default_lesson(seed=0, n_eval=64)
    method = _bare("expansion", lesson)
    for index, task in enumerate(lesson.tasks):
        _, info = method.before_task(index, task, [])
    assert info["routing_accuracy_per_task"] == {t.name: 1.0 for t in lesson.tasks}
    # unseen tasks route to an existing adapter, never crash
    early = _bare("expansion", lesson)
    early.before_task(0, lesson.tasks[0], [])
    assert set(early.route(lesson.tasks[4].eval)) == {"task0"}


def test_similar_init_copies_the_nearest_old_adapter():
    lesson = default_lesson(seed=0, n_eval=8)
    method = _bare("expansion", lesson, init="similar")
    method.before_task(0, lesson.tasks[0], [])
    for p in method.model.parameters():
        if p.requires_grad:
            p.data.normal_()
    _, info = method.before_task(2, lesson.tasks[2], [])      # first_two: phrased like last_two
    assert info["init_from"] == "task0"
    a, b = state_of(method.model, "task0"), state_of(method.model, "task2")
    assert all(a[k].equal(b[k]) for k in a)


def test_oracle_routes_every_prompt_to_its_own_task_adapter():
    lesson = default_lesson(seed=0, n_eval=16)
    method = _bare("oracle_lora", lesson)
    assert method.route(lesson.tasks[1].eval) == [None] * 16      # before any task: the model as is
    for index, task in enumerate(lesson.tasks[:3]):
        _, info = method.before_task(index, task, [])
    assert info["routing_accuracy"] == 1.0
    for index, task in enumerate(lesson.tasks):
        expected = f"task{min(index, 2)}"                           # untrained tasks -> the latest adapter
        assert method.route(task.eval) == [expected] * len(task.eval)
        assert method.route(task.train[:5]) == [expected] * 5
