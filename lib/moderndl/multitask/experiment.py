r"""One run, and the grid: single-task baselines and weighting methods over several seeds.

Each run trains a :class:`~moderndl.multitask.model.HardSharingNet` through the core
``moderndl.train.Loop`` with a custom step (the weighting fills the gradients), then
evaluates it on held-out canvases. A single-task baseline is the same network with one
head, trained for the same number of steps.

Every ``probe_every`` steps the step also measures, without changing the training (it
only reads gradients), the task gradients on the shared trunk: on each half of the batch
(``same/<t>``: one task on two disjoint half-batches; ``cross/<a>~<b>``: two tasks on two
disjoint half-batches, the same noise), on the whole batch (``cos/<a>~<b>``), and against
the update actually applied to the trunk (``upd/<t>``, the cosine of $g_t$ with it).

The multitask improvement follows LibMTL (Lin & Zhang 2023, arXiv:2203.02288, after
Maninis et al. 2019):

$$\Delta_m = \frac{100\%}{T} \sum_{t=1}^{T} (-1)^{\delta_t} \frac{M_{m,t} - M_{b,t}}{M_{b,t}},$$

with $M_{m,t}$ the multitask model's metric on task $t$, $M_{b,t}$ the single-task
baseline's (mean over seeds), and $\delta_t = 1$ when lower is better (the regression's
mean absolute error).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from moderndl import measure, parallel
from moderndl.multitask.base import flat_grad, mean_over_ranks, pairwise_cosine, task_gradients
from moderndl.multitask.model import HardSharingConfig, HardSharingNet, evaluate, task_losses
from moderndl.multitask.multimnist import Task
from moderndl.multitask.weighting import EXTRA, METHODS, check_losses, make_weighting
from moderndl.seed import set_seed
from moderndl.train import Loop, TrainConfig, batches, ranks

SINGLE = "single"  # the name of the single-task baselines in result tables


@dataclass(frozen=True)
class MultitaskRecipe:
    """One run's budget. Adam at ``lr`` for the network, ``weight_lr`` for the weighting's parameters."""

    steps: int = 300
    batch_size: int = 64  # global: split over ranks under torchrun
    lr: float = 1e-3  # Adam's default step size
    weight_lr: float = 0.05  # log-variances and GradNorm weights: fast enough to track the falling losses
    hidden: tuple[int, ...] = (128, 64)
    probe_every: int = 10  # steps between gradient probes; 0 turns them off (for timing)
    log_every: int = 50
    mixed_precision: str = "no"  # "bf16" on GPU
    cpu: bool = False
    progress: bool = False  # a tqdm bar per run (the grid shows one bar over its runs instead)
    workers: int = 1  # runs of a grid trained at once on CPU, one process each (moderndl.parallel)

    def __post_init__(self):
        if self.probe_every < 0:
            raise ValueError(f"probe_every must be >= 0 (0: no probes), got {self.probe_every}")


@dataclass(frozen=True)
class Spec:
    """A method under a label, with options for its weighting (``normalization``, ``weights``...)."""

    label: str
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """One trained network: its label, seed, tasks, test metrics and per-step history."""

    method: str
    seed: int
    tasks: tuple[str, ...]
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(repr=False)
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. Adam's second moment of the log-variances


def check_methods(methods: Sequence[str | Spec]) -> list[Spec]:
    """The methods as specs: at least one, each known, labels unique."""
    if not methods:
        raise ValueError(f"methods is empty; pick from {', '.join(METHODS)}")
    out = [m if isinstance(m, Spec) else Spec(m, m) for m in methods]
    unknown = [s.method for s in out if s.method not in METHODS + EXTRA]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid methods: {', '.join(METHODS)}")
    labels = [s.label for s in out]
    if len(set(labels)) != len(labels) or SINGLE in labels:
        raise ValueError(f"method labels must be unique and not {SINGLE!r}, got {labels}")
    return out


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """At least one seed, each a distinct non-negative int."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: a grid needs at least one seed (two for a standard error)")
    if len(set(seeds)) != len(seeds) or any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be distinct non-negative ints, got {seeds}")
    return seeds


def pair_names(names: Sequence[str]) -> list[tuple[int, int, str]]:
    """Every unordered pair of tasks, ``(i, j, "a~b")``."""
    return [(i, j, f"{names[i]}~{names[j]}") for i in range(len(names)) for j in range(i + 1, len(names))]


