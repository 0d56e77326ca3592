"""Rank programs for the chapter: train each ZeRO stage, measure it, and set it beside the libraries.

Rajbhandari et al. 2020, arXiv:1910.02054: Section 5 (memory per stage) and Section 7
(communication per step: $2\\Psi$ for DP, $P_{os}$ and $P_{os+g}$; $3\\Psi$ for $P_{os+g+p}$).
:func:`run` spawns $\\max N_d$ gloo ranks once; each smaller $N_d$ runs on a sub-group of the
first $N_d$ ranks, so one process launch serves every measurement. Each run's peak memory is
measured during its steps (:mod:`moderndl.zero.peak`). The side-by-side part then trains the
same workload with every method of :mod:`moderndl.zero.libraries` on all ranks: once in
float64, whose trajectory is compared with float64 Adam (the algorithm, with rounding far
below any real difference), then in float32, measuring each one's peak and timing them in
interleaved rounds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from moderndl.measure import time_it
from moderndl.train import TrainConfig, fit
from moderndl.zero import memory, peak
from moderndl.zero.launch import spawn
from moderndl.zero.libraries import METHODS, build, check_methods, exact
from moderndl.zero.memory import STAGES
from moderndl.zero.partition import ZeroConfig, ZeroDataParallel
from moderndl.zero.workload import Batch, Workload, loss_fn

DTYPES = ("float32", "bfloat16")  # float32: Adam up to rounding; bfloat16: 2-byte states like the paper's fp16
EXACT = torch.float64  # the side-by-side trajectory check: rounding ~1e9 x smaller than float32's


@dataclass(frozen=True)
class Plan:
    """What the ranks train and measure: every (dtype, stage) at every N_d, then the methods side by side."""

    workload: Workload = field(default_factory=Workload)
    n_ds: tuple[int, ...] = (2, 4)
    stages: tuple[int, ...] = STAGES
    dtypes: tuple[str, ...] = DTYPES
    bucket_numel: int = 500_000_000  # DeepSpeed's default reduce_bucket_size
    methods: tuple[str, ...] = METHODS  # side by side on max(n_ds) ranks, fp32; () skips it
    warmup: int = 1  # untimed steps per method and round
    repeats: int = 3  # timed steps per method and round
    rounds: int = 3  # methods alternate round by round, so a load spike hits them all alike

    def __post_init__(self):
        if not self.n_ds or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in self.n_ds):
            raise ValueError(f"n_ds must be non-empty ints >= 1, got {self.n_ds}")
        for stage in self.stages:
            memory.validate(1, stage)
        bad = [d for d in self.dtypes if d not in DTYPES]
        if bad:
            raise ValueError(f"dtypes {bad} not supported; valid: {DTYPES}")
        check_methods(self.methods)
        if self.methods and "ddp" not in self.methods:
            raise ValueError(f"methods {self.methods} must include 'ddp', the baseline of the step-time ratios")
        for name in ("bucket_numel", "repeats", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def world_size(self) -> int:
        return max(self.n_ds)


def activation_bytes(work: Workload, batch: Batch, dtype: torch.dtype) -> int:
    """Working memory of one forward and backward of the bare model, gradients preallocated:
    the activations autograd saves plus its temporaries (the $A$ of :mod:`moderndl.zero.peak`)."""
    model = work.model().to(dtype)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # accumulated in place: only activations and temporaries are new
    with peak.trace() as tr:
        with tr.step():
            loss_fn(model, batch).backward()
    (step,) = tr.step_peaks()
    return step["peak"] - step["before"]


def train_stage(rank: int, world_size: int, work: Workload, stage: int, dtype: str, tensors: Batch | None,
                group: dist.ProcessGroup | None = None, bucket_numel: int = 500_000_000) -> dict[str, Any]:
    """Train ``work`` with one ZeRO stage on this rank; return its per-step and final measurements."""
    data = work.data(rank, world_size, tensors)
    comm, ring = [], []
    with peak.trace() as tr:
        model = work.model()
        config = ZeroConfig(stage=stage, world_size=world_size, lr=work.lr, param_dtype=getattr(torch, dtype),
                            bucket_numel=bucket_numel)
        engine = ZeroDataParallel(model, config, group)

        # A plain loop, not the book's Loop: the Loop averages its logs over accelerate's world,
        # while this run may use a sub-group of the ranks (N_d < max N_d).
        losses = []
        for t in range(work.steps):
            batch = data(t)
            engine.comm.reset()
            with tr.step():
                loss = loss_fn(model, batch)
                loss.backward()
                engine.step()
                engine.zero_grad()
            comm.append(engine.comm.elements)
            ring.append(engine.comm.ring_elements)
            losses.append(float(loss.detach()))
    params = engine.full_parameters()  # a collective in stage 3: every rank calls it
    return {
        "stage": stage, "dtype": dtype, "n_d": world_size, "rank": rank,
        "psi": engine.psi, "padded_psi": engine.padded_psi(),
        "bytes": engine.state_bytes(), "moments": engine.optimizer_elements(),
        "peak_bytes": tr.peak(), "buffers": engine.named_buffers(),
        "activations": activation_bytes(work, data(0), getattr(torch, dtype)),
        "comm_elements": comm, "ring_elements": ring, "comm_calls": engine.comm.calls,
        "loss": losses,
        "params": params if rank == 0 else None,
    }


def side_by_side_rank(rank: int, world_size: int, plan: Plan, tensors: Batch | None) -> dict[str, Any]:
    """Every method on all ranks: its float64 trajectory, then (float32) trajectory and peak
    memory one method at a time, then step times in ``rounds`` interleaved rounds (the
    collectives keep the ranks in lockstep)."""
    work = plan.workload
    data = work.data(rank, world_size, tensors)
    exact_params = {}
    for method in plan.methods:
        runner = build(method, work, world_size, plan.bucket_numel, dtype=EXACT)
        for t in range(work.steps):
            runner.step(data(t))
        params = runner.parameters()  # a collective for the sharded methods
        exact_params[method] = params if rank == 0 else None
        del runner
    runners, records = {}, {}
    for method in plan.methods:
        with peak.trace() as tr:
            runner = build(method, work, world_size, plan.bucket_numel)
            losses = []
            for t in range(work.steps):
                batch = data(t)
                with tr.step():
                    losses.append(float(runner.step(batch)))
        params = runner.parameters()  # a collective for the sharded methods
        records[method] = {"peak_bytes": tr.peak(), "loss": losses, "params": params if rank == 0 else None,
                           "params_exact": exact_params[method]}
        runners[method] = runner
    batch = data(0)
    rounds: dict[str, list[float]] = {m: [] for m in runners}
    for _ in range(plan.rounds):
        for method, runner in runners.items():
            dist.barrier()
            timing = time_it(lambda runner=runner: runner.step(batch), warmup=plan.warmup, repeats=plan.repeats)
            rounds[method].append(timing["median_s"])
    return {"records": records, "rounds": rounds}


def plan_rank(rank: int, world_size: int, plan: Plan, tensors: Batch | None) -> dict[str, Any]:
    """Everything one rank does: each N_d on the sub-group of ranks ``[0, N_d)``, then the methods."""
    runs = []
    for n_d in plan.n_ds:
        group = dist.new_group(list(range(n_d)))  # every rank must take part in creating it
        if rank < n_d:
            runs += [train_stage(rank, n_d, plan.workload, stage, dtype, tensors, group, plan.bucket_numel)
                     for dtype in plan.dtypes for stage in plan.stages]
        dist.barrier()
    side = side_by_side_rank(rank, world_size, plan, tensors) if plan.methods else None
    return {"runs": runs, "side": side}


def run(plan: Plan) -> dict[str, Any]:
    """Spawn ``max(n_ds)`` gloo ranks on CPU; return every rank's run records and the side-by-side table."""
    per_rank = spawn(plan_rank, plan.world_size, plan, plan.workload.tensors())
    runs = [r for out in per_rank for r in out["runs"]]
    side = summarize_side(per_rank) if plan.methods else None
    return {"runs": runs, "side": side}


