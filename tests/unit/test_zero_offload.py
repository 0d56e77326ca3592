"""The full profile's ZeRO-Offload pieces that can be checked without a GPU (arXiv:2101.06840)."""

from pathlib import Path

import pytest
import torch
import yaml

from moderndl.zero import offload


def test_accelerate_config_offloads_the_optimizer_with_deepspeed_stage2():
    config = yaml.safe_load((Path(offload.__file__).with_name("accelerate_deepspeed.yaml")).read_text())
    assert config["distributed_type"] == "DEEPSPEED" and config["mixed_precision"] == "bf16"
    ds = config["deepspeed_config"]
    assert ds["zero_stage"] == 2 and ds["offload_optimizer_device"] == "cpu"


def test_model_size_targets_the_requested_parameters():
    config = offload.OffloadConfig(params=1e6, width=256)
    psi = sum(p.numel() for p in offload.big_mlp(config).parameters())
    assert config.layers == 16 and psi >= 1e6 and psi - (256 * 256 + 256) < 1e6
    assert 16 * offload.OffloadConfig().params > 16e9  # plain Adam states exceed the 16 GB cap


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_offload_refuses_to_run_without_cuda():
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        offload.train(offload.OffloadConfig(params=1e3, width=8), plain=True, gpu_cap_gb=None)
