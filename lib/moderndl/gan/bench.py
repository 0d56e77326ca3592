"""CycleGAN training throughput, eager fp32 against bf16, channels_last and torch.compile;
and the chapter's part of ``make gpu-check``.

Each variant builds a fresh CycleGAN into the core ``Loop`` (so bf16 autocast and compile are
the loop's own switches) and times training steps with
:func:`moderndl.measure.train_throughput` (warm-up, device synchronised, median). Zhu et al.
2017 train at 256 px with batch 1. On the CPU the loop ignores bf16 (accelerate's CPU path
runs fp32), so CPU rows only show that every variant runs; the comparison is for a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from moderndl.gan import art, cyclegan, dcgan, photos, scales
from moderndl.ledger import device_name
from moderndl.measure import train_throughput
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
    """Training throughput of CycleGAN for each variant and (global) batch size.

    Returns rows ``{variant, batch_size, image_size, device, **measure.train_throughput(...)}``
    (``items_per_s`` counts images, one per photo-art pair).
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
            timing = train_throughput(_stepper(step, batch), batch_size, warmup=warmup, repeats=repeats,
                                      device=loop.device)
            rows.append({"variant": name, "batch_size": batch_size, "image_size": image_size,
                         "device": device_name(loop.device), **timing})
            del loop
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return rows


def _stepper(step, batch):
    """A zero-argument call of ``step`` on a fixed batch, counting steps (the lr schedule advances)."""
    counter = iter(range(10**9))
    return lambda: step(batch, next(counter))


def gpu_check(device: torch.device, toy: bool) -> dict:
    """The full profile's training paths for a few steps with its switches (bf16, channels_last),
    then the throughput benchmark: eager fp32 against bf16 + channels_last (+ compile) at 256 px,
    batch 1 (the paper's) and batch 8. ``toy``: the same paths on the CPU at toy size, on one
    thread (toy convolutions only pay for the threads' synchronisation)."""
    before = torch.get_num_threads()
    if toy:
        torch.set_num_threads(1)
    try:
        return _check(device, toy)
    finally:
        torch.set_num_threads(before)


def _check(device: torch.device, toy: bool) -> dict:
    full = scales.TABLE["full"]
    cpu = device.type != "cuda"
    skipped = []
    if toy:
        d_size, d_width, d_batch, c_size, c_gen, c_width, steps = 16, 4, 4, 32, "resnet_6blocks", 4, 2
        skipped += ["bf16 autocast (the CPU loop runs fp32)", "torch.compile variant (slow to compile on CPU)",
                    "the paper's 256 px and 64-wide networks (toy size: 16 px DCGAN, 32 px CycleGAN, width 4)"]
    else:
        d_size, d_width, d_batch = full["dcgan_image_size"], full["dcgan_width"], full["dcgan_batch_size"]
        c_size, c_gen, c_width = full["cyclegan_image_size"], full["cyclegan_generator"], full["cyclegan_width"]
        steps = 10
    switches = dict(mixed_precision=full["mixed_precision"], compile=full["compile"], cpu=cpu, progress=False)
    out: dict = {"switches": {**switches, "channels_last": full["channels_last"]}}
    # DCGAN: the full profile's training path
    config = dcgan.DCGANConfig(image_size=d_size, ngf=d_width, ndf=d_width)
    history, _, _ = dcgan.train(art.generate(2 * d_batch, d_size), config, TrainConfig(steps=steps, log_every=1,
                                **switches, desc="gpu-check dcgan"),
                                batch_size=d_batch, channels_last=full["channels_last"])
    out["dcgan"] = {"steps": len(history), "loss_d": history[-1]["loss_d"], "image_size": d_size}
    # CycleGAN: the full profile's training path
    c_config = cyclegan.CycleGANConfig(image_size=c_size, generator=c_gen, ngf=c_width, ndf=c_width)
    history, _ = cyclegan.train(photos.random_crops(4, c_size), art.generate(4, c_size), c_config,
                                TrainConfig(steps=steps, log_every=1, **switches, desc="gpu-check cyclegan"),
                                batch_size=full["cyclegan_batch_size"], channels_last=full["channels_last"])
    out["cyclegan"] = {"steps": len(history), "cycle": history[-1]["cycle"], "image_size": c_size}
    # the benchmark: eager against the GPU switches, at batch 1 and a larger batch
    if toy:
        rows = benchmark(image_size=c_size, batch_sizes=(1, 2), variants=("eager_fp32", "bf16_channels_last"),
                         config=c_config, warmup=1, repeats=2, cpu=True)
    else:  # the intermediate "bf16" row is left out to keep within make gpu-check's budget (two compiles)
        rows = benchmark(image_size=256, batch_sizes=(1, 8), warmup=3, repeats=10,
                         variants=("eager_fp32", "bf16_channels_last", "bf16_channels_last_compile"))
    out["benchmark"] = rows
    if skipped:
        out["skipped"] = skipped
    return out
