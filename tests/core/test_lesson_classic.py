"""The classic lesson (the default before v2): enough tasks and paraphrases, its rules, its examples unchanged.

Held-out inputs and determinism are checked for every built-in lesson in test_lesson_default.py."""
from cit_core.lessons import classic_lesson as default_lesson


def test_shape_and_paraphrases():
    lesson = default_lesson(seed=0)
    assert len(lesson.tasks) >= 5
    for task in lesson.tasks:
        assert len(task.instructions) >= 8, task.name
        assert task.scorer == "label"
        assert {ex.output for ex in task.train} == set(task.labels)


def test_labels_follow_the_rules():
    by_name = {t.name: t for t in default_lesson(seed=1).tasks}
    for ex in by_name["parity"].eval:
        assert ex.output == ("even" if int(ex.input) % 2 == 0 else "odd")
    for ex in by_name["has_z"].eval:
        assert (ex.output == "yes") == ("z" in ex.input)


def test_related_tasks_share_inputs():
    by_name = {t.name: t for t in default_lesson(seed=0).tasks}
    assert [e.input for e in by_name["parity"].train] == [e.input for e in by_name["threshold"].train]
    assert [e.input for e in by_name["vowel_end"].eval] == [e.input for e in by_name["has_z"].eval]


def test_classic_is_unchanged_by_v2():
    """The classic lesson still yields the examples it had as the default (its first training rows)."""
    first = default_lesson(seed=0).tasks[0].train[:3]
    assert [(ex.input, ex.output) for ex in first] == [("488", "even"), ("924", "even"), ("952", "even")]
