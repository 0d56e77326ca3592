"""Procedural abstract art: a seeded, download-free stand-in for a painter's corpus.

The chapter's target domain. Two styles, distinct enough that a GAN must learn both:

- ``"dream"``: soft colour fields in a dreamlike night palette (indigo, violet, rose),
  large blurred blobs, a pale moon, and small warm figures floating at a tilt -- a
  cartoon of the floating lovers and villages of Marc Chagall.
- ``"grid"``: hard-edged grids with black bars and flat primaries on white, after the
  neo-plastic compositions of Piet Mondrian.

Every image ``i`` of ``generate(n, size, seed=seed)`` is drawn from its own stream
``numpy.random.default_rng([seed, i])``, so the first ``k`` images do not depend on ``n``.
A user's own paintings (e.g. scans of Chagall) load through :func:`load` with a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from moderndl.data.images import load_folder

STYLES = ("dream", "grid")

# Palettes in RGB [0, 1]. The dream palette is the cool night of Chagall's
# "Over the Town"/"I and the Village" (blues, violets) with warm accents for figures.
DREAM_FIELDS = np.array([[0.10, 0.12, 0.40], [0.30, 0.15, 0.50], [0.15, 0.35, 0.60],
                         [0.55, 0.25, 0.55], [0.85, 0.45, 0.60], [0.20, 0.45, 0.35]])
DREAM_FIGURES = np.array([[0.90, 0.20, 0.20], [0.95, 0.80, 0.25], [0.30, 0.75, 0.35], [0.95, 0.95, 0.90]])
GRID_FILLS = np.array([[0.95, 0.95, 0.92], [0.85, 0.10, 0.10], [0.10, 0.20, 0.65], [0.98, 0.85, 0.10]])
GRID_FILL_P = np.array([0.55, 0.15, 0.15, 0.15])  # mostly white cells, as in Mondrian's 1920s grids


@dataclass(frozen=True)
class ArtConfig:
    """Knobs of the generator; the defaults give the chapter's corpus."""

    blobs: tuple[int, int] = (3, 6)  # soft colour fields per dream image (inclusive range)
    figures: tuple[int, int] = (1, 3)  # floating figures per dream image
    splits: tuple[int, int] = (3, 6)  # grid: number of recursive cell splits
    bar: float = 0.035  # grid: black bar width as a fraction of the side


