r"""ZeRO-Offload on one GPU through accelerate + DeepSpeed (the chapter's full profile; needs CUDA).

Papers: Rajbhandari et al., "ZeRO", SC 2020, arXiv:1910.02054; Ren et al., "ZeRO-Offload:
Democratizing Billion-Scale Model Training", USENIX ATC 2021, arXiv:2101.06840. With the
optimizer offloaded, the GPU keeps the bf16 parameters and streams the bf16 gradients to the
CPU, which keeps the fp32 master weights and the moments. Model states on the GPU and CPU:

$$ M_{\text{GPU}} \approx 2\Psi \;(+\ \text{gradient buckets and activations}), \qquad
   M_{\text{CPU}} \approx (2 + K)\,\Psi, \quad K = 12, $$

against $(2 + 2 + K)\,\Psi = 16\Psi$ on the GPU for plain mixed-precision Adam.

Run it with the chapter's accelerate config (``accelerate_deepspeed.yaml`` next to this file)::

    accelerate launch --config_file lib/moderndl/zero/accelerate_deepspeed.yaml \
        -m moderndl.zero.offload --params 1.5e9 --gpu-cap-gb 16 --out offload.json

and without ``--config_file`` (``python -m moderndl.zero.offload --plain``) for plain Adam.
``--gpu-cap-gb`` caps the memory this process may allocate on the GPU
(``torch.cuda.set_per_process_memory_fraction``), so that a model whose plain Adam states do not
fit the cap can be shown to train with offload on any large GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from moderndl.seed import set_seed
from moderndl.train import TrainConfig, fit


@dataclass(frozen=True)
class OffloadConfig:
    """A stack of square bf16 linear layers with about ``params`` parameters."""

    params: float = 1.5e9  # 16 bytes x 1.5e9 = 24 GB of plain-Adam states: more than a 16 GB cap
    width: int = 8192  # one layer: 8192^2 + 8192 = 67M parameters
    batch_size: int = 8
    steps: int = 5
    lr: float = 1e-4
    seed: int = 0

    @property
    def layers(self) -> int:
        return max(1, math.ceil(self.params / (self.width * self.width + self.width)))


def big_mlp(config: OffloadConfig) -> nn.Sequential:
    set_seed(config.seed)
    blocks: list[nn.Module] = []
    for _ in range(config.layers):
        blocks += [nn.Linear(config.width, config.width), nn.GELU()]
    return nn.Sequential(*blocks)


def regression_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x).float(), y)


def train(config: OffloadConfig, *, plain: bool, gpu_cap_gb: float | None, cpu: bool = False) -> dict:
    """Train ``config`` for a few steps; return the peak GPU memory and the model-state bytes.

    ``cpu=True`` runs the same accelerate + DeepSpeed path on CPU at toy size (the dry
    profile's check that it does not crash), with ``torch.optim.AdamW`` inside DeepSpeed
    instead of its compiled CPU Adam; there is no GPU memory to report then.
    """
    if not cpu and not torch.cuda.is_available():
        raise RuntimeError("moderndl.zero.offload needs a CUDA GPU (the chapter's full profile); "
                           "pass cpu=True (--cpu) for the toy CPU check")
    if gpu_cap_gb is not None and not cpu:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpu_cap_gb * 1e9 / total))
    model = big_mlp(config)
    psi = sum(p.numel() for p in model.parameters())
    if plain or cpu:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    else:
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # ZeRO-Offload's CPU Adam (JIT-built on first use)

        optimizer = DeepSpeedCPUAdam(model.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    x = torch.randn(config.batch_size, config.width, generator=g)  # (B, width)
    y = torch.randn(config.batch_size, config.width, generator=g)  # (B, width)
    if not plain and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        # Under `accelerate launch` with the DeepSpeed config: build the shared accelerator state
        # from the launcher's environment, then give DeepSpeed its micro-batch size, which it
        # would otherwise read from a prepared DataLoader (fit's data is a step-indexed function).
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        if cpu:  # DeepSpeed's CPU accelerator would JIT-compile a shared-memory all-reduce (minutes)
            import deepspeed

            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False

        # On CPU: fp32, and cpu=False so that accelerate keeps the DeepSpeed plugin (its CPU
        # accelerator); the Loop's own Accelerator then joins this shared state.
        Accelerator(mixed_precision="no" if cpu else "bf16")
        ds_config = AcceleratorState().deepspeed_plugin.deepspeed_config
        ds_config["train_micro_batch_size_per_gpu"] = config.batch_size
        if cpu:
            ds_config["zero_force_ds_cpu_optimizer"] = False  # torch's AdamW: nothing to compile
    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    loop_config = TrainConfig(steps=config.steps, log_every=1, mixed_precision="no" if cpu else "bf16", cpu=cpu,
                         desc="plain Adam" if plain else "ZeRO-Offload")
    status, history, stage = "ok", [], None
    try:
        history, loop = fit(model, optimizer, regression_loss, lambda t: (x, y), loop_config)
        plugin = loop.accelerator.state.deepspeed_plugin
        stage = plugin.zero_stage if plugin is not None else None
    except torch.cuda.OutOfMemoryError as err:
        status = f"out of memory: {str(err).splitlines()[0]}"
    return {"config": asdict(config), "plain": plain, "psi": psi, "status": status, "zero_stage": stage,
            "peak_gpu_bytes": None if cpu else torch.cuda.max_memory_allocated(), "gpu_cap_gb": gpu_cap_gb,
            "loss": [h["loss"] for h in history]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=OffloadConfig.params)
    parser.add_argument("--width", type=int, default=OffloadConfig.width)
    parser.add_argument("--steps", type=int, default=OffloadConfig.steps)
    parser.add_argument("--gpu-cap-gb", type=float, default=None)
    parser.add_argument("--plain", action="store_true", help="plain AdamW on the GPU, no DeepSpeed")
    parser.add_argument("--cpu", action="store_true", help="the same path on CPU at toy size (no GPU needed)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    config = OffloadConfig(params=args.params, width=args.width, steps=args.steps)
    result = train(config, plain=args.plain, gpu_cap_gb=args.gpu_cap_gb, cpu=args.cpu)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
