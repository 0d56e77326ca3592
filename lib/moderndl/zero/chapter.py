r"""The chapter's experiment in one place, shared by the notebook and ``python -m moderndl.zero``.

Rajbhandari et al. 2020, arXiv:1910.02054. :func:`measure` runs everything that needs ranks
(our stages at every $N_d$, the libraries side by side, DeepSpeed through its launcher, the
offload run); :func:`claims` turns the results into the ledger's claims, with tolerances fixed
here before any run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from moderndl import paths
from moderndl.zero import deepspeed_side, memory, report
from moderndl.zero import experiments as ex
from moderndl.zero.workload import Workload

# The trajectory claims are about the algorithm, so they run in float64: model, gradients,
# Adam's moments and the one-process reference alike. What is left between N_d ranks and one
# process is the order of the gradient sums, a rounding error proportional to the unit
# roundoff u, which Adam's m / (sqrt(v) + eps) amplifies where a gradient is near eps. In
# float32 (u = 1.19e-7) that amplified error was 1.4e-6 on the smoke transformer and 1.1e-5
# on the laptop one, about 12 and 100 u. It stays linear in u while it is below eps = 1e-8,
# so float64 (u = 2.2e-16) predicts at most about 100 u = 2.2e-14. TRAJ_EXACT_ATOL leaves more
# than four orders of magnitude above that, and is still 1e5 below a real algorithmic error:
# a missing or extra step, another data slice or initialisation moves parameters by about one
# Adam step, lr = 1e-3; a wrong gradient scale (a missing 1 / N_d; Adam is scale-invariant
# except through eps) moves the elements whose gradient is near eps by a sizeable fraction of lr.
TRAJ_EXACT_ATOL = 1e-9
# float32 is kept as a measured number, with the tolerance first set for it (before the
# transformer): rtol 1e-5, atol 1e-6. It is not asserted in CI: float64 tests the algorithm.
TRAJ_RTOL, TRAJ_ATOL = 1e-5, 1e-6
BENCH_VS_DDP, BENCH_VS_LIBRARY = 1.3, 1.1  # targets for our stages 1-2: x DDP, x their library equivalent
EQUIVALENT = {"ours1": "zero_redundancy", "ours2": "fsdp2"}


def workload(s: Mapping[str, Any], seed: int) -> Workload:
    return Workload(kind=s["kind"], sizes=tuple(s["sizes"]), width=s["width"], layers=s["layers"],
                    heads=s["heads"], seq_len=s["seq_len"], batch_size=s["batch_size"], steps=s["steps"], seed=seed)


def plan(s: Mapping[str, Any], seed: int) -> ex.Plan:
    """The ranks' plan from the settings; bad values fail here, before any process starts."""
    return ex.Plan(workload=workload(s, seed), n_ds=tuple(s["n_ds"]), dtypes=tuple(s["dtypes"]),
                   bucket_numel=s["bucket_numel"], methods=tuple(s["methods"]), rounds=s["rounds"],
                   repeats=s["repeats"])


