"""Decoding: temperature, top-k and nucleus (top-p) sampling, and greedy decoding.

Radford et al. 2019 (GPT-2) sample with top-k truncation, $k = 40$ (Sec. 3.7, 3.8); nucleus
sampling is Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration",
arXiv:1904.09751 (Sec. 3.1): keep the smallest set $V^{(p)}$ with
$\\sum_{x \\in V^{(p)}} p(x \\mid x_{<t}) \\ge p$ and renormalise,

$$p'(x \\mid x_{<t}) \\propto \\exp(z_x / \\tau)\\,[x \\in V^{(k)} \\cap V^{(p)}].$$
"""

from __future__ import annotations

from typing import Any

import torch

from moderndl.gpt2.lm import logits_of


def check_decoding(temperature: float, top_k: int, top_p: float) -> None:
    """Validate the knobs; each bad value is an error naming it and the valid range."""
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}; use top_k=1 for greedy decoding")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 disables it), got {top_k!r}")
    if not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 disables it), got {top_p!r}")


def filter_logits(logits: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k set and outside the nucleus $V^{(p)}$ to $-\\infty$. ``(B, V)``."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V), (B, V)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)  # (B, V)
        # drop a token when the mass before it already reaches p: the first token always stays
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p  # (B, V)
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order, (B, V)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def sample(model: Any, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, greedy: bool = False, generator: torch.Generator | None = None,
           n_positions: int | None = None) -> torch.Tensor:
    """Extend ``idx`` ``(B, T0)`` by ``max_new_tokens``: ``(B, T0 + max_new_tokens)``.

    The context is cropped to the last ``n_positions`` tokens (the model's window). No KV
    cache: each token re-reads the window, as nanoGPT does.
    """
    check_decoding(temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        context = idx if n_positions is None else idx[:, -n_positions:]  # (B, <= n_positions)
        logits = logits_of(model, context)[:, -1, :].float()  # (B, V)
        if greedy:
            nxt = logits.argmax(-1, keepdim=True)  # (B, 1)
        else:
            probs = filter_logits(logits / temperature, top_k=top_k, top_p=top_p).softmax(-1)  # (B, V)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)  # (B, T + 1)
    model.train(was_training)
    return idx
