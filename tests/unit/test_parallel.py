"""moderndl.parallel: independent tasks in spawned processes, results in order."""

import operator

import pytest
import torch

from moderndl import parallel


def test_processes_return_what_the_serial_loop_returns_in_order():
    items = list(range(7))
    serial = parallel.map_processes(operator.mul, items, shared=3, workers=1)
    assert serial == [3 * i for i in items]
    assert parallel.map_processes(operator.mul, items, shared=3, workers=2, progress=False) == serial


def test_tensors_travel_both_ways():
    shared = torch.arange(6.0).reshape(2, 3)
    out = parallel.map_processes(operator.add, [torch.ones(3), torch.full((3,), 2.0)], shared=shared,
                                 workers=2, progress=False)
    torch.testing.assert_close(out[1], shared + 2.0)


def test_a_task_error_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        parallel.map_processes(operator.truediv, [1, 0], shared=1, workers=2, progress=False)


@pytest.mark.parametrize("workers", [0, 1.5, True])
def test_bad_worker_counts_are_rejected(workers):
    with pytest.raises(ValueError, match="workers must be an int"):
        parallel.map_processes(operator.mul, [1], workers=workers)
