r"""Peak memory of a training step, measured: every allocation and free, not a snapshot.

Rajbhandari et al. 2020, arXiv:1910.02054, Section 5 counts the model states a device holds;
what limits a device is the **peak** during a step, which adds working buffers (gradient
buckets, gathered layers, optimizer temporaries) and activations on top of the states:

$$ M_{\text{peak}} \le \underbrace{M_{\text{states}}(s, N_d)}_{\text{Section 5}}
   + \sum_{\text{named buffers}} b_i + A . $$

On CPU, :func:`trace` runs ``torch.profiler`` with ``profile_memory=True``: the CPU allocator
reports each allocation and free (bytes, time) to the profiler, which is the allocator hook.
The live bytes at any time are the running sum of those events since the trace started; the
peak of a step is their maximum inside the step's ``record_function`` range. On CUDA
:func:`trace` uses the caching allocator's own counters (``max_memory_allocated``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile, record_function

STEP = "zero_peak_step"  # the record_function name that marks a measured step


@dataclass
class Trace:
    """Allocation events (time in ns, +/- bytes) and the measured steps' time ranges."""

    device: torch.device
    events: list[tuple[int, int]] = field(default_factory=list)
    steps: list[tuple[int, int]] = field(default_factory=list)
    cuda_peaks: list[tuple[int, int]] = field(default_factory=list)  # (live before, peak) per step

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Mark one step: its peak is measured."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            yield
            torch.cuda.synchronize()
            self.cuda_peaks.append((before, torch.cuda.max_memory_allocated()))
            return
        with record_function(STEP):
            yield

    def step_peaks(self) -> list[dict[str, int]]:
        """Per marked step: ``before`` (live bytes at its start) and ``peak`` (largest live bytes
        during it), both counted from the start of the trace."""
        if self.device.type == "cuda":
            return [{"before": b, "peak": p} for b, p in self.cuda_peaks]
        out = []
        events = sorted(self.events)
        for lo, hi in sorted(self.steps):
            live = sum(n for t, n in events if t < lo)
            peak = live
            for t, n in events:
                if lo <= t <= hi:
                    live += n
                    peak = max(peak, live)
            out.append({"before": sum(n for t, n in events if t < lo), "peak": peak})
        return out

    def peak(self) -> int:
        """The largest live bytes during any marked step."""
        peaks = self.step_peaks()
        if not peaks:
            raise ValueError("no step was marked with Trace.step()")
        return max(p["peak"] for p in peaks)


@contextlib.contextmanager
def trace(device: torch.device | str = "cpu") -> Iterator[Trace]:
    """Record allocations from here on; mark steps with ``with tr.step(): ...``.

    Build the model inside the trace, so the live bytes count everything the run allocates.
    """
    device = torch.device(device)
    tr = Trace(device)
    if device.type == "cuda":
        yield tr
        return
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_fd2():  # kineto logs a line to the process's stderr at start and stop
        prof.start()
    try:
        yield tr
    finally:
        with _quiet_fd2():
            prof.stop()
    for e in prof.profiler.kineto_results.events():
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU:
            tr.events.append((e.start_ns(), e.nbytes()))
        elif e.name() == STEP:
            tr.steps.append((e.start_ns(), e.start_ns() + e.duration_ns()))


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (C++ logging bypasses sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)
