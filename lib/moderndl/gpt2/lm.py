"""Language-modelling objective, batches of token windows, and held-out perplexity.

Radford et al. 2019, "Language Models are Unsupervised Multitask Learners", Sec. 2 (Eq. 1):
the model is trained and evaluated by the mean next-token negative log-likelihood

$$\\mathcal{L} = -\\frac{1}{N}\\sum_{t=1}^{N} \\log p_\\theta(x_t \\mid x_{<t}),\\qquad
\\mathrm{PPL} = \\exp \\mathcal{L}.$$

Every function works with both back ends: our :class:`moderndl.gpt2.model.GPT` (returns a
logits tensor) and Hugging Face's ``GPT2LMHeadModel`` (returns an output with ``.logits``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from moderndl.seed import generator as seed_generator
from moderndl.train import rank_slice


def logits_of(model: Any, idx: torch.Tensor) -> torch.Tensor:
    """Next-token logits ``(B, T, V)`` from either back end."""
    out = model(idx)
    return out if isinstance(out, torch.Tensor) else out.logits


def lm_loss(model: Any, windows: torch.Tensor) -> torch.Tensor:
    """Eq. 1 on a batch of windows ``(B, T + 1)``: predict tokens 1..T from tokens 0..T-1."""
    x, y = windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)
    logits = logits_of(model, x)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())  # (B*T, V) against (B*T,)


class random_windows:  # noqa: N801 - reads as a function at call sites
    """Step-indexed sampler: ``random_windows(tokens, block_size, batch_size, seed)(t)``.

    Returns this rank's ``(micro_batches, batch_size // world_size, block_size + 1)`` windows.
    At step ``t`` the *global* batch, ``micro_batches x batch_size`` windows at random offsets,
    is drawn from ``seed.generator(seed, t)`` as gpt-2-simple samples its dataset; each rank
    keeps its :func:`moderndl.train.rank_slice` of every micro-batch (rank and world size from
    the launch unless given). So the batch at step ``t`` is a pure function of ``(seed, t)``: a
    resumed run sees the batches an uninterrupted one would, and N ranks together see exactly
    the windows of one process.
    """

    def __init__(self, tokens: torch.Tensor, block_size: int, batch_size: int, seed: int, micro_batches: int = 1,
                 *, rank: int | None = None, world_size: int | None = None):
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
        if len(tokens) < block_size + 1:
            raise ValueError(f"{len(tokens)} tokens are fewer than one context window of block_size + 1 = "
                             f"{block_size + 1}; pass a longer text or a smaller block_size")
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.seed, self.micro_batches = seed, micro_batches
        self.rank, self.world_size = rank, world_size
        self.rows: slice | None = None  # on first use: by then the training loop has set up the launch

    def global_batch(self, step: int) -> torch.Tensor:
        """All ranks' windows at ``step``: ``(micro_batches, batch_size, block_size + 1)``."""
        g = seed_generator(self.seed, step)
        n = self.micro_batches * self.batch_size
        starts = torch.randint(0, len(self.tokens) - self.block_size, (n,), generator=g)  # (n,)
        offsets = torch.arange(self.block_size + 1)  # (T + 1,)
        windows = self.tokens[starts[:, None] + offsets[None, :]]  # (n, T + 1)
        return windows.view(self.micro_batches, self.batch_size, self.block_size + 1)  # (M, B, T + 1)

    def __call__(self, step: int) -> torch.Tensor:
        if self.rows is None:
            self.rows = rank_slice(self.batch_size, self.rank, self.world_size)
        return self.global_batch(step)[:, self.rows]  # (M, B // world_size, T + 1)


@torch.no_grad()
def perplexity(model: Any, tokens: torch.Tensor, *, block_size: int, batch_size: int = 8,
               max_windows: int | None = None) -> float:
    """Held-out perplexity (Eq. 1): exp of the mean NLL over non-overlapping windows.

    Each window of ``block_size + 1`` tokens scores its last ``block_size`` tokens; the
    tail shorter than a window is dropped. ``max_windows`` evenly subsamples for speed.
    """
    if len(tokens) < block_size + 1:
        raise ValueError(f"{len(tokens)} held-out tokens are fewer than one window of {block_size + 1}")
    n = (len(tokens) - 1) // block_size
    starts = torch.arange(n) * block_size  # (n,)
    if max_windows is not None and n > max_windows:
        starts = starts[torch.linspace(0, n - 1, max_windows).long()]  # (max_windows,)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    offsets = torch.arange(block_size + 1)  # (T + 1,)
    for chunk in starts.split(batch_size):
        windows = tokens[chunk[:, None] + offsets[None, :]].to(device)  # (b, T + 1)
        total += float(lm_loss(model, windows)) * windows.shape[0]
        count += windows.shape[0]
    model.train(was_training)
    return math.exp(total / count)
