"""The gallery carries what the weight-hungry views need (issue 16): each tiny-model recording ships its
connectivity lines (every consecutive task pair and first -> last, every variant, the EMA / slow marks) and
the blended model's answers at every grid point; the Connectivity view shows them for a recording, picked
or played back, without weights; the lessons' embeddings are shipped; and the shipped lines match a fresh
probe of a re-run of the seqft recording's config within a stated tolerance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
import torch

from cit_core import connectivity as conn
from cit_core import gallery
from serve import playback
from cit_core.config import RunConfig
from cit_core.methods import METHODS
from cit_core.trainer import Trainer
from support.lessons import small_config, small_lesson
from pages import connectivity as page
from pages import source as src
from support.paths import ROOT

MARKS = {"ilora": ["slow"], "lcia": ["ema", "raw"]}     # the extra states these methods keep at task ends


def _tiny() -> list[dict]:
    return [e for e in gallery.index() if e["config"]["model"]["name"] == "tiny"]


# -- what is shipped ---------------------------------------------------------------------------------
def test_every_tiny_recording_ships_its_connectivity_lines_and_answers():
    assert len(_tiny()) >= 13
    for e in _tiny():
        data = gallery.connectivity(e["name"])
        assert data is not None, e["name"]
        n = len(e["tasks"])
        lines = conn.run_pairs(list(range(n)))
        assert lines[-1] == (0, n - 1) and len(lines) == n           # consecutive pairs, then first -> last
        assert {(p["from"], p["to"], p["variant"]) for p in data["pairs"]} == \
            {(s, t, v) for s, t in lines for v in data["variants"]}, e["name"]
        assert data["variants"] == list(conn.variants(METHODS[e["method"]].uses_lora))
        assert e["connectivity"]["file"] == e["name"] + gallery.CONNECTIVITY_SUFFIX
        for pair in data["pairs"]:
            seen = pair["to"] + 1
            grid = pair["a"]
            assert len(grid) == data["points"] == gallery.PROBE_POINTS and grid[0] == 0 and grid[-1] == 1
            assert pair["tasks"] == e["tasks"][:seen]
            for key in ("loss", "accuracy"):
                assert len(pair[key]) == seen and all(len(row) == len(grid) for row in pair[key])
            assert all(0 <= v <= 1 for row in pair["accuracy"] for v in row)
            assert all(v > 0 for row in pair["loss"] for v in row)
            names = [m["name"] for m in pair["marks"]]
            # I-LoRA's slow learner exists at every task end; LCIA's EMA only after a task that retrained a group
            assert names == MARKS["ilora"] if e["method"] == "ilora" else set(names) <= set(MARKS.get(e["method"], []))
            samples = pair["samples"]
            assert [x["task"] for x in samples["examples"]] == \
                [k for k in range(seen) for _ in range(data["samples_per_task"])]
            assert len(samples["answers"]) == len(grid)
            assert all(len(row) == len(samples["examples"]) for row in samples["answers"])
        # the line's end is the run's task-end model: for full fine-tuning its accuracy is the matrix row
        # on the first max_eval held-out examples, so it can only match where the matrix is 0 or 1
        if data["variants"] == ["full"]:
            log = gallery.load(e["name"])
            last = next(p for p in data["pairs"] if (p["from"], p["to"]) == (n - 2, n - 1))
            for k, score in enumerate(log.acc_matrix[n - 1]):
                if score in (0.0, 1.0):
                    assert last["accuracy"][k][-1] == score, (e["name"], k)


def test_smollm2_recordings_ship_no_connectivity_and_the_view_says_so():
    for name in ("smollm2-seqft_lora", "smollm2-ilora"):
        assert gallery.entry(name).get("connectivity") is None and gallery.connectivity(name) is None
        source, _ = src.resolve(None, None, f"gallery: {name}")
        assert page.recorded_data(source) is None
        with pytest.raises(conn.ProbeError, match="ships no connectivity"):
            page.compute_pair(None, None, f"gallery: {name}", "1. a", "2. b", None, 11)


def test_the_lessons_embeddings_are_shipped_and_open_without_computing():
    # a fresh interpreter: the recordings' lesson map comes from the shipped files, with no MiniLM or umap
    code = ("import sys, json; from cit_core import embeddings as emb; from cit_core.lessons import default_lesson; "
            "p = emb.lesson_points(default_lesson().tasks); v = emb.embed(p); u = emb.project(p, 'umap'); "
            "print(json.dumps([v.shape, u.shape, 'umap' in sys.modules, 'transformers' in sys.modules]))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    vectors, coords, umap_loaded, transformers_loaded = json.loads(out.strip().splitlines()[-1])
    assert vectors[1] == 384 and coords == [vectors[0], 2]
    assert not umap_loaded and not transformers_loaded


# -- the view ----------------------------------------------------------------------------------------
@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to rebuild a model or read a checkpoint fails the test."""
    def refuse(*_a, **_k):
        raise AssertionError("a recording must not touch weights")
    monkeypatch.setattr(page, "_saved_run", refuse)
    monkeypatch.setattr(page, "_model_parts", refuse)
    monkeypatch.setattr(conn, "read_checkpoint", refuse)


