"""Photographs without downloads: random crops of the colour photos that ship with
scikit-image (``skimage.data``) and scikit-learn (``load_sample_images``).

The chapter's source domain for photo-to-art translation. ``random_crops`` draws a
square window of a random scale and position from a random photo, flips it half the
time, and resizes it (antialiased) to ``size``. Crop ``i`` is drawn from its own stream
``numpy.random.default_rng([seed, i])``. A user's own photos load through :func:`load`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moderndl.data.images import load_folder

# skimage.data photos bundled with the wheel (no pooch download), plus sklearn's two.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")


@lru_cache(maxsize=1)
def sources() -> tuple[tuple[str, torch.Tensor], ...]:
    """Every bundled photo as ``(name, (3, H, W) float32 in [0, 1])``."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = []
    for name in SKIMAGE_PHOTOS:
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
        photos.append((name, image))
    bunch = load_sample_images()
    for name, image in zip(bunch.filenames, bunch.images, strict=True):
        photos.append((Path(name).name, image))
    return tuple((name, torch.from_numpy(np.array(im[..., :3])).permute(2, 0, 1).float() / 255.0)
                 for name, im in photos)  # (3, H, W)


def random_crops(n: int, size: int, *, seed: int = 0, scale: tuple[float, float] = (0.25, 0.8)) -> torch.Tensor:
    """``n`` random square crops, side ``scale`` x the photo's shorter side: ``(n, 3, size, size)`` uint8."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    photos = sources()
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        _, photo = photos[rng.integers(len(photos))]
        _, h, w = photo.shape
        side = max(size // 2, int(rng.uniform(*scale) * min(h, w)))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        out[i] = crop(photo, int(top), int(left), side, size, flip=bool(rng.uniform() < 0.5))
    return out


def crop(photo: torch.Tensor, top: int, left: int, side: int, size: int, *, flip: bool = False) -> torch.Tensor:
    """The square window ``side`` at ``(top, left)`` of a (3, H, W) float photo, resized
    (antialiased bilinear, as PIL's) to ``(3, size, size)`` uint8, mirrored when ``flip``."""
    window = photo[None, :, top:top + side, left:left + side]  # (1, 3, side, side)
    window = F.interpolate(window, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if flip:
        window = window.flip(-1)
    return (window[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8)  # (3, size, size)


def load(n: int, size: int, *, folder: str | Path | None = None, seed: int = 0) -> torch.Tensor:
    """The photo domain: a user's ``folder`` if given (at most ``n`` images), else :func:`random_crops`."""
    if folder is not None:
        return load_folder(folder, size, limit=n)
    return random_crops(n, size, seed=seed)
