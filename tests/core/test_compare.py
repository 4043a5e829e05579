"""Compare: table numbers equal the summaries, mean ± std equals numpy, B − A, the CLI and the pages."""
from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from support.lessons import small_config, small_lesson

from cit_core import compare as cmp
from cit_core import gallery
from cit_core.cli import main
from cit_core.lessons import Lesson
from cit_core.trainer import Trainer

RUNS = [("seqft", 0), ("seqft", 1), ("seqft", 2), ("replay", 0)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIT_RUNS_DIR", str(root))
        for method, seed in RUNS:
            cfg = small_config(method, steps=2)
            cfg.train.seed = seed
            Trainer(cfg, lesson=small_lesson(n_train=16, n_eval=8), run_dir=root / f"{method}-s{seed}").run_to_end()
        # the same tasks in the other order, and a run stopped after its first task
        cfg = small_config("seqft", steps=2)
        swapped = small_lesson(n_train=16, n_eval=8)
        Trainer(cfg, lesson=Lesson("swapped", swapped.tasks[::-1]), run_dir=root / "swapped").run_to_end()
        partial = Trainer(cfg, lesson=small_lesson(n_train=16, n_eval=8), run_dir=root / "partial")
        partial.advance(2)
        partial.advance(1)                  # into task 2: task 1 ended, no summary
        yield root


def summary(root, name):
    return json.loads((root / name / "summary.json").read_text())


def test_rows_equal_the_summaries(store):
    names = [f"{m}-s{s}" for m, s in RUNS]
    rows = [cmp.run_row(r) for r in cmp.load_runs([store / n for n in names])]
    for row, name in zip(rows, names):
        s = summary(store, name)
        assert {k: row[k] for k in cmp.METRICS} == {k: s["metrics"][k] for k in cmp.METRICS}
        assert (row["method"], row["seed"], row["wall_s"], row["finished"]) == (s["method"], s["seed"], s["wall_s"], True)


def test_relative_gain_against_a_per_task_run(store):
    runs = cmp.load_runs([store / "seqft-s0", store / "seqft-s1"])
    upper_run = cmp.load_run(store / "replay-s0")
    bounds = cmp.single_task_bounds(upper_run, runs)
    diag = summary(store, "replay-s0")["acc_matrix"]
    assert bounds == [diag[0][0], diag[1][1]]
    final = summary(store, "seqft-s0")["acc_matrix"][-1]
    # hand-made bounds, so the value is defined whatever the tiny runs scored: 100/T Σ R[T][i] / U_i
    row = cmp.run_row(runs[0], upper=[0.5, 0.25])
    assert row["RG"] == pytest.approx(100 / 2 * (final[0] / 0.5 + final[1] / 0.25))
    assert cmp.run_row(runs[0])["RG"] == summary(store, "seqft-s0")["metrics"]["RG"]   # default: own diagonal
    with pytest.raises(cmp.CompareError, match="different tasks"):
        cmp.single_task_bounds(upper_run, [cmp.load_run(store / "swapped")])
    with pytest.raises(cmp.CompareError, match="not finished"):
        cmp.single_task_bounds(cmp.load_run(store / "partial"), runs)


def test_grouped_mean_std_equals_numpy(store):
    names = [f"{m}-s{s}" for m, s in RUNS] + ["partial"]
    groups = cmp.grouped([cmp.run_row(r) for r in cmp.load_runs([store / n for n in names])])
    assert [(g["method"], g["runs"], g["seeds"]) for g in groups] == [("seqft", 3, [0, 1, 2]), ("replay", 1, [0])]
    for key in cmp.METRICS:
        values = [summary(store, f"seqft-s{s}")["metrics"][key] for s in (0, 1, 2)]
        values = [v for v in values if v is not None]          # RG is undefined when some R[i][i] is 0
        assert groups[0][key] == (pytest.approx((np.mean(values), np.std(values)), abs=1e-12) if values else None)
        own = summary(store, "replay-s0")["metrics"][key]
        assert groups[1][key] == (None if own is None else (own, 0.0))


def test_unfinished_runs_are_shown_but_not_averaged(store):
    rec = cmp.load_run(store / "partial")
    row = cmp.run_row(rec)
    assert row["finished"] is False and all(row[k] is None for k in cmp.METRICS)
    assert cmp.store_row(rec)["AP"] == "unfinished" and cmp.store_row(rec)["tasks done"] == "1 / 2"
    assert cmp.grouped([row])[0]["AP"] is None


def test_difference_matrix(store):
    a, b = cmp.load_run(store / "seqft-s0"), cmp.load_run(store / "replay-s0")
    diff = cmp.difference(a, b)
    sa, sb = summary(store, "seqft-s0"), summary(store, "replay-s0")
    full_a = np.array([sa["base_scores"], *sa["acc_matrix"]])
    full_b = np.array([sb["base_scores"], *sb["acc_matrix"]])
    assert np.array(diff["values"]) == pytest.approx(full_b - full_a)
    assert diff["rows"][0] == "before training" and len(diff["rows"]) == 3
    # only the rows both reached
    assert len(cmp.difference(a, cmp.load_run(store / "partial"))["values"]) == 2
    with pytest.raises(cmp.CompareError, match="different tasks"):
        cmp.difference(a, cmp.load_run(store / "swapped"))


def test_cli_compare_writes_csv(store, tmp_path, capsys):
    out = tmp_path / "cmp.csv"
    dirs = [str(store / n) for n in ("seqft-s0", "replay-s0", "partial")]
    assert main(["compare", *dirs, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "seqft-s0" in printed and "unfinished" in printed
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["run"] for r in rows] == ["seqft-s0", "replay-s0", "partial"]
    for r in rows[:2]:
        s = summary(store, r["run"])
        assert (r["method"], int(r["seed"]), float(r["wall_s"])) == (s["method"], s["seed"], s["wall_s"])
        assert {k: (float(r[k]) if r[k] else None) for k in cmp.METRICS} == {k: s["metrics"][k] for k in cmp.METRICS}
    assert rows[2]["AP"] == "" and rows[2]["finished"] == "False"
    # --rg-upper: RG against another run's diagonal, in the printed table and the CSV
    assert main(["compare", dirs[0], "--rg-upper", dirs[0], "--out", str(out)]) == 0
    own = summary(store, "seqft-s0")["metrics"]["RG"]
    row = next(csv.DictReader(io.StringIO(out.read_text())))
    assert (float(row["RG"]) if row["RG"] else None) == own      # its own diagonal: the default RG again
    assert " RG " in capsys.readouterr().out.splitlines()[0] + " "


@pytest.mark.parametrize("target", ["/no/such/run", "."])
def test_cli_compare_bad_input_exits_2(store, target, capsys):
    assert main(["compare", str(store / "seqft-s0"), target]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not a run directory" in err[0]


def test_cli_compare_needs_a_dir(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare"])
    assert exc.value.code == 2


def test_cli_compare_unwritable_out(store, capsys):
    assert main(["compare", str(store / "seqft-s0"), "--out", "/no/such/dir/x.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("error: cannot write")


def test_compare_page(store, tmp_path):
    from pages import compare as page
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIT_RUNS_DIR", str(store))
        names = ["seqft-s0", "seqft-s1", "swapped", "partial"]
        note, curves, matrices, table, groups, a, b, _ = page.show(names)
        assert note == ""
        # small multiples: one panel per task name, one line per (run, task)
        assert len(curves.data) == 4 * 2 and len({t.legendgroup for t in curves.data}) == 4
        assert len(matrices.data) == 4
        assert f"{summary(store, 'seqft-s0')['metrics']['AP']:.3f}" in table
        assert "unfinished" in table and "± " in groups
        assert a["value"] == "seqft-s0" and b["value"] == "seqft-s1"
        fig, msg = page.show_difference("seqft-s0", "seqft-s1")
        assert msg == "" and len(fig.data) == 1
        assert page.show_difference("seqft-s0", "swapped")[1].startswith("**runs")
        assert page.show([])[0].startswith("**Pick")
        assert "not a run name" in page.show(["../x"])[0]
        files, msg = page.export(names, "seqft-s0", "seqft-s1")
        assert sorted(p.rsplit("/", 1)[1] for p in files) == sorted(
            ["compare_metrics.csv", "compare_metrics.json", "compare_curves.html", "compare_matrices.html",
             "compare_difference.html"])
        shutil.rmtree(files[0].rsplit("/", 1)[0])


def test_recording_labels_name_the_model_and_only_the_knobs_that_differ():
    labels = {e["name"]: cmp.recording_label(e) for e in gallery.index()}
    assert labels["seqft"] == "Sequential fine-tuning · tiny base"
    # recorded before LCIA's defaults became the released code's: its options say which forms it ran with
    assert labels["smollm2-lcia"] == ("LCIA (adaptive EMA + retrain-or-expand) · SmolLM2-135M · classic lesson · "
                                      "ema_start task_start, similarity joint, 30 steps/task, batch 8, lr 0.001")
    assert labels["switchcit"] != labels["smollm2-switchcit"]
    assert len(set(labels.values())) == len(labels)        # every recording tells itself apart
    for label in labels.values():
        assert "=" not in label and "lam" not in label and "100000000" not in label, label
    ewc = dict(gallery.entry("ewc"), config={**gallery.entry("ewc")["config"],
                                              "method_options": {"lam": 1e8, "batches": 64, "batch_size": 1}})
    assert cmp.recording_label(ewc).endswith("lam 1e+08")    # a changed knob, short, and only that one
