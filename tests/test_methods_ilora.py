"""I-LoRA invariants: the slow adapter is the closed-form EMA of the fast one; the loss is the paper's."""
import pytest
import torch

from cit_core.config import RunConfig, TrainConfig
from cit_core.methods.ilora import token_ce
from cit_core.trainer import Trainer

from conftest import small_lesson

LAM = 0.9


def _trainer(steps_per_task=3, **options):
    cfg = RunConfig(method="ilora", train=TrainConfig(steps_per_task=steps_per_task, batch_size=8, eval_every=0),
                    method_options={"ema_lambda": LAM, "buffer_size": 8, **options})
    return Trainer(cfg, lesson=small_lesson(n_tasks=2, n_train=16, n_eval=2))


def _ema_mismatch(trainer, steps: int, pairs=None) -> tuple[float, float]:
    """Max |θ_s − closed form| after `steps` steps, and how far θ_s moved from its start.

    Closed form from the recorded fast weights θ_f^(k) (k = 1..n) and the start θ_s^(0):
        θ_s^(n) = λ^n θ_s^(0) + Σ_k (1 − λ) λ^(n−k) θ_f^(k)
    `pairs` (fast, slow) defaults to the method's own pairing.
    """
    pairs = pairs or trainer.method.pairs
    slow0 = {n: s.detach().double().clone() for n, _, s in pairs}
    fast_seen = []
    for _ in range(steps):
        trainer.advance(1)
        fast_seen.append({n: f.detach().double().clone() for n, f, _ in pairs})
    worst, moved = 0.0, 0.0
    for n, _, slow in pairs:
        expected = LAM ** steps * slow0[n]
        for k, fast in enumerate(fast_seen, start=1):
            expected = expected + (1 - LAM) * LAM ** (steps - k) * fast[n]
        worst = max(worst, float((slow.detach().double() - expected).abs().max()))
        moved = max(moved, float((slow.detach().double() - slow0[n]).abs().max()))
    return worst, moved


def test_slow_adapter_is_the_closed_form_ema_of_the_fast_one():
    trainer = _trainer()
    m = trainer.method
    assert all(f.requires_grad and not s.requires_grad for _, f, s in m.pairs)
    assert all(torch.equal(f, s) for _, f, s in m.pairs)          # slow starts as a copy of fast
    worst, moved = _ema_mismatch(trainer, 5)                       # crosses into task 2 (buffer rows)
    assert moved > 1e-4                                            # the slow learner really moves
    assert worst < 1e-6
    assert trainer.log.scalars["consistency"][-1][1] >= 0


def test_the_released_code_pairing_bug_fails_the_closed_form_check():
    # LLMCL looks each slow tensor up by its own name among the fast tensors' names; the names carry the
    # adapter name ('...lora_A.ema.weight' vs '...lora_A.default.weight'), so nothing ever matches and
    # the slow learner never moves. Reproduce that lookup and check the closed-form test catches it.
    trainer = _trainer()
    m = trainer.method
    true_pairs = list(m.pairs)
    fast = {n: p for n, p in trainer.model.named_parameters() if ".fast." in n}
    slow = {n: p for n, p in trainer.model.named_parameters() if ".slow." in n}
    m.pairs = [(n, fast[n], p) for n, p in slow.items() if n in fast]      # the released code's matching
    assert m.pairs == []
    worst, moved = _ema_mismatch(trainer, 3, pairs=true_pairs)
    assert moved == 0.0
    assert worst > 1e-4


def test_loss_is_half_current_plus_half_buffer_plus_consistency():
    trainer = _trainer(gamma=2.0)
    trainer.advance(3)                                             # finish task 1: the buffer fills
    m, lesson = trainer.method, trainer.lesson
    trainer.advance(1)                                             # task 2 has started with a buffer
    examples = lesson.tasks[1].train[:3] + [ex for ex, _ in m.buffer[:3]]
    batch = trainer.encoder.collate(examples, [0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])
    out = trainer.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
    ce_sum, n_tok = token_ce(out.logits, batch.labels)
    assert float((ce_sum.sum() / n_tok.sum()).detach()) == pytest.approx(float(out.loss.detach()), rel=1e-5)
    extra, scalars = m.loss(batch, out)
    ce_cur = float((ce_sum[:3].sum() / n_tok[:3].sum()).detach())
    ce_buf = float((ce_sum[3:].sum() / n_tok[3:].sum()).detach())
    expected = 0.5 * (ce_cur + ce_buf) + 2.0 * scalars["consistency"]
    assert float((out.loss + extra).detach()) == pytest.approx(expected, rel=1e-5)
    assert scalars["ce_current"] == pytest.approx(ce_cur, rel=1e-5)
    assert m.route(examples) == ["slow"] * 6
