"""The class board's data (serve/board.py): runs join a room through meta.json; the board's numbers are the
runs' own summaries; per-method mean ± std equal numpy's; the CSV holds the same numbers."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time

import numpy as np
import pytest
from support.lessons import small_config, small_lesson

from cit_core import gallery, store
from cit_core.events import RunFailed, event_to_dict
from cit_core.trainer import Trainer
from serve import board

# (run folder, method, seed, participant): the finished runs of room "t1"
FINISHED = [("a", "seqft", 0, "Ada"), ("b", "seqft", 1, "Bo"), ("c", "replay", 0, "Cy")]


def _train(root, name, method, seed, steps=None):
    """A tiny real run (the board must show what the trainer wrote): evaluated at task ends only and
    without the general suite, so the whole module trains in well under a minute."""
    cfg = small_config(method, steps=4)
    cfg.train.seed, cfg.train.eval_every, cfg.train.eval_general = seed, 4, False
    trainer = Trainer(cfg, lesson=small_lesson(n_train=16, n_eval=8), run_dir=root / name)
    if steps is None:
        trainer.run_to_end()
    else:
        trainer.advance(steps)
    return trainer


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A store with three finished runs in room t1, an unfinished one in t1, one in another room and one in
    no room at all (those two: copies of a finished run's files, joined elsewhere or not at all)."""
    root = tmp_path_factory.mktemp("store")
    for name, method, seed, person in FINISHED:
        _train(root, name, method, seed)
        board.join(root / name, "t1", person, owner=f"session-{name}")
    _train(root, "half", "seqft", 2, steps=5)             # into task 2: task 1's row only, no summary
    board.join(root / "half", "t1", "", owner="session-half")
    for name in ("other", "loner"):
        shutil.copytree(root / "a", root / name, ignore=shutil.ignore_patterns(store.META))
    board.join(root / "other", "t2", "Dee", owner="session-other")
    return root


def summary(root, name) -> dict:
    return json.loads((root / name / "summary.json").read_text())


def test_meta_is_merged_and_read_back(tmp_path):
    assert store.read_meta(tmp_path) == {}
    store.write_meta(tmp_path, room="r", label="x")
    assert store.write_meta(tmp_path, label="y") == {"room": "r", "label": "y"}
    assert store.read_meta(tmp_path) == {"room": "r", "label": "y"}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]     # atomic: no temp file left
    (tmp_path / store.META).write_text("[1, 2")                            # torn or foreign: no meta
    assert store.read_meta(tmp_path) == {}


def test_the_board_shows_the_rooms_runs_with_their_own_numbers(room):
    rows = board.room_runs("t1", root=room)
    assert [r.run for r in rows[:3]] == ["a", "b", "c"]    # the order they joined
    assert {r.run for r in rows} == {"a", "b", "c", "half"}
    for row, (name, method, seed, person) in zip(rows, FINISHED):
        s = summary(room, name)
        lesson = json.loads((room / name / "config.json").read_text())["lesson"]["name"]
        assert (row.name, row.method, row.seed, row.lesson, row.state) == (person, method, seed, lesson, "finished")
        for key in ("AP", "forgetting", "BWT"):
            assert getattr(row, key) == pytest.approx(s["metrics"][key], abs=1e-9)
        assert row.matrix == s["acc_matrix"] and row.tasks == s["tasks"]


def test_an_unfinished_run_shows_its_matrix_so_far_and_no_metrics(room):
    os.utime(room / "half" / "events.jsonl")                # an event written just now
    half = next(r for r in board.room_runs("t1", root=room) if r.run == "half")
    assert half.state == "training"
    assert len(half.matrix) == 1 and half.AP is None
    assert half.name == board.default_name("session-half")   # no name typed: the session's default
    old = time.time() - 10 * board.TRAINING_WINDOW_S
    os.utime(room / "half" / "events.jsonl", (old, old))
    half = next(r for r in board.room_runs("t1", root=room) if r.run == "half")
    assert half.state == "paused"


