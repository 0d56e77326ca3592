r"""The model and data every ZeRO experiment in this chapter trains: an MLP on sklearn's digits.

The same workload runs under the from-scratch partitioner (:mod:`moderndl.zero.partition`),
under DeepSpeed (:mod:`moderndl.zero.deepspeed_side`) and as the single-process
``torch.optim.Adam`` reference, so their parameters and optimizer states can be compared
element by element (Rajbhandari et al. 2020, arXiv:1910.02054, Section 5). The objective is
the mean cross-entropy over the global batch $B$, split into $N_d$ equal per-rank batches:

$$ \mathcal{L}(\theta) = \frac{1}{N_d}\sum_{r=1}^{N_d} \frac{N_d}{B}
   \sum_{i \in \mathcal{B}_r} \ell(f_\theta(x_i), y_i) $$
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moderndl.data.digits import load_digits
from moderndl.seed import set_seed
from moderndl.train import batches


@dataclass(frozen=True)
class Workload:
    """An MLP on digits; ``sizes`` are the layer widths, input 64 = 8 x 8 pixels, output 10 classes."""

    sizes: tuple[int, ...] = (64, 128, 128, 10)
    batch_size: int = 64  # the global batch, split evenly over the ranks
    steps: int = 4
    lr: float = 1e-3  # Adam's default (Kingma & Ba 2015)
    seed: int = 0

    def __post_init__(self):
        if len(self.sizes) < 2 or self.sizes[0] != 64 or self.sizes[-1] != 10:
            raise ValueError(f"sizes must start at 64 (8x8 pixels) and end at 10 (classes), got {self.sizes}")

    def model(self) -> nn.Sequential:
        """The MLP, initialised from ``seed`` (call on every rank: all ranks get the same weights)."""
        set_seed(self.seed)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(self.sizes) - 2:
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)

    def num_params(self) -> int:
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def largest_layer(self) -> int:
        return max(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def data(self, rank: int = 0, world_size: int = 1,
             tensors: tuple[torch.Tensor, torch.Tensor] | None = None) -> batches:
        """Rank ``rank``'s step-indexed sampler: its ``batch_size // world_size`` slice of the global batch.

        ``tensors`` are :func:`tensors`' output, passed in so spawned ranks need not reload them.
        """
        if self.batch_size % world_size:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by N_d = {world_size}")
        x, y = tensors if tensors is not None else digits()
        return batches(x, y, batch_size=self.batch_size, seed=self.seed, rank=rank, world_size=world_size)


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's digits as ``(x, y)``: ``x`` (1797, 64) in [0, 1], ``y`` (1797,) labels."""
    x, y = load_digits()
    return x.flatten(1), y  # (N, 1, 8, 8) -> (N, 64)


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of ``model`` on ``(x, y)``; ``x`` is cast to the model's dtype."""
    x, y = batch
    dtype = next(p.dtype for p in model.parameters())
    return nn.functional.cross_entropy(model(x.to(dtype)).float(), y)
