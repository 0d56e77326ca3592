"""The ZeRO memory model against the paper's printed tables and DeepSpeed's own estimators."""

import pytest

from moderndl.zero import memory

PSI = 7_500_000_000


def test_table1_matches_the_paper_at_its_rounding():
    ours = memory.table1()
    for n_d, printed in memory.TABLE1_PAPER.items():
        for value, paper in zip(ours[n_d], printed, strict=True):
            assert memory.matches_printed(value, paper), (n_d, value, paper)


def test_table1_stage3_at_64_devices_is_1_88_gb():
    assert memory.model_state_bytes(PSI, 64, 3) / memory.GB == pytest.approx(1.875)


def test_table2_row_64_matches_the_paper():
    row = memory.table2(32.0)[64]
    assert all(memory.matches_printed(v, p) for v, p in zip(row, memory.TABLE2_PAPER_ND64, strict=True)), row


def test_table2_as_printed_scales_the_rounded_nd64_entry_by_model_parallelism():
    rows = memory.table2_printed()
    assert [(r["MP"], r["GPUs"], r["N_d"]) for r in rows] == [(1, 64, 64), (2, 128, 64), (4, 256, 64),
                                                              (8, 512, 64), (16, 1024, 64)]
    assert all(r["matches"] for r in rows)
    assert rows[2]["ours"][1] == pytest.approx(30.4)  # 4 x 7.6B as printed; unrounded 4 x 7.64B = 30.57B
    assert rows[2]["exact_billions"][1] == pytest.approx(30.57, abs=0.01)
    assert rows[4]["exact_billions"][3] == pytest.approx(2048)  # the printed "2T"


def test_offload_bound_is_deepspeed_estimate_plus_two_buckets():
    bound = memory.offload_gpu_bound(1_500_000_000)
    assert bound["estimate"] == 2 * 1_500_000_000  # the 2-byte parameters stay on the GPU
    assert bound["buckets"] == 2 * 2 * memory.DEEPSPEED_BUCKET
    small = memory.offload_gpu_bound(1000)
    assert small["buckets"] == 2 * 2 * 1000  # a bucket never exceeds the model


@pytest.mark.parametrize("stage", [1.0, True, "1", None])
def test_stage_must_be_an_int(stage):
    with pytest.raises(ValueError, match="stage must be one of"):
        memory.validate(2, stage)


def test_trillion_parameters_need_about_16_gb_per_device():
    assert memory.model_state_bytes(1e12, 1024, 3) / memory.GB == pytest.approx(15.625)


def test_breakdown_partitions_one_more_state_per_stage():
    full = memory.breakdown(1000, 10, 0)
    assert full == {"params": 2000, "grads": 2000, "optimizer": 12000}
    assert memory.breakdown(1000, 10, 1) == {"params": 2000, "grads": 2000, "optimizer": 1200}
    assert memory.breakdown(1000, 10, 2) == {"params": 2000, "grads": 200, "optimizer": 1200}
    assert memory.breakdown(1000, 10, 3) == {"params": 200, "grads": 200, "optimizer": 1200}


def test_max_params_inverts_the_formula():
    for stage in memory.STAGES:
        psi = memory.max_params(32e9, 16, stage)
        assert memory.model_state_bytes(psi, 16, stage) == pytest.approx(32e9)


@pytest.mark.parametrize(("psi", "n_d", "largest"),
                         [(PSI, 64, 4096 * 16384), (1_000_000, 4, 10_000), (10**9, 8, 10**7)])
def test_deepspeed_estimators_differ_by_the_named_terms(psi, n_d, largest):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    _, gpu2 = estimate_zero2_model_states_mem_needs(psi, num_gpus_per_node=n_d, cpu_offload=False)
    _, gpu3, _ = estimate_zero3_model_states_mem_needs(psi, largest, num_gpus_per_node=n_d, cpu_offload=False,
                                                       cpu_offload_params=False)
    assert gpu2 - memory.model_state_bytes(psi, n_d, 2) == pytest.approx(4 * psi / n_d, abs=1)
    assert gpu3 - memory.model_state_bytes(psi, n_d, 3) == pytest.approx(2 * psi / n_d + 4 * largest, abs=1)
    gap = memory.deepspeed_difference(psi, n_d, largest)
    assert gap["stage2_gap"] == pytest.approx(gap["stage2_explained"], abs=1)
    assert gap["stage3_gap"] == pytest.approx(gap["stage3_explained"], abs=1)


def test_deepspeed_cpu_figures_carry_the_1_5_buffer_factor():
    est = memory.deepspeed_estimates(10**9, 4, 10**7)
    assert est["stage2"]["deepspeed_offload_cpu"] == pytest.approx(10**9 * 16 * 1.5)  # max(4 N_d, 16) x 1.5


@pytest.mark.parametrize("n_d", [0, -3, 1.5])
def test_bad_device_count_names_the_value(n_d):
    with pytest.raises(ValueError, match=rf"N_d.*{n_d}"):
        memory.model_state_bytes(1000, n_d, 1)


@pytest.mark.parametrize("stage", [4, -1, "2"])
def test_bad_stage_names_the_value(stage):
    with pytest.raises(ValueError, match=rf"stage.*{stage}"):
        memory.breakdown(1000, 4, stage)


def test_budget_below_the_stage3_share_is_refused():
    share = memory.model_state_bytes(PSI, 64, 3)
    memory.require_budget(PSI, 64, share)  # exactly the share fits
    with pytest.raises(ValueError, match=r"memory budget 1\.8e\+09 bytes.*stage-3 share 1\.875e\+09"):
        memory.require_budget(PSI, 64, 1.8e9)
    with pytest.raises(ValueError, match="memory budget"):
        memory.smallest_stage(PSI, 64, 1e9)
    assert memory.smallest_stage(PSI, 64, 32e9) == 1  # 31.4 GB under P_os (Table 1)