def generate(n: int, size: int, *, style: str = "mixed", seed: int = 0,
             config: ArtConfig = ArtConfig()) -> torch.Tensor:
    """``n`` images of ``style`` ("dream", "grid" or "mixed": alternating), ``(n, 3, size, size)`` uint8."""
    if style not in (*STYLES, "mixed"):
        raise ValueError(f"unknown art style {style!r}; valid styles: {', '.join((*STYLES, 'mixed'))}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    grid = _coords(size)
    images = np.empty((n, size, size, 3), dtype=np.float32)  # (N, H, W, 3)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        kind = style if style != "mixed" else STYLES[i % len(STYLES)]
        images[i] = _dream(rng, grid, config) if kind == "dream" else _grid(rng, size, config)
    array = np.clip(images * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)


def styles_of(n: int, style: str = "mixed") -> list[str]:
    """The style of each image ``generate(n, ..., style=style)`` draws."""
    return [style if style != "mixed" else STYLES[i % len(STYLES)] for i in range(n)]


def load(n: int, size: int, *, folder: str | Path | None = None, style: str = "mixed", seed: int = 0) -> torch.Tensor:
    """The art domain: a user's ``folder`` of paintings if given (at most ``n``), else :func:`generate`."""
    if folder is not None:
        return load_folder(folder, size, limit=n)
    return generate(n, size, style=style, seed=seed)


# -- the two styles ---------------------------------------------------------------------
def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(axis, axis, indexing="ij")  # (H, W) each, in (0, 1)
    return yy, xx


def _blend(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-composite ``colour`` over ``canvas`` (H, W, 3) in place; ``alpha`` is (H, W)."""
    canvas += alpha[..., None] * (colour - canvas)


def _soft_ellipse(yy, xx, cy, cx, ry, rx, angle, softness):
    """A soft-edged (sigmoid) rotated ellipse mask, (H, W) in [0, 1]."""
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / rx
    v = (-(xx - cx) * s + (yy - cy) * c) / ry
    signed = 1.0 - np.sqrt(u * u + v * v)  # > 0 inside
    return 1.0 / (1.0 + np.exp(-signed / softness))


def _dream(rng: np.random.Generator, grid, config: ArtConfig) -> np.ndarray:
    """Soft colour fields, a moon and tilted floating figures."""
    yy, xx = grid
    top, bottom = DREAM_FIELDS[rng.choice(len(DREAM_FIELDS), size=2, replace=False)]
    canvas = (top + (bottom - top) * yy[..., None]).astype(np.float32)  # (H, W, 3) vertical gradient
    for _ in range(rng.integers(config.blobs[0], config.blobs[1] + 1)):
        colour = DREAM_FIELDS[rng.integers(len(DREAM_FIELDS))]
        mask = _soft_ellipse(yy, xx, *rng.uniform(0, 1, 2), *rng.uniform(0.15, 0.45, 2), rng.uniform(0, np.pi), 0.25)
        _blend(canvas, 0.6 * mask, colour)
    moon_y, moon_x, moon_r = rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.85), rng.uniform(0.05, 0.09)
    _blend(canvas, _soft_ellipse(yy, xx, moon_y, moon_x, moon_r, moon_r, 0.0, 0.05), np.array([0.97, 0.95, 0.80]))
    for _ in range(rng.integers(config.figures[0], config.figures[1] + 1)):
        colour = DREAM_FIGURES[rng.integers(len(DREAM_FIGURES))]
        cy, cx, tilt = rng.uniform(0.35, 0.75), rng.uniform(0.2, 0.8), rng.uniform(-1.2, 1.2)
        h = rng.uniform(0.12, 0.2)  # body half-length
        body = _soft_ellipse(yy, xx, cy, cx, 0.35 * h, h, tilt + np.pi / 2, 0.06)
        hy, hx = cy - 1.25 * h * np.cos(tilt), cx + 1.25 * h * np.sin(tilt)  # head along the body's axis
        head = _soft_ellipse(yy, xx, hy, hx, 0.3 * h, 0.3 * h, 0.0, 0.06)
        _blend(canvas, np.maximum(body, head), colour)
    return canvas


def _grid(rng: np.random.Generator, size: int, config: ArtConfig) -> np.ndarray:
    """Recursive splits into rectangles, flat primaries, black bars."""
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    cells = [(0, size, 0, size)]  # (top, bottom, left, right) in pixels
    for _ in range(rng.integers(config.splits[0], config.splits[1] + 1)):
        k = int(np.argmax([(b - t) * (r - l) for t, b, l, r in cells]))  # split the largest cell
        t, b, l, r = cells.pop(k)
        vertical = (r - l) > (b - t) if rng.uniform() < 0.7 else rng.uniform() < 0.5
        lo, hi = (l, r) if vertical else (t, b)
        if hi - lo < 4:
            cells.append((t, b, l, r))
            continue
        cut = int(rng.integers(lo + (hi - lo) // 4, hi - (hi - lo) // 4 + 1))
        cells += [(t, b, l, cut), (t, b, cut, r)] if vertical else [(t, cut, l, r), (cut, b, l, r)]
    bar = max(1, round(config.bar * size))
    for t, b, l, r in cells:
        canvas[t:b, l:r] = GRID_FILLS[rng.choice(len(GRID_FILLS), p=GRID_FILL_P)]
        canvas[t:min(b, t + bar), l:r] = 0.05  # black bars along each cell's top and left edges
        canvas[t:b, l:min(r, l + bar)] = 0.05
    canvas[-bar:], canvas[:, -bar:] = 0.05, 0.05  # and the frame's bottom and right
    return canvas
