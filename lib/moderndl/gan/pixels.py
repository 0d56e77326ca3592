"""Pixels: uint8 images to the tanh range [-1, 1] that the generators output, and back."""

from __future__ import annotations

import torch


def to_model(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` in [0, 255] to float in [-1, 1] (the range of G's Tanh)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    return images.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float in [-1, 1] back to uint8 in [0, 255] (clamped), on the CPU."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)


def tile(images: torch.Tensor, ncol: int, pad: int = 1) -> torch.Tensor:
    """A grid of ``(N, 3, H, W)`` uint8 images as one ``(rows*(H+pad), ncol*(W+pad), 3)`` array for imshow."""
    n, c, h, w = images.shape
    rows = -(-n // ncol)
    canvas = torch.full((rows * (h + pad), ncol * (w + pad), c), 255, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        canvas[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = images[i].permute(1, 2, 0)
    return canvas
