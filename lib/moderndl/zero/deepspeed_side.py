"""The same workload under DeepSpeed ZeRO stages 1-3, through DeepSpeed's own launcher on CPU.

Paper: Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", SC 2020, arXiv:1910.02054; DeepSpeed is the paper's implementation. Each rank keeps
Adam's moments $m, v$ for its partition only, so per rank

$$ |m| + |v| = 2\\,\\lceil \\Psi / N_d \\rceil \\quad (\\text{up to DeepSpeed's alignment padding}). $$

:func:`launch` runs ``deepspeed --num_gpus N --module moderndl.zero.deepspeed_side ...``; on a
machine without GPUs DeepSpeed picks its CPU accelerator and the gloo backend by itself. The
optimizer is ``"torch_adam": true`` (``torch.optim.Adam`` inside DeepSpeed's partitioned
optimizer), so no fused kernel has to be compiled. :func:`main` is what each rank runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from moderndl.measure import time_it
from moderndl.zero import peak
from moderndl.zero.launch import free_port
from moderndl.zero.libraries import build
from moderndl.zero.workload import Workload, loss_fn


def ds_config(work: Workload, world_size: int, stage: int, bucket_numel: int = 500_000_000) -> dict[str, Any]:
    """DeepSpeed's JSON config for ``work`` at ``stage``: fp32, torch's Adam, gloo on CPU.

    ``stage3_param_persistence_threshold`` is 0: DeepSpeed's default (1e5 elements) keeps
    every smaller parameter whole on every rank, which at this chapter's sizes would be all
    of them. The reduce and all-gather buckets are ``bucket_numel`` elements, as ours.
    ``gradient_clipping`` is 0 (off), as in plain Adam: DeepSpeed 0.19's default is 1.0
    (``GRADIENT_CLIPPING_DEFAULT`` in ``deepspeed/runtime/constants.py``), which rescales every
    gradient whose global norm exceeds 1 (the laptop transformer's first gradient has norm 2.6).
    """
    return {
        "train_micro_batch_size_per_gpu": work.batch_size // world_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 0.0,  # off, as plain Adam; DeepSpeed's default clips the global norm to 1.0
        "optimizer": {"type": "Adam", "params": {"lr": work.lr, "torch_adam": True, "adam_w_mode": False}},
        "zero_optimization": {"stage": stage, "stage3_param_persistence_threshold": 0,
                              "reduce_bucket_size": bucket_numel, "allgather_bucket_size": bucket_numel,
                              "stage3_prefetch_bucket_size": bucket_numel},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _moments(optimizer: Any) -> int:
    """Elements of ``exp_avg`` and ``exp_avg_sq`` held by the torch optimizer inside DeepSpeed's."""
    base = getattr(optimizer, "optimizer", optimizer)
    return sum(s[k].numel() for s in base.state.values() for k in ("exp_avg", "exp_avg_sq") if k in s)


def _master(optimizer: Any) -> int:
    """Elements of the fp32 master partition on this rank (stages 1-2 and 3 name it differently)."""
    groups = getattr(optimizer, "single_partition_of_fp32_groups", None)
    if groups is None:
        groups = getattr(optimizer, "fp32_partitioned_groups_flat", [])
    return sum(t.numel() for t in groups)


def _gathered(engine: Any, stage: int) -> dict[str, torch.Tensor]:
    import deepspeed

    params = list(engine.module.parameters())
    if stage == 3:
        with deepspeed.zero.GatheredParameters(params):
            return {n: p.detach().float().clone() for n, p in engine.module.named_parameters()}
    return {n: p.detach().float().clone() for n, p in engine.module.named_parameters()}


def _partition(engine: Any, stage: int) -> dict[str, int]:
    """This rank's share of the parameters as DeepSpeed holds them: in stage 3 each parameter's
    ``ds_tensor`` partition (and how many stay whole, ``ds_persist``); in stages 1-2 the whole."""
    params = list(engine.module.parameters())
    if stage == 3:
        return {"param_elements": sum(p.ds_tensor.numel() for p in params),
                "persistent_params": sum(bool(getattr(p, "ds_persist", False)) for p in params)}
    return {"param_elements": sum(p.numel() for p in params), "persistent_params": len(params)}


def train_stage(work: Workload, stage: int, rank: int, world_size: int, bucket_numel: int,
                rounds: int, repeats: int) -> dict[str, Any]:
    """One DeepSpeed run on this rank: trajectory, peak memory, partition, and step time
    against DDP in interleaved rounds; returns element counts, losses and (rank 0) parameters."""
    import deepspeed

    data = work.data(rank, world_size, work.tensors())
    losses = []
    with peak.trace() as tr:
        model = work.model()
        engine, optimizer, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                                       config=ds_config(work, world_size, stage, bucket_numel))

        def step(batch):
            loss = loss_fn(engine, batch)
            engine.backward(loss)
            engine.step()
            return loss.detach()

        for t in range(work.steps):
            batch = data(t)
            with tr.step():
                losses.append(float(step(batch)))
    params = _gathered(engine, stage)  # a collective in stage 3: every rank calls it
    ddp = build("ddp", work, world_size, bucket_numel)
    batch = data(0)
    times: dict[str, list[float]] = {"ddp": [], "deepspeed": []}
    for _ in range(rounds):
        for name, fn in (("ddp", ddp.step), ("deepspeed", step)):
            torch.distributed.barrier()
            times[name].append(time_it(lambda fn=fn: fn(batch), warmup=1, repeats=repeats)["median_s"])
    return {"stage": stage, "rank": rank, "n_d": world_size, "optimizer": type(optimizer).__name__,
            "moments": _moments(optimizer), "master": _master(optimizer), **_partition(engine, stage),
            "peak_bytes": tr.peak(), "rounds": times, "loss": losses, "params": params if rank == 0 else None}


