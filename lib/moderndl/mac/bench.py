"""The MAC chapter's part of ``make gpu-check``: the full profile's training path, briefly.

On CUDA: the full profile's MAC (d = 512, p = 12, conv stem on 64-pixel scenes) trains for a
fixed 20 steps through the chapter's loop with bf16 autocast and ``torch.compile``, the
time-to-98% monitor runs once, and the throughput benchmark compares eager float32 with
bf16 + compile on the real training step. With ``toy=True`` (no CUDA) the same calls run at
toy size on the CPU in a few seconds; bf16 and compile are skipped there.
"""

from __future__ import annotations

import time

import torch

from moderndl import ledger
from moderndl.mac import scales
from moderndl.mac.config import MACConfig, MACRecipe
from moderndl.mac.network import MACNetwork
from moderndl.mac.questions import generate
from moderndl.mac.training import AccuracyMonitor, throughput, train
from moderndl.mac.world import WorldConfig
from moderndl.seed import set_seed


def gpu_check(device: torch.device, toy: bool) -> dict:
    """Train briefly at the full profile's settings (toy size without CUDA), then benchmark."""
    full = scales.TABLE["full"]
    cuda = device.type == "cuda" and not toy
    size = full["image_size"] if cuda else 32
    world = WorldConfig(image_size=size, **{**full["world"], "resolution": 8 if cuda else 4, "questions_per_scene": 1})
    data = generate(world, 2_000 if cuda else 200, seed=0)
    tokens, lengths = data.encode()
    model = dict(full["model"], **({} if cuda else {"embed_dim": 16, "stem_channels": 8}))
    config = MACConfig(num_words=len(data.word_vocab), num_classes=len(data.answer_vocab), image_size=size,
                       d=full["d"] if cuda else 16, p=full["p"] if cuda else 3, **model)
    steps = 20 if cuda else 3
    recipe = MACRecipe(lr=full["lr"], batch_size=full["batch_size"] if cuda else 16, ema_decay=full["ema_decay"],
                       steps=steps)
    precision = "bf16" if cuda else "no"
    monitor = AccuracyMonitor(data, tokens, lengths, every=steps, device=device)
    set_seed(0)
    start = time.perf_counter()
    history, _ = train(MACNetwork(config), data, tokens, lengths, recipe, seed=0, monitor=monitor,
                       mixed_precision=precision, compile=cuda, cpu=not cuda, progress=False)
    out = {"device": ledger.device_name(device), "train_steps": steps, "train_s": time.perf_counter() - start,
           "final_loss": history[-1]["loss"], "monitor_accuracy": monitor.curve[-1][2]}
    n = recipe.batch_size
    batch = (data.images[data.scene[:n]], tokens[:n], lengths[:n], data.answers[:n])
    set_seed(0)
    out["eager"] = throughput(MACNetwork(config), batch, recipe, warmup=2, repeats=10 if cuda else 2, cpu=not cuda)
    if cuda:
        set_seed(0)
        out["bf16_compile"] = throughput(MACNetwork(config), batch, recipe, warmup=5, repeats=20,
                                         mixed_precision="bf16", compile=True)
    else:
        out["skipped"] = ["bf16 autocast", "torch.compile", "the full model size (toy: d=16, p=3, 32 px)"]
    return out
