"""Training throughput and MFU: our compact GPT-2 against Hugging Face's ``GPT2LMHeadModel``.

Model FLOPs utilisation (Chowdhery et al. 2022, PaLM, arXiv:2204.02311, App. B) divides the
FLOPs a step must do by what the device could do. Per token of a forward and backward pass,

$$F = 6N + 12\\,L\\,H\\,Q\\,T,$$

with $N$ the parameters (without position embeddings, as nanoGPT counts), $L$ layers, $H$
heads of width $Q$ and context $T$. MFU $= F \\cdot \\text{tokens/s} \\,/\\, P$, where the peak
$P$ is *measured* here as the best bf16 matmul rate on the same device (not the data sheet).

:func:`compare` runs both models with identical weights, batch, bf16 autocast,
``torch.compile`` and fused AdamW, so the ratio isolates the model code. It is meant for a
GPU (the issue's 124M setting: ``BenchConfig()``); on CPU it runs at toy sizes as a check.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

import torch

from moderndl.gpt2 import lm
from moderndl.gpt2.model import configure_optimizer, from_hf
from moderndl.measure import time_it


@dataclass(frozen=True)
class BenchConfig:
    """The issue's setting: GPT-2 124M (Radford et al. 2019, Table 2) at sequence length 1024."""

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    vocab_size: int = 50304  # 50257 padded to a multiple of 128 (nanoGPT): same for both models
    seq_len: int = 1024
    batch_size: int = 16  # fits one 80 GB GPU in bf16 for both implementations
    warmup: int = 5  # includes torch.compile's first calls
    repeats: int = 20
    compile: bool = True
    bf16: bool = True
    seed: int = 0


def flops_per_token(n_params: int, n_layer: int, n_head: int, head_dim: int, seq_len: int) -> int:
    """$6N + 12 L H Q T$ training FLOPs per token (PaLM App. B)."""
    return 6 * n_params + 12 * n_layer * n_head * head_dim * seq_len


def matmul_peak(device: torch.device | str, *, n: int = 8192, dtype: torch.dtype = torch.bfloat16,
                repeats: int = 10) -> float:
    """Measured peak FLOP/s: the median rate of an ``(n, n) @ (n, n)`` matmul (2 n^3 FLOPs)."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    t = time_it(lambda: a @ b, warmup=3, repeats=repeats, device=dev)
    return 2 * n**3 / t["min_s"]


def _train_step_fn(model: Any, optimizer: torch.optim.Optimizer, batch: torch.Tensor, bf16: bool):
    device_type = batch.device.type
    autocast = (torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = lm.lm_loss(model, batch)
        loss.backward()
        optimizer.step()

    return step


def throughput(model: Any, cfg: BenchConfig, device: torch.device) -> dict[str, float]:
    """Training tokens/s of one model: forward, backward and fused AdamW step, median of repeats."""
    g = torch.Generator().manual_seed(cfg.seed)
    batch = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.seq_len + 1), generator=g).to(device)  # (B, T+1)
    optimizer = configure_optimizer(model, 1e-4, fused=device.type == "cuda")
    runner = torch.compile(model) if cfg.compile else model
    t = time_it(_train_step_fn(runner, optimizer, batch, cfg.bf16), warmup=cfg.warmup, repeats=cfg.repeats,
                device=device)
    return {"step_s": t["median_s"], "tokens_per_s": cfg.batch_size * cfg.seq_len / t["median_s"]}


def compare(cfg: BenchConfig | None = None, device: torch.device | str | None = None, *,
            peak_flops: float | None = None) -> dict[str, Any]:
    """Ours vs ``GPT2LMHeadModel`` (sdpa attention) on the same weights: tokens/s, ratio, MFU."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = cfg or BenchConfig()
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    hf_config = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.seq_len, n_embd=cfg.n_embd,
                           n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                           bos_token_id=cfg.vocab_size - 1, eos_token_id=cfg.vocab_size - 1,
                           attn_implementation="sdpa")  # HF's fastest built-in attention for GPT-2
    hf = GPT2LMHeadModel(hf_config)
    ours = from_hf(hf).to(dev)
    n_params = ours.num_params(non_embedding=True)
    per_token = flops_per_token(n_params, cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.seq_len)
    peak = peak_flops if peak_flops is not None else matmul_peak(dev, n=8192 if dev.type == "cuda" else 512,
                                                                 dtype=torch.bfloat16 if cfg.bf16 else torch.float32)
    result_ours = throughput(ours, cfg, dev)
    del ours
    result_hf = throughput(hf.to(dev), cfg, dev)
    out = {"config": asdict(cfg), "device": str(dev), "n_params": n_params, "flops_per_token": per_token,
           "peak_flops": peak, "ours": result_ours, "hf": result_hf,
           "speedup": result_ours["tokens_per_s"] / result_hf["tokens_per_s"]}
    for name in ("ours", "hf"):
        out[name]["mfu"] = per_token * out[name]["tokens_per_s"] / peak
    return out


def tiny(**overrides: Any) -> BenchConfig:
    """A CPU-sized configuration for checking that :func:`compare` runs."""
    base = dict(n_layer=2, n_head=2, n_embd=64, vocab_size=256, seq_len=64, batch_size=2, warmup=1, repeats=2,
                compile=False, bf16=False)
    return BenchConfig(**(base | overrides))


__all__ = ["BenchConfig", "compare", "flops_per_token", "matmul_peak", "throughput", "tiny"]
