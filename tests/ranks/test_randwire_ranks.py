"""RandWire under two gloo ranks: sharded batches and augmentation, and ranks kept in sync.

RandWire normalises with BatchNorm in every node, and without SyncBatchNorm on CPU each rank
normalises with its own half-batch statistics, so two-rank training does not equal one process
with the global batch. What must hold, and is checked: the ranks draw disjoint slices whose
union is the one-process global batch, augmented exactly as one process would augment it,
and DDP keeps the ranks' parameters identical after every step.
"""

import torch

from moderndl import train
from moderndl.randwire import data as rd

from ..conftest import run_ranks

SCRIPT = r'''
import os
import torch
from moderndl import train
from moderndl.randwire import data as rd
from moderndl.randwire import experiment as ex
from moderndl.randwire.model import RandWireConfig

torch.set_num_threads(1)
x = torch.arange(64 * 3 * 8 * 8, dtype=torch.float32).view(64, 3, 8, 8)
y = torch.arange(64)
sampler = train.batches(x, y, batch_size=16, seed=3)
batches = []
for t in range(3):
    xb, yb = sampler(t)
    batches.append((rd.augment(xb, 3, t, global_batch=16), yb))
data = rd.Dataset("toy", torch.randn(64, 3, 8, 8), torch.arange(64) % 10, torch.randn(16, 3, 8, 8),
                  torch.arange(16) % 10, 10)
config = ex.model_config(RandWireConfig(nodes=6, channels=4, head_channels=8, stem_strides=(1, 1)),
                         "WS", (2, 0.5), 0, data)
row = ex.train_one(config, data, ex.RandWireRecipe(steps=2, batch_size=16, augment=True), progress=False)
params = {k: v for k, v in row["model"].state_dict().items() if "running" not in k and "num_batches" not in k}
torch.save({"batches": batches, "params": params}, os.path.join(os.environ["OUT"], f"rank{os.environ['RANK']}.pt"))
'''


def test_two_ranks_shard_the_global_batch_and_stay_in_sync(tmp_path):
    run_ranks(SCRIPT, tmp_path, nproc=2)
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt") for i in range(2))
    x = torch.arange(64 * 3 * 8 * 8, dtype=torch.float32).view(64, 3, 8, 8)
    y = torch.arange(64)
    one = train.batches(x, y, batch_size=16, seed=3, rank=0, world_size=1)
    for t in range(3):
        xb, yb = one(t)
        expected = rd.augment(xb, 3, t)  # one process, the whole global batch
        (x0, y0), (x1, y1) = r0["batches"][t], r1["batches"][t]
        assert set(y0.tolist()).isdisjoint(y1.tolist())
        assert torch.equal(torch.cat([y0, y1]), yb)
        assert torch.equal(torch.cat([x0, x1]), expected)
    for name, value in r0["params"].items():
        torch.testing.assert_close(value, r1["params"][name], msg=name)
