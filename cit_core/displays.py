"""What a run's views show, asked of its method: pages call these and never name a method.

The records come from cit_core/panels.py (Coefficients view: `panels`; Embeddings view: `matrices`, in
panels.matrix's layout); each method builds its own in those classmethods. A method's card with its knob
table generated from its Options: card_markdown (cit_core/methods/cards.py).
"""
from __future__ import annotations

from .methods import METHODS, Method
from .methods.cards import card_markdown
from .panels import Message, Panel


def method_title(name: str) -> str:
    """The method's short title ("LCIA"), or the name itself for a method this version does not know."""
    cls = METHODS.get(name)
    return cls.short_title() if cls else (name or "This run")


def methods_with_coefficients() -> list[str]:
    """Short titles of the methods that draw balance coefficients, in registry order."""
    return [cls.short_title() for cls in METHODS.values() if cls.panels.__func__ is not Method.panels.__func__]


def coefficient_panels(log) -> list[Panel]:
    """The Coefficients view of a RunLog: the method's own panels, or a message saying why there are none."""
    cls = METHODS.get(log.method)
    panels = cls.panels(log) if cls else []
    if panels:
        return panels
    if not log.tasks:
        return [Message("The run has not started yet.")]
    *rest, last = methods_with_coefficients()
    text = f"{method_title(log.method)} has no balance coefficients — pick {', '.join(rest)} or {last}."
    return [Message(text, how=text)]


def logged_matrices(log) -> dict[str, dict]:
    """The task x task matrices the run's method logged, by name; empty for methods that log none."""
    cls = METHODS.get(log.method)
    return cls.matrices(log) if cls else {}


__all__ = ["card_markdown", "coefficient_panels", "logged_matrices", "method_title", "methods_with_coefficients"]
