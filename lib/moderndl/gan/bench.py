"""CycleGAN training throughput: eager fp32 against bf16, channels_last and torch.compile.

The issue's closing benchmark. Each variant builds a fresh CycleGAN into the core
``Loop`` (so bf16 autocast and compile are the loop's own switches), runs ``warmup``
untimed steps, then times ``repeats`` steps with :func:`moderndl.measure.time_it`
(median, device synchronised). Zhu et al. 2017 train at 256 px with batch 1.
On the CPU the loop ignores bf16 (accelerate's CPU path runs fp32), so CPU rows only
show that every variant runs; the comparison is meant for a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from moderndl.data import art
from moderndl.gan import cyclegan
from moderndl.ledger import device_name
from moderndl.measure import time_it
from moderndl.train import TrainConfig

# name: (mixed_precision, channels_last, compile)
VARIANTS = {
    "eager_fp32": ("no", False, False),
    "bf16": ("bf16", False, False),
    "bf16_channels_last": ("bf16", True, False),
    "bf16_channels_last_compile": ("bf16", True, True),
}


def benchmark(*, image_size: int = 256, batch_sizes: Sequence[int] = (1, 8), variants: Sequence[str] = tuple(VARIANTS),
              config: cyclegan.CycleGANConfig | None = None, warmup: int = 5, repeats: int = 20,
              cpu: bool = False, seed: int = 0) -> list[dict]:
    """Training iterations per second of CycleGAN for each variant and batch size.

    Returns rows ``{variant, batch_size, image_size, it_s, images_s, median_s, device}``.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown benchmark variant(s) {unknown}; valid variants: {', '.join(VARIANTS)}")
    config = replace(config or cyclegan.CycleGANConfig(), image_size=image_size)
    rows = []
    for batch_size in batch_sizes:
        images = art.generate(max(2 * batch_size, 4), image_size, seed=seed)  # (N, 3, S, S) uint8, both domains
        for name in variants:
            precision, channels_last, compile_ = VARIANTS[name]
            train_config = TrainConfig(steps=warmup + repeats + 1, mixed_precision=precision,
                                       compile=compile_, cpu=cpu, desc=f"bench {name}")
            loop = cyclegan.setup(config, train_config, seed=seed, channels_last=channels_last)
            step = cyclegan.make_step(loop, config, channels_last=channels_last)
            data = cyclegan.unpaired(images, images.flip(0), batch_size=batch_size, seed=seed)
            batch = tuple(x.to(loop.device) for x in data(0))
            timing = time_it(_stepper(step, batch), warmup=warmup, repeats=repeats, device=loop.device)
            it_s = 1.0 / timing["median_s"]
            rows.append({"variant": name, "batch_size": batch_size, "image_size": image_size, "it_s": it_s,
                         "images_s": it_s * batch_size, "median_s": timing["median_s"],
                         "device": device_name(loop.device)})
            del loop
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return rows


def _stepper(step, batch):
    """A zero-argument call of ``step`` on a fixed batch, counting steps (the lr schedule advances)."""
    counter = iter(range(10**9))
    return lambda: step(batch, next(counter))
