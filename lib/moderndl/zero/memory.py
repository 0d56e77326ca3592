r"""The memory model of ZeRO: where the model states of data-parallel training go.

Paper: Rajbhandari, Rasley, Ruwase, He, "ZeRO: Memory Optimizations Toward Training
Trillion Parameter Models", SC 2020, arXiv:1910.02054 (Sections 3.1 and 5, Tables 1 and 2).

Mixed-precision Adam keeps, per parameter, fp16 parameters (2 bytes), fp16 gradients
(2 bytes) and $K$ bytes of optimizer state (fp32 master weights, momentum and variance:
$K = 4 + 4 + 4 = 12$). With $\Psi$ parameters and $N_d$ data-parallel devices the model
states per device are (Figure 1):

$$
\begin{aligned}
\text{DP}:\;& (2 + 2 + K)\,\Psi \\
P_{os}:\;& 2\Psi + 2\Psi + \frac{K\Psi}{N_d} \\
P_{os+g}:\;& 2\Psi + \frac{(2 + K)\,\Psi}{N_d} \\
P_{os+g+p}:\;& \frac{(2 + 2 + K)\,\Psi}{N_d}
\end{aligned}
$$

Stage 0 is plain data parallelism (DP); stages 1, 2, 3 are $P_{os}$, $P_{os+g}$, $P_{os+g+p}$.
The paper's GB are $10^9$ bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STAGES = (0, 1, 2, 3)
STAGE_NAMES = {0: "DP", 1: "P_os", 2: "P_os+g", 3: "P_os+g+p"}
GB = 1e9  # the paper's unit: 7.5B parameters x 16 bytes = 120 GB (Table 1)
TABLE1_PSI = 7.5e9  # Table 1's 7.5B-parameter model
TABLE1_ND = (1, 4, 16, 64, 256, 1024)  # Table 1 and Table 2 rows

# Table 1 of the paper, 7.5B column, per-device GB for (P_os, P_os+g, P_os+g+p), typed as
# printed so the check can use the paper's own rounding (its number of decimals).
TABLE1_PAPER = {
    1: ("120", "120", "120"),
    4: ("52.5", "41.3", "30"),
    16: ("35.6", "21.6", "7.5"),
    64: ("31.4", "16.6", "1.88"),
    256: ("30.4", "15.4", "0.47"),
    1024: ("30.1", "15.1", "0.12"),
}
# Table 2 of the paper, the theoretical columns as printed: model parallelism MP times 64-way
# data parallelism on 32 GB V100s, the largest model (DP, P_os, P_os+g, P_os+g+p).
TABLE2_PAPER = {
    (1, 64): ("2B", "7.6B", "14.4B", "128B"),
    (2, 128): ("4B", "15.2B", "28.8B", "256B"),
    (4, 256): ("8B", "30.4B", "57.6B", "0.5T"),
    (8, 512): ("16B", "60.8B", "115.2B", "1T"),
    (16, 1024): ("32B", "121.6B", "230.4B", "2T"),
}
TABLE2_PAPER_ND64 = tuple(v[:-1] for v in TABLE2_PAPER[(1, 64)])  # the MP = 1 row, in billions


@dataclass(frozen=True)
class MemoryModel:
    """Bytes per parameter of each model state (Section 3.1: mixed-precision Adam)."""

    param_bytes: int = 2  # fp16 parameters
    grad_bytes: int = 2  # fp16 gradients
    k: int = 12  # fp32 master parameters, momentum and variance: 4 + 4 + 4 (the paper's K)

    def __post_init__(self):
        for name in ("param_bytes", "grad_bytes", "k"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"MemoryModel.{name} must be a non-negative int, got {value!r}")

    @property
    def total(self) -> int:
        """Bytes per parameter with nothing partitioned: $2 + 2 + K = 16$."""
        return self.param_bytes + self.grad_bytes + self.k


PAPER = MemoryModel()


def validate(n_d: int, stage: int) -> None:
    """Fail loudly on a device count below 1 or a stage outside {0, 1, 2, 3}."""
    if not isinstance(n_d, int) or isinstance(n_d, bool) or n_d < 1:
        raise ValueError(f"N_d (world size) must be an int >= 1, got {n_d!r}")
    if not isinstance(stage, int) or isinstance(stage, bool) or stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES} (0 = DP, 1 = P_os, 2 = P_os+g, 3 = P_os+g+p), got {stage!r}")


def breakdown(psi: float, n_d: int, stage: int, model: MemoryModel = PAPER) -> dict[str, float]:
    """Bytes per device of parameters, gradients and optimizer states (Figure 1, Section 5)."""
    validate(n_d, stage)
    if psi < 0:
        raise ValueError(f"psi (number of parameters) must be >= 0, got {psi!r}")
    # Each stage divides one more state by N_d: optimizer (1), then gradients (2), then parameters (3).
    return {
        "params": model.param_bytes * psi / (n_d if stage >= 3 else 1),
        "grads": model.grad_bytes * psi / (n_d if stage >= 2 else 1),
        "optimizer": model.k * psi / (n_d if stage >= 1 else 1),
    }


def model_state_bytes(psi: float, n_d: int, stage: int, model: MemoryModel = PAPER) -> float:
    """Total model-state bytes per device (Figure 1; the entries of Table 1)."""
    return sum(breakdown(psi, n_d, stage, model).values())


def table1(psi: float = TABLE1_PSI, n_ds: tuple[int, ...] = TABLE1_ND,
           model: MemoryModel = PAPER) -> dict[int, tuple[float, float, float]]:
    """Table 1: per-device GB under P_os, P_os+g, P_os+g+p for each N_d."""
    return {n: tuple(model_state_bytes(psi, n, stage, model) / GB for stage in (1, 2, 3)) for n in n_ds}


def max_params(memory_bytes: float, n_d: int, stage: int, model: MemoryModel = PAPER) -> float:
    """Table 2: the largest $\\Psi$ whose model states fit in ``memory_bytes`` per device."""
    per_param = model_state_bytes(1.0, n_d, stage, model)  # bytes per parameter per device
    return memory_bytes / per_param


def table2(memory_gb: float = 32.0, n_ds: tuple[int, ...] = TABLE1_ND,
           model: MemoryModel = PAPER) -> dict[int, tuple[float, ...]]:
    """Table 2: maximum model size (billions of parameters) for DP and each stage."""
    return {n: tuple(max_params(memory_gb * GB, n, stage, model) / 1e9 for stage in STAGES) for n in n_ds}


def table2_printed(memory_gb: float = 32.0) -> list[dict]:
    """Table 2 as printed: rows (MP, GPUs), $N_d$ = GPUs / MP = 64, model size per stage.

    Model parallelism splits the model MP ways, so the largest model is MP times the
    $N_d = 64$ entry. The paper scales its *rounded* MP = 1 entries (4 x 7.6B = 30.4B where
    4 x 7.64B = 30.6B), so ``as_printed`` does the same; ``exact`` is the formula unrounded.
    """
    rows = []
    for (mp, gpus), printed in TABLE2_PAPER.items():
        n_d = gpus // mp
        exact = [mp * max_params(memory_gb * GB, n_d, st) for st in STAGES]
        base = [round(max_params(memory_gb * GB, n_d, st) / 1e9, 1) for st in STAGES]
        as_printed = [mp * b for b in base]  # billions
        ok = [matches_printed(v / 1e3 if p.endswith("T") else v, p[:-1]) for v, p in zip(as_printed, printed,
                                                                                            strict=True)]
        rows.append({"MP": mp, "GPUs": gpus, "N_d": n_d, "exact_billions": [round(v / 1e9, 2) for v in exact],
                     "ours": [round(v, 1) for v in as_printed], "printed": list(printed), "matches": all(ok)})
    return rows


def matches_printed(ours: float, printed: str) -> bool:
    """Whether ``ours`` rounds to the paper's ``printed`` number at the paper's precision."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(ours - float(printed)) <= 0.5 * 10 ** (-decimals) + 1e-9


