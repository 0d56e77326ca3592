"""Hyperparameters of the MAC network and its training, with the paper's defaults.

Hudson & Manning (2018), "Compositional Attention Networks for Machine Reasoning",
arXiv:1803.03067, Sec. 4 and Appendix A: d = 512, p = 12 reasoning steps, Adam with
lr = 1e-4, batch 64, an exponential moving average of the weights (decay 0.999),
gradient clipping, and dropout. The objective is the answer cross-entropy

$$\\mathcal{L}(\\theta) = -\\mathbb{E}_{(K, q, a)} \\log \\mathrm{softmax}(W_2\\,\\mathrm{ELU}(W_1 [q; m_p]))_a .$$

Chapters scale these down only through their profile table.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

VARIANTS = ("paper", "reference")


def check_fields(obj) -> None:
    """Every field has the type its annotation names (an int is a valid float; a bool is not an int).

    ``MACConfig(p=True)`` or ``MACConfig(d="64")`` fail here with the field's name, before
    any comparison can fail with a bare ``TypeError``.
    """
    kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
    for f in fields(obj):
        want = kinds.get(str(f.type))
        value = getattr(obj, f.name)
        if want is None:
            continue
        if (isinstance(value, bool) and bool not in want) or not isinstance(value, want):
            article = "an" if str(f.type) == "int" else "a"
            raise TypeError(f"{type(obj).__name__}.{f.name} must be {article} {f.type}, "
                            f"got {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class MACConfig:
    """The network (Sec. 3): dimensions, steps and the write unit's optional parts."""

    num_words: int  # question vocabulary size (PAD = 0)
    num_classes: int  # answer vocabulary size
    image_size: int = 224  # ResNet input of the paper (its knowledge base is 14 x 14)
    d: int = 512  # Sec. 4: "hidden state dimension d = 512"
    p: int = 12  # Sec. 4: p = 12 reasoning steps
    embed_dim: int = 300  # Sec. 3.1: 300-d word vectors, here randomly initialised and learned (no GloVe offline)
    stem_channels: int = 128  # pixel stem width (the paper reads 1024 ResNet-101 conv4 channels instead)
    stem_layers: int = 4  # stride-2 conv layers: 224 -> 14, the paper's 14 x 14 knowledge base
    stem: str = "conv"  # "conv": stride-2 layers; "patch": one conv with kernel = stride = patch (cells)
    patch: int = 8  # patch side in pixels for stem="patch"
    kb_kernel: int = 3  # the paper's two d-channel convolutions are 3x3; 1 keeps each cell to its own patch
    coords: bool = False  # append (x, y) coordinate channels to the knowledge base (not in the paper)
    self_attention: bool = False  # Eq. w2; the paper's CLEVR model runs without it (Table 2 ablation)
    memory_gate: bool = False  # Eq. w3; helps in the low-data regime (Sec. 4.3)
    dropout: float = 0.15  # Appendix A: dropout 0.85 keep probability
    unknown: str = "error"  # a token id >= num_words: "error" or "unk" (map to UNK = 1)
    variant: str = "paper"  # "reference": stanfordnlp/mac-network's CLEVR settings (see ``cell``)

    def __post_init__(self):
        check_fields(self)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r}; valid: {VARIANTS}")
        if self.p < 1:
            raise ValueError(f"p (the number of reasoning steps) must be an int >= 1, got {self.p!r}")
        if self.d < 2 or self.d % 2:
            raise ValueError(f"d must be an even int >= 2 (the biLSTM splits it in two), got {self.d!r}")
        if self.num_words < 3 or self.num_classes < 2:
            raise ValueError(f"need num_words >= 3 and num_classes >= 2, got {self.num_words}, {self.num_classes}")
        if self.stem not in ("conv", "patch"):
            raise ValueError(f"stem={self.stem!r}; valid: 'conv', 'patch'")
        step = 2**self.stem_layers if self.stem == "conv" else self.patch
        if self.image_size % step:
            raise ValueError(f"image_size={self.image_size} must be divisible by the stem's stride {step}")
        if self.unknown not in ("error", "unk"):
            raise ValueError(f"unknown={self.unknown!r}; valid: 'error', 'unk'")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def grid(self) -> int:
        """Side of the knowledge-base grid: image_size / 2**stem_layers (conv) or image_size / patch."""
        return self.image_size // (2**self.stem_layers if self.stem == "conv" else self.patch)


@dataclass(frozen=True)
class MACRecipe:
    """The training recipe of Sec. 4 / Appendix A."""

    lr: float = 1e-4  # Adam learning rate
    batch_size: int = 64  # the global batch
    ema_decay: float = 0.999  # exponential moving average of the weights
    grad_clip: float = 8.0  # max global gradient norm (the reference code's gradMaxNorm)
    steps: int = 100_000  # about 9 epochs of CLEVR's 700k questions at batch 64

    def __post_init__(self):
        check_fields(self)
        if self.lr <= 0 or self.batch_size < 1 or self.steps < 1 or self.grad_clip <= 0:
            raise ValueError(f"need lr > 0, batch_size >= 1, steps >= 1 and grad_clip > 0; got {self}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
