"""The ZeRO chapter's part of ``make gpu-check``: our stages on one device, DeepSpeed on CPU ranks,
and ZeRO-Offload through accelerate (Rajbhandari et al. 2020, arXiv:1910.02054; Ren et al. 2021).

:func:`gpu_check` runs, for a short fixed budget:

- our partitioner, stages 0-3, on a one-rank process group of ``device`` (NCCL on CUDA, gloo
  on CPU) with the full profile's transformer (toy size on CPU): step throughput by
  :func:`moderndl.measure.train_throughput`, peak memory per step, and the distance of the
  fp32 trajectory from plain Adam;
- on CUDA, the DeepSpeed launch of two CPU gloo ranks, which must not pick CUDA devices, and
  the ZeRO-Offload run through ``accelerate launch`` at a reduced size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from moderndl.measure import train_throughput
from moderndl.zero import deepspeed_side, peak, scales
from moderndl.zero import experiments as ex
from moderndl.zero.chapter import workload
from moderndl.zero.launch import free_port
from moderndl.zero.partition import ZeroConfig, ZeroDataParallel
from moderndl.zero.workload import loss_fn


def _one_rank(device: torch.device) -> None:
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)


def stage_rows(work, device: torch.device, dtype: torch.dtype, repeats: int) -> list[dict[str, Any]]:
    """Per stage on one rank: items/s, peak bytes of a step, max |diff| from Adam after ``work.steps``."""
    reference, _ = ex.reference_adam(work) if dtype == torch.float32 else ({}, None)
    data = work.data()
    rows = []
    for stage in range(4):
        with peak.trace(device) as tr:
            model = work.model().to(device)
            engine = ZeroDataParallel(model, ZeroConfig(stage=stage, world_size=1, lr=work.lr, param_dtype=dtype,
                                                        bucket_numel=scales.TABLE["full"]["bucket_numel"]))

            def step(batch, model=model, engine=engine):
                loss_fn(model, batch).backward()
                engine.step()
                engine.zero_grad()

            for t in range(work.steps):
                batch = tuple(x.to(device) for x in data(t))
                with tr.step():
                    step(batch)
        params = engine.full_parameters()
        diff = max(((params[k].cpu() - v).abs().max().item() for k, v in reference.items()), default=None)
        batch = tuple(x.to(device) for x in data(0))
        speed = train_throughput(lambda batch=batch, step=step: step(batch), work.batch_size * work.seq_len,
                                 warmup=1, repeats=repeats, device=device)
        rows.append({"stage": stage, "tokens_per_s": speed["items_per_s"], "median_s": speed["median_s"],
                     "peak_bytes": tr.peak(), "max_abs_diff_vs_adam": diff})
    return rows


def gpu_check(device: torch.device, toy: bool) -> dict[str, Any]:
    """The full profile's paths for a short budget (toy size on CPU); see the module docstring."""
    full = dict(scales.TABLE["dry" if toy else "full"])
    work = replace(workload(full, 0), steps=2)
    started = dist.is_initialized()
    if not started:
        _one_rank(device)
    try:
        dtype = torch.float32 if toy else torch.bfloat16  # the full profile's 2-byte states on a GPU
        out: dict[str, Any] = {"psi": work.num_params(), "stages": stage_rows(work, device, dtype, 2 if toy else 5)}
    finally:
        if not started:
            dist.destroy_process_group()
    if toy:
        out["skipped"] = ["several ranks (the two-rank test and the notebook run them)",
                          "DeepSpeed launch (the dry profile runs it)", "ZeRO-Offload (needs CUDA)"]
        return out
    with tempfile.TemporaryDirectory() as tmp:
        records = deepspeed_side.launch(work, 2, (2, 3), Path(tmp) / "ds", bucket_numel=full["bucket_numel"],
                                        rounds=1, repeats=1)
        out["deepspeed_cpu_ranks"] = [{k: r[k] for k in ("stage", "rank", "param_elements", "peak_bytes")}
                                      for r in records]
        out["offload"] = offload_run(Path(tmp), params=2e8)
    return out


def offload_run(tmp: Path, *, params: float, cpu: bool = False) -> dict[str, Any]:
    """``accelerate launch`` the ZeRO-Offload script with the chapter's DeepSpeed config."""
    import json

    config = Path(deepspeed_side.__file__).with_name("accelerate_deepspeed.yaml")
    out = tmp / "offload.json"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    cmd += ["-m", "moderndl.zero.offload", "--params", str(params), "--out", str(out)]
    if cpu:
        cmd += ["--width", "64", "--steps", "2", "--cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if cpu:
        env.update(DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"ZeRO-Offload launch failed ({done.returncode}): {' '.join(cmd)}\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    return json.loads(out.read_text())
