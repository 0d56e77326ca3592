"""One way to seed every source of randomness a chapter touches."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int, *, rank: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) with ``seed + rank``.

    Distributed code passes its rank so each process draws a different stream
    (the accelerate examples' convention). Returns a ``torch.Generator`` seeded the
    same way, for samplers that want an explicit generator.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    value = seed + rank
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
    return torch.Generator().manual_seed(value)
