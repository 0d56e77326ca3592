"""moderndl.parallel: independent tasks in spawned processes, results in order."""

import operator

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


def test_a_task_error_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        parallel.map_processes(operator.truediv, [1, 0], shared=1, workers=2, progress=False)


@pytest.mark.parametrize("workers", [0, 1.5, True])
def test_bad_worker_counts_are_rejected(workers):
    with pytest.raises(ValueError, match="workers must be an int"):
        parallel.map_processes(operator.mul, [1], workers=workers)
