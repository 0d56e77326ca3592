"""Training throughput of the small-regime network, and the chapter's part of ``make gpu-check``.

:func:`benchmark` times full SGD steps (forward, backward, update) of the paper's small regime
(Table 1: C = 78, N = 32, WS(4, 0.75), 224 x 224) per variant through the core loop, with the
chapter's optimizer (:func:`moderndl.randwire.experiment.make_optimizer`) and
:func:`moderndl.measure.train_throughput` (warm-up first, so compilation is not timed;
synchronised; median of ``repeats``). On CPU accelerate runs without mixed precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from moderndl import measure, train
from moderndl.randwire import data as rdata
from moderndl.randwire import experiment
from moderndl.randwire.model import RandWire, RandWireConfig
from moderndl.seed import set_seed

VARIANTS = {
    "eager_fp32": {"mixed_precision": "no", "channels_last": False, "compile": False},
    "fp32_channels_last": {"mixed_precision": "no", "channels_last": True, "compile": False},
    "bf16_channels_last_compile": {"mixed_precision": "bf16", "channels_last": True, "compile": True},
}


def benchmark(config: RandWireConfig | None = None, *, batch_size: int = 128, image_size: int = 224,
              warmup: int = 5, repeats: int = 20, device: torch.device | str | None = None,
              variants: Sequence[str] = ("eager_fp32", "bf16_channels_last_compile")) -> dict[str, Any]:
    """Training images/s of one network per variant, in one run.

    Returns ``{variant: {images_per_s, ... (measure.train_throughput), effective_mixed_precision},
    "speedup": last / first, "device": name}``.
    """
    from moderndl.ledger import device_name

    config = config or RandWireConfig()  # the paper's small regime: C=78, N=32, WS(4, 0.75)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown benchmark variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    out: dict[str, Any] = {"device": device_name(device), "batch_size": batch_size, "image_size": image_size}
    for name in variants:
        opts = VARIANTS[name]
        recipe = experiment.RandWireRecipe(steps=1, batch_size=batch_size, **opts)
        set_seed(config.seed)  # the same weights for every variant
        model = RandWire(config)
        if recipe.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt, _ = experiment.make_optimizer(model, recipe)
        loop = train.Loop(train.TrainConfig(steps=1, mixed_precision=recipe.mixed_precision, compile=recipe.compile,
                                            cpu=device.type == "cpu"), model=model, optimizer=opt)
        prepared, popt = loop["model"], loop["optimizer"]
        memory = torch.channels_last if recipe.channels_last else torch.contiguous_format
        x = torch.randn(batch_size, config.in_channels, image_size, image_size,
                        device=loop.device).contiguous(memory_format=memory)  # (B, 3, S, S)
        y = torch.randint(0, config.num_classes, (batch_size,), device=loop.device)  # (B,)

        def step(prepared=prepared, popt=popt, loop=loop, x=x, y=y, smoothing=recipe.label_smoothing):
            with loop.autocast():
                loss = F.cross_entropy(prepared(x), y, label_smoothing=smoothing)
            popt.zero_grad(set_to_none=True)
            loop.backward(loss)
            popt.step()

        timing = measure.train_throughput(step, batch_size, warmup=warmup, repeats=repeats, device=loop.device)
        out[name] = {**opts, "effective_mixed_precision": loop.accelerator.mixed_precision, **timing}
    if len(variants) > 1:
        out["speedup"] = out[variants[-1]]["items_per_s"] / out[variants[0]]["items_per_s"]
    return out


def gpu_check(device: torch.device, toy: bool) -> dict[str, Any]:
    """The full profile's training path for a short fixed budget, then the throughput benchmark.

    On CUDA: 50 steps of the full profile's network and recipe (bf16, channels_last) on the
    shapes task, then :func:`benchmark` at 224 px, batch 64, eager fp32 against bf16 +
    channels_last + compile. With ``toy`` (CPU): the same code at toy size in a few seconds;
    compilation is skipped.
    """
    from moderndl.randwire import scales

    full = scales.TABLE["full"]
    skipped = []
    if toy:
        size, steps, batch, n_train, n_test = 16, 3, 16, 64, 32
        base = RandWireConfig(nodes=6, channels=4, head_channels=8, stem_strides=(2, 1), num_classes=10)
        variants = ("eager_fp32",)
        skipped += ["bf16 (accelerate runs CPU in fp32)", "torch.compile", "full-size network and benchmark"]
    else:
        size, steps, batch, n_train, n_test = full["image_size"], 50, full["batch_size"], 4096, 2048
        base = RandWireConfig(nodes=full["nodes"], channels=full["channels"], head_channels=full["head_channels"],
                              stem_strides=tuple(full["stem_strides"]))
        variants = ("eager_fp32", "bf16_channels_last_compile")
    data = rdata.load_dataset("", size, train_size=n_train, test_size=n_test)
    recipe = experiment.RandWireRecipe(steps=steps, batch_size=batch, augment=full["augment"],
                                     mixed_precision=full["mixed_precision"], channels_last=full["channels_last"],
                                     compile=full["compile"] and not toy)
    row = experiment.train_one(experiment.model_config(base, "WS", (4, 0.75), 0, data), data, recipe,
                               device=device, progress=False)
    bench_config = replace(base, num_classes=1000) if toy else RandWireConfig()
    bench = benchmark(bench_config, batch_size=4 if toy else 64, image_size=32 if toy else 224,
                      warmup=1 if toy else 5, repeats=2 if toy else 20, device=device, variants=variants)
    return {"train": {"steps": steps, "accuracy": row["accuracy"], "final_loss": row["train_loss"]},
            "benchmark": bench, "skipped": skipped}
