"""Instruction-embedding clusters: points, projections, nearest instructions, logged matrices, probe, page.

One module fixture trains four tiny runs (InsCL, TIR, LCIA, SwitchCIT: 3 tasks, 2 steps each) whose logs
carry the matrices; UMAP's one-off numba compile runs in a background thread meanwhile.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from cit_core import embeddings as emb
from cit_core.config import LessonConfig
from cit_core.runs import read_run
from cit_core.trainer import Trainer

from support.lessons import small_config, small_lesson

METHODS = {"inscl": {}, "tir": {}, "lcia": {"tau": 0.1}, "switchcit": {}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    emb.warm_up_umap()                       # the JIT overlaps the training below
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for method, options in METHODS.items():
        cfg = small_config(method, steps=2, **options)
        cfg.train.eval_every = 0
        cfg.lesson = LessonConfig(n_eval=8)
        trainer = Trainer(cfg, lesson=small_lesson(3, 32, 8), run_dir=root / method)
        trainer.run_to_end()
        out[method] = trainer
    return out


@pytest.fixture(scope="module")
def lesson_vectors():
    tasks = small_lesson(3, 32, 8).tasks
    points = emb.lesson_points(tasks)
    return tasks, points, emb.embed(points)


def test_one_finite_point_per_instruction_in_both_projections(runs, lesson_vectors):
    tasks, points, vectors = lesson_vectors
    expected = [(t.name, s) for t in tasks for s in t.instructions]
    assert list(zip(points.tasks, points.texts)) == expected
    assert vectors.shape == (len(expected), 384)
    with_prompts = emb.lesson_points(tasks, prompts_per_task=2)
    assert with_prompts.texts[:len(expected)] == points.texts and with_prompts.kinds.count("prompt") == 6
    assert with_prompts.texts[-1] == f"{tasks[2].eval[1].instruction}\n{tasks[2].eval[1].input}"
    with pytest.raises(ValueError, match="prompts_per_task"):
        emb.lesson_points(tasks, prompts_per_task=emb.MAX_PROMPTS_PER_TASK + 1)
    emb.warm_up_umap().join(300)
    for projection in ("pca", "umap"):
        coords = emb.project(points, projection)
        assert coords.shape == (len(expected), 2)
        assert np.isfinite(coords).all()
        assert np.ptp(coords, axis=0).min() > 0          # a real spread, not a constant placeholder


def test_umap_is_reproducible_with_its_seed(runs, lesson_vectors):
    _, _, vectors = lesson_vectors
    emb.warm_up_umap().join(300)
    first, again = emb.umap_2d(vectors, seed=0), emb.umap_2d(vectors, seed=0)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, emb.umap_2d(vectors, seed=1))


def test_pca_is_deterministic_and_equals_the_svd_projection(lesson_vectors):
    _, _, vectors = lesson_vectors
    coords = emb.pca_2d(vectors)
    np.testing.assert_array_equal(coords, emb.pca_2d(vectors))
    centred = vectors.astype(np.float64) - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    ref = centred @ vt[:2].T
    for k in range(2):                                   # a principal axis is defined up to its sign
        sign = np.sign(ref[:, k] @ coords[:, k])
        np.testing.assert_allclose(coords[:, k], sign * ref[:, k], atol=1e-6)
    assert emb.pca_2d(vectors[:1]).tolist() == [[0.0, 0.0]]


def test_nearest_instructions_are_ordered_by_cosine(lesson_vectors):
    _, _, vectors = lesson_vectors
    index = 3
    sims = [float(np.dot(vectors[j], vectors[index])) / float(np.linalg.norm(vectors[j]) *
                                                              np.linalg.norm(vectors[index]))
            for j in range(len(vectors))]
    expected = sorted((j for j in range(len(vectors)) if j != index), key=lambda j: -sims[j])[:5]
    got = emb.nearest(vectors, index, k=5)
    assert [j for j, _ in got] == expected
    np.testing.assert_allclose([c for _, c in got], [sims[j] for j in expected], atol=1e-5)
    with pytest.raises(ValueError, match="does not exist"):
        emb.nearest(vectors, len(vectors))


def test_matrices_equal_what_the_methods_logged(runs):
    for method, trainer in runs.items():
        log = read_run(trainer.run_dir)
        tasks, mats = log.tasks, emb.logged_matrices(log)
        if method == "inscl":
            pairs = {"InsCL Wasserstein distance": "distances", "InsCL replay allocation": "allocation"}
        elif method == "tir":
            pairs = {"TIR cosine similarity": "tir_similarity", "TIR penalty weight": "weights"}
        else:
            pairs = {}
        for name, key in pairs.items():
            filled = 0
            for t, info in enumerate(log.task_info):
                for c, other in enumerate(tasks):
                    assert mats[name]["values"][t][c] == info.get(key, {}).get(other)
                    filled += other in info.get(key, {})
            assert filled == 3                            # task 2 vs 1, task 3 vs 1 and 2
        if method == "lcia":
            sims, groups = mats["LCIA TF-IDF similarity to groups"], mats["LCIA retrain/expand groups"]
            decisions = [info["decision"] for info in log.task_info]
            assert "retrain" in decisions and "expand" in decisions      # tau=0.1 gives both here
            for t, info in enumerate(log.task_info):
                for g, group in enumerate(sims["columns"]):
                    assert sims["values"][t][g] == info["similarities"].get(group)
                    assert groups["values"][t][g] == (1.0 if info["adapter"] == group else 0.0)
        if method == "switchcit":
            assert mats["SwitchCIT router confusion"]["values"] == log.task_info[-1]["switch_confusion"]
            assert mats["SwitchCIT router confusion"]["labels"] == tasks
        assert (method == "inscl") == ("InsCL Wasserstein distance" in mats)


def test_computed_cosine_matrix_is_the_cosine_of_task_means(lesson_vectors):
    tasks, points, vectors = lesson_vectors
    mats = emb.computed_matrices(points, vectors)
    cosine = np.array(mats["Instruction cosine (task means)"]["values"])
    mean = [vectors[[i for i, t in enumerate(points.tasks) if t == task.name]].mean(0) for task in tasks]
    ref = np.dot(mean[0], mean[2]) / (np.linalg.norm(mean[0]) * np.linalg.norm(mean[2]))
    assert cosine[0, 2] == pytest.approx(ref, abs=1e-6)
    np.testing.assert_allclose(np.diag(cosine), 1.0, atol=1e-6)


def test_probe_writes_the_documented_keys_and_caches_on_disk(runs, monkeypatch, capsys):
    from cit_core.cli import main
    run_dir = runs["inscl"].run_dir
    emb.warm_up_umap().join(300)
    assert main(["probe", "embeddings", "--run", str(run_dir), "--projection", "umap"]) == 0
    data = json.loads((run_dir / "embeddings.json").read_text())
    assert data["projection"] == "umap"
    n = len(emb.lesson_points(emb.run_tasks(run_dir)[0]))
    assert len(data["points"]) == len(data["task"]) == len(data["text"]) == n
    assert all(len(p) == 2 and all(np.isfinite(p)) for p in data["points"])
    wass = data["matrices"]["InsCL Wasserstein distance"]
    assert wass["labels"] == ["last_two", "has_seven", "first_two"]
    assert wass["values"][2][:2] == [runs["inscl"].log.task_info[2]["distances"][k] for k in ("last_two", "has_seven")]
    # a fresh process (empty memory cache) reads the coordinates back from the run folder, not UMAP
    emb.clear_memory_cache()
    monkeypatch.setattr(emb, "umap_2d", lambda *a, **k: pytest.fail("UMAP recomputed despite the cache"))
    assert emb.probe_run(run_dir, "umap", log=lambda _: None) == run_dir / "embeddings.json"
    assert json.loads((run_dir / "embeddings.json").read_text())["points"] == data["points"]
    # a folder without config.json: a one-line error and exit 2
    assert main(["probe", "embeddings", "--run", str(run_dir / "checkpoints"), "--projection", "pca"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_page_builds_and_draws_a_saved_and_a_live_run(runs, monkeypatch):
    import gradio as gr
    from pages import embeddings as page
    from pages import source as src
    run_dir = runs["tir"].run_dir
    monkeypatch.setenv("CIT_RUNS_DIR", str(run_dir.parent))

    class NoRuns:
        def get(self, run_id):
            return None

    with gr.Blocks():
        view = page.build_embeddings_tab(NoRuns(), gr.State(None))
    assert isinstance(view.timer, gr.Timer)
    emb.warm_up_umap().join(300)
    points = emb.lesson_points(emb.run_tasks(run_dir)[0])
    emb.projection_job(points, run_dir).wait(300)
    out = page.refresh(NoRuns(), None, "tir", None, None)
    shown, data, note, fig = out[:4]
    assert "UMAP (seeded" in note and "tir" in note
    assert [tr.name for tr in fig.data] == ["1. last_two", "2. has_seven", "3. first_two"]
    assert sum(len(tr.x) for tr in fig.data) == len(points)
    assert "TIR penalty weight" in out[5]["choices"]
    assert all(o == gr.skip() for o in page.refresh(NoRuns(), None, "tir", shown, None))   # nothing resent
    fig2, near = page.select_point(data, 0)
    assert near.count("\n| ") == page.N_NEAREST + 1 and fig2.data[-1].name == "selected + nearest"
    heat, table = page.show_matrix(data, "TIR penalty weight")
    assert heat.data[0].type == "heatmap" and "| last_two |" in table
    # a saved run with a UMAP embeddings.json is drawn from that file
    written = json.loads(emb.probe_run(runs["lcia"].run_dir, "umap", log=lambda _: None).read_text())
    saved = page.view_data(src.resolve(NoRuns(), None, "lcia")[0])
    assert "from embeddings.json" in saved.status and saved.coords == written["points"]
    assert saved.matrices == written["matrices"]
    # live: the trainer's own lesson, no run folder needed
    trainer = runs["switchcit"]
    live = src.Source(trainer.log, ("live", 1), trainer, None, "live run")
    view = page.view_data(live)
    assert view.points.key == emb.lesson_points(trainer.lesson.tasks).key
    assert "SwitchCIT router confusion" in view.matrices
    assert page.refresh(NoRuns(), None, "no-such-run", None, None)[2].startswith("Cannot open")


def test_importing_the_module_does_not_import_umap():
    code = "import sys, cit_core.embeddings; print('umap' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]