def test_a_failed_run_says_so(room, tmp_path):
    shutil.copytree(room / "half", tmp_path / "f", ignore=shutil.ignore_patterns(store.META))
    with open(tmp_path / "f" / "events.jsonl", "a") as fh:       # what the trainer writes when a step raises
        fh.write(json.dumps(event_to_dict(RunFailed(0, 2, "boom"))) + "\n")
    board.join(tmp_path / "f", "r", "Fay", owner="s")
    assert [r.state for r in board.room_runs("r", root=tmp_path)] == ["failed"]


def test_other_rooms_and_roomless_runs_stay_off(room):
    assert [r.run for r in board.room_runs("t2", root=room)] == ["other"]
    assert board.room_runs("nobody", root=room) == []


def test_per_method_mean_and_std_equal_numpy(room):
    groups = {g["method"]: g for g in board.by_method(board.room_runs("t1", root=room))}
    assert list(groups) == ["seqft", "replay"]
    seqft = [summary(room, n)["metrics"] for n in ("a", "b")]      # "half" has not finished: not counted
    assert groups["seqft"]["n"] == 2 and groups["replay"]["n"] == 1
    for key in ("AP", "forgetting"):
        values = np.array([m[key] for m in seqft])
        assert groups["seqft"][key] == pytest.approx((values.mean(), values.std()), abs=1e-9)
        assert groups["replay"][key] == pytest.approx((summary(room, "c")["metrics"][key], 0.0), abs=1e-9)


def test_the_csv_holds_the_boards_numbers(room):
    rows = board.room_runs("t1", root=room)
    table = list(csv.DictReader(io.StringIO(board.class_csv(rows))))
    assert [t["participant"] for t in table] == [r.name for r in rows]
    for line, row in zip(table, rows):
        assert line["AP"] == "" if row.AP is None else float(line["AP"]) == row.AP
        assert json.loads(line["final_matrix"]) == row.matrix


def test_a_csv_cell_never_starts_a_formula():
    row = board.Row("=HYPERLINK(\"x\")", "seqft", 0, "small", "finished")
    line = next(csv.DictReader(io.StringIO(board.class_csv([row]))))
    assert line["participant"] == "'=HYPERLINK(\"x\")"


@pytest.mark.parametrize("bad", ["", "a b", "x" * 41, "../up", "é", None, "a/b"])
def test_bad_room_names_are_refused_with_a_message(bad, tmp_path):
    with pytest.raises(board.BoardError, match="1-40 letters, digits"):
        board.room_runs(bad, root=tmp_path)
    with pytest.raises(board.BoardError):
        board.join(tmp_path, bad, "me", owner="s")
    assert store.read_meta(tmp_path) == {}


def test_join_cleans_the_name_keeps_the_first_time_and_hides_the_session(tmp_path):
    first = board.join(tmp_path, " t1 ", "  Ada\n\x00  Lovelace " + "x" * 60, owner="secret-session")
    assert first["room"] == "t1" and first["display_name"].startswith("Ada Lovelace x")
    assert len(first["display_name"]) == board.NAME_MAX
    assert "secret-session" not in (tmp_path / store.META).read_text()
    again = board.join(tmp_path, "t1", "Ada", owner="secret-session")
    assert again["created"] == first["created"] and again["owner"] == first["owner"]
    assert board.default_name("s1") == board.default_name("s1") != board.default_name("s2")
    with pytest.raises(board.BoardError, match="no run directory"):
        board.join(tmp_path / "missing", "t1", "Ada", owner="s")


def test_recordings_join_only_when_asked(room):
    assert not [r for r in board.room_runs("t1", root=room) if r.recording]
    if not gallery.names():
        pytest.skip("no gallery shipped")
    rows = [r for r in board.room_runs("t1", root=room, include_recordings=True) if r.recording]
    assert [r.run for r in rows] == gallery.names()
    for row in rows:
        assert row.AP == pytest.approx(gallery.entry(row.run)["metrics"]["AP"], abs=1e-9)
        assert row.state == "finished" and row.matrix == gallery.load(row.run).acc_matrix
    picked = board.room_runs("t1", root=room, include_recordings=["seqft"])
    assert [r.run for r in picked if r.recording] == ["seqft"]
