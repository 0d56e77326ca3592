"""The chapters: which library package holds each notebook's paper, and its profile table.

Each chapter package ``moderndl.<package>`` keeps:

- ``scales.py``: ``TABLE`` (one entry per profile in ``profiles.SCALES``, with ``dry`` written
  as ``dict(TABLE["full"], ...)``) and, where a bound matters, ``RANGES``;
- ``__main__.py``: ``python -m moderndl.<package>``, the chapter's training experiment outside
  the notebook (see :mod:`moderndl.cli`);
- ``bench.py``: ``gpu_check(device, toy)``, the chapter's part of ``make gpu-check``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PACKAGES = {
    "zero": "zero",
    "randwire": "randwire",
    "mac": "mac",
    "gpt2_finetune": "gpt2",
    "style_gan": "gan",
    "multitask": "multitask",
}


def package(notebook: str) -> str | None:
    """``moderndl.<package>`` of a chapter notebook, or ``None`` for a notebook outside the book."""
    name = PACKAGES.get(notebook)
    return f"moderndl.{name}" if name else None


def scales(notebook: str) -> ModuleType | None:
    """The chapter's ``scales`` module (``TABLE``, optional ``RANGES``), or ``None``."""
    pkg = package(notebook)
    if pkg is None:
        return None
    try:
        return importlib.import_module(f"{pkg}.scales")
    except ModuleNotFoundError as err:
        if err.name != f"{pkg}.scales":
            raise
        return None
