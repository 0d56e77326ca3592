"""Measuring models and runs: parameters, FLOPs, wall time, throughput, spread over seeds.

``time_it`` follows the benchmark rule of this book: warm up first, synchronise the
device around every timed call, and report the median of several repeats.
``train_throughput`` is the one shape every chapter's benchmark returns.
``mean_std`` is the one convention for results over seeds: sample std (ddof=1) and the
standard error of the mean. ``series`` and ``moving_average`` read a training history.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
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


def train_throughput(step_fn: Callable[[], Any], items_per_step: int, *, warmup: int = 3, repeats: int = 10,
                     device: torch.device | str | None = None) -> dict[str, float]:
    """Items (images, tokens, questions) per second of one training step, by :func:`time_it`.

    Every chapter's benchmark returns this shape: ``items_per_s`` (at the median step time),
    ``items_per_s_min`` and ``items_per_s_max`` (at the slowest and fastest step),
    ``median_s``, ``min_s``, ``max_s``, ``repeats`` and ``items_per_step``.
    """
    if items_per_step <= 0:
        raise ValueError(f"items_per_step must be positive, got {items_per_step}")
    t = time_it(step_fn, warmup=warmup, repeats=repeats, device=device)
    return {"items_per_s": items_per_step / t["median_s"], "items_per_s_min": items_per_step / t["max_s"],
            "items_per_s_max": items_per_step / t["min_s"], **t, "items_per_step": items_per_step}


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample std (ddof=1), standard error of the mean and count of ``values``.

    One value has no spread: its ``std`` and ``sem`` are NaN rather than a misleading 0.
    """
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("mean_std of no values")
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return {"mean": float(x.mean()), "std": std, "sem": std / math.sqrt(x.size), "n": int(x.size)}


def series(history: Sequence[Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one logged quantity, for the steps where it was logged."""
    rows = [(h["step"], h[key]) for h in history if key in h]
    if not rows:
        raise KeyError(f"{key!r} was never logged; logged keys: {sorted({k for h in history for k in h})}")
    steps, values = zip(*rows, strict=True)
    return np.asarray(steps), np.asarray(values)


def moving_average(values: Sequence[float], width: int) -> np.ndarray:
    """Trailing mean over ``width`` values (``len(values) - width + 1`` of them); the input
    itself when it is shorter than ``width``."""
    x = np.asarray(values, dtype=float)
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if x.size < width:
        return x
    return np.convolve(x, np.ones(width) / width, mode="valid")
