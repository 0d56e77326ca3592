r"""The comparison: single-task baselines and every weighting method, over several seeds.

Each run trains a :class:`~moderndl.multitask.model.HardSharingNet` through the core
``moderndl.train.Loop`` with a custom step (the weighting fills the gradients), then
evaluates it on held-out canvases. A single-task baseline is the same network with one
head, trained for the same number of steps.

The multitask improvement follows LibMTL (Lin & Zhang 2023, arXiv:2203.02288, after
Maninis et al. 2019):

$$\Delta_m = \frac{100\%}{T} \sum_{t=1}^{T} (-1)^{\delta_t} \frac{M_{m,t} - M_{b,t}}{M_{b,t}},$$

with $M_{m,t}$ the multitask model's metric on task $t$, $M_{b,t}$ the single-task
baseline's, and $\delta_t = 1$ when lower is better (the regression's mean absolute error).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moderndl.data.multimnist import Task
from moderndl.multitask.model import HardSharingConfig, HardSharingNet, evaluate, task_losses
from moderndl.multitask.weighting import (
    METHODS,
    Weighting,
    check_losses,
    make_weighting,
    pairwise_cosine,
    pcgrad,
    task_gradients,
)
from moderndl.seed import set_seed
from moderndl.train import Loop, TrainConfig, batches

SINGLE = "single"  # the name of the single-task baselines in result tables


@dataclass(frozen=True)
class ExperimentConfig:
    """One run's budget. Adam at ``lr`` for the network, ``weight_lr`` for the weighting's parameters."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3  # Adam's default step size
    weight_lr: float = 0.05  # log-variances and GradNorm weights: fast enough to track the falling losses
    hidden: tuple[int, ...] = (128, 64)
    probe_every: int = 10  # steps between measurements of the task-gradient cosines
    log_every: int = 50
    mixed_precision: str = "no"  # "bf16" on GPU
    cpu: bool = False

    def __post_init__(self):
        if self.probe_every <= 0:
            raise ValueError(f"probe_every must be positive, got {self.probe_every}")


@dataclass
class RunResult:
    """One trained network: its method, seed, tasks, test metrics and per-step history."""

    method: str
    seed: int
    tasks: tuple[str, ...]
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(repr=False)
    wall_s: float = 0.0


def pair_names(names: Sequence[str]) -> list[tuple[int, int, str]]:
    """Every unordered pair of tasks, ``(i, j, "a~b")``."""
    return [(i, j, f"{names[i]}~{names[j]}") for i in range(len(names)) for j in range(i + 1, len(names))]


