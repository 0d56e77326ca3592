r"""The generator study of Xie et al. (2019, arXiv:1904.01569): Fig. 3 and its training recipe.

For each generator setting θ and seeds $s_1..s_k$, train $g(\theta, s_i)$ from scratch and
report the mean and standard deviation of test accuracy over the seeds. Training follows
Sec. 4 (small regime): SGD with momentum 0.9, a half-period cosine schedule

$$
\eta_t = \tfrac{1}{2}\,\eta_0\,\big(1 + \cos(\pi t / T)\big), \qquad \eta_0 = 0.1,
$$

label-smoothing regularisation 0.1 and weight decay $5\cdot 10^{-5}$, minimising

$$
\mathcal{L} = -\sum_{k} \big((1-\epsilon)\,[k = y] + \epsilon / K\big)\,\log p_k(x), \qquad \epsilon = 0.1 .
$$

Training runs through the core loop (:func:`moderndl.train.fit`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from moderndl import measure, parallel, train
from moderndl.randwire import graphs, stats
from moderndl.randwire.data import Dataset, augment
from moderndl.randwire.model import RandWire, RandWireConfig, multiply_adds
from moderndl.seed import set_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RandWireRecipe:
    """Sec. 4's recipe for the small regime; ``steps`` and ``batch_size`` are the budget."""

    steps: int
    batch_size: int = 256  # global batch; Sec. 4 uses 256 over 8 GPUs at ImageNet scale
    lr: float = 0.1  # Sec. 4: initial learning rate 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5  # Sec. 4: 5e-5 for the small regime
    label_smoothing: float = 0.1  # Sec. 4: label-smoothing regularisation 0.1
    augment: bool = False  # per-image random flip and padded random crop
    mixed_precision: str = "no"  # "bf16" on GPU
    channels_last: bool = False
    compile: bool = False
    log_every: int = 25

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"RandWireRecipe.steps must be a positive int, got {self.steps!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"RandWireRecipe.batch_size must be a positive int, got {self.batch_size!r}")


def model_config(base: RandWireConfig, name: str, params: Sequence[float], seed: int, data: Dataset,
                 channels: int | None = None) -> RandWireConfig:
    """``base`` with the generator setting, the graph seed, the data's channels and classes,
    and (when given) the width ``channels`` that matches the setting's FLOPs."""
    return replace(base, generator=name, params=tuple(params), seed=seed, in_channels=data.in_channels,
                   num_classes=data.num_classes, channels=channels or base.channels)


def matched_channels(base: RandWireConfig, settings: Iterable[tuple[str, Sequence[float]]], image_size: int,
                     seeds: Sequence[int], reference: tuple[str, Sequence[float]] = ("WS", (4, 0.75))
                     ) -> dict[str, dict[str, Any]]:
    """Per setting, the width C whose mean multiply-adds over ``seeds`` is nearest to those of
    ``reference`` at ``base.channels``: the paper tunes its generators to about the same FLOPs.

    Returns ``{label: {"channels", "multiply_adds", "ratio"}}`` (ratio to the reference).
    """
    def mean_madds(name, params, c):
        configs = [replace(base, generator=name, params=tuple(params), seed=s, channels=c) for s in seeds]
        return sum(multiply_adds(cf, image_size) for cf in configs) / len(configs)

    target = mean_madds(*reference, base.channels)
    out = {}
    for name, params in settings:
        # Multiply-adds grow about as C^2: start from the square-root estimate, then look around it.
        guess = base.channels * math.sqrt(target / mean_madds(name, params, base.channels))
        candidates = range(max(2, round(guess) - 2), round(guess) + 3)
        madds = {c: mean_madds(name, params, c) for c in candidates}
        best = min(madds, key=lambda c: abs(madds[c] - target))
        out[graphs.label(name, params)] = {"channels": best, "multiply_adds": madds[best],
                                           "ratio": madds[best] / target}
    return out


def make_optimizer(model: torch.nn.Module, config: RandWireRecipe):
    """SGD with momentum and weight decay, half-period cosine over ``config.steps`` (Sec. 4)."""
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)  # 0.5 lr (1 + cos(pi t / T))
    return opt, sched


