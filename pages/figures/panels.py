"""Draw a method's panel records (cit_core/panels.py) without knowing the method.

`render(panels)` -> (figure, markdown tables, how-to-read line): the first heatmap or message is the
figure; every panel adds its text (a heatmap its table: the accessible alternative of the figure).
"""
from __future__ import annotations

from cit_core.panels import Heatmap, Markdown, Message, Table

from . import task_labels
from .analysis import grid_markdown, layer_task_heatmap, message_figure, step_heatmap, step_summary_markdown


def render(panels: list) -> tuple[object, str, str]:
    """(figure, tables, how) for a list of panel records; an empty list draws an empty message."""
    drawn = next((p for p in panels if isinstance(p, (Heatmap, Message))), None)
    figure = message_figure("") if drawn is None else figure_of(drawn)
    tables = "\n\n".join(text for text in map(text_of, panels) if text)
    how = next((p.how for p in panels if isinstance(p, (Heatmap, Message)) and p.how), "")
    return figure, tables, how


def figure_of(panel: Heatmap | Message):
    if isinstance(panel, Message):
        return message_figure(panel.text)
    side = None if panel.side is None else list(panel.side)
    if panel.axis == "step":
        return step_heatmap(list(panel.rows), panel.values, title=panel.title, value_name=panel.value_name,
                            fallback=panel.marks, side=side, side_title=panel.side_title, side_log=panel.side_log,
                            tasks=list(panel.tasks), boundaries=list(panel.boundaries))
    return layer_task_heatmap(list(panel.rows), list(panel.tasks), panel.values, title=panel.title,
                              value_name=panel.value_name, log=panel.log, side=side, side_title=panel.side_title)


def text_of(panel) -> str:
    """The panel as markdown ('' for a message: its text is in the figure and the note)."""
    if isinstance(panel, Heatmap):
        return heatmap_table(panel)
    if isinstance(panel, Table):
        return table_markdown(panel)
    if isinstance(panel, Markdown):
        return panel.text
    return ""


def heatmap_table(panel: Heatmap) -> str:
    """A step axis is too wide for a table: per-row statistics; a task axis: the whole grid."""
    if panel.axis == "step":
        side = list(panel.side) if panel.side_in_table and panel.side is not None else None
        return step_summary_markdown(list(panel.rows), panel.values, panel.table_label, side)
    columns = task_labels(list(panel.tasks))[: panel.values.shape[1]]
    return grid_markdown(list(panel.rows), columns, panel.values, panel.table_label)


def table_markdown(table: Table) -> str:
    numeric = table.numeric or (False,) * len(table.columns)
    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "".join("---:|" if right else "---|" for right in numeric)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


__all__ = ["render", "figure_of", "text_of", "table_markdown"]