def test_connectivity_view_shows_a_picked_recording_from_its_shipped_lines(no_weights):
    name = "ilora"
    data = gallery.connectivity(name)
    with gr.Blocks():
        page.build_connectivity_tab(None, gr.State(None))
    result = page.compute_pair(None, None, f"gallery: {name}", "1. last_two", "5. vowel_end", "delta", 11)
    shipped = gallery.connectivity_pair(name, 0, 4, "delta")
    assert result["recorded"] == name and result["loss"] == shipped["loss"] and result["marks"] == shipped["marks"]
    loss_fig, acc_fig = page.curve_figure(result, "loss"), page.curve_figure(result, "accuracy")
    assert [list(t.y) for t in loss_fig.data if t.mode == "lines+markers"] == shipped["loss"]
    assert {t.name.split(" ")[0] for t in acc_fig.data if t.mode == "markers"} == {"slow"}
    text = page.at_alpha(None, None, f"gallery: {name}", result, 0.33)       # snaps to a = 0.3
    assert "Recorded when the gallery was built" in text and "**Recorded answers at a = 0.30**" in text
    i = result["a"].index(0.3)
    for answer in shipped["samples"]["answers"][i]:
        assert page._cell(answer) in text
    assert f"| 5. vowel_end | {shipped['accuracy'][4][i]:.3f} |" in text
    with pytest.raises(conn.ProbeError, match=r"no line 2→4; recorded: 1→2, 1→5, 2→3, 3→4, 4→5"):
        page.compute_pair(None, None, f"gallery: {name}", "2. has_seven", "4. last_digit", "delta", 11)
    assert data["variants"] == ["factors", "delta"]


def test_connectivity_view_follows_a_recording_played_back(no_weights):
    from serve.registry import RunRegistry
    registry = RunRegistry(max_runs=1, idle_ttl_s=60, factory=lambda cfg: object())
    rec = playback.Recording("seqft")
    run_id = registry.add_recorded(rec)
    spt = rec.cfg.train.steps_per_task
    rec.advance(2 * spt)                             # tasks 1 and 2 have ended: the line 1 -> 2 exists
    key, note, start, end, variant = _refresh(registry, run_id)
    assert "recorded** when the gallery was built" in note and "lines 1→2;" in note
    assert (start["choices"], start["value"], end["value"]) == (["1. last_two", "2. has_seven"],
                                                                "1. last_two", "2. has_seven")
    assert variant["choices"] == ["full"]
    result = page.compute_pair(registry, run_id, src.LIVE, "1. last_two", "2. has_seven", "full", 11)
    assert result["loss"] == gallery.connectivity_pair("seqft", 0, 1, "full")["loss"]
    with pytest.raises(conn.ProbeError, match="task 3 has not ended yet"):
        page.compute_pair(registry, run_id, src.LIVE, "2. has_seven", "3. first_two", "full", 11)
    rec.run_to_end()
    key, note, start, *_ = _refresh(registry, run_id, key)
    assert len(start["choices"]) == 5 and "1→2, 1→5, 2→3, 3→4, 4→5" in note
    assert page.at_alpha(registry, run_id, src.LIVE, result, 1.0).count("\n| 2. has_seven |") == \
        gallery.connectivity("seqft")["samples_per_task"] + 1        # accuracy row + recorded answers


def _refresh(registry, run_id, shown=None):
    return page.refresh(registry, run_id, src.LIVE, shown, None, None)


