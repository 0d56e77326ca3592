"""Where things live: the repository root and the build folders under it.

Every path the library writes is derived from :func:`root`, so a chapter run from
JupyterLab (cwd ``notebooks/``), from papermill or from pytest writes to the same place.
"""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    """The book root: ``$MODERNDL_ROOT``, else the nearest parent of the working directory
    holding the book (``_config.yml`` and ``lib/moderndl``), else the working directory itself:
    a notebook opened alone (Colab, a bare folder) writes its ``_build`` beside itself."""
    if env := os.environ.get("MODERNDL_ROOT"):
        return Path(env).resolve()
    start = Path.cwd().resolve()
    for folder in (start, *start.parents):
        if (folder / "_config.yml").is_file() and (folder / "lib" / "moderndl").is_dir():
            return folder
    return start


def build() -> Path:
    """``<root>/_build``: executed notebooks, sidecars, cache, html, artifacts."""
    return root() / "_build"


def artifacts(name: str) -> Path:
    """A scratch folder for one chapter's checkpoints and outputs, created on demand."""
    path = build() / "artifacts" / name
    path.mkdir(parents=True, exist_ok=True)
    return path