def run_deepspeed(s: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    if not s["ds_stages"]:
        return []
    out = paths.artifacts("zero") / "deepspeed"
    return deepspeed_side.launch(workload(s, seed), s["ds_n_d"], tuple(s["ds_stages"]), out,
                                 bucket_numel=s["bucket_numel"], rounds=s["rounds"], repeats=s["repeats"])


def deepspeed_side_rows(records: list[dict[str, Any]], reference: Mapping[str, torch.Tensor],
                        psi: int) -> list[dict[str, Any]]:
    """One row per DeepSpeed stage: largest per-rank peak, step time against DDP in the same
    launch (median of per-round ratios), distance to plain Adam, and the stage-3 partition."""
    rows = []
    for stage in sorted({r["stage"] for r in records}):
        mine = [r for r in records if r["stage"] == stage]
        n_d = mine[0]["n_d"]
        rounds = len(mine[0]["rounds"]["ddp"])
        per = {k: [max(r["rounds"][k][i] for r in mine) for i in range(rounds)] for k in ("ddp", "deepspeed")}
        ratios = sorted(t / d for t, d in zip(per["deepspeed"], per["ddp"], strict=True))
        params = next(r["params"] for r in mine if r["params"] is not None)
        diff, same = report.param_difference(params, reference, rtol=TRAJ_RTOL, atol=TRAJ_ATOL)
        rows.append({"method": f"deepspeed{stage}", "stage": stage, "peak_MB": max(r["peak_bytes"] for r in mine) / 1e6,
                     "step_ms": 1e3 * sorted(per["deepspeed"])[rounds // 2],
                     "ratio_to_ddp": ratios[rounds // 2], "ratio_range": f"{ratios[0]:.2f}-{ratios[-1]:.2f}",
                     "max_abs_diff": diff, "allclose": same,
                     "param_elements_per_rank": max(r["param_elements"] for r in mine),
                     "psi_over_n_d": -(-psi // n_d), "persistent_params": max(r["persistent_params"] for r in mine)})
    return rows


def measure(s: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Every measurement of the chapter that needs ranks, with wall times."""
    p = plan(s, seed)
    started = time.perf_counter()
    result = ex.run(p)
    ranks_wall = time.perf_counter() - started
    reference, reference_loss = ex.reference_adam(p.workload)
    reference_exact = ex.reference_adam(p.workload, dtype=ex.EXACT)[0] if result["side"] else None
    started = time.perf_counter()
    ds_records = run_deepspeed(s, seed)
    return {"plan": p, "runs": result["runs"], "side": result["side"], "reference": reference,
            "reference_exact": reference_exact, "reference_loss": reference_loss, "ds_records": ds_records,
            "psi": p.workload.num_params(),
            "ranks_wall_s": ranks_wall, "deepspeed_wall_s": time.perf_counter() - started}


def paper_tables() -> dict[str, Any]:
    """Tables 1 and 2 and the trillion-parameter figure from the formula, checked against print."""
    t1 = memory.table1()
    t2 = memory.table2_printed()
    trillion = memory.model_state_bytes(1e12, 1024, 3) / memory.GB
    return {"table1": t1, "table1_ok": all(memory.matches_printed(o, p) for n, ours in t1.items()
                                           for o, p in zip(ours, memory.TABLE1_PAPER[n], strict=True)),
            "table2": t2, "table2_ok": all(r["matches"] for r in t2), "trillion_gb": trillion}


def claims(led: Any, s: Mapping[str, Any], res: Mapping[str, Any], paper: Mapping[str, Any]) -> None:
    """Record every claim of the chapter into ``led`` (the tolerances are the module constants)."""
    led.claim("table1", "Table 1 (7.5B model, N_d in 1..1024, three stages) reproduced to the paper's rounding",
              "18 of 18 match" if paper["table1_ok"] else "mismatch", holds=paper["table1_ok"],
              tolerance="paper's printed decimals")
    led.claim("table2", "Table 2's theoretical columns (MP 1-16 x 64-way DP, 32 GB devices) as printed",
              [r["ours"] for r in paper["table2"]], holds=paper["table2_ok"],
              paper_value=[r["printed"] for r in paper["table2"]], tolerance="paper's printed precision")
    trillion = paper["trillion_gb"]
    led.claim("trillion", "1T parameters on N_d = 1024 under stage 3 need about 16 GB per device",
              round(trillion, 3), holds=memory.matches_printed(trillion, "16"), paper_value=16, tolerance="nearest GB")
    gap = memory.deepspeed_difference(7_500_000_000, 64, 4096 * 16384)
    gap_ok = all(abs(gap[f"{st}_gap"] - gap[f"{st}_explained"]) <= 1 for st in ("stage2", "stage3"))
    led.claim("deepspeed_estimator_terms", "DeepSpeed's estimators minus the paper's formula equal 4Psi/N_d "
              "(stage 2) and 2Psi/N_d + 4L (stage 3), by the per-parameter bytes in DeepSpeed's estimator source",
              {k: int(v) for k, v in gap.items()}, holds=gap_ok, tolerance="1 byte (int truncation)",
              note="arithmetic on DeepSpeed's estimators, not a measurement")
    mem = report.memory_rows(res["runs"])
    worst = max(abs(r["ratio"] - 1) for r in mem)
    led.claim("memory_states", "Model states held per rank between steps match the formula, every stage and N_d",
              round(worst, 6), holds=worst <= 0.01, tolerance="1% (largest |ratio - 1|, padding only)")
    peaks = report.peak_rows(res["runs"])
    failing = [f"N_d={r['N_d']} {r['dtype']} stage {r['stage']}" for r in peaks if not r["holds"]]
    led.claim("peak_bound", "Measured peak per rank during a step lies between the formula and the formula plus "
              "the named buffers and activations", max(r["peak_over_bound"] for r in peaks), holds=not failing,
              tolerance=f"formula <= peak <= bound x {1 + report.PEAK_RTOL} + {report.PEAK_ATOL // 1024} KiB",
              note=f"outside: {failing}; the ranks do identical work, yet their peaks differ by up to "
              f"{max(r['rank_spread'] for r in peaks):.1%} of the largest: some buffers are freed at times "
              "that vary between ranks (gloo's collective copies, freed by its worker threads)" if failing else "")
    s21 = report.stage2_below_stage1(peaks)
    worst21 = max(r["ratio"] for r in s21)
    led.claim("stage2_peak", "Stage 2's peak (bucketed reduce-scatter in backward) is at most stage 1's",
              round(worst21, 4), holds=worst21 <= 1.0, tolerance="peak(stage 2) / peak(stage 1) <= 1",
              # asserted where backward's gradients dominate the peak: the laptop transformer (10.9M
              # parameters); smoke's 42k-parameter model peaks in the optimizer step
              scope="laptop",
              note="" if worst21 <= 1.0 else "the peak falls in the optimizer step, where both stages hold the "
              "same fp32 gradient shards and Adam temporaries, not in backward where stage 2 saves")
    comm = report.comm_rows(res["runs"])
    comm_worst = max(abs(r["ratio"] - 1) for r in comm)
    led.claim("comm_measured", "Measured communication per step is 2Psi (DP, stages 1-2) and 3Psi (stage 3)",
              round(comm_worst, 6), holds=comm_worst <= 0.01, tolerance="1% (largest |ratio - 1|)")
    side = side_rows(res)
    if side:
        exact = {r["method"]: r["f64_max_abs_diff"] for r in side}
        ours = {m: d for m, d in exact.items() if m.startswith("ours")}
        libs = {m: d for m, d in exact.items() if not m.startswith("ours")}
        tol = f"max |diff| <= {TRAJ_EXACT_ATOL} (float64)"
        if ours:
            led.claim("trajectory", f"Every stage of ours follows plain Adam's trajectory on the full batch "
                      f"(float64, N_d = {res['plan'].world_size})", max(ours.values()),
                      holds=max(ours.values()) <= TRAJ_EXACT_ATOL, tolerance=tol,
                      note=_off(ours, TRAJ_EXACT_ATOL))
        if libs:
            led.claim("libraries_trajectory", "DDP, ZeroRedundancyOptimizer and FSDP2 (both reshard settings) "
                      f"follow plain Adam's trajectory (float64, N_d = {res['plan'].world_size})",
                      max(libs.values()), holds=max(libs.values()) <= TRAJ_EXACT_ATOL, tolerance=tol,
                      note=_off(libs, TRAJ_EXACT_ATOL))
    fp32 = [r for r in report.trajectory_rows(res["runs"], res["reference"], rtol=TRAJ_RTOL, atol=TRAJ_ATOL)
            if r["dtype"] == "float32"]
    fp32 += side
    fp32_diff = max(r["max_abs_diff"] for r in fp32)
    fp32_ok = all(r["allclose"] for r in fp32)
    worst_exact = max((r["f64_max_abs_diff"] for r in side), default=None)
    led.claim("trajectory_fp32", "In float32 too, every stage and library method lands on plain Adam's "
              "trajectory", fp32_diff, holds=fp32_ok, tolerance=f"allclose rtol={TRAJ_RTOL} atol={TRAJ_ATOL}",
              # rounding, not the algorithm (the float64 claims test that): recorded, not asserted in CI
              scope="laptop", note="" if fp32_ok else
              "float32 rounding: the ranks sum the gradient in another order than one process, and Adam's "
              "m / (sqrt(v) + eps) amplifies that where a gradient is near eps"
              + (f"; the same methods in float64 land {worst_exact:.1e} from float64 Adam"
                 if worst_exact is not None else ""))
    if side:
        bench_claims(led, {r["method"]: r for r in side})
    ds = deepspeed_side_rows(res["ds_records"], res["reference"], res["psi"]) if res["ds_records"] else []
    if ds:
        ds_diff = max(r["max_abs_diff"] for r in ds)
        ds_ok = all(r["allclose"] for r in ds)
        ddp = {r["method"]: r["max_abs_diff"] for r in side}.get("ddp")
        # DeepSpeed's CPU accelerator takes float32 and bfloat16 only, so this one stays in float32,
        # like trajectory_fp32: recorded with the laptop run, not asserted in CI. Its unit test
        # (a workload whose gradient norm exceeds 1, where DeepSpeed's default clipping would show)
        # guards the configuration.
        led.claim("deepspeed_trajectory", "DeepSpeed ZeRO stages 1-3 (torch Adam, fp32, no gradient clipping) "
                  "follow plain Adam", ds_diff, holds=ds_ok,
                  tolerance=f"allclose rtol={TRAJ_RTOL} atol={TRAJ_ATOL} (float32)", scope="laptop",
                  note="" if ds_ok else
                  "most likely float32 rounding of the gradient sums, amplified by Adam's m / (sqrt(v) + eps) "
                  "where a gradient is near eps; unproven, since DeepSpeed's CPU accelerator has no float64 "
                  "path to check it the way ours is checked"
                  + (f"; DDP lands {ddp:.1e} from the same reference" if ddp is not None else ""))
        rows = report.deepspeed_rows(res["runs"], res["ds_records"])
        worst_m = max(r["relative_difference"] for r in rows if r["relative_difference"] is not None)
        led.claim("deepspeed_moments", "Per-rank Adam-moment elements: ours equal DeepSpeed's up to padding",
                  worst_m, holds=worst_m <= 0.01, tolerance="1% relative")
        s3 = [r for r in ds if r["stage"] == 3]
        if s3:
            r = s3[0]
            part = r["param_elements_per_rank"] / r["psi_over_n_d"]
            led.claim("deepspeed_stage3_partitions", "DeepSpeed stage 3 (persistence threshold 0) holds only "
                      "ceil(Psi/N_d) parameter elements per rank, none kept whole", round(part, 4),
                      holds=abs(part - 1) <= 0.01 and r["persistent_params"] == 0,
                      tolerance="1% (DeepSpeed pads each parameter to N_d)")
    return None


def side_rows(res: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The side-by-side table: float32 distance (allclose at the float32 tolerance) and float64 distance."""
    if not res["side"]:
        return []
    return report.side_rows(res["side"], res["reference"], res["reference_exact"], rtol=TRAJ_RTOL,
                            atol=TRAJ_ATOL, exact_atol=TRAJ_EXACT_ATOL)


def _off(diffs: Mapping[str, float], atol: float) -> str:
    off = {m: f"{d:.1e}" for m, d in diffs.items() if d > atol}
    return f"outside the tolerance: {off}" if off else ""


def bench_claims(led: Any, rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Step-time targets for our stages 1 and 2: at most 1.3x DDP and 1.1x their library equivalent.

    Targets, not paper numbers; timings on a shared CPU are noisy, so the claims are scoped to
    the laptop profile (recorded with the run) and not asserted in CI.
    """
    ours = {m: rows[m]["ratio_to_ddp"] for m in ("ours1", "ours2") if m in rows}
    if not ours:
        return
    worst = max(ours.values())
    led.claim("bench_vs_ddp", f"Step time of our stages 1 and 2 is at most {BENCH_VS_DDP}x DDP's (CPU, gloo)",
              {m: round(v, 3) for m, v in ours.items()}, holds=worst <= BENCH_VS_DDP, tolerance=f"<= {BENCH_VS_DDP}x",
              scope="laptop", note="" if worst <= BENCH_VS_DDP else
              "our stages reduce each bucket with a blocking collective from a Python hook; DDP overlaps "
              "its all-reduce with backward in C++")
    vs = {m: rows[m]["ratio_to_ddp"] / rows[lib]["ratio_to_ddp"] for m, lib in EQUIVALENT.items()
          if m in rows and lib in rows}
    if not vs:
        return
    worst_lib = max(vs.values())
    led.claim("bench_vs_library", f"Step time of our stages 1 and 2 is at most {BENCH_VS_LIBRARY}x their library "
              "equivalent (ZeroRedundancyOptimizer, FSDP2 without resharding)", {m: round(v, 3) for m, v in vs.items()},
              holds=worst_lib <= BENCH_VS_LIBRARY, tolerance=f"<= {BENCH_VS_LIBRARY}x", scope="laptop",
              note="" if worst_lib <= BENCH_VS_LIBRARY else
              "the library versions overlap communication with backward (DDP's reducer, FSDP2's streams)")


def experiment(s: Mapping[str, Any], led: Any, seed: int) -> dict[str, Any] | None:
    """``python -m moderndl.zero``: the notebook's measurements and claims, without the figures.

    The chapter starts its own gloo ranks (``max(n_ds)`` of them) and DeepSpeed's launcher, so
    under ``torchrun`` or ``accelerate launch`` the main process runs it and the others wait.
    """
    from accelerate.state import PartialState

    state = PartialState()
    if state.num_processes > 1:
        res = experiment_main(s, led, seed) if state.is_main_process else None
        state.wait_for_everyone()
        return res
    return experiment_main(s, led, seed)


def experiment_main(s: Mapping[str, Any], led: Any, seed: int) -> dict[str, Any]:
    res = measure(s, seed)
    paper = paper_tables()
    led.record("psi", res["psi"])
    led.record("ranks_wall_s", res["ranks_wall_s"])
    led.record("peak_rows", report.peak_rows(res["runs"]))
    if res["side"]:
        led.record("side_by_side", side_rows(res))
    if res["ds_records"]:
        led.record("deepspeed", deepspeed_side_rows(res["ds_records"], res["reference"], res["psi"]))
    claims(led, s, res, paper)
    return res
