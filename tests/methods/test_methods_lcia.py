"""LCIA invariants: the adaptive EMA coefficient, its fallback, and the TF-IDF retrain-or-expand decision."""
import math

import pytest
import torch

from cit_core.config import RunConfig, TrainConfig
from cit_core.methods.lcia import DEMA, adaptive_alpha, choose_group
from cit_core.similarity import tfidf_similarity
from cit_core.trainer import Trainer

from support.lessons import small_lesson


def test_alpha_matches_the_formula_on_hand_made_tensors():
    theta = torch.tensor([1.0, -2.0])
    shadow = torch.tensor([0.0, 0.0])          # a = |1| + |-2| = 3
    grad = torch.tensor([0.5, -0.5])           # b = 1
    prev = torch.tensor([1.5, 0.5])            # c = |0.5 - 1.5| + |-0.5 - 0.5| = 2
    alpha, fell = adaptive_alpha(theta, shadow, grad, prev)
    assert float(alpha) == pytest.approx(2 * (1 + 1) / (3 * 2))    # 2/3
    assert not bool(fell)


@pytest.mark.parametrize("shadow, grad, prev", [
    ([0.9, -1.9], [0.5, -0.5], [1.5, 0.5]),    # a = 0.2 -> α = 4 / 0.4 = 10 > 1
    ([1.0, -2.0], [0.5, -0.5], [1.5, 0.5]),    # a = 0   -> α = inf
    ([0.0, 0.0], [0.5, -0.5], [0.5, -0.5]),    # c = 0   -> α = inf
])
def test_alpha_falls_back_outside_the_unit_interval(shadow, grad, prev):
    alpha, fell = adaptive_alpha(torch.tensor([1.0, -2.0]), torch.tensor(shadow), torch.tensor(grad),
                                 torch.tensor(prev))
    assert float(alpha) == pytest.approx(0.01) and bool(fell)


def test_alpha_falls_back_on_the_first_step_and_without_a_previous_gradient():
    theta = torch.tensor([1.0, -2.0])
    assert float(adaptive_alpha(theta, torch.zeros(2), torch.ones(2), None)[0]) == pytest.approx(0.01)
    assert float(adaptive_alpha(theta, torch.zeros(2), None, torch.ones(2))[0]) == pytest.approx(0.01)


def test_dema_task_start_updates_the_shadow_with_the_adaptive_weight():
    # ema_start="task_start" (this project's earlier choice): θ* starts as the weights before step 1
    p = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
    dema = DEMA({"w": p}, start="task_start")
    with torch.no_grad():
        p.copy_(torch.tensor([1.0, -2.0]))
    p.grad = torch.tensor([1.5, 0.5])
    first = dema.step()["w"]                                      # first step: fallback 0.01
    assert first == pytest.approx(0.01)
    shadow1 = torch.tensor([0.01, -0.02])
    assert torch.allclose(dema.shadow["w"], shadow1)
    with torch.no_grad():
        p.copy_(torch.tensor([3.0, -4.0]))
    p.grad = torch.tensor([0.5, -0.5])
    a = float((torch.tensor([3.0, -4.0]) - shadow1).abs().sum())
    expected = 2 * (1 + 1.0) / (a * 2.0)
    assert 0 < expected < 1
    assert dema.step()["w"] == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(dema.shadow["w"], (1 - expected) * shadow1 + expected * torch.tensor([3.0, -4.0]))
    assert dema.fallback_share() == {"w": 0.5}
    dema.replace_live()
    assert torch.equal(p.detach(), dema.shadow["w"])