def require_budget(psi: float, n_d: int, budget_bytes: float, model: MemoryModel = PAPER) -> None:
    """Refuse a per-device budget below the stage-3 share $(2 + 2 + K)\\Psi / N_d$: nothing fits."""
    share = model_state_bytes(psi, n_d, 3, model)
    if budget_bytes < share:
        raise ValueError(
            f"memory budget {budget_bytes:.4g} bytes per device is below the stage-3 share "
            f"{share:.4g} bytes = {model.total} x {psi:.4g} params / N_d={n_d}; no ZeRO stage fits; "
            f"use at least {math.ceil(share)} bytes or N_d >= {math.ceil(model.total * psi / budget_bytes)}"
            if budget_bytes > 0 else
            f"memory budget must be positive, got {budget_bytes!r} bytes"
        )


def smallest_stage(psi: float, n_d: int, budget_bytes: float, model: MemoryModel = PAPER) -> int:
    """The lowest stage whose model states fit ``budget_bytes`` per device (errors if none)."""
    require_budget(psi, n_d, budget_bytes, model)
    return next(s for s in STAGES if model_state_bytes(psi, n_d, s, model) <= budget_bytes)


def deepspeed_estimates(psi: int, n_d: int, largest_layer: int) -> dict[str, dict[str, float]]:
    """DeepSpeed's own model-state estimators (the functions behind the ``*_all_cold`` printers).

    Returns per-GPU and per-CPU bytes for stage 2 and stage 3, without and with CPU offload,
    next to the paper's formula. DeepSpeed charges 18 bytes per partitioned parameter
    (2 fp16 grads + 4 fp32 grads + 4 fp32 master + 8 moments), where the paper charges
    $2 + K = 14$ (stage 2); in stage 3 it adds the largest layer gathered (4 bytes per
    parameter); its CPU figures are multiplied by ``additional_buffer_factor = 1.5``.
    """
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    out = {}
    cpu, gpu = estimate_zero2_model_states_mem_needs(psi, num_gpus_per_node=n_d, cpu_offload=False)
    cpu_off, gpu_off = estimate_zero2_model_states_mem_needs(psi, num_gpus_per_node=n_d, cpu_offload=True)
    out["stage2"] = {"paper_gpu": model_state_bytes(psi, n_d, 2), "deepspeed_gpu": gpu, "deepspeed_cpu": cpu,
                     "deepspeed_offload_gpu": gpu_off, "deepspeed_offload_cpu": cpu_off}
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(psi, largest_layer, num_gpus_per_node=n_d,
                                                        cpu_offload=False, cpu_offload_params=False)
    cpu_off, gpu_off, _ = estimate_zero3_model_states_mem_needs(psi, largest_layer, num_gpus_per_node=n_d,
                                                                cpu_offload=True, cpu_offload_params=True)
    out["stage3"] = {"paper_gpu": model_state_bytes(psi, n_d, 3), "deepspeed_gpu": gpu, "deepspeed_cpu": cpu,
                     "deepspeed_offload_gpu": gpu_off, "deepspeed_offload_cpu": cpu_off}
    return out


