"""A method's card (assets/cards/<key>.md) with its knob table generated from its Options dataclass.

The cards hold the prose (idea, update rule, paper claim, our reading); the knob names, defaults, ranges
and help come from the `knob` metadata of the method's Options (config.knob), so they cannot drift from
the code. The table goes right after the card's "**Knobs.**" paragraph (its prose stays), or at the end.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

from . import METHODS

CARDS = Path(__file__).resolve().parents[2] / "assets" / "cards"
KNOBS_PARAGRAPH = re.compile(r"^\*\*Knobs\.\*\*.*?(?=\n\s*\n|\Z)", re.S | re.M)


def card_markdown(key: str) -> str:
    """The card of method `key` with its generated knob table; a short note when there is no card."""
    path = CARDS / f"{key}.md"
    if not path.exists():
        return f"_No card for {key!r} yet._"
    text = path.read_text(encoding="utf-8")
    table = knob_table(METHODS[key].Options) if key in METHODS else ""
    if not table:
        return text
    paragraph = KNOBS_PARAGRAPH.search(text)
    if paragraph is None:
        return text.rstrip("\n") + "\n\n" + table + "\n"
    return text[:paragraph.end()] + "\n\n" + table + text[paragraph.end():]


def knob_table(options_cls) -> str:
    """A markdown table of an Options dataclass: knob, default, allowed values, what it does ('' if none)."""
    rows = [f"| `{f.name}` | {_value(_default(f))} | {allowed(f.metadata)} | {_cell(f.metadata.get('help', ''))} |"
            for f in fields(options_cls)]
    if not rows:
        return ""
    return "\n".join(["| knob | default | allowed | what it does |", "|---|---|---|---|", *rows])


def allowed(meta) -> str:
    """A knob's choices or its inclusive range, as the options check them (config.validate)."""
    if meta.get("choices") is not None:
        return ", ".join(_value(c) for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f"{_value(lo)} – {_value(hi)}"
    if lo is not None:
        return f"≥ {_value(lo)}"
    return "·" if hi is None else f"≤ {_value(hi)}"


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def _value(v) -> str:
    if isinstance(v, str):
        return f"`{v}`"
    if isinstance(v, float):
        return format(v, "g")
    return str(v)


def _cell(text: str) -> str:
    """Help text inside a table cell: a '|' would end the cell."""
    return text.replace("|", "\\|")


__all__ = ["CARDS", "allowed", "card_markdown", "knob_table"]
