"""Plain panel records: what a method shows in the Coefficients view, as data.

A method's `panels(log)` returns a list of these; pages draw them generically and never name a method
(docs/architecture.md). The records hold numbers and words only: no plotly,
no gradio. The grid helpers below turn RunLog pieces into the rows x columns arrays the records carry.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Heatmap:
    """Rows x columns of numbers on a colour scale, with an optional bar per row beside it.

    `axis` "step": column s-1 is global step s (the run's step axis; a dashed line where each task
    starts, from `boundaries`), coloured on log10. `axis` "task": column t is the t-th task of `tasks`,
    coloured on log10 when `log`. Every heatmap comes with its text table (the accessible alternative):
    per-row statistics for a step axis, the full grid for a task axis."""

    title: str
    rows: tuple[str, ...]
    values: np.ndarray                  # len(rows) x columns; NaN = nothing logged
    value_name: str                     # colour bar and hover
    axis: str = "step"                  # "step" or "task"
    tasks: tuple[str, ...] = ()         # the run's tasks (task names over the step axis, or the columns)
    boundaries: tuple[int, ...] = ()    # global step at which each task started (step axis)
    log: bool = True
    marks: np.ndarray | None = None     # same shape; 1 = mark the cell with ×, 0 = not, NaN = no value
    side: tuple[float, ...] | None = None   # one number per row, drawn as a bar beside it
    side_title: str = ""
    side_log: bool = False
    table_label: str = ""               # the value's name in the table: step-summary header / grid corner
    side_in_table: bool = False         # the side numbers get a column of the step summary
    how: str = ""                       # "How to read this: ..."


@dataclass(frozen=True)
class Table:
    """A small table of pre-formatted cells; `numeric` right-aligns a column."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Markdown:
    """Free text beside the figure (a list, a note)."""

    text: str


@dataclass(frozen=True)
class Message:
    """Nothing to draw yet: `text` says why (drawn in place of the figure); `how` is the note beside."""

    text: str
    how: str = ""


Panel = Heatmap | Table | Markdown | Message


# -- grids from RunLog pieces ------------------------------------------------------------------------
def step_grid(coefficients: list[tuple[int, dict]], last_step: int = 0) -> tuple[list[str], np.ndarray]:
    """(names, z) with z[name][s - 1] = the value logged at global step s (NaN where none was logged).

    Columns cover every step 1..last so the x axis is the run's own step axis (gaps stay blank).
    """
    names: dict[str, int] = {}
    for _, values in coefficients:
        for name in values:
            names.setdefault(name, len(names))
    last = max([last_step, *(s for s, _ in coefficients)]) if coefficients else last_step
    z = np.full((len(names), max(last, 0)), np.nan)
    for step, values in coefficients:
        for name, value in values.items():
            z[names[name], step - 1] = value
    return list(names), z


def named_grid(columns: list[dict]) -> tuple[list[str], np.ndarray]:
    """(names, z) from one {name: value} dict per column: z[name][column] (NaN where a name is missing)."""
    names: dict[str, int] = {}
    for column in columns:
        for name in column:
            names.setdefault(name, len(names))
    z = np.full((len(names), len(columns)), np.nan)
    for c, column in enumerate(columns):
        for name, value in column.items():
            z[names[name], c] = value
    return list(names), z


def cells_equal_to(z: np.ndarray, value: float) -> np.ndarray:
    """1 where a logged value equals `value`, else 0; NaN where nothing was logged.

    Logged values are float32 numbers turned into Python floats (0.01 -> 0.009999999776...): rtol 1e-6.
    """
    with np.errstate(invalid="ignore"):
        hit = np.isclose(z, value, rtol=1e-6, atol=0.0).astype(float)
    hit[np.isnan(z)] = np.nan
    return hit


def row_means(z: np.ndarray) -> list[float]:
    """Mean of each row's logged values (0 for a row without any)."""
    return [0.0 if np.all(np.isnan(row)) else float(np.nanmean(row)) for row in z]


def step_heatmap(log, *, title: str, value_name: str, how: str, **extra) -> Heatmap:
    """A tensor x step heatmap of the run's logged coefficients (LCIA's α, I-LoRA's distance...)."""
    names, z = step_grid(list(log.coefficients), log.step)
    return Heatmap(title, tuple(names), z, value_name, axis="step", tasks=tuple(log.tasks),
                   boundaries=tuple(log.boundaries), how=how, **extra)


# -- task x task matrices (the Embeddings view) --------------------------------------------------------
def matrix(labels, values, columns=None, source="logged", note="") -> dict:
    """A matrix as the Embeddings view and probe files hold it: {labels, values (None = no value), source,
    note, columns (only when they differ from the row labels)}."""
    out = {"labels": list(labels), "values": [[None if v is None else float(v) for v in row] for row in values],
           "source": source, "note": note}
    if columns is not None and list(columns) != list(labels):
        out["columns"] = list(columns)
    return out


def by_task(values_per_start: list[dict | None], tasks: list[str]) -> list[list]:
    """Rows = the task whose start logged {earlier task: value} (None: nothing logged); columns = tasks."""
    rows = []
    for t in range(len(tasks)):
        values = (values_per_start[t] if t < len(values_per_start) else None) or {}
        rows.append([values.get(c) for c in tasks])
    return rows


__all__ = ["Heatmap", "Markdown", "Message", "Panel", "Table", "by_task", "cells_equal_to", "matrix",
           "named_grid", "row_means", "step_grid", "step_heatmap"]
