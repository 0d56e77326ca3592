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

Training runs through the core loop (:func:`moderndl.train.fit`); :func:`benchmark` measures
training images/s for eager fp32 against bf16 + channels_last + ``torch.compile``.
"""

from __future__ import annotations

import logging
import statistics
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from moderndl import measure, train
from moderndl.data import cifar, digits, images
from moderndl.randwire import graphs
from moderndl.randwire.model import RandWire, RandWireConfig
from moderndl.seed import generator as seed_generator
from moderndl.seed import set_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Sec. 4's recipe for the small regime; ``steps`` and ``batch_size`` are the budget."""

    steps: int
    batch_size: int = 256  # Sec. 4 uses 256 per 8 GPUs at ImageNet scale
    lr: float = 0.1  # Sec. 4: initial learning rate 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5  # Sec. 4: 5e-5 for the small regime
    label_smoothing: float = 0.1  # Sec. 4: label-smoothing regularisation 0.1
    augment: bool = False  # random flip + shift for natural images (not for digits)
    mixed_precision: str = "no"  # "bf16" on GPU
    channels_last: bool = False
    compile: bool = False
    log_every: int = 25

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"TrainSettings.steps must be a positive int, got {self.steps!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"TrainSettings.batch_size must be a positive int, got {self.batch_size!r}")


@dataclass(frozen=True)
class Dataset:
    """Normalised float images ``(N, C, S, S)`` with labels, a fixed split and a provenance note."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    note: str = ""  # non-empty when the requested data could not be used

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])


# -- data ---------------------------------------------------------------------------------
def load_dataset(data_dir: str | Path | None, image_size: int, *, want_folder: bool = False,
                 test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """The chapter's data: digits (empty ``data_dir``), a CIFAR-10 directory, or an image folder.

    - ``""``/``None``: scikit-learn's digits, bilinearly upsampled from 8x8 to ``image_size``,
      with the fixed split ``digits.split(n, test_fraction, split_seed)``. With ``want_folder``
      (the full profile) this fallback is loud: a warning and a ``note`` on the dataset.
    - a directory with ``data_batch_1``: CIFAR-10 (python layout), its own train/test split.
    - any other directory: labelled image folder (one sub-folder per class), fixed split.

    A path that does not exist is an error naming it, never a silent fallback.
    """
    if not data_dir:
        note = ""
        if want_folder:
            note = ("No data_dir was given, so this run falls back to scikit-learn's 8x8 digits, upsampled: "
                    "its accuracies are NOT CIFAR-10 or ImageNet numbers. Pass -p data_dir "
                    "/path/to/cifar-10-batches-py (or an image folder) for the real experiment.")
            warnings.warn(note, stacklevel=2)
        x, y = digits.load_digits()  # (1797, 1, 8, 8), (1797,)
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)  # (N, 1, S, S)
        train_idx, test_idx = digits.split(len(x), test_fraction, split_seed)
        return _normalised("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx], 10, note)
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data_dir {path} does not exist or is not a folder "
                                "(expected a CIFAR-10 python directory or a labelled image folder)")
    if cifar.is_cifar10(path):
        x_train, y_train, x_test, y_test = cifar.load_cifar10(path)
        x_train, x_test = (_resize(x.float() / 255.0, image_size) for x in (x_train, x_test))
        return _normalised("cifar10", x_train, y_train, x_test, y_test, 10)
    x, y, classes = images.load_folder(path, image_size, labelled=True)  # (N, 3, S, S) uint8
    train_idx, test_idx = digits.split(len(x), test_fraction, split_seed)
    x = x.float() / 255.0
    return _normalised(f"folder:{path.name}", x[train_idx], y[train_idx], x[test_idx], y[test_idx], len(classes))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)  # (N, C, size, size)


def _normalised(name, x_train, y_train, x_test, y_test, num_classes, note="") -> Dataset:
    """Standardise each channel with the training set's mean and std."""
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)  # (1, C, 1, 1)
    return Dataset(name, (x_train - mean) / std, y_train, (x_test - mean) / std, y_test, num_classes, note)


def augment(x: torch.Tensor, seed: int, step: int, shift: int = 4) -> torch.Tensor:
    """Random horizontal flips per image and one random shift (pad ``shift``, crop) per batch."""
    g = seed_generator(seed, step)
    flip = torch.rand(len(x), generator=g) < 0.5  # (B,)
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    dy, dx = torch.randint(0, 2 * shift + 1, (2,), generator=g).tolist()
    size = x.shape[-1]
    padded = F.pad(x, (shift, shift, shift, shift))  # (B, C, S + 2 shift, S + 2 shift)
    return padded[..., dy:dy + size, dx:dx + size]  # (B, C, S, S)


# -- one model ------------------------------------------------------------------------------
def model_config(base: RandWireConfig, name: str, params: Sequence[float], seed: int, data: Dataset) -> RandWireConfig:
    """``base`` with the generator setting, the graph seed and the data's channels and classes."""
    return replace(base, generator=name, params=tuple(params), seed=seed,
                   in_channels=data.in_channels, num_classes=data.num_classes)