# -- building ----------------------------------------------------------------------------------------
def test_build_ships_the_lines_of_a_run_with_checkpoints_and_reuses_its_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery, "PROBE_POINTS", 3)          # a coarse grid keeps the test cheap
    run_dir = tmp_path / "sweep" / "seqft_lora-s0"
    cfg = small_config("seqft_lora", steps=2)
    cfg = replace(cfg, train=replace(cfg.train, eval_every=0, eval_general=False))     # keep it cheap
    trainer = Trainer(cfg, lesson=small_lesson(n_eval=4), run_dir=run_dir)
    trainer.run_to_end()
    # probed ahead with the gallery's settings (the lesson here is a cut-down one the build could not rebuild)
    conn.probe_run(run_dir, gallery.PROBE_POINTS, log=lambda _: None, lesson=small_lesson(n_eval=4),
                   samples_per_task=conn.RECORDED_SAMPLES)
    probed = json.loads((run_dir / "connectivity.json").read_text())
    out = tmp_path / "gallery"
    entries = gallery.build(tmp_path / "sweep", out, log=lambda _: None, embeddings=False)
    (item,) = entries
    assert item["connectivity"]["pairs"] == [[0, 1]] and item["connectivity"]["variants"] == ["factors", "delta"]
    data = gallery.connectivity(item["name"], out)
    for ours, theirs in zip(data["pairs"], probed["pairs"]):
        for row, probed_row in zip(ours["loss"], theirs["loss"]):
            assert row == pytest.approx(probed_row, abs=1e-5)
        assert ours["samples"] == theirs["samples"] and "seconds" not in ours
    assert not any(p.suffix == ".safetensors" for p in out.rglob("*"))
    first = (out / item["connectivity"]["file"]).read_bytes()
    gallery.build(tmp_path / "sweep", out, log=lambda _: None, embeddings=False)   # same bytes again
    assert (out / item["connectivity"]["file"]).read_bytes() == first
    # without connectivity the stale lines go, and the entry says there are none
    (item,) = gallery.build(tmp_path / "sweep", out, log=lambda _: None, connectivity=False, embeddings=False)
    assert item["connectivity"] is None and not (out / (item["name"] + gallery.CONNECTIVITY_SUFFIX)).exists()


# -- reproduction -------------------------------------------------------------------------------------
# The shipped lines come from the recorded run's checkpoints; a re-run of its config trains to weights that
# are equal on the recording's machine and within float-ordering noise elsewhere (90 steps). Tolerances: a
# loss within PROBE_LOSS_TOL (mean token cross-entropy, values 0.1 to 10), an accuracy within PROBE_ACC_TOL
# (3 of the 32 held-out examples whose greedy answer may flip on a near-tie).
PROBE_LOSS_TOL, PROBE_ACC_TOL = 5e-3, 3 / 32


def test_shipped_connectivity_matches_a_fresh_probe_of_the_rerun_seqft_config():
    """Re-run the seqft recording's config through tasks 1 and 2 and probe the line 1 -> 2 at a = 0, 0.5, 1
    (points of the shipped 11-point grid) on the same held-out examples: the shipped loss and accuracy of
    both seen tasks agree within PROBE_LOSS_TOL / PROBE_ACC_TOL."""
    entry = gallery.entry("seqft")
    shipped = gallery.connectivity_pair("seqft", 0, 1, "full")
    data = gallery.connectivity("seqft")
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(RunConfig.from_dict(entry["config"]))
        trainer.advance(2 * trainer.cfg.train.steps_per_task)
        assert sorted(trainer.snapshots) == [0, 1]
        fresh = conn.probe_trainer(trainer, 0, 1, "full", points=3, max_eval=data["max_eval"])
    finally:
        torch.set_num_threads(threads)
    grid = [shipped["a"].index(a) for a in fresh["a"]]          # 0, 5, 10 on the shipped grid
    assert grid == [0, 5, 10] and fresh["eval_per_task"] == shipped["eval_per_task"]
    for k in range(2):
        assert fresh["loss"][k] == pytest.approx([shipped["loss"][k][i] for i in grid], abs=PROBE_LOSS_TOL)
        assert fresh["accuracy"][k] == pytest.approx([shipped["accuracy"][k][i] for i in grid], abs=PROBE_ACC_TOL)
    # the line really moves between the ends: a loose tolerance cannot hide a wrong line
    assert abs(shipped["loss"][0][0] - shipped["loss"][0][-1]) > 10 * PROBE_LOSS_TOL


def test_index_entries_describe_their_connectivity_files():
    for e in gallery.index():
        item = e.get("connectivity")
        if item is None:
            continue
        path = gallery.GALLERY_DIR / item["file"]
        assert path.stat().st_size == item["size"]
        data = gallery.connectivity(e["name"])
        assert sorted(map(tuple, item["pairs"])) == sorted({(p["from"], p["to"]) for p in data["pairs"]})
        assert item["points"] == data["points"] and item["variants"] == data["variants"]
