"""Peak memory of a step from the CPU allocator's events (moderndl.zero.peak), against
allocations whose sizes are known in closed form; and the chapter's transformer workload."""

import pytest
import torch

from moderndl.zero import peak
from moderndl.zero.workload import Workload, transformer_params


def test_peak_follows_allocations_and_frees_in_order():
    with peak.trace() as tr:
        kept = torch.zeros(1000)  # 4000 bytes, alive through both steps
        with tr.step():
            big = torch.zeros(2000)  # +8000: live 12000, the first step's peak
            del big
            small = torch.zeros(500)  # +2000 after the free: live 6000
        with tr.step():
            tiny = torch.zeros(100)  # +400
    assert tr.step_peaks() == [{"before": 4000, "peak": 12000}, {"before": 6000, "peak": 6400}]
    assert tr.peak() == 12000
    assert kept.numel() + small.numel() + tiny.numel() == 1600


def test_storage_resize_counts_as_allocation():
    """Stage 3 frees gathered layers by resizing their storage: the trace sees it. (The
    profiler cannot see frees of blocks allocated before it started: build inside the trace.)"""
    with peak.trace() as tr:
        x = torch.zeros(1000)  # 4000
        with tr.step():
            x.untyped_storage().resize_(0)  # -4000
            x.untyped_storage().resize_(2000)  # +2000
        with tr.step():
            x.untyped_storage().resize_(0)  # -2000
    assert tr.step_peaks() == [{"before": 4000, "peak": 4000}, {"before": 2000, "peak": 2000}]


def test_no_marked_step_is_an_error():
    with peak.trace() as tr:
        torch.zeros(10)
    with pytest.raises(ValueError, match="no step was marked"):
        tr.peak()


def test_transformer_parameter_count_in_closed_form():
    work = Workload(kind="transformer", width=48, layers=3, heads=4, seq_len=16)
    assert work.num_params() == transformer_params(48, 3, 16)
    assert work.largest_layer() == max(48 * 4 * 48 + 4 * 48, 48 * 256 + 256)  # fc or the 256-way head


def test_text_windows_are_shifted_by_one_byte_and_sharded():
    work = Workload(kind="transformer", width=16, layers=1, heads=2, seq_len=8, batch_size=6)
    x, y = work.data(0, 1)(3)
    assert x.shape == y.shape == (6, 8)
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    parts = [work.data(r, 3)(3)[0] for r in range(3)]
    torch.testing.assert_close(torch.cat(parts), x)


@pytest.mark.parametrize(("field", "value"), [("kind", "cnn"), ("heads", 5), ("steps", 0)])
def test_bad_workload_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Workload(kind="transformer", **{field: value}) if field != "kind" else Workload(kind=value)