def deepspeed_difference(psi: int, n_d: int, largest_layer: int) -> dict[str, float]:
    """The gap DeepSpeed minus paper (GPU, no offload), and the terms that explain it exactly.

    - Stage 2: $4\\Psi/N_d$, an fp32 copy of the gradient partition.
    - Stage 3: $(18 - 16)\\Psi/N_d + 4 L$ with $L$ the largest layer's parameters: DeepSpeed
      charges the fp32 gradient partition (+4) but not the fp16 parameter partition (-2),
      and a working buffer for the gathered largest layer.
    """
    est = deepspeed_estimates(psi, n_d, largest_layer)
    return {
        "stage2_gap": est["stage2"]["deepspeed_gpu"] - est["stage2"]["paper_gpu"],
        "stage2_explained": 4 * psi / n_d,
        "stage3_gap": est["stage3"]["deepspeed_gpu"] - est["stage3"]["paper_gpu"],
        "stage3_explained": 2 * psi / n_d + 4 * largest_layer,
    }


DEEPSPEED_BUCKET = 500_000_000  # DeepSpeed's default reduce_bucket_size and allgather_bucket_size (elements)


def offload_gpu_bound(psi: int, *, grad_bytes: int = 2, reduce_bucket: int = DEEPSPEED_BUCKET,
                      allgather_bucket: int = DEEPSPEED_BUCKET) -> dict[str, float]:
    """ZeRO-Offload on one GPU: DeepSpeed's own estimate of the GPU's model states
    (``estimate_zero2_model_states_mem_needs(cpu_offload=True)``, the 2-byte parameters) plus
    the two buckets it keeps on the GPU, in ``grad_bytes`` per element."""
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    _, gpu = estimate_zero2_model_states_mem_needs(psi, num_gpus_per_node=1, cpu_offload=True)
    buckets = grad_bytes * (min(reduce_bucket, psi) + min(allgather_bucket, psi))
    return {"estimate": gpu, "buckets": buckets, "bound": gpu + buckets}
