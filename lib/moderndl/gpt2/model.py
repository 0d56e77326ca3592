"""A compact GPT-2 in the spirit of nanoGPT, weight-compatible with Hugging Face's.

Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (OpenAI report;
no arXiv id). GPT-2 is a decoder-only Transformer (Vaswani et al. 2017, arXiv:1706.03762)
trained by maximum likelihood on the next token (Sec. 2, Eq. 1):

$$\\mathcal{L}(\\theta) = -\\sum_t \\log p_\\theta(x_t \\mid x_{<t}),\\qquad
p_\\theta(\\cdot \\mid x_{<t}) = \\operatorname{softmax}(h_t W_e^\\top)$$

with pre-LayerNorm blocks, a final LayerNorm and the output projection tied to the token
embedding $W_e$ (Sec. 2.3). The fast path here is: one fused $C \\to 3C$ QKV projection,
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels on
GPU), weight tying, and the switches for bf16 autocast, ``torch.compile`` and fused AdamW
that :func:`configure_optimizer` and ``moderndl.train`` expose.

Parameter names follow Hugging Face's ``GPT2LMHeadModel`` so that :func:`from_hf` and
:func:`hf_state_dict` only transpose the ``Conv1D`` weights (stored ``(in, out)`` there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2 hyperparameters; the defaults are the 124M model (Radford et al. 2019, Table 2)."""

    vocab_size: int = 50257  # byte-level BPE: 50,000 merges + 256 bytes + <|endoftext|> (Sec. 2.2)
    n_positions: int = 1024  # context length (Sec. 2.3)
    n_embd: int = 768  # d_model of the smallest model (Table 2)
    n_layer: int = 12  # Table 2
    n_head: int = 12  # 64-dimensional heads, as in GPT-1
    layer_norm_epsilon: float = 1e-5  # Hugging Face / OpenAI TF default
    dropout: float = 0.0  # GPT-2 pretrained with 0.1; 0 for fine-tuning and exact comparisons
    activation: str = "gelu_new"  # GELU, tanh approximation (Hendrycks & Gimpel 2016)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} not in {sorted(ACTIVATIONS)}")

    @classmethod
    def from_hf(cls, hf_config: Any) -> GPTConfig:
        """The same architecture as a ``transformers.GPT2Config``; unsupported variants are errors."""
        unsupported = {
            "scale_attn_weights": (getattr(hf_config, "scale_attn_weights", True), True),
            "scale_attn_by_inverse_layer_idx": (getattr(hf_config, "scale_attn_by_inverse_layer_idx", False), False),
            "reorder_and_upcast_attn": (getattr(hf_config, "reorder_and_upcast_attn", False), False),
            "add_cross_attention": (getattr(hf_config, "add_cross_attention", False), False),
        }
        for name, (value, expected) in unsupported.items():
            if value != expected:
                raise ValueError(f"GPT2Config.{name}={value!r} is not supported by the compact model "
                                 f"(needs {expected})")
        if getattr(hf_config, "n_inner", None) not in (None, 4 * hf_config.n_embd):
            raise ValueError(f"GPT2Config.n_inner={hf_config.n_inner} must be None or 4*n_embd")
        return cls(vocab_size=hf_config.vocab_size, n_positions=hf_config.n_positions, n_embd=hf_config.n_embd,
                   n_layer=hf_config.n_layer, n_head=hf_config.n_head,
                   layer_norm_epsilon=hf_config.layer_norm_epsilon, activation=hf_config.activation_function)

    def to_hf(self, **extra: Any):
        """A ``transformers.GPT2Config`` for the same architecture (dropout carried over)."""
        from transformers import GPT2Config

        return GPT2Config(vocab_size=self.vocab_size, n_positions=self.n_positions, n_embd=self.n_embd,
                          n_layer=self.n_layer, n_head=self.n_head, layer_norm_epsilon=self.layer_norm_epsilon,
                          activation_function=self.activation, resid_pdrop=self.dropout, embd_pdrop=self.dropout,
                          attn_pdrop=self.dropout, **extra)