def main(argv: list[str] | None = None) -> None:
    """Entry point of each rank under ``deepspeed --module moderndl.zero.deepspeed_side``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local_rank", type=int, default=0)  # passed by DeepSpeed's launcher
    parser.add_argument("--stages", default="1,2,3")
    parser.add_argument("--workload", default="{}", help="Workload fields as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--bucket-numel", type=int, default=500_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shm", action="store_true",
                        help="build DeepSpeed's optional shared-memory all-reduce kernel (about 40 s the first time)")
    args = parser.parse_args(argv)
    import deepspeed

    if not args.shm:
        # DeepSpeed's CPU accelerator JIT-compiles a shared-memory all-reduce kernel at start-up;
        # without it every collective goes through torch.distributed's gloo backend.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    fields = json.loads(args.workload)
    work = Workload(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    for stage in (int(s) for s in args.stages.split(",")):
        record = train_stage(work, stage, rank, world_size, args.bucket_numel, args.rounds, args.repeats)
        torch.save(record, Path(args.out) / f"stage{stage}_rank{rank}.pt")


def launch(work: Workload, world_size: int, stages: tuple[int, ...], out: Path, *, timeout: float = 600,
           shm: bool = False, bucket_numel: int = 500_000_000, rounds: int = 3,
           repeats: int = 3) -> list[dict[str, Any]]:
    """Run ``deepspeed --num_gpus world_size --module moderndl.zero.deepspeed_side``; return the records.

    The ranks are CPU processes on gloo even on a GPU machine: the launcher would otherwise
    give each of ``world_size`` ranks a CUDA device, whether or not that many exist. So the
    launch sees no CUDA device and DeepSpeed's CPU accelerator.
    """
    bad = [s for s in stages if s not in (1, 2, 3)]
    if bad:
        raise ValueError(f"DeepSpeed ZeRO stages must be in (1, 2, 3), got {bad}")
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"N_d (world_size) must be an int >= 1, got {world_size!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("stage*_rank*.pt"):
        old.unlink()
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    if launcher is None:
        raise RuntimeError("DeepSpeed's launcher `deepspeed` is not on PATH; pip install deepspeed==0.19.8")
    cmd = [launcher, "--num_gpus", str(world_size), "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "--module", "moderndl.zero.deepspeed_side", "--stages", ",".join(map(str, stages)),
           "--workload", json.dumps(asdict(work)), "--out", str(out), "--bucket-numel", str(bucket_numel),
           "--rounds", str(rounds), "--repeats", str(repeats)] + (["--shm"] if shm else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"DeepSpeed launcher failed ({done.returncode}): {' '.join(cmd)}\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    return [torch.load(out / f"stage{s}_rank{r}.pt", weights_only=False) for s in stages for r in range(world_size)]


if __name__ == "__main__":
    main()
