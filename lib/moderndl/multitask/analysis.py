r"""Reading the runs: equilibria, conflicts, rankings with standard errors, and Pareto fronts.

Every check the chapter makes on its runs lives here, so the tests use it too.

- Uncertainty weighting's stationary point (Kendall et al. 2018) is $2 w_t L_t = 1$. While
  the losses fall the weights trail it: Adam moves $s_t = \log\sigma_t^2$ with the time
  constant $\tau = 2\sqrt{\hat v}/\eta$ steps (the gradient is $\approx (s_t - s_t^*)/2$ near
  the equilibrium, Adam divides it by $\sqrt{\hat v}$); a target $s_t^* = \log(2 L_t / c_t)$
  that falls at $r$ per step is trailed by $r\tau$ in the steady state (momentum averages a
  constant gradient to itself), so $\log(2 w_t L_t) \approx -r\tau$.
- Conflicts: the fraction of probes with a negative cosine, across tasks and within one task.
- Rankings: paired differences over seeds, a tie when within ``z`` standard errors, so the
  test gets stricter as seeds are added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from moderndl import measure
from moderndl.multitask.experiment import SINGLE, RunResult, delta_m
from moderndl.multitask.multimnist import Task


def runs_of(results: Sequence[RunResult], method: str) -> list[RunResult]:
    """The runs of one method (or label), in seed order; an error naming the labels if none."""
    runs = sorted((r for r in results if r.method == method), key=lambda r: r.seed)
    if not runs:
        raise KeyError(f"no runs of {method!r}; labels: {sorted({r.method for r in results})}")
    return runs


def run_of(results: Sequence[RunResult], method: str, seed: int) -> RunResult:
    """The one run of ``method`` at ``seed``."""
    found = [r for r in runs_of(results, method) if r.seed == seed]
    if not found:
        raise KeyError(f"no run of {method!r} at seed {seed}")
    return found[0]


def _window(run: RunResult, key: str, lo: int, hi: int) -> np.ndarray:
    steps, values = measure.series(run.history, key)
    return values[(steps >= lo) & (steps <= hi)]


def equilibrium_factor(run: RunResult, names: Sequence[str], lo: int, hi: int) -> dict[str, float]:
    """$2\\,\\overline{w_t L_t}$ over steps ``lo..hi``: 1 at Kendall et al.'s stationary point, where
    the log-variance's gradient $\\tfrac12 - w_t L_t$ averages to zero (the mean of the product,
    so that batch noise the weight partly follows does not bias it)."""
    return {n: float(2 * (_window(run, f"weight/{n}", lo, hi) * _window(run, f"loss/{n}", lo, hi)).mean())
            for n in names}


def loss_decay_rate(run: RunResult, name: str, lo: int, hi: int, width: int = 25) -> float:
    """$r = -\\mathrm{d}\\log L_t/\\mathrm{d}t$ per step over ``lo..hi``: a least-squares slope of
    the log of the loss's moving average (over ``width`` steps)."""
    steps, values = measure.series(run.history, f"loss/{name}")
    keep = (steps >= lo) & (steps <= hi)
    smooth = measure.moving_average(values[keep], width)
    x = steps[keep][len(steps[keep]) - len(smooth):]
    if len(x) < 2:
        raise ValueError(f"window {lo}..{hi} holds too few steps for a slope")
    return float(-np.polyfit(x, np.log(smooth), 1)[0])


def predicted_lag(sqrt_v: float, weight_lr: float, rate: float) -> float:
    """$r\\tau$ with $\\tau = 2\\sqrt{\\hat v}/\\eta$: how far $\\log\\sigma_t^2$ trails its
    equilibrium when the loss falls at ``rate`` per step (the steady state of a ramp)."""
    if weight_lr <= 0:
        raise ValueError(f"weight_lr must be positive, got {weight_lr}")
    return rate * 2 * sqrt_v / weight_lr