def summarize_side(per_rank: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: rank 0's parameters and losses, the largest rank's peak, and step times.

    A round's time is the slowest rank's median; the ratio to DDP is taken round by round
    (same round, same load), then its median and spread over rounds are reported.
    """
    sides = [out["side"] for out in per_rank]
    out = {}
    for method in sides[0]["records"]:
        per_round = [max(s["rounds"][method][r] for s in sides) for r in range(len(sides[0]["rounds"][method]))]
        ddp = [max(s["rounds"]["ddp"][r] for s in sides) for r in range(len(per_round))]
        ratios = [t / d for t, d in zip(per_round, ddp, strict=True)]
        out[method] = {"peak_bytes": max(s["records"][method]["peak_bytes"] for s in sides),
                       "peak_bytes_per_rank": [s["records"][method]["peak_bytes"] for s in sides],
                       "loss": sides[0]["records"][method]["loss"], "params": sides[0]["records"][method]["params"],
                       "params_exact": sides[0]["records"][method]["params_exact"],
                       "step_s": statistics.median(per_round), "step_s_rounds": per_round,
                       "ratio_to_ddp": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    return out


def reference_adam(work: Workload, tensors: Batch | None = None,
                   dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], list[float]]:
    """One process, plain ``torch.optim.Adam`` on the full global batch in ``dtype``: the trajectory to match."""
    model = work.model().to(dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.lr)
    config = TrainConfig(steps=work.steps, log_every=work.steps, cpu=True, desc="reference Adam", progress=False)
    history, loop = fit(model, optimizer, loss_fn, work.data(0, 1, tensors), config)
    trained = loop.unwrap("model")
    return {n: exact(p) for n, p in trained.named_parameters()}, [h["loss"] for h in history]
