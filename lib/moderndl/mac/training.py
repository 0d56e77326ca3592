"""Training MAC and its baselines as the paper does, through ``moderndl.train.fit``.

Hudson & Manning (2018), arXiv:1803.03067, Appendix A: Adam (lr 1e-4), batch 64, gradient
clipping, and an exponential moving average of the weights used for evaluation,

$$\\bar\\theta_t = \\beta\\,\\bar\\theta_{t-1} + (1 - \\beta)\\,\\theta_t,\\qquad \\beta = 0.999 .$$

The EMA is updated in ``fit``'s ``after_step`` and checkpointed as extra state; the clip is
``TrainConfig.grad_clip``. Evaluation reports accuracy per question family.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from moderndl import measure
from moderndl.data.clevr import VQAData
from moderndl.mac.config import OptimConfig
from moderndl.mac.network import cross_entropy
from moderndl.train import TrainConfig, batches, fit


class EMA:
    """The moving average of Appendix A, over parameters and buffers (BatchNorm statistics)."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """theta_bar <- beta theta_bar + (1 - beta) theta; buffers are copied."""
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach().to(ema_p.device), 1.0 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.model.load_state_dict(state["model"])


def sampler(data: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, *, batch_size: int,
            seed: int) -> Callable[[int], tuple[torch.Tensor, ...]]:
    """Step-indexed batches ``(images, tokens, lengths, answers)``; images gathered per step."""
    index = batches(torch.arange(len(data)), batch_size=batch_size, seed=seed)

    def data_at(t: int) -> tuple[torch.Tensor, ...]:
        (idx,) = index(t)  # (B,)
        return data.images[data.scene[idx]], tokens[idx], lengths[idx], data.answers[idx]

    return data_at


class AccuracyMonitor:
    """Every ``every`` steps, the EMA model's accuracy on ``val``; notes when it first reaches ``target``.

    Gives the benchmark "time to 98% accuracy": ``reached`` is ``(step, seconds)`` or ``None``.
    """

    def __init__(self, val: VQAData, every: int, target: float = 0.98, device="cpu"):
        self.val, self.every, self.target, self.device = val, every, target, device
        self.tokens, self.lengths = val.encode()
        self.curve: list[tuple[int, float, float]] = []  # (step, seconds, accuracy)
        self.reached: tuple[int, float] | None = None
        self.start = time.perf_counter()

    def __call__(self, ema: EMA, step: int) -> None:
        if self.every <= 0 or (step + 1) % self.every:
            return
        seconds = time.perf_counter() - self.start
        acc = float((predict(ema.model, self.val, self.tokens, self.lengths, device=self.device)
                     == self.val.answers).float().mean())
        self.curve.append((step + 1, seconds, acc))
        if self.reached is None and acc >= self.target:
            self.reached = (step + 1, seconds)


def train(model: nn.Module, data: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, opt: OptimConfig, *,
          seed: int, desc: str = "mac", checkpoint_dir=None, mixed_precision: str = "no",
          compile: bool = False, resume: bool = False,
          monitor: AccuracyMonitor | None = None) -> tuple[list[dict], EMA]:
    """Adam + clip + EMA for ``opt.steps`` steps; returns the history and the EMA (evaluate ``ema.model``)."""
    if torch.cuda.is_available():
        model.to("cuda")  # the loop's device, so that the EMA copy lives beside the weights it averages
    ema = EMA(model, opt.ema_decay)

    def after_step(model: nn.Module, step: int) -> None:
        ema.update(model)
        if monitor is not None:
            monitor(ema, step)

    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr)
    config = TrainConfig(steps=opt.steps, log_every=10, grad_clip=opt.grad_clip, desc=desc,
                         checkpoint_dir=checkpoint_dir, mixed_precision=mixed_precision, compile=compile)
    history, loop = fit(model, optimizer, cross_entropy, sampler(data, tokens, lengths, batch_size=opt.batch_size,
                                                                 seed=seed),
                        config, after_step=after_step, resume=resume, ema=ema)
    ema.model.to(loop.device)
    return history, ema


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
    """Accuracy overall, per family, and on relate questions of 2+ hops (``relate_multi``)."""
    correct = (pred == data.answers).float()  # (Q,)
    acc = {"overall": float(correct.mean())}
    for f, name in enumerate(data.family_names):
        sel = data.families == f
        if sel.any():
            acc[name] = float(correct[sel].mean())
    multi = (data.hops >= 2) & (data.families == data.family_names.index("relate"))
    if multi.any():
        acc["relate_multi"] = float(correct[multi].mean())
    return acc


def majority_by_family(train: VQAData, test: VQAData) -> dict[str, float]:
    """Accuracy on ``test`` of guessing each family's most frequent ``train`` answer."""
    out = {}
    for f, name in enumerate(test.family_names):
        tr, te = train.answers[train.families == f], test.answers[test.families == f]
        if len(tr) and len(te):
            out[name] = float((te == torch.mode(tr).values).float().mean())
    return out


def questions_per_second(model: nn.Module, batch: tuple[torch.Tensor, ...], *, steps: int = 20,
                         bf16: bool = False, compile: bool = False, lr: float = 1e-4) -> float:
    """Training throughput (questions/s) of Adam steps on one repeated batch: the median step time.

    On CUDA, ``bf16`` autocasts and ``compile`` wraps the model in ``torch.compile``; both
    are the chapter's GPU benchmark (eager against bf16 + compile, same run, same device).
    """
    device = batch[0].device
    model = model.to(device).train()
    step_model = torch.compile(model) if compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    dtype = torch.bfloat16 if bf16 else torch.float32

    def one_step():
        with torch.autocast(device.type, dtype=dtype, enabled=bf16):
            loss, _ = cross_entropy(step_model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 8.0)
        optimizer.step()

    timing = measure.time_it(one_step, warmup=3, repeats=steps, device=device)  # warm-up includes compilation
    return batch[0].shape[0] / timing["median_s"]

