r"""What a reader would actually use, beside our stages: DDP, ZeroRedundancyOptimizer, FSDP2.

Rajbhandari et al. 2020, arXiv:1910.02054, Section 5: PyTorch ships each ZeRO stage under
another name.

| method | library | ZeRO stage |
|---|---|---|
| ``ddp`` | ``torch.nn.parallel.DistributedDataParallel`` + ``torch.optim.Adam`` | 0 (DP) |
| ``zero_redundancy`` | DDP + ``torch.distributed.optim.ZeroRedundancyOptimizer`` | 1 ($P_{os}$) |
| ``fsdp2`` | ``fully_shard(reshard_after_forward=False)`` | close to 2 ($P_{os+g}$, parameters kept after forward) |
| ``fsdp2_reshard`` | ``fully_shard(reshard_after_forward=True)`` | 3 ($P_{os+g+p}$) |
| ``ours0`` ... ``ours3`` | :class:`moderndl.zero.partition.ZeroDataParallel` | 0-3 |

:func:`build` gives each a ``step(batch) -> loss`` and a ``parameters()`` that gathers the
full parameters (a collective: every rank calls it). All run Adam at the same learning rate
in one ``dtype`` (float32 for memory and time; float64 for the exact trajectory check), so each
trajectory must equal single-process Adam in that dtype.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from moderndl.zero.partition import ZeroConfig, ZeroDataParallel
from moderndl.zero.workload import Batch, TinyLM, Workload, loss_fn

METHODS = ("ddp", "zero_redundancy", "fsdp2", "fsdp2_reshard", "ours0", "ours1", "ours2", "ours3")
STAGE_OF = {"ddp": 0, "zero_redundancy": 1, "fsdp2": 2, "fsdp2_reshard": 3,
            "ours0": 0, "ours1": 1, "ours2": 2, "ours3": 3}


@dataclass
class Runner:
    """One method, built on this rank: a training step and a way to read the parameters."""

    method: str
    step: Callable[[Batch], torch.Tensor]
    parameters: Callable[[], dict[str, torch.Tensor]]
    keep: Any = None  # the objects behind the closures (model, optimizer, engine)


def check_methods(methods: tuple[str, ...]) -> None:
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")


def exact(t: torch.Tensor) -> torch.Tensor:
    """A detached copy in at least float32 (float64 stays float64), for comparing trajectories."""
    return t.detach().to(torch.promote_types(t.dtype, torch.float32)).clone()


def _named(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: exact(p) for n, p in model.named_parameters()}


def build(method: str, work: Workload, world_size: int, bucket_numel: int,
          group: dist.ProcessGroup | None = None, dtype: torch.dtype = torch.float32) -> Runner:
    """Build ``method`` for ``work`` in ``dtype`` on this rank (all ranks of ``group`` call it together)."""
    check_methods((method,))
    if method.startswith("ours"):
        model = work.model()
        engine = ZeroDataParallel(model, ZeroConfig(stage=STAGE_OF[method], world_size=world_size, lr=work.lr,
                                                    param_dtype=dtype, bucket_numel=bucket_numel), group)

        def ours(batch: Batch) -> torch.Tensor:
            loss = loss_fn(model, batch)
            loss.backward()
            engine.step()
            engine.zero_grad()
            return loss.detach()

        return Runner(method, ours, engine.full_parameters, (model, engine))
    if method in ("ddp", "zero_redundancy"):
        from torch.distributed.optim import ZeroRedundancyOptimizer

        model = nn.parallel.DistributedDataParallel(work.model().to(dtype), process_group=group,
                                                    bucket_cap_mb=bucket_numel * dtype.itemsize / 2**20)
        optimizer = (torch.optim.Adam(model.parameters(), lr=work.lr) if method == "ddp" else
                     ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam,
                                             process_group=group, lr=work.lr))
        return Runner(method, _plain_step(model, optimizer), lambda: _named(model.module), (model, optimizer))
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.fsdp import fully_shard

    # TinyLM's logits are a view (a 3-D Linear); nothing modifies them in place, so FSDP2's
    # warning about in-place ops on a returned view does not apply.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view", category=UserWarning)
    mesh = DeviceMesh.from_group(group or dist.group.WORLD, "cpu")
    model = work.model().to(dtype)
    reshard = method == "fsdp2_reshard"
    units = (list(model.blocks) if isinstance(model, TinyLM)  # one FSDP unit per block, or per MLP layer
             else [m for m in model.modules() if isinstance(m, nn.Linear)])
    for module in units:
        fully_shard(module, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.lr)

    def gathered() -> dict[str, torch.Tensor]:
        return {n: exact(p.full_tensor()) for n, p in model.named_parameters()}

    return Runner(method, _plain_step(model, optimizer), gathered, (model, optimizer))


def _plain_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[Batch], torch.Tensor]:
    def step(batch: Batch) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step