def probe(per_example: torch.Tensor, shared: Sequence[torch.Tensor], names: Sequence[str]) -> tuple[dict, torch.Tensor]:
    """Gradient cosines from per-example losses ``(T, B)``: same-task and cross-task across two
    disjoint half-batches, and task pairs on the whole batch. Returns the logs and the
    whole-batch task gradients ``(T, P)`` (averaged over ranks)."""
    B = per_example.shape[1]
    half = B // 2
    g_a = mean_over_ranks(task_gradients(per_example[:, :half].mean(1), shared).detach())  # (T, P)
    g_b = mean_over_ranks(task_gradients(per_example[:, half:2 * half].mean(1), shared).detach())  # (T, P)
    if B % 2 == 0:
        g = (g_a + g_b) / 2  # the mean over two equal halves is the whole batch's
    else:
        g = mean_over_ranks(task_gradients(per_example.mean(1), shared).detach())
    cos_ab = pairwise_cosine(torch.cat([g_a, g_b]))  # (2T, 2T)
    cos = pairwise_cosine(g)  # (T, T)
    T = len(names)
    logs = {f"same/{n}": cos_ab[i, T + i] for i, n in enumerate(names)}
    for i, j, key in pair_names(names):
        logs[f"cos/{key}"] = cos[i, j]
        logs[f"cross/{key}"] = cos_ab[i, T + j]
        logs[f"cross/{names[j]}~{names[i]}"] = cos_ab[j, T + i]
    return logs, g


def make_step(loop: Loop, tasks: Sequence[Task], probe_every: int):
    """The custom step for ``Loop.run``: forward, check the losses, let the weighting fill the grads,
    and every ``probe_every`` steps measure the gradients (see the module docstring)."""
    model, optimizer = loop["model"], loop["optimizer"]
    weighting = loop.unwrap("weighting")  # the bare module: DDP wraps it when it has parameters
    bare = loop.unwrap("model")
    names = [t.name for t in tasks]
    shared = bare.shared_parameters()
    on = bare.shared_layer() if weighting.name == "gradnorm" else shared

    def step(batch: tuple[torch.Tensor, dict[str, torch.Tensor]], t: int) -> dict[str, Any]:
        x, targets = batch
        model.train()
        probing = probe_every > 0 and len(tasks) > 1 and t % probe_every == 0
        with loop.autocast():
            z, outputs = model(x)  # (B, D), {task: (B, k)}
            per = task_losses(outputs, targets, tasks, reduction="none")  # (T, B)
            losses = per.mean(dim=1)  # (T,)
        check_losses(losses, names, step=t + 1)
        logs: dict[str, Any] = {f"loss/{n}": losses[i].detach() for i, n in enumerate(names)}
        if probing:
            probe_logs, g = probe(per, shared, names)
            logs.update(probe_logs)
        optimizer.zero_grad(set_to_none=True)
        update = weighting.backward(losses, shared=on, representation=z, backward=loop.backward)
        if probing:
            d = flat_grad(shared)  # (P,) the trunk's update direction, before Adam's scaling
            cos_upd = pairwise_cosine(torch.cat([g, d[None]]))[-1, :-1]  # (T,)
            logs.update({f"upd/{n}": cos_upd[i] for i, n in enumerate(names)})
        optimizer.step()
        weighting.after_step()
        logs.update({f"weight/{n}": update.weights[i] for i, n in enumerate(names)})
        return logs

    return step


@dataclass
class Setup:
    """A prepared run: its spec, the loop, the step and data functions (what :func:`train` runs)."""

    spec: Spec
    loop: Loop
    step: Any
    data: Any
    optimizer: torch.optim.Optimizer
    weighting: Any


