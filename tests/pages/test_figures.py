"""pages/figures: figures and tables from plain run data (who may import plotly: tests/core/test_boundary.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("plotly")

from cit_core.metrics import EXPLAIN, FORMULAS, format_value, partial_metrics  # noqa: E402
from pages.figures import progress, task_labels  # noqa: E402

TASKS = ["parity", "threshold", "sign"]
BASE = [0.1, 0.0, 0.2]
ROWS = [[0.9, 0.1, 0.2], [0.4, 0.95, 0.3]]          # two of three tasks trained


def test_matrix_figure_has_empty_rows_fixed_range_and_readable_scale():
    fig = progress.matrix_figure(TASKS, BASE, ROWS, current_task=2)
    heat = fig.data[0]
    assert heat.type == "heatmap" and heat.zmin == 0 and heat.zmax == 1
    assert heat.colorscale[0][1].lower() == "#00224e"            # Cividis (colour-blind safe)
    z = [list(r) for r in heat.z]
    assert z[0] == BASE and z[1] == ROWS[0] and z[2] == ROWS[1]
    assert z[3] == [None, None, None]                            # not reached yet: empty, not zero
    assert list(heat.text[3]) == ["", "", ""] and heat.text[2][1] == "0.95"
    assert list(heat.y) == ["before training", "after 1. parity", "after 2. threshold", "after 3. sign"]
    assert "%{z" in heat.hovertemplate
    assert fig.layout.template.layout.to_plotly_json() == {}     # template="none"
    assert fig.layout.height and fig.layout.yaxis.autorange == "reversed"
    # two diagonal outlines (tasks done) + the dashed row being trained
    assert len(fig.layout.shapes) == 3 and fig.layout.shapes[-1].line.dash == "dot"


def test_matrix_markdown_marks_unreached_rows():
    text = progress.matrix_markdown(TASKS, BASE, ROWS)
    lines = text.splitlines()
    assert lines[0] == "| | 1. parity | 2. threshold | 3. sign |"
    assert lines[2] == "| before training | 0.10 | 0.00 | 0.20 |"
    assert lines[4] == "| after 2. threshold | 0.40 | 0.95 | 0.30 |"
    assert lines[5] == "| after 3. sign | · | · | · |"
    assert progress.matrix_markdown([], [], []) == "_No run yet._"


def test_long_task_names_stay_unique():
    names = ["task1345_glue_qqp_question_paraprashing", "task1345_glue_qqp_question_generation"]
    labels = task_labels(names)
    assert len(set(labels)) == 2 and all(len(label) < 24 for label in labels)


def test_curves_figure_lines_boundaries_and_current_task():
    steps = [0, 5, 10, 15, 20]
    scores = [[0, 0, 0], [0.5, 0, 0], [1, 0, 0], [0.6, 0.5, 0], [0.2, 1, 0]]
    fig = progress.curves_figure(TASKS, steps, scores, boundaries=[0, 10], steps_per_task=10, current_task=1,
                                 total_steps=30)
    assert len(fig.data) == 3
    assert list(fig.data[0].y) == [0, 0.5, 1, 0.6, 0.2] and list(fig.data[1].x) == steps
    assert len({tr.line.color for tr in fig.data}) == 3
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert sorted(s.x0 for s in lines) == [10, 20]                # boundaries (known + planned)
    assert len(rects) == 1 and (rects[0].x0, rects[0].x1) == (10, 20)
    labels = [a.text for a in fig.layout.annotations]
    assert any("threshold" in t and "<b>" in t for t in labels)   # the current task is labelled
    assert tuple(fig.layout.xaxis.range) == (0, 30) and fig.layout.template.layout.to_plotly_json() == {}
    assert all("%{y" in tr.hovertemplate for tr in fig.data)


def test_loss_figure_downsamples_long_runs():
    losses = [(i, 1.0 / i) for i in range(1, 10_001)]
    fig = progress.loss_figure(losses, TASKS, [0], 4000, 0, 12_000)
    assert len(fig.data[0].x) <= progress.MAX_LOSS_POINTS
    assert fig.layout.yaxis.type == "log"
    small = progress.loss_figure([(1, 2.0), (2, 1.5)], TASKS, [0], 10, 0)
    assert list(small.data[0].y) == [2.0, 1.5]


def test_metrics_markdown_uses_the_given_values_formulas_and_meanings():
    values = partial_metrics(BASE, ROWS)
    text = progress.metrics_markdown(values, FORMULAS, EXPLAIN, tasks_done=2, total_tasks=3)
    assert "first 2 of 3 tasks" in text
    for name, value in values.items():
        assert f"**{name}**" in text and FORMULAS[name] in text and EXPLAIN[name] in text
    assert f"{values['BWT']:+.3f}" in text
    assert "Metrics appear" in progress.metrics_markdown({}, FORMULAS, EXPLAIN, 0, 3)


def test_metrics_after_one_task_say_which_are_undefined():
    """At T = 1 BWT, FWT and forgetting are means over no task: 'n/a' with the reason, never '+0.000'."""
    values = partial_metrics(BASE, ROWS[:1])
    text = progress.metrics_markdown(values, FORMULAS, EXPLAIN, tasks_done=1, total_tasks=3)
    rows = {line.split("|")[1].strip(" *"): line.split("|")[2].strip() for line in text.splitlines()
            if line.startswith("| **")}
    for name in ("BWT", "FWT", "forgetting"):
        assert rows[name] == "n/a (needs 2 tasks)", (name, rows[name])
    assert rows["AP"] == format_value("AP", values["AP"])        # AP is defined from the first task
    assert "+0.000" not in text
