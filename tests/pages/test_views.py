"""Forgetting and Coefficients views: figure builders from small plain inputs, and each view's refresh
on saved run directories (no live model) and on a live log (redraw only when the data changed)."""
from __future__ import annotations

import json
import math

import gradio as gr
import numpy as np
import pytest

from cit_core.events import (CoefficientsLogged, DriftLogged, Evaluated, RunLog, RunStarted, StepLogged, TaskEnded,
                             TaskStarted, event_to_dict)
from cit_core.runs import RunWriter, read_run
from cit_core.trainer import Trainer
from cit_core import panels
from pages.figures import analysis as af
from pages import coefficients, forgetting
from pages import source as src

from support.lessons import small_config, small_lesson

SKIP = gr.skip()


def heatmaps(fig):
    return [t for t in fig.data if t.type == "heatmap"]


# -- builders from plain inputs -------------------------------------------------------------------
def test_coefficient_heatmap_plots_log10_alpha_with_ticks_in_alpha():
    alphas = {"a": [0.5, 0.01, 0.002], "b": [0.1, 0.03, 0.9]}
    coefs = [(s + 1, {n: v[s] for n, v in alphas.items()}) for s in range(3)]
    names, z = panels.step_grid(coefs)
    fig = af.step_heatmap(names, z, title="t", value_name="α")
    heat = heatmaps(fig)[0]
    expected = np.log10(np.array([alphas["a"], alphas["b"]]))
    np.testing.assert_allclose(np.asarray(heat.z, float), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(heat.customdata, float), [alphas["a"], alphas["b"]], rtol=1e-6)
    assert list(heat.x) == [1, 2, 3] and list(heat.y) == ["a", "b"]
    ticks = list(zip(heat.colorbar.tickvals, heat.colorbar.ticktext))
    assert (pytest.approx(-2.0), "0.01") in ticks and (pytest.approx(-1.0), "0.1") in ticks
    for val, text in ticks:                    # every label is the α at its log10 position
        assert float(text) == pytest.approx(10 ** val, rel=1e-2)
    assert "down-sampled" not in fig.layout.title.text


def test_downsampling_1000_steps_gives_bin_means():
    rng = np.random.default_rng(0)
    z = rng.uniform(1e-3, 1.0, size=(3, 1000))
    z[1, 10:20] = np.nan                          # steps without a value are left out of the mean
    binned, k = af.bin_columns(z, 400)
    assert k == 3 and binned.shape == (3, 334) and binned.shape[1] <= 400
    by_hand = np.full((3, 334), np.nan)          # bin c = steps 3c+1..3c+3; the last bin is step 1000 alone
    for r in range(3):
        for c in range(334):
            chunk = z[r, c * 3:(c + 1) * 3]
            chunk = chunk[~np.isnan(chunk)]
            if chunk.size:
                by_hand[r, c] = chunk.sum() / chunk.size
    np.testing.assert_allclose(binned, by_hand, rtol=1e-12)
    assert np.isnan(binned[1, 4]) and not np.isnan(binned[1, 3])     # steps 13-15 had no value
    coefs = [(s + 1, {f"t{r}": z[r, s] for r in range(3) if not math.isnan(z[r, s])}) for s in range(1000)]
    names, grid = panels.step_grid(coefs)
    fig = af.step_heatmap(names, grid, title="t", value_name="α")
    heat = heatmaps(fig)[0]
    assert len(heat.x) == 334
    np.testing.assert_allclose(np.asarray(heat.customdata, float), binned, rtol=1e-6)
    assert heat.x[0] == 2.0 and heat.x[1] == 5.0      # the middle step of steps 1-3, 4-6
    assert "1 column = 3 steps" in fig.layout.title.text


def test_row_downsampling_keeps_at_most_60_rows():
    z = np.arange(130 * 2, dtype=float).reshape(130, 2) + 1
    labels, binned, k = af.bin_rows([f"n{i}" for i in range(130)], z, 60)
    assert k == 3 and len(labels) == 44 and labels[0] == "n0 … n2" and labels[-1] == "n129"
    np.testing.assert_allclose(binned[0], z[0:3].mean(0))
    np.testing.assert_allclose(binned[-1], z[129])


def test_fallback_marks_sit_at_the_fallback_steps():
    fb32 = float(np.float32(0.01))                # what LCIA logs: a float32 0.01 as a Python float
    coefs = [(1, {"a": fb32, "b": 0.2}), (2, {"a": 0.3, "b": 0.4}), (3, {"a": 0.05, "b": fb32}),
             (4, {"a": fb32, "b": 0.6})]
    names, z = panels.step_grid(coefs)
    fb = panels.cells_equal_to(z, 0.01)
    np.testing.assert_array_equal(fb, [[1, 0, 0, 1], [0, 0, 1, 0]])
    assert panels.row_means(fb) == [0.5, 0.25]
    fig = af.step_heatmap(names, z, title="t", value_name="α", fallback=fb, side=panels.row_means(fb),
                          side_title="fallback share")
    marks = [t for t in fig.data if t.type == "scatter"][0]
    assert sorted(zip(marks.y, np.asarray(marks.x).tolist())) == [("a", 1.0), ("a", 4.0), ("b", 3.0)]
    bar = [t for t in fig.data if t.type == "bar"][0]
    assert list(bar.x) == [0.5, 0.25] and list(bar.y) == ["a", "b"]


