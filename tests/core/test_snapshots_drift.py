"""Task-boundary snapshots: drift per layer/adapter, task-end checkpoints (safetensors) and their events."""
import torch

from cit_core.runs import read_run
from cit_core.snapshots import read_checkpoint
from cit_core.trainer import Trainer
from support.lessons import small_config, small_lesson

FROZEN = "model.layers.0.self_attn.q_proj.weight"


def _norm(t):
    return float(t.double().norm())


def test_full_finetuning_drift_and_checkpoints(tmp_path):
    trainer = Trainer(small_config("seqft", steps=3), lesson=small_lesson(n_eval=4), run_dir=tmp_path / "run")
    dict(trainer.model.named_parameters())[FROZEN].requires_grad_(False)   # a frozen layer
    trainer.run_to_end()
    log = read_run(tmp_path / "run")
    assert len(log.drift) == 2 and log.drift == trainer.log.drift
    for row in log.drift:
        assert row["layers.0.self_attn.q_proj"] == 0.0
        assert row["layers.1.mlp.down_proj"] > 0 and row["embed_tokens"] > 0
    assert log.checkpoints == [(0, "checkpoints/task0.safetensors"), (1, "checkpoints/task1.safetensors")]
    first, second = (read_checkpoint(tmp_path / "run" / ref) for _, ref in log.checkpoints)
    # only trainable tensors are written: the frozen one is rebuilt from the config
    assert FROZEN not in second.tensors and "model.layers.1.mlp.down_proj.weight" in second.tensors
    # round trip: the file holds exactly the in-memory snapshot, which is the model at the end of the run
    live = dict(trainer.model.named_parameters())
    for name, tensor in second.tensors.items():
        assert torch.equal(tensor, trainer.snapshots[1].tensors[name])
        assert torch.equal(tensor, live[name].detach())
    # task 2's drift recomputed by hand from the two checkpoints (task 2 starts where task 1 ended)
    name = "model.layers.1.mlp.down_proj.weight"
    by_hand = _norm(second.tensors[name] - first.tensors[name]) / _norm(first.tensors[name])
    assert abs(log.drift[1]["layers.1.mlp.down_proj"] - by_hand) < 1e-9


def test_lora_drift_is_effective_weight_change_and_frozen_adapter_is_zero(tmp_path):
    trainer = Trainer(small_config("expansion", steps=3), lesson=small_lesson(n_eval=4), run_dir=tmp_path / "r")
    trainer.run_to_end()
    second = trainer.log.drift[1]
    # task 2 trains adapter task1; adapter task0 is frozen: exactly no drift
    assert second["layers.0.self_attn.q_proj [task0]"] == 0.0
    assert second["layers.0.self_attn.q_proj [task1]"] > 0
    snap = read_checkpoint(tmp_path / "r" / "checkpoints" / "task0.safetensors")
    module = trainer.model.get_submodule("base_model.model.model.layers.0.self_attn.q_proj")
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    a, b = snap.tensors[f"{prefix}.lora_A.task0.weight"], snap.tensors[f"{prefix}.lora_B.task0.weight"]
    # task 1 started from B = 0, so its drift is ‖s·B·A‖ / ‖W‖ at its end
    by_hand = _norm(module.scaling["task0"] * (b @ a)) / _norm(module.get_base_layer().weight.detach())
    assert abs(trainer.log.drift[0]["layers.0.self_attn.q_proj [task0]"] - by_hand) < 1e-9
    assert by_hand > 0