def test_dema_first_step_starts_the_shadow_after_the_first_optimizer_step():
    # the released code (CoIN peft/tuners/lora.py, ema_update), written out: on its first call (after the
    # first optimizer step) θ* := deepcopy(θ₁); no previous gradient -> the except branch mixes θ₁ into
    # itself (no change); from step 2 on α = 2(1 + ‖g‖₁) / (‖θ − θ*‖₁ · ‖g − g_prev‖₁) when in (0, 1)
    steps = [([1.0, -2.0], [1.5, 0.5]), ([3.0, -4.0], [0.5, -0.5]), ([5.0, -7.0], [0.1, -0.3])]
    ema, prev, released = None, None, []
    for theta, grad in steps:
        theta, grad = torch.tensor(theta), torch.tensor(grad)
        if ema is None:
            ema = theta.clone()
        if prev is None:
            alpha = 0.01
        else:
            alpha = float(2 * (1 + grad.abs().sum()) / ((theta - ema).abs().sum() * (grad - prev).abs().sum()))
            alpha = alpha if 0 < alpha < 1 else 0.01
        ema = ema * (1 - alpha) + theta * alpha
        prev = grad.clone()
        released.append((alpha, ema.clone()))
    assert 0.01 < released[1][0] < 1 and 0.01 < released[2][0] < 1     # the adaptive branch is exercised

    p = torch.nn.Parameter(torch.tensor([0.0, 0.0]))                   # the weights before step 1
    dema = DEMA({"w": p})                                              # default: start="first_step"
    for (theta, grad), (alpha, shadow) in zip(steps, released):
        with torch.no_grad():
            p.copy_(torch.tensor(theta))
        p.grad = torch.tensor(grad)
        assert dema.step()["w"] == pytest.approx(alpha, rel=1e-5)
        assert torch.allclose(dema.shadow["w"], shadow, atol=1e-6)
    # the other start differs from step 2 on (the point: 0.070 vs 0.042 on its trajectory)
    q = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
    other = DEMA({"w": q}, start="task_start")
    alphas = []
    for theta, grad in steps:
        with torch.no_grad():
            q.copy_(torch.tensor(theta))
        q.grad = torch.tensor(grad)
        alphas.append(other.step()["w"])
    assert abs(alphas[1] - released[1][0]) > 1e-3


def _released_tfidf(a_texts, b_texts) -> float:
    """CoIN instruct/LoRASelect.py, written out: a fresh TfidfVectorizer(stop_words='english') fit on each
    [current, historical] pair, cosine of the two rows, mean over all pairs."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity
    values = []
    for a in a_texts:
        for b in b_texts:
            matrix = TfidfVectorizer(stop_words="english").fit_transform([a, b])
            values.append(cosine_similarity(matrix[0:1], matrix[1:2])[0][0])
    return sum(values) / len(values)


def test_pairwise_tfidf_is_the_released_per_pair_fit():
    # by hand: "apple banana" vs "apple cherry" fit alone: apple has IDF 1, banana and cherry 1 + ln(3/2)
    k = 1 + math.log(1.5)
    assert tfidf_similarity(["apple banana"], ["apple cherry"]) == pytest.approx(1 / (1 + k * k), rel=1e-12)
    assert tfidf_similarity(["apple banana"], ["apple banana apple"]) == pytest.approx(
        3 / math.sqrt(2 * 5), rel=1e-12)                             # both words shared: IDF 1, counts (1,1)·(2,1)
    from cit_core.lessons import BUILTIN
    for name in ("default", "classic"):
        tasks = BUILTIN[name](seed=0).tasks
        books = [list(dict.fromkeys(ex.instruction for ex in t.train)) for t in tasks]
        held_out = [list(dict.fromkeys(ex.instruction for ex in t.eval)) for t in tasks]
        for i in range(len(tasks)):
            for j in (i, (i + 1) % len(tasks)):
                assert tfidf_similarity(held_out[i], books[j]) == pytest.approx(
                    _released_tfidf(held_out[i], books[j]), abs=1e-9)
    # the audit's figures on the classic lesson (parity and sign against themselves)
    classic = BUILTIN["classic"](seed=0).tasks
    own = {t.name: list(dict.fromkeys(ex.instruction for ex in t.train)) for t in classic}
    assert tfidf_similarity(own["parity"], own["parity"]) == pytest.approx(0.642, abs=5e-4)
    assert tfidf_similarity(own["parity"], own["parity"], "joint") == pytest.approx(0.471, abs=5e-4)
    assert tfidf_similarity(own["sign"], own["sign"]) == pytest.approx(0.722, abs=5e-4)
    assert tfidf_similarity(["the of and"], ["apple"]) == 0.0             # only stop words on one side


def _tfidf_cosine_by_hand(a: str, b: str, corpus: list[str]) -> float:
    """scikit-learn's default TF-IDF: raw counts × (ln((1+n)/(1+df)) + 1), L2-normalised rows."""
    docs = [doc.split() for doc in corpus]
    n = len(docs)
    idf = {w: math.log((1 + n) / (1 + sum(w in d for d in docs))) + 1 for d in docs for w in d}

    def vec(text):
        words = text.split()
        v = {w: words.count(w) * idf[w] for w in set(words)}
        norm = math.sqrt(sum(x * x for x in v.values()))
        return {w: x / norm for w, x in v.items()}

    va, vb = vec(a), vec(b)
    return sum(x * vb.get(w, 0.0) for w, x in va.items())


