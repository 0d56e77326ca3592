"""The chapter's figures: rows of image tiles, and panels of curves, each in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from moderndl.gan.pixels import tile, to_uint8

WIDTH = 8  # inches: the book's text column


def _uint8(images: torch.Tensor) -> torch.Tensor:
    return images if images.dtype == torch.uint8 else to_uint8(images)


def image_rows(rows: Sequence[tuple[str, torch.Tensor]], ncol: int = 10, *, row_height: float = 1.0):
    """One labelled row of ``ncol`` images per ``(title, images)``; images are uint8 or in [-1, 1]."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(WIDTH, row_height * len(rows) + 0.2), dpi=100, squeeze=False)
    for ax, (title, images) in zip(axes[:, 0], rows, strict=True):
        ax.imshow(tile(_uint8(images[:ncol]), ncol))
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    return fig


def curves(panels: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]], *,
           xlabel: str = "step", ylabels: Sequence[str] = (), logy: Sequence[bool] = ()):
    """Side-by-side panels; each maps a label to ``(x, y)`` (y may be ``(mean, std)`` arrays for a band)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 2.6), dpi=100, squeeze=False)
    for i, (ax, panel) in enumerate(zip(axes[0], panels, strict=True)):
        for label, (x, y) in panel.items():
            if isinstance(y, tuple):  # (mean, std) over seeds
                mean, std = np.asarray(y[0]), np.asarray(y[1])
                ax.plot(x, mean, label=label)
                ax.fill_between(x, mean - std, mean + std, alpha=0.25)
            else:
                ax.plot(x, y, label=label)
        ax.set_xlabel(xlabel)
        if i < len(ylabels):
            ax.set_ylabel(ylabels[i])
        if i < len(logy) and logy[i]:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def show(fig) -> None:
    """Draw ``fig`` in the notebook and release it."""
    plt.show()
    plt.close(fig)