def _cosine_logs(prefix: str, grads: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    cos = pairwise_cosine(grads)  # (T, T)
    return {f"{prefix}/{key}": cos[i, j] for i, j, key in pair_names(names)}


def _pair_projected_cosines(grads: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Cosine of each pair after PCGrad projects that pair alone (``cos_pc2/a~b``): Yu et al.'s
    two-task case, where the projection provably leaves no conflict."""
    logs = {}
    for i, j, key in pair_names(names):
        pair = pcgrad(grads[[i, j]])  # (2, P); for two tasks the visiting order does not matter
        logs[f"cos_pc2/{key}"] = pairwise_cosine(pair)[0, 1]
    return logs


def make_step(loop: Loop, tasks: Sequence[Task], probe_every: int):
    """The custom step for ``Loop.run``: forward, check the losses, let the weighting fill the grads.

    Every ``probe_every`` steps it logs the pairwise cosines of the task gradients on the
    shared trunk (``cos/a~b``); under PCGrad it also logs them every step after the projection
    of all tasks (``cos_pc/a~b``) and after projecting each pair alone (``cos_pc2/a~b``).
    """
    model, optimizer, weighting = loop["model"], loop["optimizer"], loop["weighting"]
    names = [t.name for t in tasks]
    shared = model.shared_parameters()
    gradnorm_layer = model.shared_layer()

    def step(batch: tuple[torch.Tensor, dict[str, torch.Tensor]], t: int) -> dict[str, Any]:
        x, targets = batch
        model.train()
        with loop.autocast():
            z, outputs = model(x)  # (B, D), {task: (B, k)}
            losses = task_losses(outputs, targets, tasks)  # (T,)
        check_losses(losses, names, step=t + 1)
        logs: dict[str, Any] = {f"loss/{n}": losses[i].detach() for i, n in enumerate(names)}
        if len(tasks) > 1 and t % probe_every == 0:
            logs.update(_cosine_logs("cos", task_gradients(losses, shared).detach(), names))
        optimizer.zero_grad(set_to_none=True)
        update = weighting.backward(losses, shared=gradnorm_layer if weighting.name == "gradnorm" else shared,
                                    representation=z, backward=loop.backward)
        optimizer.step()
        weighting.after_step()
        logs.update({f"weight/{n}": update.weights[i] for i, n in enumerate(names)})
        if update.projected is not None and len(tasks) > 1:
            logs.update(_cosine_logs("cos_pc", update.projected, names))
            logs.update(_pair_projected_cosines(update.grads, names))
        return logs

    return step


def train(method: str, tasks: Sequence[Task], train_data, test_data, config: ExperimentConfig, seed: int,
          checkpoint_dir: str | Path | None = None, resume: bool = False) -> RunResult:
    """Train one network with ``method`` on ``tasks`` and evaluate it; the baselines use one task.

    ``train_data`` and ``test_data`` are ``(x, {task: y})`` as from ``load_multimnist``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    started = time.perf_counter()
    x, targets = train_data
    names = [t.name for t in tasks]
    set_seed(seed)
    model = HardSharingNet(tasks, HardSharingConfig(in_features=x[0].numel(), hidden=config.hidden))
    weighting: Weighting = make_weighting(method, [t.kind for t in tasks], seed=seed)
    groups = [{"params": model.parameters(), "lr": config.lr}]
    if any(True for _ in weighting.parameters()):
        groups.append({"params": weighting.parameters(), "lr": config.weight_lr})
    optimizer = torch.optim.Adam(groups)
    loop_config = TrainConfig(steps=config.steps, log_every=config.log_every, checkpoint_dir=checkpoint_dir,
                              mixed_precision=config.mixed_precision, cpu=config.cpu,
                              desc=f"{method}[{','.join(names)}] seed {seed}")
    loop = Loop(loop_config, model=model, optimizer=optimizer, weighting=weighting)
    sampler = batches(x, *[targets[n] for n in names], batch_size=config.batch_size, seed=seed)

    def data(t: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        xb, *ys = sampler(t)  # (B, 1, H, W), T x (B,)
        return xb, dict(zip(names, ys, strict=True))

    history = loop.run(make_step(loop, tasks, config.probe_every), data, resume=resume)
    metrics = evaluate(loop.accelerator.unwrap_model(loop["model"]), test_data[0], test_data[1])
    return RunResult(method, seed, tuple(names), metrics, history, time.perf_counter() - started)


def run_grid(methods: Sequence[str], seeds: Sequence[int], tasks: Sequence[Task], train_data, test_data,
             config: ExperimentConfig) -> list[RunResult]:
    """Single-task baselines (one run per task and seed), then every method on all tasks per seed."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid methods: {', '.join(METHODS)}")
    results = []
    for seed in seeds:
        for task in tasks:
            r = train("equal", [task], train_data, test_data, config, seed)
            results.append(RunResult(SINGLE, seed, r.tasks, r.metrics, r.history, r.wall_s))
    for method in methods:
        for seed in seeds:
            results.append(train(method, tasks, train_data, test_data, config, seed))
    return results


def baseline(results: Sequence[RunResult], tasks: Sequence[Task]) -> dict[str, float]:
    """$M_{b,t}$: the single-task metric of each task, averaged over seeds."""
    out = {}
    for t in tasks:
        values = [r.metrics[t.name] for r in results if r.method == SINGLE and r.tasks == (t.name,)]
        if not values:
            raise ValueError(f"no single-task baseline for task {t.name!r}")
        out[t.name] = float(np.mean(values))
    return out


def delta_m(metrics: Mapping[str, float], base: Mapping[str, float], tasks: Sequence[Task]) -> float:
    """$\\Delta_m$ in percent (LibMTL): mean relative improvement, sign-flipped where lower is better."""
    total = 0.0
    for t in tasks:
        sign = 1.0 if t.higher_is_better else -1.0  # (-1)^delta_t
        total += sign * (metrics[t.name] - base[t.name]) / base[t.name]
    return 100.0 * total / len(tasks)


def summarize(results: Sequence[RunResult], tasks: Sequence[Task]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {task or "delta_m": (mean, std over seeds)}}``, the baselines first."""
    base = baseline(results, tasks)
    table: dict[str, dict[str, tuple[float, float]]] = {
        SINGLE: {t.name: (base[t.name], float(np.std([r.metrics[t.name] for r in results
                                                       if r.method == SINGLE and r.tasks == (t.name,)])))
                 for t in tasks},
    }
    table[SINGLE]["delta_m"] = (0.0, 0.0)
    for method in dict.fromkeys(r.method for r in results if r.method != SINGLE):
        runs = [r for r in results if r.method == method]
        row = {t.name: _mean_std([r.metrics[t.name] for r in runs]) for t in tasks}
        row["delta_m"] = _mean_std([delta_m(r.metrics, base, tasks) for r in runs])
        table[method] = row
    return table


def ranking(table: Mapping[str, Mapping[str, tuple[float, float]]]) -> list[str]:
    """Multitask methods ordered by mean $\\Delta_m$, best first."""
    methods = [m for m in table if m != SINGLE]
    return sorted(methods, key=lambda m: -table[m]["delta_m"][0])


def series(history: Sequence[Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one logged quantity, for the steps where it was logged."""
    rows = [(h["step"], h[key]) for h in history if key in h]
    if not rows:
        raise KeyError(f"{key!r} was never logged; logged keys: {sorted({k for h in history for k in h})}")
    steps, values = zip(*rows, strict=True)
    return np.asarray(steps), np.asarray(values)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))