def test_drift_heatmap_and_drop_bars():
    drift = [{"layer0": 0.10, "layer1": 0.02}, {"layer0": 0.30, "layer1": 0.05}]
    acc = [[0.9, 0.1], [0.4, 0.95]]
    fig = af.drift_figure(["p", "q"], drift, acc)
    heat = heatmaps(fig)[0]
    np.testing.assert_allclose(np.asarray(heat.z, float), [[0.10, 0.30], [0.02, 0.05]], rtol=1e-6)
    assert list(heat.y) == ["layer0", "layer1"] and list(heat.x) == ["1. p", "2. q"]
    drops, forgot = [t for t in fig.data if t.type == "bar"]
    assert drops.y[0] is None and drops.y[1] == pytest.approx(0.5)       # task 1: 0.9 -> 0.4
    assert forgot.y[0] == pytest.approx(0.5) and forgot.y[1] is None
    table = af.drift_markdown(["p", "q"], drift, acc)
    assert "| layer0 | 0.1 | 0.3 |" in table and "0.500" in table


def test_drop_and_forgetting_by_hand():
    acc = [[0.8, 0.1, 0.0], [0.6, 0.9, 0.2], [0.2, 0.5, 1.0]]
    assert af.drop_during(acc) == [None, pytest.approx(0.2), pytest.approx((0.4 + 0.4) / 2)]
    assert af.forgetting_so_far(acc) == [pytest.approx(0.6), pytest.approx(0.4), None]


def test_importance_heatmap_is_log10_of_the_masses():
    rows = [{"l0": 1e-3, "l1": 2.0}, {"l0": 5e-2, "l1": 4.0}]
    layers, z = panels.named_grid(rows)
    fig = af.layer_task_heatmap(layers, ["p", "q"], z, title="t", value_name="Σ Ω", log=True,
                                side=np.nansum(z, 1).tolist(), side_title="sum")
    heat = heatmaps(fig)[0]
    np.testing.assert_allclose(np.asarray(heat.z, float), np.log10([[1e-3, 5e-2], [2.0, 4.0]]), rtol=1e-6)
    bar = [t for t in fig.data if t.type == "bar"][0]
    assert list(bar.x) == pytest.approx([0.051, 6.0])


def test_method_without_coefficients_says_so():
    log = RunLog()
    log.add(RunStarted(("p",), "seqft", 4, 4, {}))
    fig, tables, how = coefficients.coefficient_view(log)
    assert "has no balance coefficients — pick EWC, MAS, TIR, I-LoRA or LCIA" in how
    assert not heatmaps(fig)


# -- views on saved runs (no live model) ------------------------------------------------------------
@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for method, options in (("lcia", {"tau": 0.0}), ("ewc", {"batches": 2})):
        cfg = small_config(method, steps=4, **options)
        trainer = Trainer(cfg, lesson=small_lesson())
        with RunWriter(root / method, cfg.to_dict()) as writer:
            for event in trainer.events():
                writer.write(event)
    return root


@pytest.fixture
def store(runs_dir, monkeypatch):
    monkeypatch.setenv("CIT_RUNS_DIR", str(runs_dir))
    return runs_dir


def test_lcia_run_draws_alpha_and_its_fallback_share_matches_the_method(store):
    key, note, fig, tables = coefficients.refresh(None, None, "lcia", None)
    log = read_run(store / "lcia")
    assert "LCIA" in note and "How to read this" in note
    heat = heatmaps(fig)[0]
    # tau = 0: task 1 opens group 0 (no DEMA, no α), task 2 retrains it -> α at steps 5..8
    assert [s for s, _ in log.coefficients] == [5, 6, 7, 8]
    names = list(log.coefficients[0][1])
    assert list(heat.y) == names and list(heat.x) == list(range(1, 9))
    expected = np.array([[math.nan] * 4 + [v[n] for _, v in log.coefficients] for n in names])
    np.testing.assert_allclose(np.asarray(heat.z, float), np.log10(expected), rtol=1e-6)
    # the side bar (from the logged α) equals LCIA's own fallback count in TaskEnded info
    bar = [t for t in fig.data if t.type == "bar"][0]
    own = log.task_end_info[1]["fallback_share"]
    assert list(bar.x) == pytest.approx([own[n] for n in names])
    assert "| 2. has_seven | retrain | 0 | yes |" in tables
    assert coefficients.refresh(None, None, "lcia", key) == (SKIP,) * 4


