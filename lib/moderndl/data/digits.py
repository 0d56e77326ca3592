"""scikit-learn's handwritten digits (1,797 images, 8x8, 10 classes), shipped with the package."""

from __future__ import annotations

import torch


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(1797, 1, 8, 8)`` float in [0, 1] and labels ``(1797,)`` int64."""
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8); pixels are 0..16
    y = torch.tensor(bunch.target, dtype=torch.int64)  # (N,)
    return x, y


def split(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed train/test index split of ``n`` examples: ``(train_idx, test_idx)``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_fraction))
    return perm[n_test:], perm[:n_test]
