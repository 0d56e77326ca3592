"""Rank programs for the chapter: train each ZeRO stage, measure it, time it against DDP.

Rajbhandari et al. 2020, arXiv:1910.02054: Section 5 (memory per stage) and Section 7
(communication per step: $2\\Psi$ for DP, $P_{os}$ and $P_{os+g}$; $3\\Psi$ for $P_{os+g+p}$).
:func:`run` spawns $\\max N_d$ gloo ranks once; each smaller $N_d$ runs on a sub-group of the
first $N_d$ ranks, so one process launch serves every measurement. Training goes through
the book's :class:`moderndl.train.Loop`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from moderndl.measure import time_it
from moderndl.train import Loop, TrainConfig, fit
from moderndl.zero.launch import spawn
from moderndl.zero.memory import STAGES
from moderndl.zero.partition import ZeroConfig, ZeroDataParallel
from moderndl.zero.workload import Workload, digits, loss_fn

Tensors = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Benchmark:
    """Step time of DDP and ZeRO stages on the same ranks, fp32, median after warmup."""

    workload: Workload = Workload(sizes=(64, 512, 512, 512, 10), batch_size=128)
    stages: tuple[int, ...] = (1, 2, 3)
    warmup: int = 3
    repeats: int = 5  # timed calls per round
    rounds: int = 3  # methods alternate round by round, so a load spike hits them all alike


@dataclass(frozen=True)
class Plan:
    """What the ranks train and measure: every (dtype, stage) at every N_d, then the benchmark."""

    workload: Workload = field(default_factory=Workload)
    n_ds: tuple[int, ...] = (2, 4)
    stages: tuple[int, ...] = STAGES
    dtypes: tuple[str, ...] = ("float32", "bfloat16")  # float32: exact Adam reference; bfloat16: 2-byte states
    benchmark: Benchmark | None = None
    bench_n_d: int | None = None  # ranks the benchmark runs on; default max(n_ds)

    def __post_init__(self):
        if not self.n_ds or min(self.n_ds) < 1:
            raise ValueError(f"n_ds must be non-empty with every N_d >= 1, got {self.n_ds}")
        if self.bench_n_d is not None and not 1 <= self.bench_n_d <= max(self.n_ds):
            raise ValueError(f"bench_n_d must be in [1, max(n_ds) = {max(self.n_ds)}], got {self.bench_n_d}")

    @property
    def world_size(self) -> int:
        return max(self.n_ds)


def train_stage(rank: int, world_size: int, work: Workload, stage: int, dtype: str, tensors: Tensors,
                group: dist.ProcessGroup | None = None) -> dict[str, Any]:
    """Train ``work`` with one ZeRO stage on this rank; return its per-step and final measurements."""
    model = work.model()
    config = ZeroConfig(stage=stage, world_size=world_size, lr=work.lr, param_dtype=getattr(torch, dtype))
    engine = ZeroDataParallel(model, config, group)
    comm, ring = [], []

    def step(batch, t):
        engine.comm.reset()
        loss = loss_fn(model, batch)
        loss.backward()
        engine.step()
        engine.zero_grad()
        comm.append(engine.comm.elements)
        ring.append(engine.comm.ring_elements)
        return {"loss": loss.detach()}

    loop = Loop(TrainConfig(steps=work.steps, log_every=work.steps, cpu=True, progress=False,
                            desc=f"ZeRO stage {stage} rank {rank}/{world_size}"))
    history = loop.run(step, work.data(rank, world_size, tensors))
    params = engine.full_parameters()  # a collective in stage 3: every rank calls it
    return {
        "stage": stage, "dtype": dtype, "n_d": world_size, "rank": rank,
        "psi": engine.psi, "padded_psi": engine.padded_psi(),
        "bytes": engine.state_bytes(), "moments": engine.optimizer_elements(),
        "comm_elements": comm, "ring_elements": ring, "comm_calls": engine.comm.calls,
        "loss": [h["loss"] for h in history],
        "params": params if rank == 0 else None,
    }


def plan_rank(rank: int, world_size: int, plan: Plan, tensors: Tensors) -> dict[str, Any]:
    """Everything one rank does: each N_d on the sub-group of ranks ``[0, N_d)``, then the benchmark."""
    runs = []
    for n_d in plan.n_ds:
        group = dist.new_group(list(range(n_d)))  # every rank must take part in creating it
        if rank < n_d:
            runs += [train_stage(rank, n_d, plan.workload, stage, dtype, tensors, group)
                     for dtype in plan.dtypes for stage in plan.stages]
        dist.barrier()
    bench = None
    if plan.benchmark:
        n_d = plan.bench_n_d or world_size
        group = dist.new_group(list(range(n_d)))
        if rank < n_d:
            bench = benchmark_rank(rank, n_d, plan.benchmark, tensors, group)
        dist.barrier()
    return {"runs": runs, "bench": bench}


def run(plan: Plan) -> dict[str, Any]:
    """Spawn ``max(n_ds)`` gloo ranks on CPU; return every rank's run records and the benchmark."""
    per_rank = spawn(plan_rank, plan.world_size, plan, digits())
    runs = [r for out in per_rank for r in out["runs"]]
    bench = None
    if plan.benchmark:
        timed = [out["bench"] for out in per_rank if out["bench"] is not None]
        times = {k: max(t[k] for t in timed) for k in timed[0]}  # the slowest rank
        bench = {**times, **{f"{k}_over_ddp": v / times["ddp"] for k, v in times.items() if k != "ddp"}}
    return {"runs": runs, "bench": bench}


