"""moderndl.parallel: independent tasks in spawned processes, results in order."""

import operator
from functools import partial

import pytest
import torch

from moderndl import parallel


def test_processes_return_what_the_serial_loop_returns_in_order_and_tensors_travel_both_ways():
    shared = torch.arange(6.0).reshape(2, 3)
    items = [torch.full((3,), float(k)) for k in range(7)]
    serial = parallel.map_processes(operator.add, items, shared=shared, workers=1)
    pooled = parallel.map_processes(operator.add, items, shared=shared, workers=2, progress=False)
    assert len(pooled) == len(items)
    for k, (a, b) in enumerate(zip(serial, pooled, strict=True)):
        torch.testing.assert_close(b, a)
        torch.testing.assert_close(b, shared + k)


def _fit(x, seed, *, steps):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        loss = (model(x) - 1).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"seed": seed, "model": model.eval()}


def test_a_partial_task_returns_its_trained_module_whole():
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    serial = parallel.map_processes(partial(_fit, steps=3), [0, 1, 2], shared=x, workers=1)
    pooled = parallel.map_processes(partial(_fit, steps=3), [0, 1, 2], shared=x, workers=2, progress=False)
    assert [r["seed"] for r in pooled] == [0, 1, 2]
    for a, b in zip(serial, pooled, strict=True):
        assert isinstance(b["model"], torch.nn.Linear) and not b["model"].training
        for name, value in a["model"].state_dict().items():
            torch.testing.assert_close(b["model"].state_dict()[name], value, rtol=0, atol=0)
        torch.testing.assert_close(b["model"](x), a["model"](x), rtol=0, atol=0)


def test_a_task_error_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        parallel.map_processes(operator.truediv, [1, 0], shared=1, workers=2, progress=False)


@pytest.mark.parametrize("workers", [0, 1.5, True])
def test_bad_worker_counts_are_rejected(workers):
    with pytest.raises(ValueError, match="workers must be an int"):
        parallel.map_processes(operator.mul, [1], workers=workers)