def make_optimizer(model: torch.nn.Module, cfg: TrainSettings):
    """SGD with momentum and weight decay, half-period cosine over ``cfg.steps`` (Sec. 4)."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)  # 0.5 lr (1 + cos(pi t / T))
    return opt, sched


def train_one(config: RandWireConfig, data: Dataset, cfg: TrainSettings, *, device: torch.device | str = "cpu",
              desc: str = "randwire") -> dict[str, Any]:
    """Train g(θ, s) from scratch with :func:`moderndl.train.fit`; returns accuracy and history.

    The seed ``config.seed`` draws the graphs, the initial weights and the batch order.
    """
    set_seed(config.seed)
    model = RandWire(config)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, cfg)
    sampler = train.batches(data.x_train, data.y_train, batch_size=min(cfg.batch_size, len(data.x_train)),
                            seed=config.seed)

    def batch(t: int):
        x, y = sampler(t)
        return (augment(x, config.seed, t) if cfg.augment else x), y

    def loss_fn(m, b):
        x, y = b
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = m(x)  # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        return loss, {"acc": (logits.argmax(-1) == y).float().mean()}

    cpu = torch.device(device).type == "cpu"
    tc = train.TrainConfig(steps=cfg.steps, log_every=cfg.log_every, mixed_precision=cfg.mixed_precision,
                           compile=cfg.compile, desc=desc, cpu=cpu)
    history, loop = train.fit(model, opt, loss_fn, batch, tc, scheduler=sched)
    accuracy = evaluate(loop["model"], data.x_test, data.y_test, loop=loop, channels_last=cfg.channels_last)
    return {"generator": graphs.label(config.generator, config.params), "seed": config.seed,
            "accuracy": accuracy, "train_loss": history[-1]["loss"], "history": history,
            "params": measure.count_parameters(model), "edges": [d.graph.number_of_edges() for d in model.dags],
            "depth": [graphs.depth(d) for d in model.dags]}


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, loop: train.Loop | None = None,
             batch_size: int = 1000, channels_last: bool = False) -> float:
    """Top-1 accuracy of ``model`` (eval mode: BN running statistics) on ``(x, y)``."""
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
    model.train()
    return correct / len(x)


# -- the Fig. 3 study -------------------------------------------------------------------------
def run_grid(settings: Iterable[tuple[str, Sequence[float]]], seeds: Sequence[int], base: RandWireConfig,
             data: Dataset, cfg: TrainSettings, *, device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Fig. 3: train every generator setting with every seed; one result row per model."""
    rows = []
    for name, params in settings:
        for seed in seeds:
            config = model_config(base, name, params, seed, data)
            rows.append(train_one(config, data, cfg, device=device, desc=f"{graphs.label(name, params)} s={seed}"))
            log.info("%s seed %d: test accuracy %.4f", rows[-1]["generator"], seed, rows[-1]["accuracy"])
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std of accuracy per generator setting, in first-seen order (Fig. 3's bars)."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(row["generator"], []).append(row["accuracy"])
    return [{"generator": g, "n": len(a), "mean": statistics.fmean(a),
             "std": statistics.stdev(a) if len(a) > 1 else float("nan")} for g, a in groups.items()]


# -- throughput ----------------------------------------------------------------------------------
VARIANTS = {
    "eager_fp32": {"mixed_precision": "no", "channels_last": False, "compile": False},
    "bf16_channels_last_compile": {"mixed_precision": "bf16", "channels_last": True, "compile": True},
}


def benchmark(config: RandWireConfig | None = None, *, batch_size: int = 128, image_size: int = 224,
              warmup: int = 5, repeats: int = 20, device: torch.device | str | None = None,
              variants: Sequence[str] = tuple(VARIANTS)) -> dict[str, Any]:
    """Training images/s of one network per variant, in one run (the issue's GPU benchmark).

    Each variant builds the same network (same seed), prepares it with the core loop
    (:class:`moderndl.train.Loop`: accelerate's bf16 autocast, ``torch.compile``), and times a
    full SGD step (forward, backward, update) with :func:`moderndl.measure.time_it` (warm-up
    first, so compilation is excluded; synchronised; median of ``repeats``). On CPU accelerate
    runs without mixed precision, so a CPU run compares layouts and compilation only.
    Returns ``{variant: {images_per_s, median_s, effective_mixed_precision, ...}, "speedup": last / first,
    "device": name}``.
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
        set_seed(config.seed)
        model = RandWire(config)
        if opts["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-5)
        loop = train.Loop(train.TrainConfig(steps=1, mixed_precision=opts["mixed_precision"], compile=opts["compile"],
                                            cpu=device.type == "cpu"), model=model, optimizer=opt)
        prepared, popt = loop["model"], loop["optimizer"]
        memory = torch.channels_last if opts["channels_last"] else torch.contiguous_format
        x = torch.randn(batch_size, config.in_channels, image_size, image_size,
                        device=loop.device).contiguous(memory_format=memory)  # (B, 3, S, S)
        y = torch.randint(0, config.num_classes, (batch_size,), device=loop.device)  # (B,)

        def step(prepared=prepared, popt=popt, loop=loop, x=x, y=y):
            with loop.autocast():
                loss = F.cross_entropy(prepared(x), y, label_smoothing=0.1)
            popt.zero_grad(set_to_none=True)
            loop.backward(loss)
            popt.step()

        timing = measure.time_it(step, warmup=warmup, repeats=repeats, device=loop.device)
        out[name] = {**opts, "effective_mixed_precision": loop.accelerator.mixed_precision, **timing,
                     "images_per_s": batch_size / timing["median_s"]}
    if len(variants) > 1:
        out["speedup"] = out[variants[-1]]["images_per_s"] / out[variants[0]]["images_per_s"]
    return out

