"""The Compare tab (issue 18): recordings can be compared with saved runs, their labels say the model and
only the knobs that set them apart, every run has a legend entry, different schedules are warned about
and steps per task is a column."""
from __future__ import annotations

import pytest
from support.lessons import small_config, small_lesson

from cit_core import gallery
from cit_core.trainer import Trainer
from pages import compare as page
from pages.figures import compare as compare_figures


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIT_RUNS_DIR", str(root))
        Trainer(small_config("seqft", steps=2), lesson=small_lesson(n_train=16, n_eval=8),
                run_dir=root / "mine-s0").run_to_end()
        yield root


@pytest.fixture
def in_store(store, monkeypatch):
    monkeypatch.setenv("CIT_RUNS_DIR", str(store))
    return store


def legend_names(fig) -> list[str]:
    return [t.name for t in fig.data if t.showlegend is not False]


def test_compare_offers_saved_runs_and_every_recording(in_store):
    values = [v for _, v in page.choices()]
    assert "mine-s0" in values
    assert [v for v in values if v.startswith("gallery: ")] == [f"gallery: {n}" for n in gallery.names()]


def test_seqft_and_replay_recordings_overlay(in_store):
    note, curves, matrices, table, groups, a, b, _ = page.show(["gallery: seqft", "gallery: replay"])
    assert note == ""                                    # the same schedule: nothing to warn about
    assert legend_names(curves) == ["recorded: seqft", "recorded: replay"]
    assert len(matrices.data) == 2
    assert f"{gallery.entry('seqft')['metrics']['AP']:.3f}" in table
    assert a["value"] == "gallery: seqft" and b["value"] == "gallery: replay"
    fig, msg = page.show_difference(a["value"], b["value"])
    assert msg == "" and len(fig.data) == 1


def test_every_run_has_one_legend_entry_even_without_the_first_task(in_store):
    # the saved run trains 2 tasks of the default lesson; the SmolLM2 recording the classic lesson (other
    # task names): the third run has none of the first panel's task and still needs its legend entry
    names = ["gallery: seqft", "mine-s0", "gallery: smollm2-seqft_lora"]
    curves = page.show(names)[1]
    assert legend_names(curves) == ["recorded: seqft", "mine-s0", "recorded: smollm2-seqft_lora"]


def test_different_schedules_are_warned_about_and_steps_per_task_is_a_column(in_store):
    note, _, _, table, *_ = page.show(["gallery: seqft", "gallery: smollm2-seqft_lora"])
    assert "different schedules" in note
    assert "steps per task 45 (recorded: seqft) vs 30 (recorded: smollm2-seqft_lora)" in note
    assert "batch size 16" in note and "learning rate 0.002" in note
    head, _, *rows = table.splitlines()
    cells = [c.strip() for c in head.split("|")]
    col = cells.index("steps/task")
    assert [[c.strip() for c in r.split("|")][col] for r in rows] == ["45", "30"]


def test_layout_leaves_room_for_every_legend_line_and_the_titles(in_store):
    """The legend sits below the panels, one run per line, inside the figure's bottom margin."""
    names = ["gallery: seqft", "gallery: replay", "gallery: ewc", "gallery: mas", "mine-s0"]
    curves, matrices = page.show(names)[1:3]
    layout = curves.layout
    plot_h = layout.height - layout.margin.t - layout.margin.b
    below = -layout.legend.y * plot_h                     # pixels from the plot area's bottom to the legend
    assert below >= compare_figures.AXIS_BELOW - 1
    assert layout.margin.b >= below + compare_figures.LEGEND_LINE * len(names)
    assert layout.margin.t >= 80 and matrices.layout.margin.b >= 70 and matrices.layout.margin.r >= 60


def test_rg_against_a_picked_per_task_run(in_store, tmp_path):
    import json

    import numpy as np
    names = ["gallery: seqft", "gallery: replay", "gallery: oracle_lora"]
    *_, groups, _, _, upper = page.show(names)
    assert ("", "") != upper["choices"][0] and upper["choices"][0][1] == "" and upper["value"] == ""
    assert "R[i][i]" in groups
    *_, table, groups, _, _, upper = page.show(names, "gallery: oracle_lora")
    assert upper["value"] == "gallery: oracle_lora" and "single-task bound" in groups
    oracle = gallery.load("oracle_lora").acc_matrix
    bound = np.array([oracle[i][i] for i in range(len(oracle))])
    final = np.array(gallery.load("replay").acc_matrix[-1])
    expected = 100 * np.mean(final / bound)                  # by hand: InsCL's RG with single-task U
    assert f"{expected:.1f}" in table.splitlines()[3]        # the replay row (header, rule, seqft, replay)
    files, _ = page.export(names, None, None, "gallery: oracle_lora")
    data = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert data["rg_upper"] == pytest.approx(list(bound))
    assert [r["RG"] for r in data["runs"]][1] == pytest.approx(expected)
    # a bound from runs on other tasks is refused with a message, nothing is drawn
    note, curves, *_ = page.show(["gallery: seqft"], "gallery: smollm2-seqft_lora")
    assert "different tasks" in note and curves is None
