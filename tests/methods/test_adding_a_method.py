"""docs/adding-a-method.md, followed step by step with a toy method defined here: one class (the file),
one METHODS line, one CONTRACT row, one card. The toy is SeqFT with its loss scaled by a knob; it is
registered with monkeypatch only for the test, runs the contract check every method runs, and shows up
in the Train tab's method picker of a freshly built app."""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pytest

from cit_core.config import ConfigError, RunConfig, knob, validate
from cit_core.methods import METHODS, Method, method_options, resolve
from cit_core.panels import Heatmap, Markdown

from support.contract import CONTRACT, check_card, check_contract
from support.paths import ROOT

KEY = "toy_scaled"


# -- step 1: the method's file (here a class in the test; in the project cit_core/methods/<key>.py) ------
@dataclass
class ToyOptions:
    scale: float = knob(2.0, "factor on the cross-entropy", 0.1, 10.0)

    def __post_init__(self):
        validate(self)                                           # knob ranges are checked here


class ToyScaled(Method):
    name = KEY
    title = "Toy: sequential fine-tuning with a scaled loss"
    Options = ToyOptions

    def loss(self, batch, out):
        # the hook returns an extra term on top of the cross-entropy: (scale - 1) * CE makes scale * CE
        return (self.options.scale - 1.0) * out.loss, {"scale": self.options.scale}

    @classmethod
    def panels(cls, log):
        # optional: what the Coefficients view shows for a run of this method (cit_core/panels.py records)
        scale = log.config.get("method_options", {}).get("scale")
        return [Heatmap("Toy: the loss scale at each step", ("scale",), np.full((1, log.step), scale),
                        "scale", tasks=tuple(log.tasks), boundaries=tuple(log.boundaries), log=False,
                        how="How to read this: one cell per step, all equal to the knob `scale`."),
                Markdown(f"The loss was scaled by {scale} at every step.")]


CARD = """# Toy: scaled loss

**Idea.** Sequential fine-tuning with the loss multiplied by a constant.

**Update rule.** $\\theta \\leftarrow \\theta - \\eta \\nabla (s \\cdot \\mathrm{CE})$.

**Knobs.** `scale` s (default 2).

**What the paper claims.** No paper: a test's example.

**Our reading.** With AdamW a constant factor on the loss barely changes the steps.
"""


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setitem(METHODS, KEY, ToyScaled)                 # step 2: one line in METHODS
    monkeypatch.setitem(CONTRACT, KEY, {"scale": 3.0})           # step 3: one CONTRACT row
    cards = tmp_path / "cards"                                   # step 4: assets/cards/<key>.md
    cards.mkdir()
    for card in (ROOT / "assets" / "cards").glob("*.md"):
        (cards / card.name).write_text(card.read_text(encoding="utf-8"), encoding="utf-8")
    (cards / f"{KEY}.md").write_text(CARD, encoding="utf-8")
    monkeypatch.setattr(importlib.import_module("cit_core.methods.cards"), "CARDS", cards)   # the card lookup
    return tmp_path


def test_the_walkthrough_names_the_four_places_this_test_fills():
    text = (ROOT / "docs" / "adding-a-method.md").read_text(encoding="utf-8")
    for place in ("cit_core/methods/<key>.py", "cit_core/methods/__init__.py", "tests/support/contract.py",
                  "assets/cards/<key>.md", "METHODS", "CONTRACT", "tests/methods/test_adding_a_method.py"):
        assert place in text, place


def test_an_unregistered_method_is_refused():
    """Without step 2 the engine does not know the method (so the registration below is what makes it run)."""
    with pytest.raises(ConfigError, match="unknown method 'toy_scaled'"):
        resolve(RunConfig(method=KEY))


def test_a_registered_toy_method_passes_the_contract_and_runs_its_own_hook(toy):
    assert set(CONTRACT) == set(METHODS)                         # what test_every_method_has_a_contract_row asks
    assert resolve(RunConfig(method=KEY)).method_options == {"scale": 2.0}
    with pytest.raises(ConfigError):                             # the knob's range is enforced
        method_options(KEY, {"scale": 100.0})
    trainer = check_contract(KEY, CONTRACT[KEY], toy / "runs")
    assert trainer.cfg.method_options == {"scale": 3.0}
    # ...and the Coefficients view draws its panels without knowing its name (pages render records)
    from cit_core.displays import coefficient_panels, methods_with_coefficients
    from pages.figures.panels import render
    assert ToyScaled.short_title() in methods_with_coefficients()
    figure, tables, how = render(coefficient_panels(trainer.log))
    assert figure.data and figure.data[0].z.shape == (1, trainer.log.step)
    assert "scaled by 3.0" in tables and "all equal to the knob" in how
    # the toy's hook ran on every step: the back-propagated loss is 3 x the cross-entropy, as the row asks
    events = _step_events(toy / "runs" / KEY)
    assert len(events) == 8
    for e in events:
        assert e["scalars"]["scale"] == 3.0
        assert e["loss"] == pytest.approx(3.0 * e["scalars"]["ce"], rel=1e-5)


def test_the_card_is_complete_and_the_train_tab_shows_it(toy):
    from pages.train import method_card
    shown = method_card(KEY)
    assert "# Toy: scaled loss" in shown and "**Our reading.**" in shown     # the card's own prose
    check_card(KEY, shown)
    with pytest.raises(AssertionError):                          # the card check can fail
        check_card(KEY, "# Toy\n\nNo sections.")


def test_the_method_picker_of_a_freshly_built_app_offers_the_toy(toy):
    from app import build_app
    from serve.registry import RunRegistry
    demo = build_app(RunRegistry(max_runs=1, idle_ttl_s=60))
    pickers = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.label == "Method"]
    assert len(pickers) == 1
    choices = [tuple(c) for c in pickers[0].choices]
    assert (ToyScaled.title, KEY) in choices
    assert [key for _, key in choices] == list(METHODS)          # every registered method, in registry order


def _step_events(run_dir):
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") == "StepLogged"]
