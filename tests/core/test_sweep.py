"""Sweep: run directories per method x seed, and a table whose numbers equal the runs' summaries."""
import csv
import json

import pytest

from cit_core.config import RunConfig, TrainConfig
from cit_core.sweep import aggregate, sweep


def test_aggregate_mean_and_std_by_hand():
    rows = [{"method": "a", "seed": 0, "AP": 0.5, "BWT": -0.2, "forgetting": 0.2, "FWT": 0.0, "RG": 60.0,
             "wall_s": 10.0},
            {"method": "a", "seed": 1, "AP": 0.7, "BWT": -0.4, "forgetting": 0.4, "FWT": 0.1, "RG": 80.0,
             "wall_s": 12.0},
            {"method": "b", "seed": 0, "AP": 0.9, "BWT": 0.0, "forgetting": 0.0, "FWT": 0.2, "RG": None,
             "wall_s": 11.0}]
    a, b = aggregate(rows)
    assert a["method"] == "a" and a["seeds"] == 2
    assert a["AP"] == pytest.approx((0.6, 0.1))          # mean 0.6, population std 0.1
    assert a["forgetting"] == pytest.approx((0.3, 0.1))
    assert a["RG"] == pytest.approx((70.0, 10.0))
    assert b["AP"] == pytest.approx((0.9, 0.0))
    assert b["RG"] is None                                # undefined in every run: n/a, not 0
    assert "defined" not in a and "defined" not in b     # all or none defined: no count to show
    part = aggregate(rows[:1] + [{**rows[1], "RG": None}])[0]
    assert part["RG"] == pytest.approx((60.0, 0.0)) and part["defined"] == {"RG": 1}


def test_sweep_writes_runs_and_tables(tmp_path):
    base = RunConfig(train=TrainConfig(steps_per_task=2, batch_size=4, eval_every=0))
    table = sweep(base, ["seqft", "replay"], [0, 1], tmp_path, log=lambda _: None)
    with open(tmp_path / "runs.csv", encoding="utf-8") as fh:
        runs = list(csv.DictReader(fh))
    assert [(r["method"], r["seed"]) for r in runs] == [("seqft", "0"), ("seqft", "1"), ("replay", "0"),
                                                         ("replay", "1")]
    for r in runs:
        summary = json.loads((tmp_path / f"{r['method']}-s{r['seed']}" / "summary.json").read_text())
        assert float(r["AP"]) == pytest.approx(summary["metrics"]["AP"])
        assert float(r["general"]) == pytest.approx(summary["general"]["final"])   # the general suite's column
        assert summary["seed"] == int(r["seed"])
    seqft_ap = [float(r["AP"]) for r in runs if r["method"] == "seqft"]
    assert table[0]["AP"][0] == pytest.approx(sum(seqft_ap) / 2)
    table_md = (tmp_path / "table.md").read_text()
    assert "| seqft | 2 |" in table_md and "| RG |" in table_md


def test_sweep_reuses_finished_runs_and_redoes_changed_ones(tmp_path, monkeypatch):
    import cit_core.sweep as sweep_mod
    base = RunConfig(train=TrainConfig(steps_per_task=2, batch_size=4, eval_every=0))
    sweep(base, ["seqft"], [0, 1], tmp_path, log=lambda _: None)
    ran = []
    real = sweep_mod.run_one
    monkeypatch.setattr(sweep_mod, "run_one", lambda cfg, out: ran.append((cfg.train.seed, cfg.train.lr)) or real(cfg, out))
    (tmp_path / "seqft-s1" / "summary.json").unlink()          # seed 1 "interrupted"
    sweep(base, ["seqft"], [0, 1], tmp_path, log=lambda _: None)
    assert ran == [(1, base.train.lr)]                           # only the unfinished run again
    changed = RunConfig(train=TrainConfig(steps_per_task=2, batch_size=4, eval_every=0, lr=5e-4))
    sweep(changed, ["seqft"], [0], tmp_path, log=lambda _: None)
    assert ran[-1] == (0, 5e-4)                                  # a different config is not reused
