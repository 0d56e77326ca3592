r"""Turn the ranks' records into the chapter's comparisons: measured against the formulas.

Rajbhandari et al. 2020, arXiv:1910.02054. For each stage $s$ and $N_d$:

- the per-rank model states held between steps against Section 5's formula at the unpadded
  $\Psi$ (the padding of the flat buffers is what the ratio may show);
- the **peak** during a step against the formula plus the named working buffers and the
  activations $A$ (:mod:`moderndl.zero.peak`);
- the per-step traffic against Section 7's $2\Psi$ (stages 0-2) or $3\Psi$ (stage 3);
- the trained parameters against single-process Adam.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from moderndl.zero import memory

# Section 7.2-7.3: all-reduce (2 Psi) for DP; reduce-scatter + all-gather (2 Psi) for P_os and
# P_os+g; two all-gathers and a reduce-scatter (3 Psi) for P_os+g+p.
COMM_FACTOR = {0: 2, 1: 2, 2: 2, 3: 3}


# The peak may exceed formula + named buffers + A by this much before the claim fails: 2 %
# for allocations that no buffer names (the batch, the loss, a logged value's copy) plus
# 64 KiB for Python-side bookkeeping tensors. Chosen before any run, from the size of those.
PEAK_RTOL, PEAK_ATOL = 0.02, 64 * 1024


def _model(dtype: str) -> memory.MemoryModel:
    size = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    return memory.MemoryModel(param_bytes=size, grad_bytes=size, k=12)


def peak_rows(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N_d, dtype, stage), the largest rank's peak during a step against the bound
    formula(padded $\\Psi$) + named buffers + activations; ``holds`` when within the tolerance."""
    rows: dict[tuple, dict[str, Any]] = {}
    runs = list(runs)
    lowest: dict[tuple, int] = {}  # the smallest rank's peak: ranks do identical work
    for r in runs:
        key = (r["n_d"], r["dtype"], r["stage"])
        lowest[key] = min(lowest.get(key, r["peak_bytes"]), r["peak_bytes"])
    for r in runs:
        key = (r["n_d"], r["dtype"], r["stage"])
        if key in rows and rows[key]["peak_bytes"] >= r["peak_bytes"]:
            continue
        model = _model(r["dtype"])
        formula = memory.model_state_bytes(r["psi"], r["n_d"], r["stage"], model)
        padded = memory.model_state_bytes(r["padded_psi"], r["n_d"], r["stage"], model)
        buffers = sum(r["buffers"].values())
        bound = padded + buffers + r["activations"]
        rows[key] = {"N_d": r["n_d"], "dtype": r["dtype"], "stage": r["stage"], "peak_bytes": r["peak_bytes"],
                     "formula_bytes": formula, "buffers_bytes": buffers, "activations_bytes": r["activations"],
                     "bound_bytes": bound, "peak_over_formula": r["peak_bytes"] / formula,
                     "peak_over_bound": r["peak_bytes"] / bound,
                     "rank_spread": 1 - lowest[key] / r["peak_bytes"],
                     "holds": formula <= r["peak_bytes"] <= bound * (1 + PEAK_RTOL) + PEAK_ATOL}
    return [rows[k] for k in sorted(rows)]