def reference_adam(work: Workload, tensors: Tensors | None = None) -> tuple[dict[str, torch.Tensor], list[float]]:
    """One process, plain ``torch.optim.Adam`` on the full global batch: the trajectory to match."""
    model = work.model()
    optimizer = torch.optim.Adam(model.parameters(), lr=work.lr)
    config = TrainConfig(steps=work.steps, log_every=work.steps, cpu=True, desc="reference Adam")
    history, loop = fit(model, optimizer, loss_fn, work.data(0, 1, tensors), config)
    trained = loop.accelerator.unwrap_model(loop["model"])
    return {n: p.detach().float().clone() for n, p in trained.named_parameters()}, [h["loss"] for h in history]


# -- benchmark: step time against DDP ----------------------------------------------------------
def _ddp_step(work: Workload, batch: Tensors, group: dist.ProcessGroup | None):
    model = torch.nn.parallel.DistributedDataParallel(work.model(), process_group=group)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.lr)

    def step():
        optimizer.zero_grad(set_to_none=False)
        loss_fn(model, batch).backward()
        optimizer.step()

    return step


def _zero_step(work: Workload, batch: Tensors, stage: int, world_size: int, group: dist.ProcessGroup | None):
    model = work.model()
    engine = ZeroDataParallel(model, ZeroConfig(stage=stage, world_size=world_size, lr=work.lr,
                                                param_dtype=torch.float32), group)

    def step():
        loss_fn(model, batch).backward()
        engine.step()
        engine.zero_grad()

    return step


def benchmark_rank(rank: int, world_size: int, spec: Benchmark, tensors: Tensors,
                   group: dist.ProcessGroup | None = None) -> dict[str, float]:
    """Median step seconds per method on this rank (the collectives keep the ranks in lockstep).

    DDP is ``torch.nn.parallel.DistributedDataParallel`` with ``torch.optim.Adam``; the ZeRO stages
    are :class:`ZeroDataParallel`; all in fp32 on the same batch.
    """
    batch = spec.workload.data(rank, world_size, tensors)(0)
    steps = {"ddp": _ddp_step(spec.workload, batch, group)}
    steps.update({f"stage{s}": _zero_step(spec.workload, batch, s, world_size, group) for s in spec.stages})
    medians: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(spec.rounds):
        for name, fn in steps.items():
            dist.barrier(group=group)
            warmup = spec.warmup if r == 0 else 1
            medians[name].append(time_it(fn, warmup=warmup, repeats=spec.repeats)["median_s"])
    return {name: statistics.median(values) for name, values in medians.items()}
