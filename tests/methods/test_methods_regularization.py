"""EWC / MAS / TIR: the penalty's value, the TIR weights' direction, the folded form's exactness."""
import numpy as np
import pytest
import torch

from cit_core.events import CoefficientsLogged, StepLogged, TaskStarted
from cit_core.methods.regularization import tir_weights
from cit_core.trainer import Trainer

from support.lessons import small_config, small_lesson


def _short_run(name, **options):
    cfg = small_config(name, steps=3, batches=4, **options)
    cfg.train.threads = 1          # one thread: the tiny model is far faster on a shared machine
    trainer = Trainer(cfg, lesson=small_lesson(2))
    events = list(trainer.events())
    return trainer, events


def test_ewc_penalty_is_zero_on_the_first_task_and_positive_after():
    trainer, events = _short_run("ewc")
    steps = [e for e in events if isinstance(e, StepLogged)]
    first = [e.scalars["penalty"] for e in steps if e.task == 0]
    later = [e.scalars["penalty"] for e in steps if e.task == 1]
    assert first == [0.0, 0.0, 0.0]
    assert later[0] < 1e-6 * later[-1]       # the second task starts at the anchor: (nearly) no penalty
    assert all(p > 0 for p in later[1:])
    assert all(e.loss == pytest.approx(e.scalars["ce"] + e.scalars["penalty"], rel=1e-5) for e in steps)
    # importance mass per layer reaches the coefficients log on the second task's first step
    coefficients = [e for e in events if isinstance(e, CoefficientsLogged)]
    assert len(coefficients) == 1 and coefficients[0].step == 4
    assert all(v >= 0 for v in coefficients[0].values.values()) and sum(coefficients[0].values.values()) > 0
    ends = [e for e in events if type(e).__name__ == "TaskEnded"]
    assert ends[0].info["importance_mass"] == pytest.approx(coefficients[0].values)


def test_folded_penalty_equals_the_sum_over_tasks():
    """A, centre and constant reproduce sum_i w_i sum_k Omega_ik (theta_k - theta*_ik)^2 exactly."""
    trainer, _ = _short_run("tir", direction="heavier")
    method = trainer.method
    torch.manual_seed(0)
    # two fake anchors with random importance, random weights, then compare at a moved theta
    params = {n: p for n, p in method.model.named_parameters() if p.requires_grad}
    anchors = [({n: torch.rand_like(p) for n, p in params.items()},
                {n: p.detach() + 0.1 * torch.randn_like(p) for n, p in params.items()}) for _ in range(2)]
    method.anchors = anchors
    weights = [0.3, 1.7]
    method._fold(weights)
    direct = sum(w * sum(float((om[n].double() * (params[n].detach().double() - th[n].double()) ** 2).sum())
                         for n in params) for w, (om, th) in zip(weights, anchors))

    class Out:
        loss = torch.zeros(())
    penalty, scalars = method.loss(None, Out())
    assert scalars["penalty"] == pytest.approx(method.options.lam * direct, rel=1e-4)


def test_tir_weights_follow_the_direction_option():
    cur = np.array([1.0, 0.0, 0.0])
    old = [np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]),
           np.array([-1.0, 0.0, 0.0])]
    s = [1.0, 1 / np.sqrt(2), 0.0, -1.0]
    lighter, sims = tir_weights(cur, old, "lighter")
    assert sims == pytest.approx(s)
    assert lighter == pytest.approx([0.0, 1 - 1 / np.sqrt(2), 1.0, 2.0])   # similar -> lighter
    heavier, _ = tir_weights(cur, old, "heavier")
    assert heavier == pytest.approx([1.0, 1 / np.sqrt(2), 0.0, 0.0])       # similar -> heavier
    assert np.argmin(lighter) == 0 and np.argmax(heavier) == 0


def test_tir_logs_its_weights_and_mas_runs():
    trainer, events = _short_run("tir", base="mas")
    info = [e.info for e in events if isinstance(e, TaskStarted)][1]
    s = info["tir_similarity"]["last_two"]
    assert 0 < s < 1 and info["weights"]["last_two"] == pytest.approx(1 - s, abs=1e-5)
    penalties = [e.scalars["penalty"] for e in events if isinstance(e, StepLogged) and e.task == 1]
    assert penalties[-1] > 0