class KVCache:
    """Keys and values of every layer for the tokens decoded so far (incremental decoding).

    Attention at position $t$ needs $k_{\\le t}$ and $v_{\\le t}$ of every earlier position, and
    they do not change once computed (the mask is causal). So a decoder runs the prompt once
    (prefill), stores its keys and values here, and then feeds one new token per step,
    which costs $O(t)$ instead of re-running the whole prefix at $O(t^2)$. The buffers are
    preallocated to ``max_length`` so a step writes in place instead of concatenating.
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, max_length: int, head_dim: int, *,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        shape = (n_layer, batch_size, n_head, max_length, head_dim)  # (L, B, H, T_max, Q)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # tokens cached; the model advances it after all layers ran

    @property
    def max_length(self) -> int:
        return self.k.shape[3]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Store ``k, v`` ``(B, H, T, Q)`` of ``layer`` after the cached positions; return all
        keys and values so far ``(B, H, S, Q)`` and the attention mask of the new queries."""
        start, T = self.length, k.shape[2]
        end = start + T
        if end > self.max_length:
            raise ValueError(f"KV cache holds {self.max_length} positions; {end} requested")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        if T == 1:  # one new token sees every cached position: no mask
            mask = None
        else:  # query i (absolute position start + i) sees keys 0..start + i
            rows = torch.arange(start, end, device=k.device)[:, None]  # (T, 1)
            mask = torch.arange(end, device=k.device)[None, :] <= rows  # (T, S), True = attend
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end], mask


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention with one fused QKV projection (Sec. 2.3)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # fused W_q, W_k, W_v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, Q)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, Q)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, Q)
        if cache is None:
            # softmax(q k^T / sqrt(Q) + causal mask) v, by the fused kernel
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, Q)
        else:
            k, v, mask = cache.append(layer, k, v)  # (B, H, S, Q) x 2 with S = past + T; mask (T, S) or None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, Q)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward layer, width 4C, GELU."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        self.approximate = ACTIVATIONS[config.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """Pre-LN residual block (Sec. 2.3): $x + \\mathrm{attn}(\\mathrm{LN}(x))$, then the same for the MLP."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 language model: ``forward(idx)`` returns next-token logits ``(B, T, vocab_size)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.vocab_size, config.n_embd),
            "wpe": nn.Embedding(config.n_positions, config.n_embd),
            "drop": nn.Dropout(config.dropout),
            "h": nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            "ln_f": nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon),
        })
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer["wte"].weight  # weight tying (Sec. 2.3, as in GPT-1)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's 1/sqrt(2L) scaling of residual projections (Sec. 2.3)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)  # initializer_range of GPT-2
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, *, last_only: bool = False) -> torch.Tensor:
        """Logits ``(B, T, vocab_size)`` for ``idx`` ``(B, T)``.

        With a :class:`KVCache`, ``idx`` continues the cached sequence: its positions start at
        ``cache.length``, its keys and values are appended, and it attends to everything
        cached before it. ``last_only`` returns the logits of the last position, ``(B, 1, V)``.
        """
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.n_positions:
            raise ValueError(f"sequence length {start + T} exceeds n_positions={self.config.n_positions}")
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.transformer["drop"](self.transformer["wte"](idx) + self.transformer["wpe"](pos))  # (B, T, C)
        for i, block in enumerate(self.transformer["h"]):
            x = block(x, cache, i)  # (B, T, C)
        if cache is not None:
            cache.length += T
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        return self.lm_head(self.transformer["ln_f"](x))  # (B, T, vocab_size)

    def new_cache(self, batch_size: int, max_length: int | None = None) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` sequences of up to ``max_length`` tokens."""
        config = self.config
        w = self.transformer["wte"].weight
        return KVCache(config.n_layer, batch_size, config.n_head, max_length or config.n_positions,
                       config.n_embd // config.n_head, device=w.device, dtype=w.dtype)

    def num_params(self, *, non_embedding: bool = True) -> int:
        """Parameters (tied weights once); without position embeddings, as nanoGPT counts N."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer["wpe"].weight.numel() if non_embedding else n


def from_hf(hf_model: Any, *, dropout: float = 0.0) -> GPT:
    """Our :class:`GPT` holding the weights of a ``GPT2LMHeadModel`` (copied, Conv1D transposed)."""
    config = GPTConfig.from_hf(hf_model.config)
    if dropout:
        config = GPTConfig(**{f.name: getattr(config, f.name) for f in fields(config)} | {"dropout": dropout})
    model = GPT(config)
    source = {k: v for k, v in hf_model.state_dict().items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    target = model.state_dict()
    missing = sorted(set(target) - set(source))
    if missing:
        raise ValueError(f"the checkpoint lacks {missing[:4]}{'...' if len(missing) > 4 else ''}")
    with torch.no_grad():
        for name, tensor in target.items():
            value = source[name]
            if name.endswith(CONV1D_SUFFIXES):
                value = value.t()  # Conv1D (in, out) -> Linear (out, in)
            if value.shape != tensor.shape:
                raise ValueError(f"{name}: checkpoint shape {tuple(value.shape)} != model {tuple(tensor.shape)}")
            tensor.copy_(value)
    return model.to(next(hf_model.parameters()).device)


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under Hugging Face's names and layouts (Conv1D transposed back)."""
    out = {}
    for name, tensor in model.state_dict().items():
        out[name] = tensor.t().contiguous() if name.endswith(CONV1D_SUFFIXES) else tensor
    return out


def to_hf(model: GPT, **config_extra: Any):
    """A ``GPT2LMHeadModel`` holding our weights, ready for ``save_pretrained``."""
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(model.config.to_hf(**config_extra))
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias", "lm_head.weight"))]
    if missing or unexpected:
        raise RuntimeError(f"weight mismatch converting to GPT2LMHeadModel: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf


def configure_optimizer(model: nn.Module, lr: float, *, weight_decay: float = 0.0, betas=(0.9, 0.999),
                        fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019) with decay on matrices only; fused kernel on CUDA.

    gpt-2-simple fine-tunes with plain Adam, lr 1e-4: ``weight_decay=0`` reproduces that.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    if fused is None:
        fused = all(p.is_cuda for p in params)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
