"""Photographs without downloads: crops of the photos that ship with scikit-image
(``skimage.data``, the files inside the wheel, no pooch download) and scikit-learn
(``load_sample_images``).

The chapter's source domain for photo-to-art translation. Twenty photographs, ten in
colour and ten in grey (used as RGB with three equal channels), are split *by photograph*:
the held-out photos are crops of photographs that training never sees, so a translation
measured on them is measured on new pictures, not on new crops of the training pictures.

``random_crops`` draws a square window of a random scale and position from a random photo
of the split, flips it half the time, and resizes it (antialiased) to ``size``. Crop ``i``
is drawn from its own stream ``numpy.random.default_rng([seed, i])``. A user's own photos
load through :func:`load`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moderndl.data.images import load_folder

# skimage.data loaders whose files ship in the wheel; stereo_motorcycle is one scene (we take the left view)
SKIMAGE_COLOUR = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "stereo_motorcycle")
SKIMAGE_GREY = ("camera", "moon", "coins", "page", "text", "clock", "grass", "gravel", "brick", "cell")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
# Held out by photograph: three colour photos and two grey ones (a quarter of the twenty)
HELD_OUT = ("chelsea", "rocket", "flower.jpg", "camera", "brick")
SPLITS = ("train", "held_out", "all")


@lru_cache(maxsize=1)
def sources() -> tuple[tuple[str, torch.Tensor], ...]:
    """Every bundled photo as ``(name, (3, H, W) float32 in [0, 1])``; grey photos get three equal channels."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = []
    for name in (*SKIMAGE_COLOUR, *SKIMAGE_GREY):
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)
        photos.append((name, image))
    bunch = load_sample_images()
    for name, image in zip(bunch.filenames, bunch.images, strict=True):
        photos.append((Path(name).name, image))
    return tuple((name, torch.from_numpy(np.array(im[..., :3])).permute(2, 0, 1).float() / 255.0)
                 for name, im in photos)  # (3, H, W)


def split(which: str = "train") -> tuple[tuple[str, torch.Tensor], ...]:
    """The photos of one split: ``"train"`` (15), ``"held_out"`` (the 5 of :data:`HELD_OUT`) or ``"all"``."""
    if which not in SPLITS:
        raise ValueError(f"unknown photo split {which!r}; valid splits: {', '.join(SPLITS)}")
    if which == "all":
        return sources()
    return tuple((n, p) for n, p in sources() if (n in HELD_OUT) == (which == "held_out"))


def random_crops(n: int, size: int, *, seed: int = 0, which: str = "train",
                 scale: tuple[float, float] = (0.25, 0.8)) -> torch.Tensor:
    """``n`` random square crops of the ``which`` split's photos, side ``scale`` x the photo's
    shorter side: ``(n, 3, size, size)`` uint8."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    photos = split(which)
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        _, photo = photos[rng.integers(len(photos))]
        _, h, w = photo.shape
        side = min(min(h, w), max(size // 2, int(rng.uniform(*scale) * min(h, w))))
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


def load(n: int, size: int, *, folder: str | Path | None = None, seed: int = 0, which: str = "train") -> torch.Tensor:
    """The photo domain: a user's ``folder`` if given (at most ``n`` images), else :func:`random_crops`."""
    if folder is not None:
        return load_folder(folder, size, limit=n)
    return random_crops(n, size, seed=seed, which=which)
