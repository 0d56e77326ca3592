"""Measuring models: parameters, FLOPs, and wall time done right.

``time_it`` follows the benchmark rule of this book: warm up first, synchronise the
device around every timed call, and report the median of several repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def count_parameters(module: torch.nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def count_flops(module: torch.nn.Module, *inputs: Any) -> int:
    """Forward FLOPs of ``module(*inputs)`` by torch's FlopCounterMode (a multiply-add is 2 FLOPs).

    Papers that report "FLOPs" as multiply-adds (RandWire, following ShuffleNet and
    MobileNet) are compared against half this number.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return int(counter.get_total_flops())


def synchronize(device: torch.device | str | None = None) -> None:
    dev = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        torch.cuda.synchronize()


def time_it(fn: Callable[[], Any], *, warmup: int = 3, repeats: int = 10,
            device: torch.device | str | None = None) -> dict[str, float]:
    """Median, min and max seconds per call of ``fn`` after ``warmup`` untimed calls."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup}, {repeats}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}
