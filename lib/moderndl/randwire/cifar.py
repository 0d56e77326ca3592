"""CIFAR-10 from a user's directory in the "python version" layout (Krizhevsky 2009).

The directory (usually ``cifar-10-batches-py``) holds the pickled batches ``data_batch_1`` ..
``data_batch_5`` and ``test_batch``; each is a dict with ``b"data"`` (``(10000, 3072)`` uint8,
channel-major rows) and ``b"labels"``. Nothing is downloaded: errors name the path that is
missing or unreadable.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def is_cifar10(directory: str | Path) -> bool:
    """Whether ``directory`` looks like the CIFAR-10 python layout (has ``data_batch_1``)."""
    return (Path(directory).expanduser() / TRAIN_BATCHES[0]).is_file()


def load_batch(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch: images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch {path} does not exist")
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as err:
        raise ValueError(f"cannot read CIFAR-10 batch {path}: {err}") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"CIFAR-10 batch {path} lacks b'data'/b'labels' (found {keys})")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"CIFAR-10 batch {path}: data has shape {data.shape}, expected (N, 3072) "
                         f"with N = {len(labels)} labels")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())  # (N, 3072) -> (N, 3, 32, 32)
    return x, torch.from_numpy(labels)  # (N,)


def load_cifar10(directory: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: uint8 ``(50000, 3, 32, 32)`` and ``(10000, ...)``."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory {root} does not exist or is not a folder")
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 directory {root} lacks {', '.join(missing)} "
                                f"(expected the python-version layout: {', '.join(TRAIN_BATCHES)}, {TEST_BATCH})")
    parts = [load_batch(root / name) for name in TRAIN_BATCHES]
    x_train = torch.cat([p[0] for p in parts])  # (50000, 3, 32, 32)
    y_train = torch.cat([p[1] for p in parts])  # (50000,)
    x_test, y_test = load_batch(root / TEST_BATCH)
    return x_train, y_train, x_test, y_test