def train_one(config: RandWireConfig, data: Dataset, recipe: RandWireRecipe, *, device: torch.device | str = "cpu",
              desc: str = "randwire", progress: bool = True) -> dict[str, Any]:
    """Train g(θ, s) from scratch with :func:`moderndl.train.fit`; returns accuracy, history,
    the graphs' statistics and the trained model (unwrapped, in eval mode).

    The seed ``config.seed`` draws the graphs, the initial weights and the batch order.
    """
    set_seed(config.seed)  # before building the model: the seed fixes the initial weights
    model = RandWire(config)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, recipe)
    global_batch = min(recipe.batch_size, len(data.x_train))
    sampler = train.batches(data.x_train, data.y_train, batch_size=global_batch, seed=config.seed)

    def batch(t: int):
        x, y = sampler(t)  # this rank's slice of the global batch
        return (augment(x, config.seed, t, global_batch=global_batch) if recipe.augment else x), y

    def loss_fn(m, b):
        x, y = b
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = m(x)  # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
        return loss, {"acc": (logits.argmax(-1) == y).float().mean()}

    cpu = torch.device(device).type == "cpu"
    tc = train.TrainConfig(steps=recipe.steps, log_every=recipe.log_every, mixed_precision=recipe.mixed_precision,
                           compile=recipe.compile, desc=desc, cpu=cpu, progress=progress)
    history, loop = train.fit(model, opt, loss_fn, batch, tc, scheduler=sched)
    accuracy = evaluate(loop["model"], data.x_test, data.y_test, loop=loop, channels_last=recipe.channels_last)
    trained = loop.unwrap("model").eval()
    graph_stats = [stats.summary(d.graph) for d in trained.dags]
    return {"generator": graphs.label(config.generator, config.params), "seed": config.seed,
            "accuracy": accuracy, "train_loss": history[-1]["loss"], "history": history,
            "params": measure.count_parameters(trained), "channels": config.channels,
            "multiply_adds": multiply_adds(config, data.image_size, trained.dags),
            "edges": [d.graph.number_of_edges() for d in trained.dags],
            "depth": [graphs.depth(d) for d in trained.dags],
            "input_nodes": [len(graphs.input_nodes(d)) for d in trained.dags],
            "clustering": sum(g["clustering"] for g in graph_stats) / len(graph_stats),
            "path_length": sum(g["path_length"] for g in graph_stats) / len(graph_stats),
            "model": trained}


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, loop: train.Loop | None = None,
             batch_size: int = 1000, channels_last: bool = False) -> float:
    """Top-1 accuracy of ``model`` (eval mode: BN running statistics) on ``(x, y)``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)  # (b, C, S, S)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        ctx = loop.autocast() if loop is not None else torch.autocast(device.type, enabled=False)
        with ctx:
            logits = model(xb)  # (b, num_classes)
        correct += int((logits.argmax(-1).cpu() == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


# -- the Fig. 3 study -------------------------------------------------------------------------
def run_grid(settings: Iterable[tuple[str, Sequence[float]]], seeds: Sequence[int], base: RandWireConfig,
             data: Dataset, recipe: RandWireRecipe, *, device: torch.device | str = "cpu",
             channels: dict[str, int] | None = None, progress: bool = True,
             workers: int = 1) -> list[dict[str, Any]]:
    """Fig. 3: train every generator setting with every seed; one result row per model.

    ``channels`` maps a setting's label to its FLOPs-matched width (:func:`matched_channels`).
    ``workers`` > 1 trains that many networks at once in CPU processes of one thread each
    (every run seeds itself, so the rows equal those of ``workers=1``, in the same order).
    """
    configs = [model_config(base, name, params, seed, data, (channels or {}).get(graphs.label(name, params)))
               for name, params in settings for seed in seeds]
    if workers > 1 and torch.device(device).type == "cpu" and len(configs) > 1:
        return _run_pool(configs, data, recipe, workers, progress)
    rows = []
    for config in configs:
        label = graphs.label(config.generator, config.params)
        rows.append(train_one(config, data, recipe, device=device, desc=f"{label} s={config.seed}",
                              progress=progress))
        log.info("%s seed %d: test accuracy %.4f", label, config.seed, rows[-1]["accuracy"])
    return rows


def _train_task(shared: tuple[Dataset, RandWireRecipe], config: RandWireConfig) -> dict[str, Any]:
    data, recipe = shared
    return train_one(config, data, recipe, device="cpu", progress=False)  # the pool's bar reports progress


def _run_pool(configs: list[RandWireConfig], data: Dataset, recipe: RandWireRecipe, workers: int,
              progress: bool) -> list[dict[str, Any]]:
    """Train ``configs`` in ``workers`` processes; each row comes back with its trained model."""
    rows = parallel.map_processes(_train_task, configs, shared=(data, recipe), workers=workers,
                                  desc="networks", progress=progress)
    for config, row in zip(configs, rows, strict=True):
        log.info("%s seed %d: test accuracy %.4f", row["generator"], config.seed, row["accuracy"])
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per generator setting, in first-seen order (Fig. 3's bars): accuracy as
    :func:`moderndl.measure.mean_std` (mean, sample std, s.e.m., n) over the seeds."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(row["generator"], []).append(row["accuracy"])
    return [{"generator": g, **measure.mean_std(a)} for g, a in groups.items()]


def binomial_se(accuracy: float, n_test: int) -> float:
    """Standard error of an accuracy measured on ``n_test`` independent test images."""
    return math.sqrt(accuracy * (1 - accuracy) / n_test)


def chance_threshold(num_classes: int, n_test: int, z: float = 5.0) -> float:
    """An accuracy that guessing reaches with probability below ~3e-7 (``z = 5`` binomial
    standard errors above chance ``1/num_classes`` on ``n_test`` images), for any class count."""
    chance = 1 / num_classes
    return chance + z * binomial_se(chance, n_test)


def std_ratio_bound(n_a: int, n_b: int, q: float = 0.95) -> float:
    """Upper ``q`` bound of the ratio of two sample stds from equal-variance normals:
    ``sqrt(F_q(n_a - 1, n_b - 1))``; 2.53 for 5 seeds against 5."""
    from scipy.stats import f

    return math.sqrt(f.ppf(q, n_a - 1, n_b - 1))
