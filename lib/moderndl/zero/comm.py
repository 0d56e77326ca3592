r"""Collectives that count what they move: the communication analysis of ZeRO, measured.

Paper: Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", SC 2020, arXiv:1910.02054, Section 7.

Section 7.1 counts an all-reduce of $\Psi$ elements as a reduce-scatter plus an all-gather,
$\Psi$ elements each, so data parallelism moves $2\Psi$ per step; $P_{os}$ and $P_{os+g}$ move
the same $2\Psi$ (reduce-scatter the gradients, all-gather the parameters), and $P_{os+g+p}$
moves $3\Psi$ (all-gather the parameters in forward and again in backward, reduce-scatter
the gradients). :class:`Comm` counts in exactly these units (``elements``) and, next to
them, the elements a ring algorithm actually sends per rank, which carry the factor
$(N_d - 1) / N_d$ that the paper rounds away (``ring_elements``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Comm:
    """torch.distributed collectives with per-step counters (Section 7.1's units)."""

    world_size: int
    group: dist.ProcessGroup | None = None
    elements: int = 0  # the paper's units: all-reduce 2n, reduce-scatter n, all-gather n
    ring_elements: float = 0.0  # elements a ring sends per rank: the above times (N_d - 1) / N_d
    calls: int = 0

    def reset(self) -> None:
        self.elements, self.ring_elements, self.calls = 0, 0.0, 0

    def _count(self, n: int) -> None:
        self.elements += n
        self.ring_elements += n * (self.world_size - 1) / self.world_size
        self.calls += 1

    def all_reduce(self, x: torch.Tensor) -> None:
        """Sum ``x`` over ranks in place: a reduce-scatter plus an all-gather, $2n$."""
        dist.all_reduce(x, group=self.group)
        self._count(2 * x.numel())

    def _check_shard(self, op: str, full: torch.Tensor, shard: torch.Tensor) -> None:
        """Equal shards: ``full`` (numel,) must be ``world_size`` shards of (numel // world_size,)."""
        if full.numel() != shard.numel() * self.world_size:
            raise ValueError(f"{op}: full has {full.numel()} elements, shard {shard.numel()} "
                             f"x world_size {self.world_size}")

    def reduce_scatter(self, shard: torch.Tensor, full: torch.Tensor) -> None:
        """``shard`` (numel // world_size,) receives this rank's slice of the sum of ``full``: $n$."""
        self._check_shard("reduce_scatter", full, shard)
        dist.reduce_scatter_single(shard, full, group=self.group)
        self._count(full.numel())

    def all_gather(self, full: torch.Tensor, shard: torch.Tensor) -> None:
        """``full`` (numel,) receives every rank's ``shard`` (numel // world_size,): $n$."""
        self._check_shard("all_gather", full, shard)
        dist.all_gather_single(full, shard, group=self.group)
        self._count(full.numel())
