"""Mode connectivity: exact ends, the ΔW blend, marks, probe_run on a saved run, and the page."""
import json

import gradio as gr
import pytest
import torch

from cit_core.connectivity import Meter, ProbeError, model_at, probe_run, probe_trainer
from cit_core.trainer import Trainer
from support.lessons import small_config, small_lesson

LAYER = "base_model.model.model.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    trainer = Trainer(small_config("seqft_lora", steps=3), lesson=small_lesson(n_eval=8), run_dir=root / "lora")
    trainer.run_to_end()
    return trainer, root


def _measure_with(trainer, tensors: dict):
    """Loss of both tasks with snapshot tensors loaded straight into the parameters (not via the probe)."""
    params = dict(trainer.model.named_parameters())
    saved = {n: params[n].detach().clone() for n in tensors}
    with torch.no_grad():
        for n, t in tensors.items():
            params[n].copy_(t)
    try:
        return Meter(trainer.model, trainer.encoder, trainer.lesson.tasks).measure()
    finally:
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t)


def test_ends_of_the_line_reproduce_the_endpoint_models_exactly(lora_run):
    trainer, _ = lora_run
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = probe_trainer(trainer, 0, 1, "factors", points=3)
    loss0, _ = _measure_with(trainer, trainer.snapshots[0].tensors)
    loss1, acc1 = _measure_with(trainer, trainer.snapshots[1].tensors)
    assert [row[0] for row in result["loss"]] == loss0
    assert [row[-1] for row in result["loss"]] == loss1
    assert [row[-1] for row in result["accuracy"]] == acc1 == trainer.log.acc_matrix[1]
    assert loss0 != loss1 and result["loss"][0][1] not in (loss0[0], loss1[0])
    # the model's own weights come back exactly
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p, before[n])
    delta = probe_trainer(trainer, 0, 1, "delta", points=2)
    assert delta["loss"][0][0] == pytest.approx(loss0[0], abs=1e-5)
    assert delta["loss"][1][-1] == pytest.approx(loss1[1], abs=1e-5)


def test_delta_variant_applies_the_hand_computed_blend(lora_run):
    trainer, _ = lora_run
    s0, s1 = trainer.snapshots[0], trainer.snapshots[1]
    module = trainer.model.get_submodule(LAYER)
    scale, w = module.scaling["default"], module.get_base_layer().weight.detach().clone()
    a0, b0 = s0.tensors[f"{LAYER}.lora_A.default.weight"], s0.tensors[f"{LAYER}.lora_B.default.weight"]
    a1, b1 = s1.tensors[f"{LAYER}.lora_A.default.weight"], s1.tensors[f"{LAYER}.lora_B.default.weight"]
    expected = w + 0.7 * scale * (b0 @ a0) + 0.3 * scale * (b1 @ a1)
    x = torch.randn(3, w.shape[1])
    with model_at(trainer.model, s0, s1, 0.3, "delta"):
        assert torch.allclose(module.get_base_layer().weight, expected, atol=1e-6)
        assert torch.allclose(module(x), x @ expected.T, atol=1e-5)     # adapters are off: W + ΔW only
    assert torch.equal(module.get_base_layer().weight, w)
    with model_at(trainer.model, s0, s1, 0.3, "factors"):
        assert torch.allclose(module.lora_A["default"].weight, 0.7 * a0 + 0.3 * a1)


def test_ilora_slow_mark_projection(tmp_path):
    trainer = Trainer(small_config("ilora", steps=3), lesson=small_lesson(n_eval=4), run_dir=tmp_path / "r")
    trainer.run_to_end()
    result = probe_trainer(trainer, 0, 1, "factors", points=2)
    (mark,) = result["marks"]
    s0, s1 = trainer.snapshots[0], trainer.snapshots[1]
    x0 = {n.replace(".fast.", "."): t for n, t in s0.tensors.items() if ".fast." in n}
    x1 = {n.replace(".fast.", "."): t for n, t in s1.tensors.items() if ".fast." in n}
    slow = s1.extras["slow"]
    num = sum(float(((slow[k] - x0[k]).double() * (x1[k] - x0[k]).double()).sum()) for k in x0)
    den = sum(float(((x1[k] - x0[k]).double() ** 2).sum()) for k in x0)
    assert mark["name"] == "slow" and mark["a"] == pytest.approx(num / den, rel=1e-9)
    # the slow learner is what I-LoRA answers with: its accuracy is the accuracy matrix's row
    assert mark["accuracy"] == trainer.log.acc_matrix[1]


