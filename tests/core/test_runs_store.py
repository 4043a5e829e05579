"""The run store: app runs are saved under CIT_RUNS_DIR, reopen equal to the live log, delete safely."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from support.lessons import small_config, small_lesson

from cit_core import store
from cit_core.cli import main
from cit_core.compare import load_run, store_row
from cit_core.config import LessonConfig
from serve.registry import RunRegistry
from cit_core.runs import read_run
from cit_core.trainer import Trainer

FOLDED = ("tasks", "method", "config", "steps_per_task", "total_steps", "step", "task", "losses", "scalars",
          "curve_steps", "curve_scores", "base_scores", "acc_matrix", "task_info", "task_end_info", "boundaries",
          "coefficients", "checkpoints", "drift", "tokens", "error", "summary", "version")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("CIT_RUNS_DIR", str(tmp_path / "store"))
    return tmp_path / "store"


def finished_run(root: Path, name: str, method="seqft", seed=0) -> Trainer:
    cfg = small_config(method, steps=2)
    cfg.train.seed = seed
    trainer = Trainer(cfg, lesson=small_lesson(n_train=16, n_eval=8), run_dir=root / name)
    trainer.run_to_end()
    return trainer


def test_app_runs_go_to_the_store_with_readable_names(root):
    cfg = small_config("seqft", steps=2)
    cfg.lesson = LessonConfig(n_eval=4)
    registry = RunRegistry(max_runs=2)                 # the default factory: what the app uses
    run = registry.get(registry.create(cfg))
    run.trainer.advance(1)
    name = run.trainer.run_dir.name
    assert re.fullmatch(r"\d{8}-\d{6}-seqft-s0-[0-9a-f]{6}", name), name
    assert run.trainer.run_dir.parent == root
    assert store.list_runs() == [name]
    assert read_run(run.trainer.run_dir).step == 1     # flushed per event: readable while live
    # a live, unfinished run cannot be deleted under its trainer
    with pytest.raises(store.RunBusy):
        store.delete_run(name)
    registry.release(run.id)


def test_reopened_run_equals_the_live_log(root):
    trainer = finished_run(root, "r1", method="seqft_lora")
    reopened = read_run(root / "r1")
    for name in FOLDED:
        assert getattr(reopened, name) == getattr(trainer.log, name), name
    assert reopened.metrics() == trainer.log.metrics()
    assert load_run(root / "r1").summary == trainer.log.summary


def test_delete_refuses_names_outside_the_store(root, tmp_path):
    finished_run(root, "keep")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "events.jsonl").write_text("")
    (root / "link").symlink_to(outside)
    for bad in ("../outside", "..", ".", "keep/../../outside", "/tmp", "", "a/b", "link", "missing"):
        with pytest.raises(store.RunNotFound):
            store.delete_run(bad)
    assert outside.is_dir() and (root / "keep").is_dir()
    (root / "not-a-run").mkdir()
    with pytest.raises(store.RunNotFound, match="not a run directory"):
        store.delete_run("not-a-run")
    assert store.delete_run("keep") == root / "keep" and not (root / "keep").exists()


def test_delete_refuses_an_unfinished_run_written_recently(root):
    run = root / "other-process"
    run.mkdir(parents=True)
    (run / "events.jsonl").write_text("{}\n")            # no summary.json: maybe another process's live run
    with pytest.raises(store.RunBusy):
        store.delete_run("other-process", busy=set())
    old = time.time() - 2 * store.RECENT_WRITE_S
    os.utime(run / "events.jsonl", (old, old))
    store.delete_run("other-process", busy=set())
    assert not run.exists()


def test_runs_cli_lists_the_store(root, capsys):
    trainer = finished_run(root, "listed")
    assert main(["runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    # a header line names the TSV's columns
    assert out[0].split("\t") == ["run", "method", "seed", "tasks done", "AP", "BWT", "forgetting", "created",
                                  "size"]
    cells = out[1].split("\t")
    assert cells[0] == "listed" and cells[1] == "seqft" and cells[3] == "2 / 2"
    assert float(cells[4]) == round(trainer.log.summary["metrics"]["AP"], 3)
    assert store_row(load_run(root / "listed"))["AP"] == round(trainer.log.summary["metrics"]["AP"], 3)


def _fake_run(root, name, age_s, finished=True, size=1000):
    import os
    import time as _time
    run = root / name
    run.mkdir()
    (run / "events.jsonl").write_text("{}\n")
    (run / "weights.bin").write_bytes(b"\0" * size)
    if finished:
        (run / "summary.json").write_text("{}")
    stamp = _time.time() - age_s
    os.utime(run / "events.jsonl", (stamp, stamp))
    return run


def test_the_store_is_pruned_oldest_finished_first(tmp_path):
    """Past its size cap the store drops the oldest finished runs; unfinished and busy runs stay."""
    from cit_core import store
    oldest = _fake_run(tmp_path, "a-oldest", 400)
    unfinished = _fake_run(tmp_path, "b-unfinished", 300, finished=False)
    busy = _fake_run(tmp_path, "c-busy", 200)
    middle = _fake_run(tmp_path, "d-middle", 100)
    newest = _fake_run(tmp_path, "e-newest", 0)
    per_run = store._size(oldest)
    deleted = store.prune(max_bytes=3 * per_run, root=tmp_path, busy={busy.resolve()})
    assert deleted == ["a-oldest", "d-middle"]          # c-busy is skipped, b-unfinished is never pruned
    assert all(p.is_dir() for p in (unfinished, busy, newest)) and not oldest.exists() and not middle.exists()
    assert store.prune(max_bytes=3 * per_run, root=tmp_path, busy=set()) == []    # under the cap: nothing


def test_a_missing_run_message_names_no_server_path(tmp_path):
    from cit_core import store
    with pytest.raises(store.RunNotFound) as err:
        store.delete_run("nothing-here", root=tmp_path)
    assert str(tmp_path) not in str(err.value)


def test_the_runs_page_names_no_server_path(tmp_path, monkeypatch):
    """Deleting a run says which, never where; a public server's Runs tab does not show the store's path."""
    import gradio as gr
    from pages import runs as page
    from serve.registry import RunRegistry
    monkeypatch.setenv("CIT_RUNS_DIR", str(tmp_path))
    _fake_run(tmp_path, "old-run", 400)
    message = page.delete("old-run")
    assert "Deleted run `old-run`" in message and str(tmp_path) not in message
    monkeypatch.setenv("CIT_PUBLIC", "1")
    with gr.Blocks() as demo:
        page.build_runs_tab(RunRegistry(1, 60), gr.State(None))
    texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert texts and not any(str(tmp_path) in (t or "") for t in texts)
