"""Data parallel on two gloo CPU ranks: the ranks split the global batch, and training equals
one process with the global batch (the contract in DESIGN.md's "Training and scale")."""

import pytest
import torch

from moderndl import train
from moderndl.seed import set_seed

from ..conftest import run_ranks

STEPS, BATCH = 6, 8

PROBLEM = """
import torch

def problem():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(64, 1, generator=g)
    return x, y, torch.arange(64)
"""
exec(PROBLEM)  # the same data here and in the ranks' script

SCRIPT = PROBLEM + """
import os, sys
from moderndl import train
from moderndl.seed import set_seed

steps, resume_at = int(sys.argv[1]), int(sys.argv[2])
x, y, idx = problem()
ckpt = os.path.join(os.environ["OUT"], "ckpt")
seen = []
def loss_fn(model, batch):
    xb, yb, ib = batch
    seen.append(ib.tolist())
    return torch.nn.functional.mse_loss(model(xb), yb)
def fit(upto, resume):
    set_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    config = train.TrainConfig(steps=upto, log_every=2, checkpoint_dir=ckpt, progress=False)
    data = train.batches(x, y, idx, batch_size=8, seed=3)
    return train.fit(model, opt, loss_fn, data, config, resume=resume)
if resume_at:
    fit(resume_at, False)
history, loop = fit(steps, bool(resume_at))
rank = loop.accelerator.process_index
torch.save({"seen": seen, "history": history, "world": loop.accelerator.num_processes,
            "params": {k: v.detach().clone() for k, v in loop.unwrap("model").state_dict().items()}},
           os.path.join(os.environ["OUT"], f"rank{rank}.pt"))
"""


def step_logs(history):
    return [h["loss"] for h in history]


def one_process(steps=STEPS):
    x, y, idx = problem()  # noqa: F821 - defined by exec(PROBLEM)
    seen = []

    def loss_fn(model, batch):
        xb, yb, ib = batch
        seen.append(ib.tolist())
        return torch.nn.functional.mse_loss(model(xb), yb)

    set_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    config = train.TrainConfig(steps=steps, log_every=2, progress=False)
    history, loop = train.fit(model, opt, loss_fn, train.batches(x, y, idx, batch_size=BATCH, seed=3, rank=0,
                                                                 world_size=1), config)
    return seen, history, loop.unwrap("model").state_dict()


def _launch(tmp_path, launcher="torchrun", steps=STEPS, resume_at=0):
    run_ranks(SCRIPT, tmp_path, args=(str(steps), str(resume_at)), launcher=launcher)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_rank_slice_splits_the_global_batch():
    assert train.rank_slice(8, 0, 2) == slice(0, 4) and train.rank_slice(8, 1, 2) == slice(4, 8)
    assert train.rank_slice(8) == slice(0, 8)  # one process: the whole batch
    with pytest.raises(ValueError, match="not divisible by the 3 ranks"):
        train.rank_slice(8, 0, 3)
    x = torch.arange(40)
    one = train.batches(x, batch_size=8, seed=0, rank=0, world_size=1)
    halves = [train.batches(x, batch_size=8, seed=0, rank=r, world_size=2) for r in (0, 1)]
    for t in range(12):  # across epoch boundaries too
        assert torch.equal(torch.cat([h(t)[0] for h in halves]), one(t)[0])


@pytest.mark.slow
def test_two_ranks_split_the_batch_and_train_as_one_process(tmp_path):
    ranks = _launch(tmp_path)
    seen, history, params = one_process()
    assert [r["world"] for r in ranks] == [2, 2]
    for t in range(STEPS):
        a, b = ranks[0]["seen"][t], ranks[1]["seen"][t]
        assert not set(a) & set(b), f"step {t}: the ranks overlap"
        assert sorted(a + b) == sorted(seen[t]), f"step {t}: the union is not the global batch"
    for r in ranks:
        for k, v in params.items():
            torch.testing.assert_close(r["params"][k], v, rtol=1e-5, atol=1e-6)
    # the logged loss is the mean over ranks, i.e. the global batch's mean loss
    torch.testing.assert_close(torch.tensor(step_logs(ranks[0]["history"])), torch.tensor(step_logs(history)),
                               rtol=1e-5, atol=1e-6)
    assert step_logs(ranks[0]["history"]) == step_logs(ranks[1]["history"])


@pytest.mark.slow
def test_resume_under_two_ranks_equals_an_uninterrupted_run(tmp_path):
    resumed = _launch(tmp_path, resume_at=3)
    _, history, params = one_process()
    for k, v in params.items():
        torch.testing.assert_close(resumed[0]["params"][k], v, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(step_logs(resumed[0]["history"])), torch.tensor(step_logs(history)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_accelerate_launch_multi_gpu_runs_two_gloo_ranks_on_cpu(tmp_path):
    ranks = _launch(tmp_path, launcher="accelerate")
    assert [r["world"] for r in ranks] == [2, 2]
    _, _, params = one_process()
    for k, v in params.items():
        torch.testing.assert_close(ranks[1]["params"][k], v, rtol=1e-5, atol=1e-6)


def test_a_module_without_trainable_parameters_is_not_wrapped():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x

    set_seed(0)
    loop = train.Loop(train.TrainConfig(steps=1, progress=False), model=torch.nn.Linear(2, 1), weighting=Fixed(),
                      frozen=torch.nn.Linear(2, 2).requires_grad_(False))
    assert isinstance(loop["weighting"], Fixed) and isinstance(loop["frozen"], torch.nn.Linear)
    assert loop.unwrap("model") is loop.accelerator.unwrap_model(loop["model"])
