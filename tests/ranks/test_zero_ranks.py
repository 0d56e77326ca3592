"""ZeRO on two gloo ranks under torchrun: the ranks draw disjoint slices whose union is the
one-process global batch (rank taken from the launch), and every stage's parameters after k
steps equal one-process Adam on the global batch (arXiv:1910.02054, Section 5)."""

import torch

from moderndl.zero import experiments as ex
from moderndl.zero.workload import Workload

from ..conftest import run_ranks

WORKLOADS = {
    "mlp": Workload(sizes=(64, 12, 10), batch_size=8, steps=2),
    "transformer": Workload(kind="transformer", width=16, layers=1, heads=2, seq_len=6, batch_size=4, steps=2),
}

SCRIPT = '''
import os
import torch
import torch.distributed as dist
from accelerate.state import PartialState
from moderndl.train import ranks
from moderndl.zero.partition import ZeroConfig, ZeroDataParallel
from moderndl.zero.workload import Workload, loss_fn

torch.set_num_threads(1)
PartialState()  # joins the torchrun launch (gloo on CPU)
rank, world_size = ranks()  # from the launch, as every sampler of the book takes it
out = os.environ["OUT"]
for name, fields in WORKLOADS.items():
    work = Workload(**fields)
    data = work.data(rank, world_size)
    torch.save([data(t) for t in range(work.steps)], f"{out}/{name}_batches_rank{rank}.pt")
    for stage in range(4):
        model = work.model()
        engine = ZeroDataParallel(model, ZeroConfig(stage=stage, world_size=world_size, lr=work.lr,
                                                    param_dtype=torch.float32, bucket_numel=200))
        for t in range(work.steps):
            loss_fn(model, data(t)).backward()
            engine.step()
            engine.zero_grad()
        params = engine.full_parameters()  # a collective in stage 3
        if rank == 0:
            torch.save(params, f"{out}/{name}_stage{stage}.pt")
dist.barrier()
'''


def test_two_ranks_shard_the_global_batch_and_every_stage_equals_adam(tmp_path):
    from dataclasses import asdict

    fields = {name: asdict(w) for name, w in WORKLOADS.items()}
    run_ranks(f"WORKLOADS = {fields!r}\n" + SCRIPT, tmp_path, nproc=2, timeout=240)
    for name, work in WORKLOADS.items():
        shards = [torch.load(tmp_path / f"{name}_batches_rank{r}.pt") for r in range(2)]
        whole = work.data(0, 1)
        for t in range(work.steps):
            x0, x1 = shards[0][t][0], shards[1][t][0]
            assert len(x0) == len(x1) == work.batch_size // 2
            # Rank 0 holds the first half of the global batch and rank 1 the second: disjoint
            # slices of one draw, whose union, in order, is the one-process batch.
            torch.testing.assert_close(torch.cat([x0, x1]), whole(t)[0])
        reference, _ = ex.reference_adam(work)
        for stage in range(4):
            params = torch.load(tmp_path / f"{name}_stage{stage}.pt")
            for key, ref in reference.items():
                torch.testing.assert_close(params[key], ref, rtol=1e-5, atol=1e-6, msg=f"{name} stage {stage} {key}")
