"""Decoding: temperature, top-k and nucleus (top-p) sampling, and greedy decoding.

Radford et al. 2019 (GPT-2) sample with top-k truncation, $k = 40$ (Sec. 3.7, 3.8); nucleus
sampling is Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration",
arXiv:1904.09751 (Sec. 3.1): keep the smallest set $V^{(p)}$ with
$\\sum_{x \\in V^{(p)}} p(x \\mid x_{<t}) \\ge p$ and renormalise,

$$p'(x \\mid x_{<t}) \\propto \\exp(z_x / \\tau)\\,[x \\in V^{(k)} \\cap V^{(p)}].$$
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from moderndl.gpt2.lm import logits_of


def check_decoding(temperature: float, top_k: int, top_p: float) -> None:
    """Validate the knobs; each bad value is an error naming it and the valid range.

    ``top_p`` follows gpt-2-simple: ``0.0`` (its default) and ``1.0`` both mean "off".
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}; use top_k=1 for greedy decoding")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 disables it), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1] (0 or 1 disables it, as in gpt-2-simple), got {top_p!r}")


def filter_logits(logits: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k set and outside the nucleus $V^{(p)}$ to $-\\infty$. ``(B, V)``.

    ``top_k=0`` and ``top_p`` of 0 or 1 switch the filter off.
    """
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V), (B, V)
        probs = sorted_logits.softmax(-1)  # (B, V)
        # drop a token when the mass before it already reaches p: the first token always stays
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p  # (B, V)
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order, (B, V)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _choose(logits: torch.Tensor, *, greedy: bool, temperature: float, top_k: int, top_p: float,
            generator: torch.Generator | None) -> torch.Tensor:
    """The next token ``(B, 1)`` from last-position logits ``(B, V)``."""
    if greedy:
        return logits.argmax(-1, keepdim=True)  # (B, 1)
    probs = filter_logits(logits / temperature, top_k=top_k, top_p=top_p).softmax(-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


def sample(model: Any, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, greedy: bool = False, generator: torch.Generator | None = None,
           n_positions: int | None = None, use_cache: bool = True,
           on_token: Callable[[int], None] | None = None) -> torch.Tensor:
    """Extend ``idx`` ``(B, T0)`` by ``max_new_tokens``: ``(B, T0 + max_new_tokens)``.

    Our :class:`~moderndl.gpt2.model.GPT` decodes with its KV cache: one forward pass over the
    prompt (prefill), then one token per step. Once the sequence fills the model's window
    (``n_positions``), each further token re-reads the last ``n_positions`` tokens, which is
    exactly what an uncached decoder with a sliding window computes. Other models (and
    ``use_cache=False``) re-read the cropped window at every step, as nanoGPT does.
    ``on_token(i)`` is called after the ``i``-th new token is chosen (for timing).
    """
    check_decoding(temperature, top_k, top_p)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    knobs = dict(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    on_token = on_token or (lambda i: None)
    was_training = model.training
    model.eval()
    try:
        # inference_mode: no autograd bookkeeping per op (cheaper than no_grad for a decode
        # loop of small ops); the clone outside it returns an ordinary tensor
        with torch.inference_mode():
            out = _sample(model, idx, max_new_tokens, n_positions, use_cache, knobs, on_token)
        return out.clone()
    finally:
        model.train(was_training)


def _sample(model: Any, idx: torch.Tensor, max_new_tokens: int, n_positions: int | None, use_cache: bool,
            knobs: dict, on_token: Callable[[int], None]) -> torch.Tensor:
    if use_cache and hasattr(model, "new_cache"):
        return _sample_cached(model, idx, max_new_tokens, n_positions or model.config.n_positions, knobs, on_token)
    for i in range(max_new_tokens):
        context = idx if n_positions is None else idx[:, -n_positions:]  # (B, <= n_positions)
        logits = logits_of(model, context)[:, -1, :].float()  # (B, V)
        idx = torch.cat([idx, _choose(logits, **knobs)], dim=1)  # (B, T + 1)
        on_token(i)
    return idx


def _sample_cached(model: Any, idx: torch.Tensor, max_new_tokens: int, window: int, knobs: dict,
                   on_token: Callable[[int], None]) -> torch.Tensor:
    B, T0 = idx.shape
    out = torch.empty(B, T0 + max_new_tokens, dtype=idx.dtype, device=idx.device)  # (B, T0 + new)
    out[:, :T0] = idx
    if max_new_tokens == 0:
        return out
    window = min(window, model.config.n_positions)
    cache = model.new_cache(B, window)
    logits = model(idx[:, -window:], cache, last_only=True)[:, -1].float()  # prefill once, (B, V)
    for i in range(max_new_tokens):
        t = T0 + i  # position of the new token in ``out``
        out[:, t:t + 1] = _choose(logits, **knobs)  # (B, 1)
        on_token(i)
        if i == max_new_tokens - 1:
            break
        if cache.length < window:  # one token per step: attend to the cached keys and values
            logits = model(out[:, t:t + 1], cache, last_only=True)[:, -1].float()  # (B, V)
        else:  # the window is full: slide it, re-reading the last ``window`` tokens
            logits = model(out[:, t + 1 - window:t + 1], last_only=True)[:, -1].float()  # (B, V)
    return out
