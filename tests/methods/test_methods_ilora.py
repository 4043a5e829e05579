"""I-LoRA invariants: the slow adapter is the closed-form EMA of the fast one; the loss is the paper's."""
import pytest
import torch

from cit_core.config import RunConfig, TrainConfig
from cit_core.methods.ilora import token_ce
from cit_core.trainer import Trainer

from support.lessons import small_lesson

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


def _raw_layer_outputs(trainer, layers, batch, adapter):
    from cit_core.methods.lora_tools import active_adapter
    outs = []
    hooks = [layer.register_forward_hook(lambda mod, args, o: outs.append(o[0] if isinstance(o, tuple) else o))
             for layer in layers]
    try:
        with torch.no_grad(), active_adapter(trainer.model, adapter):
            trainer.model(input_ids=batch.input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return outs


@pytest.mark.parametrize("form", ["released", "layers"])
def test_consistency_forms_match_their_written_out_formulas(form):
    import torch.nn.functional as F

    from cit_core.methods.lora_tools import active_adapter
    trainer = _trainer(consistency=form)
    trainer.advance(4)                                             # into task 2, with a buffer
    m = trainer.method
    # buffer rows of one token length: no padding, so the formulas need no mask
    by_length = {}
    for ex, _ in m.buffer:
        by_length.setdefault(len(trainer.encoder.collate([ex], [1], [0]).input_ids[0]), []).append(ex)
    rows = max(by_length.values(), key=len)[:3]
    assert len(rows) >= 2
    batch = trainer.encoder.collate(rows, [1] * len(rows), [0] * len(rows))
    assert bool(batch.attention_mask.all())
    trainer.model.train()
    out = trainer.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
    _, scalars = m.loss(batch, out)
    with torch.no_grad():
        fast = trainer.model(input_ids=batch.input_ids, output_hidden_states=True).hidden_states
        with active_adapter(trainer.model, "slow"):
            slow = trainer.model(input_ids=batch.input_ids, output_hidden_states=True).hidden_states
    n_layers = trainer.model.config.num_hidden_layers
    assert len(fast) == n_layers + 1              # embedding output, every layer, the final normalised state
    if form == "released":
        # which47/LLMCL method/ILORA.py, written out: one mean over the concatenated element-wise MSEs
        reg = [torch.where(p > s, p, s) for p, s in zip(fast, slow)]
        expected = torch.mean(torch.cat([F.mse_loss(p, r, reduction="none") for p, r in zip(fast, reg)], dim=0))
    else:
        # this project's earlier form: Σ over the raw decoder-layer outputs (the last one before the norm)
        fast_raw, slow_raw = (_raw_layer_outputs(trainer, m.layers, batch, adapter) for adapter in ("fast", "slow"))
        expected = sum(F.mse_loss(f, torch.maximum(f, s)) for f, s in zip(fast_raw, slow_raw))
    assert scalars["consistency"] == pytest.approx(float(expected), rel=1e-4)
