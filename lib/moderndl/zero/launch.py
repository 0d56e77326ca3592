r"""Spawn N_d CPU ranks on gloo (127.0.0.1, a free port) and collect what each returns.

The partitioner of arXiv:1910.02054 needs real processes to be measured: every rank holds
its own shards, $1/N_d$ of each partitioned state, and talks to the others through
torch.distributed collectives.
``spawn(fn, world_size, *args)`` runs ``fn(rank, world_size, *args)`` in ``world_size``
processes (``torch.multiprocessing``, start method ``spawn``) and returns the list of their
return values, in rank order.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, out: str, fn: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(1)  # N_d ranks share the CPU cores: one thread each avoids oversubscription
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=1800))  # a loaded machine can stall ranks for minutes
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., Any], world_size: int, *args: Any) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; return their results.

    Ranks run their loops with ``TrainConfig(progress=False)``: N_d bars would interleave.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"N_d (world_size) must be an int >= 1, got {world_size!r}")
    with tempfile.TemporaryDirectory(prefix="zero_ranks_") as out:
        mp.spawn(_entry, args=(world_size, free_port(), out, fn, args), nprocs=world_size, join=True)
        return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
