"""The default lesson (v2): new to the base, held-out phrasings and inputs, related pairs; every built-in lesson
held out by input and deterministic per seed."""
import pytest

from cit_core.lessons import BUILTIN, default_lesson
from cit_core.lessons.corpus import FAMILIES
from cit_core.lessons.default import SPECS, TASK_ORDER


def test_shape_mixes_labels_and_generative_answers():
    lesson = default_lesson(seed=0)
    assert [t.name for t in lesson.tasks] == TASK_ORDER and len(TASK_ORDER) == 5
    assert {t.scorer for t in lesson.tasks} == {"label", "exact"}
    for task in lesson.tasks:
        assert len(set(SPECS[task.name].train_instructions)) >= 8, task.name
        if task.scorer == "label":
            assert {ex.output for ex in task.train} == set(task.labels)


def test_evaluation_uses_only_phrasings_never_trained_on():
    for task in default_lesson(seed=2).tasks:
        trained = {ex.instruction for ex in task.train}
        held = {ex.instruction for ex in task.eval}
        assert len(held) >= 2 and not held & trained, task.name
        assert held == set(SPECS[task.name].eval_instructions)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_eval_inputs_disjoint_from_training(name):
    for task in BUILTIN[name](seed=3).tasks:
        assert not {ex.input for ex in task.eval} & {ex.input for ex in task.train}, (name, task.name)


def test_answers_follow_the_rules():
    by_name = {t.name: t for t in default_lesson(seed=1).tasks}
    for ex in by_name["last_two"].eval:
        assert ex.output == ex.input[-2:] and len(ex.input) >= 4
    for ex in by_name["first_two"].train[:50]:
        assert ex.output == ex.input[:2]
    for ex in by_name["last_digit"].eval:
        assert ex.output == ex.input[-1] and len(ex.input) == 3
    for ex in by_name["has_seven"].eval:
        assert ex.output == ("yes" if "7" in ex.input else "no")
    for ex in by_name["vowel_end"].eval:
        assert (ex.output == "yes") == (ex.input[-1] in "aeiou")


def test_no_task_is_a_pretraining_family():
    """The base has the skills, not the tasks: no name, no instruction and no (input, answer) rule in common."""
    lesson = default_lesson(seed=0)
    family_instructions = {i for f in FAMILIES.values() for i in f.instructions}
    for task in lesson.tasks:
        assert task.name not in FAMILIES
        assert not {ex.instruction for ex in task.train + task.eval} & family_instructions, task.name


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_deterministic_per_seed(name):
    a, b, c = BUILTIN[name](seed=5), BUILTIN[name](seed=5), BUILTIN[name](seed=6)
    assert [t.train for t in a.tasks] == [t.train for t in b.tasks]
    assert [t.train for t in a.tasks] != [t.train for t in c.tasks]


def test_related_tasks_share_inputs():
    by_name = {t.name: t for t in default_lesson(seed=0).tasks}
    assert [e.input for e in by_name["last_two"].train] == [e.input for e in by_name["first_two"].train]
    assert [e.input for e in by_name["has_seven"].eval] == [e.input for e in by_name["last_digit"].eval]
