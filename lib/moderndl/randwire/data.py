"""The chapter's data: the procedural shapes task, a CIFAR-10 folder, or a labelled image folder.

:func:`load_dataset` returns one :class:`Dataset` of normalised float images with a fixed
train/test split, whatever the source:

- ``data_dir`` empty: the shapes task of :mod:`moderndl.randwire.shapes`, ``train_size`` and
  ``test_size`` images drawn from the task seed (the paper's Fig. 3 needs a large test set:
  the binomial noise of an accuracy p on n images is sqrt(p(1 - p)/n)), each image
  standardised on its own (:func:`per_image_standardised`);
- ``"digits"``: scikit-learn's 8x8 digits, upsampled to ``image_size`` (the smoke profile:
  a real task that tiny networks learn in a few dozen steps);
- a folder holding ``data_batch_1``: CIFAR-10 in its python layout (:mod:`.cifar`);
- any other folder: one sub-folder per class, split with a fixed seed.

Bad folders are errors that name the folder and what would be valid, before any training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from moderndl import train
from moderndl.data import digits, images
from moderndl.randwire import cifar, shapes
from moderndl.seed import generator as seed_generator


@dataclass(frozen=True)
class Dataset:
    """Normalised float images ``(N, C, S, S)`` with labels and a fixed split."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])


def load_dataset(data_dir: str | Path | None, image_size: int, *, train_size: int = 20_000,
                 test_size: int = 10_000, data_seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """The chapter's data (see the module docstring); ``train_size``/``test_size`` are the
    shapes task's sizes, ``test_fraction`` the held-out share of a labelled folder."""
    if not data_dir:
        config = shapes.ShapesConfig(image_size=image_size)
        x_train, y_train = _draw(train_size, data_seed, "train", config)
        x_test, y_test = shapes.test_set(test_size, data_seed, config)
        x_train, x_test = per_image_standardised(x_train), per_image_standardised(x_test)
        return Dataset("shapes", x_train, y_train, x_test, y_test, shapes.NUM_CLASSES)
    if str(data_dir) == "digits":
        x, y = digits.load_digits()  # (1797, 1, 8, 8), (1797,)
        x = _resize(x, image_size)  # (N, 1, S, S), bilinear
        train_idx, test_idx = digits.split(len(x), test_fraction, data_seed)
        return _normalised("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx], 10)
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data_dir {path} does not exist or is not a folder "
                                "(expected a CIFAR-10 python directory or a labelled image folder)")
    if cifar.is_cifar10(path):
        x_train, y_train, x_test, y_test = cifar.load_cifar10(path)
        x_train, x_test = (_resize(x.float() / 255.0, image_size) for x in (x_train, x_test))
        return _normalised("cifar10", x_train, y_train, x_test, y_test, 10)
    check_folder(path, test_fraction)
    x, y, classes = images.load_folder(path, image_size, labelled=True)  # (N, 3, S, S) uint8
    train_idx, test_idx = digits.split(len(x), test_fraction, data_seed)
    x = x.float() / 255.0
    return _normalised(f"folder:{path.name}", x[train_idx], y[train_idx], x[test_idx], y[test_idx], len(classes))


def check_folder(path: Path, test_fraction: float = 0.2) -> None:
    """A labelled folder must hold only class sub-folders, at least two classes, and enough
    images that both splits are non-empty; each failure names the folder and the fix."""
    loose = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in images.EXTENSIONS)
    if loose:
        raise ValueError(f"labelled image folder {path} has images at its top level ({', '.join(loose[:3])}"
                         f"{', ...' if len(loose) > 3 else ''}); put every image in a sub-folder named after "
                         "its class")
    counts = {d.name: sum(1 for f in d.rglob("*") if f.is_file() and f.suffix.lower() in images.EXTENSIONS)
              for d in sorted(path.iterdir()) if d.is_dir()}
    counts = {k: v for k, v in counts.items() if v}
    if len(counts) < 2:
        raise ValueError(f"labelled image folder {path} has {len(counts)} class sub-folder(s) with images "
                         f"({', '.join(counts) or 'none'}); classification needs at least 2")
    total = sum(counts.values())
    need = max(2 * len(counts), int(1 / min(test_fraction, 1 - test_fraction)) + 1)
    if total < need:
        raise ValueError(f"labelled image folder {path} holds {total} images in {len(counts)} classes; a "
                         f"{test_fraction:g} test split needs at least {need} so that both splits are non-empty")


def _draw(n: int, seed: int, split: str, config: shapes.ShapesConfig, chunk: int = 1000):
    parts = [shapes.sample(min(chunk, n - i), seed, i // chunk, split, config) for i in range(0, n, chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)  # (N, C, size, size)


def _normalised(name, x_train, y_train, x_test, y_test, num_classes) -> Dataset:
    """Standardise each channel with the training set's mean and std."""
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)  # (1, C, 1, 1)
    return Dataset(name, (x_train - mean) / std, y_train, (x_test - mean) / std, y_test, num_classes)


def per_image_standardised(x: torch.Tensor) -> torch.Tensor:
    """Each image minus its own per-channel mean, over its own std: the shapes task's colours
    are random, so this leaves the shape's contrast with its background as the signal."""
    centred = x - x.mean(dim=(2, 3), keepdim=True)  # (N, C, S, S)
    return centred / centred.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


def augment(x: torch.Tensor, seed: int, step: int, pad: int = 4, global_batch: int | None = None) -> torch.Tensor:
    """The standard CIFAR recipe, per image: a random horizontal flip and a random
    ``S x S`` crop of the image zero-padded by ``pad`` on each side.

    Under several ranks ``x`` is this rank's slice of a global batch of ``global_batch``: the
    draws are made for the whole global batch and sliced the same way, so N ranks augment
    exactly as one process would.
    """
    g = seed_generator(seed, step)
    b, _, size, _ = x.shape
    total = global_batch or b
    rows = train.rank_slice(total) if global_batch else slice(0, b)
    flip = (torch.rand(total, generator=g) < 0.5)[rows]  # (B,)
    dy, dx = (torch.randint(0, 2 * pad + 1, (total,), generator=g)[rows].to(x.device) for _ in range(2))  # (B,)
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, S + 2 pad, S + 2 pad)
    rows_idx = (dy.view(b, 1) + torch.arange(size, device=x.device)).view(b, 1, size, 1)  # (B, 1, S, 1)
    cols_idx = (dx.view(b, 1) + torch.arange(size, device=x.device)).view(b, 1, 1, size)  # (B, 1, 1, S)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows_idx, cols_idx]  # (B, C, S, S)
