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


# A prime larger than any step count we run, so (seed, step) pairs never collide for
# step < 1_000_003: seed s at step t and seed s' at step t' give the same stream only if
# s == s' and t == t'.
_STRIDE = 1_000_003


def generator(seed: int, step: int) -> torch.Generator:
    """A ``torch.Generator`` that is a pure function of ``(seed, step)``.

    Step-indexed samplers use it, so the batch (or noise) at step ``t`` is the same whether
    a run is resumed at ``t`` or ran through, and the same on every rank.
    """
    return torch.Generator().manual_seed(seed * _STRIDE + step)