def uncertainty_check(run: RunResult, names: Sequence[str], weight_lr: float, lo: int, hi: int,
                      floor: float = 0.1) -> dict[str, dict[str, float]]:
    """Per task: the measured $\\log(2\\bar w\\bar L)$ over steps ``lo..hi`` and its tolerance
    from the optimisation's time constant $\\tau$: the start's gap $|\\log(2 w L)|$ decayed
    by $e^{-lo/\\tau}$ (with the run's final, shortest $\\tau$), plus twice the lag behind a
    falling loss (:func:`predicted_lag`), plus a 10% ``floor`` for what the model leaves out."""
    factor = equilibrium_factor(run, names, lo, hi)
    first = run.history[0]
    out = {}
    for i, n in enumerate(names):
        sqrt_v = run.extra["adam_sqrt_v"][i]
        tau = 2 * sqrt_v / weight_lr  # steps
        lag = predicted_lag(sqrt_v, weight_lr, loss_decay_rate(run, n, lo, hi))
        gap0 = abs(math.log(2 * first[f"weight/{n}"] * first[f"loss/{n}"]))
        tolerance = gap0 * math.exp(-lo / tau) + 2 * abs(lag) + floor
        measured = math.log(factor[n])
        out[n] = {"factor": factor[n], "log_factor": measured, "tau_steps": tau, "ramp_lag": -lag,
                  "tolerance": tolerance, "holds": abs(measured) <= tolerance}
    return out


def negative_fraction(run: RunResult, prefix: str) -> float:
    """Fraction of the logged values under keys starting with ``prefix`` that are negative."""
    keys = sorted({k for h in run.history for k in h if k.startswith(prefix)})
    if not keys:
        raise KeyError(f"no keys starting with {prefix!r} were logged")
    values = np.concatenate([measure.series(run.history, k)[1] for k in keys])
    return float((values < 0).mean())


def update_conflict_fraction(run: RunResult, names: Sequence[str], atol: float = 1e-6) -> float:
    """Fraction of probes at which the applied trunk update $d$ conflicts with some task:
    $\\cos(g_t, d) < -$``atol`` for at least one $t$."""
    cos = np.stack([measure.series(run.history, f"upd/{n}")[1] for n in names])  # (T, probes)
    return float((cos < -atol).any(axis=0).mean())


def paired_verdict(a: Sequence[float], b: Sequence[float], z: float = 2.0) -> dict[str, float | str]:
    """Compare ``a`` and ``b`` paired by seed: the mean difference, its standard error, and
    ``">"``, ``"<"`` or ``"="`` (within ``z`` standard errors). More seeds, a narrower tie."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} vs {len(b)}")
    if len(a) < 2:
        raise ValueError("a standard error needs at least 2 seeds")
    d = measure.mean_std(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    verdict = ">" if d["mean"] > z * d["sem"] else "<" if d["mean"] < -z * d["sem"] else "="
    return {"diff": d["mean"], "sem": d["sem"], "n": d["n"], "verdict": verdict}


def delta_m_by_seed(results: Sequence[RunResult], tasks: Sequence[Task], method: str,
                    base: Mapping[str, float]) -> list[float]:
    """$\\Delta_m$ of each run of ``method``, in seed order."""
    return [delta_m(r.metrics, base, tasks) for r in runs_of(results, method)]


def ordering_check(results: Sequence[RunResult], tasks: Sequence[Task], base: Mapping[str, float],
                   expected: Mapping[tuple[str, str], str], z: float = 2.0) -> dict[str, dict]:
    """Each expected relation ``(a, b): ">" | "="`` against the paired verdict on $\\Delta_m$."""
    out = {}
    for (a, b), want in expected.items():
        v = paired_verdict(delta_m_by_seed(results, tasks, a, base), delta_m_by_seed(results, tasks, b, base), z)
        out[f"{a} {want} {b}"] = {**v, "expected": want, "holds": v["verdict"] == want}
    return out


def task_gains(results: Sequence[RunResult], tasks: Sequence[Task], method: str,
               base: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Per task, the relative gain over the single-task baseline in percent (sign-flipped where
    lower is better), as ``measure.mean_std`` over seeds."""
    out = {}
    for t in tasks:
        sign = 1.0 if t.higher_is_better else -1.0
        out[t.name] = measure.mean_std([100 * sign * (r.metrics[t.name] - base[t.name]) / base[t.name]
                                        for r in runs_of(results, method)])
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (higher is better)."""
    return [i for i, (x, y) in enumerate(points)
            if not any(u >= x and v >= y and (u > x or v > y) for u, v in points)]


def dominated_by(point: tuple[float, float], others: Mapping[str, tuple[float, float]]) -> list[str]:
    """The names of ``others`` that are at least as good on both coordinates and better on one."""
    x, y = point
    return [k for k, (u, v) in others.items() if u >= x and v >= y and (u > x or v > y)]


def singles_of(results: Sequence[RunResult]) -> list[RunResult]:
    return [r for r in results if r.method == SINGLE]
