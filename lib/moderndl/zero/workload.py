r"""The model and data every ZeRO experiment in this chapter trains.

Two models, one interface:

- ``kind="mlp"``: an MLP on scikit-learn's digits (the smoke profile: fast, every layer tiny);
- ``kind="transformer"``: a small pre-LayerNorm byte-level transformer language model on
  CPython's bundled documentation (laptop and full profiles: layers of different sizes, an
  embedding, attention and MLP projections, LayerNorms).

The same workload runs under the from-scratch partitioner (:mod:`moderndl.zero.partition`),
under DDP, ``ZeroRedundancyOptimizer``, FSDP2 and DeepSpeed, and as the single-process
``torch.optim.Adam`` reference, so their parameters can be compared element by element
(Rajbhandari et al. 2020, arXiv:1910.02054, Section 5). The objective is the mean
cross-entropy over the global batch $B$, split into $N_d$ equal per-rank batches:

$$ \mathcal{L}(\theta) = \frac{1}{N_d}\sum_{r=1}^{N_d} \frac{N_d}{B}
   \sum_{i \in \mathcal{B}_r} \ell(f_\theta(x_i), y_i) $$
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from moderndl.data.digits import load_digits
from moderndl.seed import generator, set_seed
from moderndl.train import batches, rank_slice

KINDS = ("mlp", "transformer")
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Workload:
    """What every implementation trains.

    ``sizes`` are the MLP's layer widths (input 64 = 8 x 8 pixels, output 10 classes); the
    transformer uses ``width``, ``layers``, ``heads`` and ``seq_len`` over 256 byte values.
    """

    kind: str = "mlp"
    sizes: tuple[int, ...] = (64, 128, 128, 10)
    width: int = 128  # transformer d_model
    layers: int = 2  # transformer blocks
    heads: int = 4
    seq_len: int = 32  # tokens per example
    batch_size: int = 64  # the global batch, split evenly over the ranks
    steps: int = 4
    lr: float = 1e-3  # Adam's default (Kingma & Ba 2015)
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "mlp" and (len(self.sizes) < 2 or self.sizes[0] != 64 or self.sizes[-1] != 10):
            raise ValueError(f"sizes must start at 64 (8x8 pixels) and end at 10 (classes), got {self.sizes}")
        if self.kind == "transformer" and self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        for name in ("batch_size", "steps", "width", "layers", "heads", "seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    def model(self) -> nn.Module:
        """The model, initialised from ``seed`` (call on every rank: all ranks get the same weights)."""
        set_seed(self.seed)  # the same initial weights on every rank and in the reference
        if self.kind == "transformer":
            return TinyLM(self.width, self.layers, self.heads, self.seq_len)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(self.sizes) - 2:
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model().parameters())

    def largest_layer(self) -> int:
        """Parameters of the largest parameter-owning module (DeepSpeed's ``largest_layer_params``)."""
        return max(sum(p.numel() for p in m.parameters(recurse=False)) for m in self.model().modules())

    def tensors(self) -> Batch:
        return digits() if self.kind == "mlp" else corpus()

    def data(self, rank: int = 0, world_size: int = 1, tensors: Batch | None = None) -> Callable[[int], Batch]:
        """Rank ``rank``'s step-indexed sampler: its ``batch_size // world_size`` slice of the global batch.

        ``tensors`` are :meth:`tensors`' output, passed in so spawned ranks need not reload them.
        """
        if self.batch_size % world_size:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by N_d = {world_size}")
        if self.kind == "mlp":
            x, y = tensors if tensors is not None else digits()
            return batches(x, y, batch_size=self.batch_size, seed=self.seed, rank=rank, world_size=world_size)
        text = tensors[0] if tensors is not None else corpus()[0]
        return windows(text, self.seq_len, self.batch_size, self.seed, rank, world_size)


class Block(nn.Module):
    """Pre-LayerNorm transformer block (GPT-2's layout): attention, then a 4x MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        # Registered in the order forward uses them, so gradients arrive bucket by bucket.
        self.ln1 = nn.LayerNorm(width)
        # No bias: a key bias shifts every score of a query alike, so softmax makes its gradient
        # exactly zero, and Adam would turn the rounding noise left in it into full-size steps.
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)  # GPT-2's 4x expansion
        self.out = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape  # (B, T, C)
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)  # 3 x (B, T, C)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, C/H)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C/H)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))  # (B, T, C)
        return x + self.out(nn.functional.gelu(self.fc(self.ln2(x))))  # (B, T, C)


class TinyLM(nn.Module):
    """A byte-level causal transformer; every parameter-owning module runs its own forward,
    which stage 3's per-layer gather hooks rely on. No weight tying."""

    def __init__(self, width: int, layers: int, heads: int, seq_len: int, vocab: int = 256):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, vocab)


def windows(text: torch.Tensor, seq_len: int, batch_size: int, seed: int, rank: int,
            world_size: int) -> Callable[[int], Batch]:
    """Step ``t``'s global batch of ``batch_size`` random windows, drawn from ``generator(seed, t)``;
    this rank keeps its :func:`moderndl.train.rank_slice`. ``y`` is ``x`` shifted by one byte."""
    rows = rank_slice(batch_size, rank, world_size)

    def sample(t: int) -> Batch:
        start = torch.randint(0, len(text) - seq_len - 1, (batch_size,), generator=generator(seed, t))  # (B,)
        idx = start[rows, None] + torch.arange(seq_len + 1)  # (B / N_d, T + 1)
        chunk = text[idx]
        return chunk[:, :-1], chunk[:, 1:]  # (B / N_d, T) each

    return sample


def digits() -> Batch:
    """sklearn's digits as ``(x, y)``: ``x`` (1797, 64) in [0, 1], ``y`` (1797,) labels."""
    x, y = load_digits()
    return x.flatten(1), y  # (N, 1, 8, 8) -> (N, 64)


@lru_cache(maxsize=1)
def corpus() -> Batch:
    """CPython's pydoc topics as bytes: ``(text,)`` as a (N,) int64 tensor, and an empty label tensor."""
    from moderndl.data.text import pydoc_topics

    raw = pydoc_topics().encode("utf-8")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long(), torch.empty(0)


def loss_fn(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of ``model`` on ``(x, y)``; float inputs are cast to the model's dtype,
    and the loss is computed in at least float32 (float64 models keep float64)."""
    x, y = batch
    if x.is_floating_point():
        x = x.to(next(p.dtype for p in model.parameters()))
    logits = model(x)  # (B, T, vocab) or (B, classes)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32; fp64 stays
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def transformer_params(width: int, layers: int, seq_len: int, vocab: int = 256) -> int:
    """$\\Psi$ of :class:`TinyLM` in closed form: per block $12 C^2 + 10 C$, plus embeddings and head."""
    block = 12 * width * width + 10 * width
    return (vocab + seq_len) * width + layers * block + 2 * width + width * vocab + vocab