def setup(method: str | Spec, tasks: Sequence[Task], train_data, recipe: MultitaskRecipe, seed: int,
          checkpoint_dir: str | Path | None = None) -> Setup:
    """Build the network, the weighting, Adam and the loop for one run (the benchmark reuses it)."""
    (spec,) = check_methods([method])
    x, targets = train_data
    names = [t.name for t in tasks]
    set_seed(seed)  # before the model is built: its initial weights are a function of the seed
    model = HardSharingNet(tasks, HardSharingConfig(in_features=x[0].numel(), hidden=recipe.hidden))
    weighting = make_weighting(spec.method, [t.kind for t in tasks], seed=seed, **spec.options)
    groups = [{"params": list(model.parameters()), "lr": recipe.lr}]
    if any(True for _ in weighting.parameters()):
        groups.append({"params": list(weighting.parameters()), "lr": recipe.weight_lr})
    optimizer = torch.optim.Adam(groups)
    loop_config = TrainConfig(steps=recipe.steps, log_every=recipe.log_every, checkpoint_dir=checkpoint_dir,
                              mixed_precision=recipe.mixed_precision, cpu=recipe.cpu, progress=recipe.progress,
                              desc=f"{spec.label}[{','.join(names)}] seed {seed}")
    loop = Loop(loop_config, model=model, optimizer=optimizer, weighting=weighting)
    sampler = batches(x, *[targets[n] for n in names], batch_size=recipe.batch_size, seed=seed)

    def data(t: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        xb, *ys = sampler(t)  # (B / ranks, 1, H, W), T x (B / ranks,)
        return xb, dict(zip(names, ys, strict=True))

    return Setup(spec, loop, make_step(loop, tasks, recipe.probe_every), data, optimizer, weighting)


def train(method: str | Spec, tasks: Sequence[Task], train_data, test_data, recipe: MultitaskRecipe, seed: int,
          checkpoint_dir: str | Path | None = None, resume: bool = False) -> RunResult:
    """Train one network with ``method`` on ``tasks`` and evaluate it; the baselines use one task.

    ``train_data`` and ``test_data`` are ``(x, {task: y})`` as from ``load_multimnist``.
    """
    started = time.perf_counter()
    run = setup(method, tasks, train_data, recipe, seed, checkpoint_dir)
    history = run.loop.run(run.step, run.data, resume=resume)
    metrics = evaluate(run.loop.unwrap("model"), test_data[0], test_data[1])
    extra = {}
    if run.spec.method == "uncertainty":
        extra["adam_sqrt_v"] = adam_sqrt_v(run.optimizer, run.weighting.log_var)
    return RunResult(run.spec.label, seed, tuple(t.name for t in tasks), metrics, history,
                     time.perf_counter() - started, extra)


def adam_sqrt_v(optimizer: torch.optim.Adam, param: torch.Tensor) -> list[float]:
    r"""$\sqrt{\hat v}$ of Adam for ``param`` (bias-corrected second moment), one per entry."""
    state = optimizer.state[param]
    beta2 = next(g["betas"][1] for g in optimizer.param_groups if any(p is param for p in g["params"]))
    v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
    return v_hat.sqrt().tolist()


def run_grid(methods: Sequence[str | Spec], seeds: Sequence[int], tasks: Sequence[Task], train_data, test_data,
             recipe: MultitaskRecipe, *, singles: Sequence[Task] | None = None, desc: str = "grid") -> list[RunResult]:
    """Single-task baselines (one run per task in ``singles``, default all ``tasks``, and seed),
    then every method on all tasks per seed, behind one progress bar."""
    specs = check_methods(methods)
    seeds = check_seeds(seeds)
    singles = list(tasks if singles is None else singles)
    jobs = [(SINGLE, [t], s) for s in seeds for t in singles] + [(m, list(tasks), s) for m in specs for s in seeds]
    if recipe.workers > 1 and recipe.cpu and ranks()[1] == 1:
        return parallel.map_processes(_grid_job, jobs, shared=(train_data, test_data, recipe),
                                      workers=recipe.workers, desc=desc)
    return [_grid_job((train_data, test_data, recipe), job) for job in tqdm(jobs, desc=desc, mininterval=5.0)]


def _grid_job(shared: tuple[Any, Any, MultitaskRecipe], job: tuple[str | Spec, list[Task], int]) -> RunResult:
    """One run of :func:`run_grid`: a single-task baseline, or a method on all tasks."""
    train_data, test_data, recipe = shared
    label, on, seed = job
    if label == SINGLE:
        r = train("equal", on, train_data, test_data, recipe, seed)
        r.method = SINGLE
        return r
    return train(label, on, train_data, test_data, recipe, seed)


def baseline(results: Sequence[RunResult], tasks: Sequence[Task]) -> dict[str, float]:
    """$M_{b,t}$: the single-task metric of each task, averaged over seeds."""
    out = {}
    for t in tasks:
        values = [r.metrics[t.name] for r in results if r.method == SINGLE and r.tasks == (t.name,)]
        if not values:
            raise ValueError(f"no single-task baseline for task {t.name!r}")
        out[t.name] = measure.mean_std(values)["mean"]
    return out


def delta_m(metrics: Mapping[str, float], base: Mapping[str, float], tasks: Sequence[Task]) -> float:
    """$\\Delta_m$ in percent (LibMTL): mean relative improvement, sign-flipped where lower is better."""
    total = 0.0
    for t in tasks:
        sign = 1.0 if t.higher_is_better else -1.0  # (-1)^delta_t
        total += sign * (metrics[t.name] - base[t.name]) / base[t.name]
    return 100.0 * total / len(tasks)


def summarize(results: Sequence[RunResult], tasks: Sequence[Task]) -> dict[str, dict[str, dict[str, float]]]:
    """``{label: {task or "delta_m": measure.mean_std over seeds}}``, the baselines first.

    ``std`` is the sample std (ddof=1) and ``sem`` the standard error over seeds; a
    method's $\\Delta_m$ is taken per seed against the baselines' mean.
    """
    base = baseline(results, tasks)
    table = {SINGLE: {t.name: measure.mean_std([r.metrics[t.name] for r in results
                                                if r.method == SINGLE and r.tasks == (t.name,)]) for t in tasks}}
    for label in dict.fromkeys(r.method for r in results if r.method != SINGLE):
        runs = [r for r in results if r.method == label]
        row = {t.name: measure.mean_std([r.metrics[t.name] for r in runs]) for t in tasks}
        row["delta_m"] = measure.mean_std([delta_m(r.metrics, base, tasks) for r in runs])
        table[label] = row
    return table


def ranking(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """Multitask methods ordered by mean $\\Delta_m$, best first."""
    methods = [m for m in table if m != SINGLE]
    return sorted(methods, key=lambda m: -table[m]["delta_m"]["mean"])
