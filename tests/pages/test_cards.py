"""Every registered method has a card, and the Train tab shows it."""
from cit_core.methods import METHODS
from pages.train import CARDS, method_card


def test_every_method_has_a_card_with_the_required_parts():
    for key in METHODS:
        text = (CARDS / f"{key}.md").read_text(encoding="utf-8")
        for part in ("idea", "update rule", "knobs", "paper", "our reading"):
            assert part in text.lower(), (key, part)
        assert method_card(key) == text