def stage2_below_stage1(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (N_d, dtype): stage 2's peak over stage 1's (at most 1 is the claim)."""
    peaks = {(r["N_d"], r["dtype"], r["stage"]): r["peak_bytes"] for r in rows}
    return [{"N_d": n, "dtype": d, "stage1_peak": peaks[(n, d, 1)], "stage2_peak": peaks[(n, d, 2)],
             "ratio": peaks[(n, d, 2)] / peaks[(n, d, 1)]}
            for (n, d, s) in sorted(peaks) if s == 1 and (n, d, 2) in peaks]


def memory_rows(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N_d, dtype, stage): the largest rank's model states between steps against the formula."""
    rows: dict[tuple, dict[str, Any]] = {}
    for r in runs:
        model = _model(r["dtype"])
        key = (r["n_d"], r["dtype"], r["stage"])
        measured = r["bytes"]["params"] + r["bytes"]["grads"] + r["bytes"]["optimizer"]
        if key in rows and rows[key]["measured_bytes"] >= measured:
            continue
        formula = memory.model_state_bytes(r["psi"], r["n_d"], r["stage"], model)
        rows[key] = {"N_d": r["n_d"], "dtype": r["dtype"], "stage": r["stage"], **r["bytes"],
                     "measured_bytes": measured, "formula_bytes": formula, "ratio": measured / formula}
    return [rows[k] for k in sorted(rows)]


def comm_rows(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N_d, dtype, stage): elements moved in the last step against $2\\Psi$ or $3\\Psi$."""
    rows = {}
    for r in runs:
        key = (r["n_d"], r["dtype"], r["stage"])
        expected = COMM_FACTOR[r["stage"]] * r["psi"]
        moved = r["comm_elements"][-1]
        rows[key] = {"N_d": r["n_d"], "dtype": r["dtype"], "stage": r["stage"], "elements": moved,
                     "formula": expected, "ratio": moved / expected,
                     "ring_elements": r["ring_elements"][-1], "collectives": r["comm_calls"]}
    return [rows[k] for k in sorted(rows)]


def trajectory_rows(runs: Iterable[Mapping[str, Any]], reference: Mapping[str, torch.Tensor],
                    *, rtol: float = 1e-5, atol: float = 1e-6) -> list[dict[str, Any]]:
    """Rank 0's gathered parameters after training against single-process Adam's: allclose."""
    rows = []
    for r in runs:
        if r["params"] is None:
            continue
        diff = max((r["params"][k] - reference[k]).abs().max().item() for k in reference)
        same = all(torch.allclose(r["params"][k], reference[k], rtol=rtol, atol=atol) for k in reference)
        rows.append({"N_d": r["n_d"], "dtype": r["dtype"], "stage": r["stage"], "max_abs_diff": diff,
                     "allclose": same})
    return sorted(rows, key=lambda row: (row["N_d"], row["dtype"], row["stage"]))


def deepspeed_rows(ours: Iterable[Mapping[str, Any]], theirs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per stage and rank, Adam-moment elements (``exp_avg`` + ``exp_avg_sq``): ours next to DeepSpeed's."""
    mine = {(r["n_d"], r["stage"], r["rank"]): r["moments"] for r in ours if r["dtype"] == "float32"}
    rows = []
    for d in theirs:
        own = mine.get((d["n_d"], d["stage"], d["rank"]))
        rows.append({"N_d": d["n_d"], "stage": d["stage"], "rank": d["rank"], "ours": own,
                     "deepspeed": d["moments"], "deepspeed_fp32_master": d["master"],
                     "relative_difference": None if own is None else abs(d["moments"] - own) / own})
    return rows


def param_difference(params: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor],
                     *, rtol: float = 1e-5, atol: float = 1e-6) -> tuple[float, bool]:
    """Largest |difference| from the reference parameters, and whether all are allclose."""
    diff = max((params[k] - reference[k]).abs().max().item() for k in reference)
    return diff, all(torch.allclose(params[k], reference[k], rtol=rtol, atol=atol) for k in reference)


def side_rows(side: Mapping[str, Mapping[str, Any]], reference: Mapping[str, torch.Tensor],
              reference_exact: Mapping[str, torch.Tensor] | None = None,
              *, rtol: float = 1e-5, atol: float = 1e-6, exact_atol: float = 1e-9) -> list[dict[str, Any]]:
    """One row per method of the side-by-side run: ZeRO stage, largest per-rank peak, median step
    time, its ratio to DDP (median and range over rounds), the float32 distance to plain Adam
    (allclose at ``rtol``, ``atol``), and, given ``reference_exact``, the float64 distance to
    float64 Adam (``exact_ok``: at most ``exact_atol``)."""
    from moderndl.zero.libraries import STAGE_OF

    rows = []
    for method, r in side.items():
        diff, same = param_difference(r["params"], reference, rtol=rtol, atol=atol)
        row = {"method": method, "stage": STAGE_OF.get(method, r.get("stage")),
               "peak_MB": r["peak_bytes"] / 1e6, "step_ms": 1e3 * r["step_s"],
               "ratio_to_ddp": r["ratio_to_ddp"], "ratio_range": f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}",
               "max_abs_diff": diff, "allclose": same}
        if reference_exact is not None and r.get("params_exact") is not None:
            exact_diff, _ = param_difference(r["params_exact"], reference_exact)
            row.update(f64_max_abs_diff=exact_diff, f64_ok=exact_diff <= exact_atol)
        rows.append(row)
    return rows
