"""Training MAC and its baselines as the paper does, on the book's ``moderndl.train.Loop``.

Hudson & Manning (2018), arXiv:1803.03067, Appendix A: Adam (lr 1e-4), batch 64, gradient
clipping, and an exponential moving average of the weights used for evaluation,

$$\\bar\\theta_t = \\beta\\,\\bar\\theta_{t-1} + (1 - \\beta)\\,\\theta_t,\\qquad \\beta = 0.999 .$$

The EMA is torch's ``AveragedModel`` with the EMA average function over parameters and
buffers (BatchNorm statistics); it lives wherever the loop puts the model, and is
checkpointed with it. One step function (:func:`training_step`) is both what trains and
what the throughput benchmark times. Evaluation reports accuracy per question family.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from moderndl import measure
from moderndl.mac.config import MACRecipe
from moderndl.mac.network import cross_entropy
from moderndl.mac.world import VQAData
from moderndl.train import Loop, TrainConfig, batches, to_device


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """Appendix A's moving average: ``AveragedModel`` with the EMA rule, buffers included.

    The first ``update_parameters`` copies the weights; each later one applies the rule of
    the module docstring. The copy needs no gradients, so the loop moves it beside the model
    and never wraps it in DDP.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema decay must be in [0, 1), got {decay}")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    return ema.requires_grad_(False).eval()


def sampler(data: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, *, batch_size: int,
            seed: int) -> Callable[[int], tuple[torch.Tensor, ...]]:
    """Step-indexed batches ``(images, tokens, lengths, answers)`` of this rank's slice of the
    global ``batch_size``; images gathered per step."""
    index = batches(torch.arange(len(data)), batch_size=batch_size, seed=seed)

    def data_at(t: int) -> tuple[torch.Tensor, ...]:
        (idx,) = index(t)  # (batch_size // world_size,)
        return data.images[data.scene[idx]], tokens[idx], lengths[idx], data.answers[idx]

    return data_at


class AccuracyMonitor:
    """Every ``every`` steps, the EMA model's accuracy on ``val``; notes when it first reaches ``target``.

    Gives the benchmark "time to 98% accuracy": ``reached`` is ``(step, seconds)`` or ``None``.
    ``val`` is whatever the model trains on: the generated world, or the user's CLEVR.
    """

    def __init__(self, val: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, every: int,
                 target: float = 0.98, device="cpu"):
        self.val, self.tokens, self.lengths = val, tokens, lengths
        self.every, self.target, self.device = every, target, device
        self.curve: list[tuple[int, float, float]] = []  # (step, seconds, accuracy)
        self.reached: tuple[int, float] | None = None
        self.start = time.perf_counter()

    def __call__(self, ema: nn.Module, step: int) -> None:
        if self.every <= 0 or (step + 1) % self.every:
            return
        seconds = time.perf_counter() - self.start
        acc = float((predict(ema, self.val, self.tokens, self.lengths, device=self.device)
                     == self.val.answers).float().mean())
        self.curve.append((step + 1, seconds, acc))
        if self.reached is None and acc >= self.target:
            self.reached = (step + 1, seconds)


def make_loop(model: nn.Module, recipe: MACRecipe, *, desc: str = "mac", checkpoint_dir=None,
              mixed_precision: str = "no", compile: bool = False, cpu: bool = False,
              progress: bool = True) -> Loop:
    """The loop of Appendix A: the model, Adam and the EMA, prepared together."""
    config = TrainConfig(steps=recipe.steps, log_every=10, grad_clip=recipe.grad_clip, desc=desc,
                         checkpoint_dir=checkpoint_dir, mixed_precision=mixed_precision, compile=compile,
                         cpu=cpu, progress=progress)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    return Loop(config, model=model, optimizer=optimizer, ema=make_ema(model, recipe.ema_decay))


def training_step(loop: Loop, monitor: AccuracyMonitor | None = None) -> Callable[[tuple, int], Mapping]:
    """One step of Appendix A: cross-entropy, backward, global-norm clip, Adam, EMA update."""
    model, optimizer, ema = loop["model"], loop["optimizer"], loop["ema"]
    clip = loop.config.grad_clip

    def step(batch: tuple[torch.Tensor, ...], t: int) -> Mapping[str, torch.Tensor]:
        model.train()
        with loop.autocast():
            loss, logs = cross_entropy(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loop.backward(loss)
        if clip is not None:
            loop.accelerator.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        ema.update_parameters(loop.unwrap("model"))
        if monitor is not None:
            monitor(ema.module, t)
        return {"loss": loss.detach(), **logs}

    return step


def train(model: nn.Module, data: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, recipe: MACRecipe, *,
          seed: int, resume: bool = False, monitor: AccuracyMonitor | None = None,
          **loop_options) -> tuple[list[dict], nn.Module]:
    """Train for ``recipe.steps`` steps; returns the history and the EMA model to evaluate.

    ``loop_options`` go to :func:`make_loop` (``desc``, ``checkpoint_dir``, ``mixed_precision``,
    ``compile``, ``cpu``, ``progress``).
    """
    loop = make_loop(model, recipe, **loop_options)
    data_at = sampler(data, tokens, lengths, batch_size=recipe.batch_size, seed=seed)
    history = loop.run(training_step(loop, monitor), data_at, resume=resume)
    return history, loop["ema"].module


def throughput(model: nn.Module, batch: tuple[torch.Tensor, ...], recipe: MACRecipe, *, warmup: int = 3,
               repeats: int = 10, **loop_options) -> dict[str, float]:
    """Training questions per second of :func:`training_step` (the one that trains) on ``batch``.

    ``measure.train_throughput``'s shape; ``loop_options`` (``mixed_precision="bf16"``,
    ``compile=True``, ``cpu``) set the loop up as a training run would. The warm-up
    steps include compilation.
    """
    loop = make_loop(model, recipe, desc="benchmark", progress=False, **loop_options)
    step, on_device = training_step(loop), to_device(batch, loop.device)
    return measure.train_throughput(lambda: step(on_device, 0), len(batch[0]), warmup=warmup, repeats=repeats,
                                    device=loop.device)


@torch.no_grad()
def predict(model: nn.Module, data: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, *,
            batch_size: int = 256, device: torch.device | str = "cpu") -> torch.Tensor:
    """Predicted answer ids ``(Q,)`` in eval mode."""
    model.eval().to(device)
    out = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        images = data.images[data.scene[sl]].to(device)  # (b, 3, H, W)
        logits = model(images, tokens[sl].to(device), lengths[sl])
        out.append(logits.argmax(-1).cpu())
    return torch.cat(out)  # (Q,)


def accuracy_by_family(pred: torch.Tensor, data: VQAData) -> dict[str, float]:
    """Accuracy overall, per family, on relate questions of 2+ hops (``relate_multi``) and per
    hop count (``relate_1``, ``relate_2``, ...)."""
    correct = (pred == data.answers).float()  # (Q,)
    acc = {"overall": float(correct.mean())}
    for f, name in enumerate(data.family_names):
        sel = data.families == f
        if sel.any():
            acc[name] = float(correct[sel].mean())
    relate = data.families == data.family_names.index("relate")
    multi = (data.hops >= 2) & relate
    if multi.any():
        acc["relate_multi"] = float(correct[multi].mean())
    for h in data.hops[relate].unique().tolist():
        acc[f"relate_{h}"] = float(correct[relate & (data.hops == h)].mean())
    return acc
