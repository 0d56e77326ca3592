"""Result tables for the page: rows of dicts as Markdown (rendered as MyST tables by the book)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def cell(value: Any, fmt: str = "{:.4g}") -> str:
    """One table cell: floats through ``fmt``, ``None`` as a dash, booleans as yes / **no**,
    lists and mappings inline, pipes escaped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return fmt.format(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v, fmt) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {cell(v, fmt)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(rows: Sequence[Mapping[str, Any]], fmt: str = "{:.4g}") -> str:
    """A Markdown table of ``rows`` (dicts with the same keys, in column order)."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k), fmt) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def show(rows: Sequence[Mapping[str, Any]], fmt: str = "{:.4g}"):
    """:func:`markdown` as an IPython ``Markdown`` object, for a notebook cell's output."""
    from IPython.display import Markdown

    return Markdown(markdown(rows, fmt))
