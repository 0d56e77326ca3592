"""Image folders: a user's own pictures (paintings, photos, CIFAR-style class folders).

``load_folder`` reads every image under a folder into one uint8 tensor, resized and
centre-cropped to a square ``size``. With ``labelled=True`` the first-level sub-folders
are the classes (the ``ImageFolder`` layout). Errors name the folder or the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_files(folder: str | Path) -> list[Path]:
    """Every image file below ``folder``, sorted; an error if there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise ValueError(f"image folder {folder} holds no images (looked for {', '.join(EXTENSIONS)})")
    return files


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """One RGB image, shorter side resized to ``size`` then centre-cropped: (3, size, size) uint8."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
            array = np.asarray(im, dtype=np.uint8)  # (size, size, 3)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, size, size)


def load_folder(folder: str | Path, size: int, *, labelled: bool = False, limit: int | None = None):
    """All images of a folder as ``(N, 3, size, size)`` uint8; with labels when ``labelled``.

    Returns ``images`` or ``(images, labels, class_names)``.
    """
    files = image_files(folder)[:limit]
    images = torch.stack([load_image(f, size) for f in files])  # (N, 3, size, size)
    if not labelled:
        return images
    root = Path(folder).expanduser()
    classes = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
    if not classes:
        raise ValueError(f"labelled image folder {root} needs one sub-folder per class")
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[f.relative_to(root).parts[0]] for f in files])  # (N,)
    return images, labels, classes
