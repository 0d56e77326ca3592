"""DeepSpeed ZeRO on CPU through its own launcher: the same Adam trajectory as one process, and
per-rank Adam moments equal to ours up to padding (arXiv:1910.02054, Section 5)."""

import pytest

from moderndl.zero import deepspeed_side
from moderndl.zero import experiments as ex
from moderndl.zero.workload import Workload

WORK = Workload(sizes=(64, 24, 17, 10), batch_size=24, steps=3)
# Its gradients' global norm is 1.7-1.8 at every step: DeepSpeed's default clipping (to 1.0)
# would rescale them all, and Adam's trajectory would leave plain Adam's where |g| is near eps.
CLIPPABLE = Workload(kind="transformer", width=64, layers=1, heads=4, seq_len=8, batch_size=4, steps=3)


def test_config_uses_torch_adam_and_the_stage():
    config = deepspeed_side.ds_config(WORK, 2, 3, bucket_numel=1234)
    assert config["optimizer"]["params"]["torch_adam"] is True
    assert config["optimizer"]["params"]["adam_w_mode"] is False  # torch.optim.Adam, not AdamW's weight decay
    assert config["zero_optimization"]["stage"] == 3
    assert config["zero_optimization"]["stage3_param_persistence_threshold"] == 0  # every parameter partitions
    assert config["zero_optimization"]["reduce_bucket_size"] == 1234
    assert config["train_micro_batch_size_per_gpu"] * 2 == WORK.batch_size
    assert config["gradient_clipping"] == 0.0  # DeepSpeed's default (1.0) would clip; plain Adam does not


def test_bad_stage_is_refused_before_launching(tmp_path):
    with pytest.raises(ValueError, match=r"stages must be in \(1, 2, 3\), got \[0\]"):
        deepspeed_side.launch(WORK, 2, (0,), tmp_path)


@pytest.mark.slow
def test_deepspeed_matches_adam_and_our_partition(tmp_path):
    records = deepspeed_side.launch(CLIPPABLE, 2, (1, 3), tmp_path, rounds=1, repeats=1)
    reference, _ = ex.reference_adam(CLIPPABLE)
    psi = CLIPPABLE.num_params()
    tensors = len(list(CLIPPABLE.model().parameters()))
    for r in records:
        assert r["moments"] == pytest.approx(2 * psi / 2, rel=0.01), r  # 2 moments x ceil(psi / N_d)
        if r["params"] is not None:
            for name, ref in reference.items():
                assert (r["params"][name] - ref).abs().max().item() < 1e-5, (r["stage"], name)
    assert {r["optimizer"] for r in records} == {"DeepSpeedZeroOptimizer", "DeepSpeedZeroOptimizer_Stage3"}
    stage3 = [r for r in records if r["stage"] == 3]
    # each parameter padded to a multiple of N_d = 2: at most one element each
    assert all(r["persistent_params"] == 0 and r["param_elements"] <= psi // 2 + tensors for r in stage3)
