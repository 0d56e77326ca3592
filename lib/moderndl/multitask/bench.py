"""Cost per training step of each weighting, and the chapter's part of ``make gpu-check``.

:func:`method_costs` times one training step of every method with the gradient probes
off (``probe_every=0``), so the numbers are the methods' own cost, through
``measure.train_throughput`` (warm-up, device sync, median), and divides by equal
weighting's. PCGrad computes every task's gradient on the whole trunk ($T$ extra backward
passes); MGDA-UB and GradNorm only down to the representation or the last shared layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from moderndl import measure
from moderndl.multitask import scales
from moderndl.multitask.experiment import MultitaskRecipe, setup, train
from moderndl.multitask.multimnist import TWO_TASKS, MultiMNISTConfig, Task, load_multimnist


def method_costs(methods: Sequence[str], tasks: Sequence[Task], train_data, recipe: MultitaskRecipe, *,
                 warmup: int = 5, repeats: int = 30, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{method: train_throughput(...) + {"relative_to_equal": step time / equal's}}``, probes off."""
    recipe = replace(recipe, probe_every=0, steps=warmup + repeats + 1)
    rows = {}
    for method in dict.fromkeys(["equal", *methods]):
        run = setup(method, tasks, train_data, recipe, seed)
        batch = run.data(0)
        batch = (batch[0].to(run.loop.device), {k: v.to(run.loop.device) for k, v in batch[1].items()})
        rows[method] = measure.train_throughput(_stepper(run.step, batch), recipe.batch_size, warmup=warmup,
                                                repeats=repeats, device=run.loop.device)
    for r in rows.values():
        r["relative_to_equal"] = r["median_s"] / rows["equal"]["median_s"]
    return {m: rows[m] for m in methods}


def _stepper(step, batch):
    """A zero-argument call of ``step`` on a fixed batch, counting steps (from 1: no probe at step 0)."""
    counter = iter(range(1, 10**9))
    return lambda: step(batch, next(counter))


def gpu_check(device: torch.device, toy: bool) -> dict[str, Any]:
    """The full profile's training path (bf16 autocast on CUDA) for a few steps per method on two
    tasks, then the per-method step cost at the full profile's sizes; toy sizes on a CPU."""
    threads = torch.get_num_threads()
    if toy:  # tiny steps on a shared CPU: one thread, as the CPU profiles run (restored at the end)
        torch.set_num_threads(1)
    try:
        return _gpu_check(device, toy)
    finally:
        torch.set_num_threads(threads)


def _gpu_check(device: torch.device, toy: bool) -> dict[str, Any]:
    full = scales.TABLE["full"]
    cpu = device.type != "cuda"
    recipe = MultitaskRecipe(steps=3 if toy else 50, batch_size=32 if toy else full["batch_size"], lr=full["lr"],
                             weight_lr=full["weight_lr"], hidden=(64, 32) if toy else tuple(full["hidden"]),
                             probe_every=1 if toy else full["probe_every"],
                             mixed_precision=full["mixed_precision"], cpu=cpu)
    config = MultiMNISTConfig(n_train=256, n_test=64) if toy else MultiMNISTConfig(n_train=4096, n_test=1024)
    train_data, test_data = load_multimnist(config, seed=0)
    runs = {m: train(m, TWO_TASKS, train_data, test_data, recipe, seed=0).metrics for m in full["methods"]}
    costs = method_costs(full["methods"], TWO_TASKS, train_data, recipe, warmup=2 if toy else 10,
                         repeats=3 if toy else 50)
    out = {"device": str(device), "steps": recipe.steps, "accuracy_after_steps": runs,
           "throughput": {m: {"items_per_s": c["items_per_s"], "relative_to_equal": c["relative_to_equal"]}
                          for m, c in costs.items()}}
    if toy or cpu:
        out["skipped"] = ["bf16 autocast (accelerate runs fp32 on a CPU)", "full-size trunk and batch (toy sizes)"]
    return out
