"""The MFU formula against torch's FLOP counter, and a toy-sized run of the comparison."""

import pytest
import torch

from moderndl.gpt2 import bench
from moderndl.gpt2.model import GPT, GPTConfig
from moderndl.measure import count_flops


def _attention_flops(B, H, T, Q):
    """FLOPs of softmax(q k^T) v written as explicit matmuls (SDPA's CPU kernel is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    q = k = v = torch.zeros(B, H, T, Q)
    counter = FlopCounterMode(display=False)
    with counter:
        (q @ k.transpose(-2, -1)) @ v  # (B, H, T, T) then (B, H, T, Q)
    return counter.get_total_flops()


def test_flops_per_token_matches_the_flop_counter():
    config = GPTConfig(vocab_size=512, n_positions=128, n_embd=128, n_layer=2, n_head=4)
    model = GPT(config)
    B, T, Q = 2, 128, config.n_embd // config.n_head
    matmuls = count_flops(model, torch.zeros(B, T, dtype=torch.long))  # linear layers, 2 FLOPs per MAC
    attention = config.n_layer * _attention_flops(B, config.n_head, T, Q)
    measured = 3 * (matmuls + attention) / (B * T)  # backward = 2x forward
    # biases and LayerNorm parameters are in N but do no matmul work: take them out of 6N
    no_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 1)
    formula = bench.flops_per_token(model.num_params(), config.n_layer, config.n_head, Q, T) - 6 * no_matmul
    assert measured == formula


def test_compare_at_toy_size_reports_mfu_by_its_definition():
    out = bench.compare(bench.tiny(repeats=1), "cpu", peak_flops=1e9)
    assert out["speedup"] == out["ours"]["tokens_per_s"] / out["hf"]["tokens_per_s"]
    assert out["ours"]["mfu"] == out["flops_per_token"] * out["ours"]["tokens_per_s"] / 1e9
    assert out["datasheet_peak_flops"] is None and out["ours"]["mfu_datasheet"] is None  # no GPU model on CPU


def test_datasheet_peaks_by_device_name():
    assert bench.datasheet_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert bench.datasheet_peak("NVIDIA H100 PCIe") == 756e12
    assert bench.datasheet_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert bench.datasheet_peak("NVIDIA L40S") == 362e12
    assert bench.datasheet_peak("Tesla T4") is None


def test_generation_benchmark_times_segments_that_add_up():
    ours, hf = bench.generation_pair(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=64)
    prompt = torch.randint(0, 64, (2, 4), generator=torch.Generator().manual_seed(0))
    out = bench.generation(ours, hf, prompt, 16, repeats=1, segments=2)
    assert out["ratio"] == pytest.approx(out["ours_tokens_per_s"] / out["hf_tokens_per_s"])
    assert len(out["per_token_ms"]["cache"]) == 2 and len(out["per_token_ms"]["no_cache"]) == 2