def test_joint_tfidf_decision_matches_a_hand_computed_similarity():
    task = ["apple banana"]
    books = [["apple banana", "apple cherry"], ["grape melon"]]
    corpus = task + books[0]
    by_hand = (_tfidf_cosine_by_hand(task[0], books[0][0], corpus)
               + _tfidf_cosine_by_hand(task[0], books[0][1], corpus)) / 2
    # 1 and 1/(sqrt(1 + (ln(4/3)+1)^2) * sqrt(1 + (ln 2 + 1)^2)) = 0.312: 0.656 on average
    assert by_hand == pytest.approx(0.5 + 0.5 / (math.sqrt(1 + (math.log(4 / 3) + 1) ** 2)
                                                 * math.sqrt(1 + (math.log(2) + 1) ** 2)))
    assert tfidf_similarity(task, books[0], "joint") == pytest.approx(by_hand, rel=1e-9)
    chosen, sims = choose_group(task, books, tau=by_hand - 1e-6, mode="joint")
    assert chosen == 0 and sims[0] == pytest.approx(by_hand) and sims[1] == 0.0
    chosen, _ = choose_group(task, books, tau=by_hand + 1e-6, mode="joint")
    assert chosen is None


def _lcia(tau):
    cfg = RunConfig(method="lcia", train=TrainConfig(steps_per_task=2, batch_size=8, eval_every=0),
                    method_options={"tau": tau})
    return Trainer(cfg, lesson=small_lesson(n_tasks=2, n_train=32, n_eval=8))


@pytest.mark.parametrize("tau, decision", [(0.30, "expand"), (0.001, "retrain")])
def test_lcia_groups_tasks_by_instruction_similarity(tau, decision):
    trainer = _lcia(tau)
    m, tasks = trainer.method, trainer.lesson.tasks
    first = [ex.instruction for ex in tasks[0].train]
    second = list(dict.fromkeys(ex.instruction for ex in tasks[1].train))
    _, info0 = m.before_task(0, tasks[0], [])
    m.after_task(0, tasks[0])
    _, info1 = m.before_task(1, tasks[1], [])
    sim = tfidf_similarity(second, list(dict.fromkeys(first)))     # last_two vs has_seven: about 0.009
    assert info0["decision"] == "expand" and info0["similarities"] == {}
    assert info1["similarities"]["group0"] == pytest.approx(sim, abs=1e-4)
    assert info1["decision"] == decision and info1["dema"] == (decision == "retrain")
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all(f".{info1['adapter']}." in n for n in trainable)
    if decision == "expand":
        # per-prompt routing: the most similar group when it reaches τ, else the last trained one (group1);
        # the held-out phrasings were never trained on, so some fall back
        m.after_task(1, tasks[1])
        books = [list(dict.fromkeys(first)), second]
        for task in tasks:
            expected = []
            for ex in task.eval:
                sims = [tfidf_similarity([ex.instruction], book) for book in books]
                best = max(range(2), key=sims.__getitem__)
                expected.append(f"group{best if sims[best] >= tau else 1}")
            assert m.route(task.eval) == expected
        assert m.route(tasks[1].eval) == ["group1"] * len(tasks[1].eval)


def test_dema_runs_only_when_a_group_is_retrained():
    trainer = _lcia(0.0)                                           # τ = 0: task 2 retrains group 0
    trainer.run_to_end()
    assert trainer.log.error is None
    steps = [s for s, _ in trainer.log.coefficients]
    assert steps == [3, 4]                                         # α logged on task 2's steps only
    first = trainer.log.coefficients[0][1]
    assert "layers.0.q_proj.A" in first and all(v == pytest.approx(0.01) for v in first.values())
