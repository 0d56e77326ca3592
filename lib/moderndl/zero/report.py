r"""Turn the ranks' records into the chapter's comparisons: measured against the formulas.

Rajbhandari et al. 2020, arXiv:1910.02054. For each stage $s$ and $N_d$ the measured per-rank
bytes are compared with Section 5's formula evaluated at the unpadded $\Psi$ (the padding of
the flat buffers is what the ratio may show), the measured per-step traffic with Section 7's
$2\Psi$ (stages 0-2) or $3\Psi$ (stage 3), and the trained parameters with single-process Adam.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from moderndl.zero import memory

# Section 7.2-7.3: all-reduce (2 Psi) for DP; reduce-scatter + all-gather (2 Psi) for P_os and
# P_os+g; two all-gathers and a reduce-scatter (3 Psi) for P_os+g+p.
COMM_FACTOR = {0: 2, 1: 2, 2: 2, 3: 3}


def memory_rows(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N_d, dtype, stage): the largest rank's measured bytes against the formula."""
    rows: dict[tuple, dict[str, Any]] = {}
    for r in runs:
        size = torch.empty((), dtype=getattr(torch, r["dtype"])).element_size()
        model = memory.MemoryModel(param_bytes=size, grad_bytes=size, k=12)
        key = (r["n_d"], r["dtype"], r["stage"])
        measured = sum(r["bytes"].values())
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