def test_probe_run_on_saved_dir_without_live_model(lora_run):
    trainer, root = lora_run
    out = probe_run(root / "lora", points=3, log=lambda _: None, lesson=small_lesson(n_eval=8))
    data = json.loads(out.read_text())
    assert out == root / "lora" / "connectivity.json"
    assert data["variants"] == ["factors", "delta"] and data["points"] == 3
    pair = next(p for p in data["pairs"] if p["variant"] == "factors")
    assert {"from", "to", "variant", "a", "tasks", "loss", "accuracy", "marks"} <= set(pair)
    assert (pair["from"], pair["to"], pair["a"]) == (0, 1, [0.0, 0.5, 1.0])
    live = probe_trainer(trainer, 0, 1, "factors", points=3)
    for saved_row, live_row in zip(pair["loss"], live["loss"]):     # rebuilt model == live model
        assert saved_row == pytest.approx(live_row, abs=1e-6)
    assert pair["accuracy"] == live["accuracy"]


def test_page_computes_a_saved_run(lora_run, monkeypatch):
    from pages import connectivity as page
    from pages.figures.connectivity import curve_figure
    _, root = lora_run
    monkeypatch.setenv("CIT_RUNS_DIR", str(root))
    with gr.Blocks():
        view = page.build_connectivity_tab(None, gr.State(None))
    assert isinstance(view.timer, gr.Timer)
    (root / "lora" / "connectivity.json").unlink(missing_ok=True)   # computed from the checkpoints
    result = page.compute_pair(None, None, "lora", "1. last_two", "2. has_seven", "delta", 2)
    assert result["variant"] == "delta" and len(result["loss"]) == 2
    fig = curve_figure(result, "accuracy")
    assert len(fig.data) == 2 and list(fig.data[0].x) == [0.0, 1.0]
    text = page.at_alpha(None, None, "lora", result, 0.5, samples=True)
    assert text.count("\n|") >= 2 + 2 * page.SAMPLES_PER_TASK
    with pytest.raises(ProbeError, match="different tasks"):
        page.compute_pair(None, None, "lora", "1. last_two", "1. last_two", "delta", 2)
    with pytest.raises(ProbeError, match="task 3 has no checkpoint"):
        page.compute_pair(None, None, "lora", "1. last_two", "3. first_two", "delta", 2)


def test_method_variants_come_from_the_method_name():
    from cit_core.connectivity import method_variants
    assert method_variants("seqft_lora") == ("factors", "delta")
    assert method_variants("seqft") == ("full",) and method_variants("no-such-method") == ("full",)


def test_page_refresh_offers_a_saved_runs_task_ends_once(lora_run, monkeypatch):
    from pages import connectivity as page
    _, root = lora_run
    monkeypatch.setenv("CIT_RUNS_DIR", str(root))
    key, note, start, end, variant = page.refresh(None, None, "lora", None, None, None)
    assert "task-end checkpoint(s)" in note and start["value"] and end["value"] and start["value"] != end["value"]
    assert variant["choices"] == ["factors", "delta"]                  # a LoRA method's run
    assert page.refresh(None, None, "lora", key, start["value"], end["value"]) == (gr.skip(),) * 5


def test_page_refuses_a_live_run_while_a_loop_drives_it(lora_run):
    """Whether a live run trains is the registry's word (Run.is_training), asked at once; the probe holds
    the run's lock and lets it go."""
    from pages import connectivity as page
    from pages import source as src
    from serve.registry import Run
    trainer, _ = lora_run
    run = Run("live0001", trainer.cfg, trainer)
    registry = type("OneRun", (), {"get": lambda self, run_id: run if run_id == run.id else None})()
    run.streaming = run.play_token                    # a Play loop drives the run
    with pytest.raises(ProbeError, match="press Pause"):
        page.compute_pair(registry, run.id, src.LIVE, "1. last_two", "2. has_seven", "delta", 2)
    assert not run.lock.locked()
    run.play_token += 1                               # Pause: the loop's claim has moved on
    result = page.compute_pair(registry, run.id, src.LIVE, "1. last_two", "2. has_seven", "delta", 2)
    assert result["variant"] == "delta" and len(result["a"]) == 2 and not run.lock.locked()