def test_ewc_run_draws_importance_per_layer_and_task(store):
    key, note, fig, tables = coefficients.refresh(None, None, "ewc", None)
    log = read_run(store / "ewc")
    masses = [info["importance_mass"] for info in log.task_end_info]
    heat = heatmaps(fig)[0]
    layers = list(masses[0])
    assert list(heat.y) == layers and len(heat.x) == 2
    np.testing.assert_allclose(np.asarray(heat.z, float),
                               np.log10([[m[name] for m in masses] for name in layers]), rtol=1e-5)
    assert coefficients.refresh(None, None, "ewc", key) == (SKIP,) * 4


def test_forgetting_view_on_saved_run_with_hand_written_drift(store):
    # the trainer may not emit drift yet: append DriftLogged events by hand to a copy of a run
    run = store / "ewc_drift"
    run.mkdir(exist_ok=True)
    lines = [line for line in (store / "ewc" / "events.jsonl").read_text().splitlines()
             if json.loads(line)["type"] != "DriftLogged"]
    drift = [DriftLogged(0, {"layers.0": 0.2, "layers.1": 0.1}), DriftLogged(1, {"layers.0": 0.05, "layers.1": 0.3})]
    (run / "events.jsonl").write_text("\n".join(lines + [json.dumps(event_to_dict(d)) for d in drift]) + "\n")
    key, note, curves, matrix, drift_fig, tables = forgetting.refresh(None, None, "ewc_drift", None)
    log = read_run(run)
    assert "2 of 2 tasks done" in note and "How to read this" in note
    assert [list(t.x) for t in curves.data][0] == log.curve_steps
    z = np.asarray(heatmaps(matrix)[0].z, float)
    np.testing.assert_allclose(z[1:, :len(log.tasks)], log.acc_matrix)
    np.testing.assert_allclose(z[:, -1], [log.base_general, *log.general_row])   # the general column
    np.testing.assert_allclose(np.asarray(heatmaps(drift_fig)[0].z, float), [[0.2, 0.05], [0.1, 0.3]], rtol=1e-6)
    assert "| layers.1 | 0.1 | 0.3 |" in tables
    assert forgetting.refresh(None, None, "ewc_drift", key) == (SKIP,) * 6


def test_missing_run_gives_a_message_not_a_traceback(store):
    key, note, *rest = forgetting.refresh(None, None, "no-such-run", None)
    assert "Cannot open saved run" in note
    assert forgetting.refresh(None, None, "no-such-run", key) == (SKIP,) * 6


# -- a live log: redraw when it grows, skip otherwise -------------------------------------------------
class _Run:
    def __init__(self, log):
        self.id = "live0001"
        self.trainer = type("T", (), {"log": log, "has_weights": True})()


class _Registry:
    def __init__(self, run):
        self.run = run

    def get(self, run_id):
        return self.run if run_id == self.run.id else None


def test_live_view_redraws_only_when_the_log_changed():
    log = RunLog()
    for event in (RunStarted(("p", "q"), "lcia", 2, 4, {"method_options": {"fallback": 0.01}}),
                  Evaluated(-1, 0, (0.0, 0.0)), TaskStarted(0, 0, {"decision": "expand"}),
                  StepLogged(0, 1, 1.0, {}, 10, 0.1)):
        log.add(event)
    registry = _Registry(_Run(log))
    key, note, fig, _ = coefficients.refresh(registry, "live0001", src.LIVE, None)
    assert "No α logged yet" in fig.layout.annotations[0].text
    assert coefficients.refresh(registry, "live0001", src.LIVE, key) == (SKIP,) * 4
    log.add(StepLogged(0, 2, 1.0, {}, 10, 0.1))
    log.add(TaskEnded(0, 2, (0.9, 0.1), {}))
    log.add(TaskStarted(1, 2, {"decision": "retrain", "dema": True}))
    log.add(StepLogged(1, 3, 1.0, {}, 10, 0.1))
    log.add(CoefficientsLogged(1, 3, {"a": 0.2}))
    key2, note, fig, _ = coefficients.refresh(registry, "live0001", src.LIVE, key)
    assert key2 != key and np.asarray(heatmaps(fig)[0].z, float)[0, 2] == pytest.approx(math.log10(0.2))
    out = forgetting.refresh(registry, "live0001", src.LIVE, None)
    assert "1 of 2 tasks done" in out[1]
    assert forgetting.refresh(registry, "live0001", src.LIVE, out[0]) == (SKIP,) * 6
    log.add(StepLogged(1, 4, 1.0, {}, 10, 0.1))      # a step changes nothing the forgetting view draws
    assert forgetting.refresh(registry, "live0001", src.LIVE, out[0]) == (SKIP,) * 6
    log.add(Evaluated(1, 4, (0.5, 0.6)))               # an evaluation adds a curve point: redraw
    again = forgetting.refresh(registry, "live0001", src.LIVE, out[0])
    assert again[0] != out[0] and list(again[2].data[0].x) == [0, 4]
