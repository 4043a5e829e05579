"""Export: peft adapters reload and give the live model's logits; metrics files; offline HTML; Runs page."""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import pytest
import torch
from support.lessons import small_config, small_lesson

from cit_core import store
from cit_core.compare import load_run
from cit_core.export import export_model, metrics_csv, write_metrics
from cit_core.methods.lora_tools import active_adapter
from cit_core.trainer import Trainer


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("CIT_RUNS_DIR", str(tmp_path / "store"))
    return tmp_path / "store"


def live(root, name, method, steps=3):
    trainer = Trainer(small_config(method, steps=steps), lesson=small_lesson(n_train=16, n_eval=8),
                      run_dir=root / name)
    trainer.run_to_end()
    store.track(trainer)           # as the app's registry factory does
    return trainer


def logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("method,adapters", [("seqft_lora", ["default"]), ("expansion", ["task0", "task1"])])
def test_exported_adapters_reload_with_peft(root, tmp_path, method, adapters):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    trainer = live(root, "lora", method)
    info = export_model(trainer, tmp_path / "export")
    assert sorted(info["adapters"]) == adapters and info["base"] == "base"
    ids = torch.randint(0, 256, (3, 14), generator=torch.Generator().manual_seed(0))
    for name, rel in info["adapters"].items():
        base = AutoModelForCausalLM.from_pretrained(tmp_path / "export" / info["base"])
        base_only = logits(base, ids)
        reloaded = PeftModel.from_pretrained(base, tmp_path / "export" / rel, adapter_name=name)
        with active_adapter(trainer.model, name):
            expected = logits(trainer.model, ids)
        assert torch.equal(logits(reloaded, ids), expected)
        assert not torch.allclose(base_only, expected)       # the adapter really changes the outputs


def test_full_finetuning_has_no_adapters(root, tmp_path):
    info = export_model(live(root, "full", "seqft", steps=1), tmp_path / "export")
    assert info["adapters"] == {} and info["base"] is None


def test_metrics_files_hold_the_summary(root, tmp_path):
    trainer = live(root, "m", "seqft", steps=2)
    rec = load_run(root / "m")
    csv_path, json_path = write_metrics([rec], tmp_path)
    row = next(csv.DictReader(io.StringIO(csv_path.read_text())))
    m = trainer.log.summary["metrics"]
    assert {k: float(row[k]) for k in ("AP", "BWT", "FWT", "forgetting")} == {k: m[k] for k in ("AP", "BWT", "FWT", "forgetting")}
    data = json.loads(json_path.read_text())
    assert data["runs"][0]["acc_matrix"] == trainer.log.summary["acc_matrix"]
    assert data["groups"][0]["AP"] == {"mean": m["AP"], "std": 0.0}
    assert metrics_csv([]).strip() == "run,method,lesson,seed,AP,BWT,FWT,forgetting,RG,wall_s,finished"


def test_runs_page_export_open_and_delete(root):
    from pages import runs as page
    trainer = live(root, "page-lora", "seqft_lora", steps=2)
    files, msg = page.export_run("page-lora")
    names = sorted(f.rsplit("/", 1)[1] for f in files)
    assert names == ["accuracy_matrix.html", "adapters.zip", "curves.html", "metrics.csv", "metrics.json"], msg
    html = next(f for f in files if f.endswith("curves.html"))
    text = open(html, encoding="utf-8").read()
    # plotly.js is inlined (megabytes), no <script src=...> to fetch from a CDN
    assert not re.search(r"<script[^>]*\bsrc=", text) and len(text) > 1_000_000 and "Plotly.newPlot" in text
    with zipfile.ZipFile(next(f for f in files if f.endswith(".zip"))) as z:
        assert {"adapters/adapter_model.safetensors", "base/model.safetensors", "LOAD.md"} <= set(z.namelist())
    assert (root / "page-lora" / "export" / "adapters" / "adapter_config.json").is_file()
    row = page.table()[0]
    assert row[:2] == ["page-lora", "seqft_lora"] and row[3:5] == [0, "2 / 2"]
    assert row[5] == round(trainer.log.summary["metrics"]["AP"], 3)
    updates = page.open_everywhere("page-lora", 3)
    assert [u["value"] for u in updates[:3]] == ["page-lora"] * 3 and "Opened" in updates[3]
    assert page.open_everywhere("../etc", 2)[2].startswith("**not a run name")
    assert page.delete("../page-lora").startswith("**Not deleted:**")
    assert page.delete("page-lora").startswith("Deleted") and not (root / "page-lora").exists()
    assert trainer.finished


def test_app_wires_open_to_every_view_picker():
    import app
    from pages.source import LIVE
    demo = app.build_app()
    pickers = [b for b in demo.blocks.values() if getattr(b, "choices", None) is not None
               and any(v == LIVE for _, v in b.choices)]
    assert pickers, "no analysis view offers a run picker"
    # the Runs tab's Open button writes to each of them
    opened = [d for d in demo.config["dependencies"] if len(d["outputs"]) == len(pickers) + 1
              and {p._id for p in pickers} <= set(d["outputs"])]
    assert len(opened) == 1
