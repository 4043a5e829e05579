"""Every registered method has a card, the Train tab shows it, and its knob table is its Options."""
from dataclasses import fields

from cit_core.methods import METHODS
from cit_core.methods.cards import CARDS, allowed, card_markdown, knob_table
from pages.train import method_card


def test_every_method_has_a_card_with_the_required_parts():
    for key in METHODS:
        text = (CARDS / f"{key}.md").read_text(encoding="utf-8")
        for part in ("idea", "update rule", "knobs", "paper", "our reading"):
            assert part in text.lower(), (key, part)
        assert method_card(key) == card_markdown(key)          # the Train tab shows the generated table


def knob_rows(card: str) -> dict[str, list[str]]:
    """The generated table's rows, by knob name: [default, allowed, help]."""
    rows = {}
    for line in card.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_knob_table_is_generated_from_the_options():
    for key, cls in METHODS.items():
        rows = knob_rows(card_markdown(key))
        options = fields(cls.Options)
        assert list(rows) == [f.name for f in options], key
        for f in options:
            default, allowed_text, help_text = rows[f.name]
            assert default.strip("`") == (f.default if isinstance(f.default, str) else format(f.default, "g")
                                          if isinstance(f.default, float) else str(f.default)), (key, f.name)
            assert allowed_text == allowed(f.metadata), (key, f.name)
            assert help_text == f.metadata["help"].replace("|", "\\|"), (key, f.name)


def test_the_table_follows_the_cards_knobs_paragraph_and_keeps_the_prose():
    card = card_markdown("lcia")
    text = (CARDS / "lcia.md").read_text(encoding="utf-8")
    knobs = card.index("**Knobs.**")
    assert knobs < card.index("| `tau` | 0.3 | 0 – 1 |") < card.index("**What the paper claims.**")
    assert card.replace("\n\n" + knob_table(METHODS["lcia"].Options), "") == text     # the prose is kept
    assert "| `new_group_init` | `latest` | `latest`, `fresh` |" in card


def test_a_method_without_options_shows_its_card_as_written():
    assert not fields(METHODS["seqft"].Options)
    assert card_markdown("seqft") == (CARDS / "seqft.md").read_text(encoding="utf-8")
