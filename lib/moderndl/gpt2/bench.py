"""Training throughput and MFU: our compact GPT-2 against Hugging Face's ``GPT2LMHeadModel``.

Model FLOPs utilisation (Chowdhery et al. 2022, PaLM, arXiv:2204.02311, App. B) divides the
FLOPs a step must do by what the device could do. Per token of a forward and backward pass,

$$F = 6N + 12\\,L\\,H\\,Q\\,T,$$

with $N$ the parameters (without position embeddings, as nanoGPT counts), $L$ layers, $H$
heads of width $Q$ and context $T$. MFU $= F \\cdot \\text{tokens/s} \\,/\\, P$, where the peak
$P$ is reported two ways: *measured*, the best bf16 matmul rate on the same device, and the
*data-sheet* dense bf16 peak of the GPU model (:data:`DATASHEET_BF16`), which is higher.

:func:`generation` times decoding: our KV-cached sampler against ``GPT2LMHeadModel.generate``
(also KV-cached) on the same weights, interleaved trials, and the time per token along the
sequence, which a cache keeps flat and a cache-free decoder makes grow linearly.

:func:`compare` runs both models with identical weights, batch, bf16 autocast,
``torch.compile`` and fused AdamW, so the ratio isolates the model code. It is meant for a
GPU (GPT-2 124M: ``BenchConfig()``); on CPU it runs at toy sizes as a check.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from moderndl.gpt2 import lm
from moderndl.gpt2.model import GPT, GPTConfig, configure_optimizer, from_hf
from moderndl.measure import time_it

# Dense bf16 tensor-core peaks from the vendors' data sheets (FLOP/s, without sparsity).
DATASHEET_BF16 = {
    "H100": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200": 989e12, "GH200": 989e12,
    "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12, "RTX 4090": 165e12,
}


def datasheet_peak(device_name: str) -> float | None:
    """The data-sheet bf16 peak of a GPU by its ``torch.cuda.get_device_name``, or ``None``."""
    name = device_name.upper()
    for key in sorted(DATASHEET_BF16, key=len, reverse=True):  # "H100 PCIe" before "H100" (SXM)
        if all(part in name for part in key.upper().split()):
            return DATASHEET_BF16[key]
    return None


@dataclass(frozen=True)
class BenchConfig:
    """GPT-2 124M (Radford et al. 2019, Table 2) at sequence length 1024."""

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


def throughput(model: Any, config: BenchConfig, device: torch.device) -> dict[str, float]:
    """Training tokens/s of one model: forward, backward and fused AdamW step, median of repeats."""
    g = torch.Generator().manual_seed(config.seed)
    batch = torch.randint(0, config.vocab_size, (config.batch_size, config.seq_len + 1),
                          generator=g).to(device)  # (B, T+1)
    optimizer = configure_optimizer(model, 1e-4, fused=device.type == "cuda")
    runner = torch.compile(model) if config.compile else model
    t = time_it(_train_step_fn(runner, optimizer, batch, config.bf16), warmup=config.warmup, repeats=config.repeats,
                device=device)
    return {"step_s": t["median_s"], "tokens_per_s": config.batch_size * config.seq_len / t["median_s"]}


def compare(config: BenchConfig | None = None, device: torch.device | str | None = None, *,
            peak_flops: float | None = None) -> dict[str, Any]:
    """Ours vs ``GPT2LMHeadModel`` (sdpa attention) on the same weights: tokens/s, ratio, MFU."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = config or BenchConfig()
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.seed)
    hf_config = GPT2Config(vocab_size=config.vocab_size, n_positions=config.seq_len, n_embd=config.n_embd,
                           n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                           attn_pdrop=0.0,
                           bos_token_id=config.vocab_size - 1, eos_token_id=config.vocab_size - 1,
                           attn_implementation="sdpa")  # HF's fastest built-in attention for GPT-2
    hf = GPT2LMHeadModel(hf_config)
    ours = from_hf(hf).to(dev)
    n_params = ours.num_params(non_embedding=True)
    per_token = flops_per_token(n_params, config.n_layer, config.n_head, config.n_embd // config.n_head, config.seq_len)
    peak = peak_flops if peak_flops is not None else matmul_peak(dev, n=8192 if dev.type == "cuda" else 512,
                                                                 dtype=torch.bfloat16 if config.bf16 else torch.float32)
    result_ours = throughput(ours, config, dev)
    del ours
    result_hf = throughput(hf.to(dev), config, dev)
    sheet = datasheet_peak(torch.cuda.get_device_name(dev)) if dev.type == "cuda" else None
    out = {"config": asdict(config), "device": str(dev), "n_params": n_params, "flops_per_token": per_token,
           "peak_flops": peak, "datasheet_peak_flops": sheet, "ours": result_ours, "hf": result_hf,
           "speedup": result_ours["tokens_per_s"] / result_hf["tokens_per_s"]}
    for name in ("ours", "hf"):
        achieved = per_token * out[name]["tokens_per_s"]
        out[name]["mfu"] = achieved / peak  # against the measured matmul peak
        out[name]["mfu_datasheet"] = achieved / sheet if sheet else None
    return out


def tiny(**overrides: Any) -> BenchConfig:
    """A CPU-sized configuration for checking that :func:`compare` runs."""
    base = dict(n_layer=2, n_head=2, n_embd=64, vocab_size=256, seq_len=64, batch_size=2, warmup=1, repeats=2,
                compile=False, bf16=False)
    return BenchConfig(**(base | overrides))


@torch.no_grad()
def generation(ours: Any, hf: Any, prompt: torch.Tensor, new_tokens: int, *, repeats: int = 3,
               segments: int = 4) -> dict[str, Any]:
    """Decoding tokens/s of our cached sampler and of ``hf.generate`` on the same weights.

    Both sample (temperature 1, no truncation) ``new_tokens`` after ``prompt`` ``(B, T0)``,
    without stopping at ``<|endoftext|>``; the trials alternate, and each side's median is
    reported. ``per_token_ms`` is ours, the mean time per token over each of ``segments``
    equal stretches of the sequence (the first token, which carries the prefill, left out):
    with the cache the median of ``repeats`` runs per stretch, without it one run.
    """
    import time

    from moderndl.gpt2 import sampling

    B = prompt.shape[0]
    ours.eval()
    hf.eval()

    def run_ours(n: int, cache: bool = True, on_token: Any = None) -> None:
        sampling.sample(ours, prompt, n, use_cache=cache, n_positions=ours.config.n_positions, on_token=on_token)

    def run_hf() -> None:
        hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0, max_new_tokens=new_tokens,
                    pad_token_id=0, eos_token_id=None)

    run_ours(8)
    run_hf()
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    for _ in range(repeats):  # interleaved, so background load hits both alike
        for name, fn in (("ours", lambda: run_ours(new_tokens)), ("hf", run_hf)):
            times[name].append(time_it(fn, warmup=0, repeats=1)["median_s"])
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    per_token = {}
    for cache in (True, False):
        runs = []
        for _ in range(repeats if cache else 1):  # the cache-free decoder is slow: one run
            stamps = [time.perf_counter()]
            run_ours(new_tokens, cache, on_token=lambda i, st=stamps: st.append(time.perf_counter()))
            gaps = [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]  # tokens 2..n
            size = max(1, len(gaps) // segments)
            runs.append([1e3 * sum(gaps[i * size:(i + 1) * size]) / size for i in range(segments)])
        # per segment, the median over runs: a burst of background load hits one run, not all
        per_token["cache" if cache else "no_cache"] = [sorted(col)[len(col) // 2] for col in zip(*runs, strict=True)]
    return {"batch": B, "prompt_tokens": prompt.shape[1], "new_tokens": new_tokens, "repeats": repeats,
            "ours_tokens_per_s": B * new_tokens / med["ours"], "hf_tokens_per_s": B * new_tokens / med["hf"],
            "ratio": med["hf"] / med["ours"], "per_token_ms": per_token, "times_s": times}


def generation_pair(n_layer: int = 4, n_embd: int = 256, n_head: int = 4, vocab_size: int = 4096,
                    n_positions: int = 256, seed: int = 0) -> tuple[Any, Any]:
    """``(ours, hf)``: a randomly initialised ``GPT2LMHeadModel`` and our copy of its weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                                    n_head=n_head, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
                                    attn_pdrop=0.0)).eval()
    return from_hf(hf).eval(), hf


def gpu_check(device: torch.device, toy: bool) -> dict[str, Any]:
    """The chapter's part of ``make gpu-check``: ``finetune``'s training path and the benchmarks.

    On CUDA: a short ``finetune`` run of the 124M architecture (random weights, a BPE tokenizer
    trained here: no hub on the check machine) with the full profile's switches (bf16 autocast,
    ``torch.compile``, fused AdamW); the training throughput against ``GPT2LMHeadModel`` (MFU
    against the measured and the data-sheet peak); and the decoding comparison. ``toy=True``
    (no CUDA) runs the same paths at toy size on CPU and lists what it skipped.
    """
    import tempfile
    import time

    from moderndl.data import text as text_data
    from moderndl.gpt2 import api, pretrain

    out: dict[str, Any] = {"device": str(device), "toy": toy, "skipped": []}
    if toy:
        out["skipped"] += ["bf16 autocast and torch.compile (CPU)", "the 124M size", "data-sheet MFU"]
    arch = dict(n_layer=2, n_embd=64, n_head=2, n_positions=64) if toy else dict(n_layer=12, n_embd=768, n_head=12,
                                                                                  n_positions=1024)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = text_data.pydoc_topics()[: 60_000 if toy else 400_000]
        tokenizer = pretrain.train_tokenizer([corpus], 512 if toy else 8192)
        model = GPT(GPTConfig(vocab_size=len(tokenizer), **arch))
        base = api.save_pretrained(model, tokenizer, Path(tmp) / "base")
        data = Path(tmp) / "train.txt"
        data.write_text(corpus)
        started = time.perf_counter()
        run = api.finetune(data, base, 3 if toy else 10, run_name="check", checkpoint_dir=Path(tmp) / "ckpt",
                           batch_size=2 if toy else 8, accumulate_gradients=2, block_size=arch["n_positions"],
                           sample_every=0, save_every=0, print_every=0, cpu=device.type != "cuda", progress=False)
        out["finetune"] = {"steps": run.step, "wall_s": time.perf_counter() - started, "losses": run.losses,
                           "mixed_precision": "bf16" if device.type == "cuda" else "no",
                           "compile": device.type == "cuda"}
    out["throughput"] = compare(tiny(repeats=2) if toy else BenchConfig(warmup=3, repeats=5), device,
                                peak_flops=1e9 if toy else None)
    ours, hf = generation_pair(**(dict(n_layer=2, n_embd=64, n_head=2, vocab_size=256) if toy else {}))
    prompt = torch.randint(0, ours.config.vocab_size, (4, 8), device=device)  # (B, T0)
    out["generation"] = generation(ours.to(device), hf.to(device), prompt, 32 if toy else 192,
                                   repeats=1 if toy else 3)
    return out


__all__ = ["BenchConfig", "DATASHEET_BF16", "compare", "datasheet_peak", "flops_per_token", "generation",
           "generation_pair", "gpu_check", "matmul_peak", "throughput", "tiny"]
