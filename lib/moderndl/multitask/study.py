"""The chapter's experiment end to end: the runs, the numbers and the claims.

The notebook calls these one section at a time and draws the figures between them;
``python -m moderndl.multitask`` calls :func:`experiment`, which runs them all and records
the same metrics and claims.

- :func:`comparison`: the published two-task MultiMNIST (left and right digit), every
  method and the single-task baselines over ``seeds``;
- :func:`ablation`: MGDA-UB under each gradient normalisation;
- :func:`sweep`: fixed weights $(w, 1 - w)$, the Pareto front of the two accuracies;
- :func:`three_task`: the two digits plus the regression of their sum, a study of loss scales.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from moderndl import measure
from moderndl.multitask import analysis as A
from moderndl.multitask.experiment import (
    SINGLE,
    MultitaskRecipe,
    RunResult,
    Spec,
    baseline,
    check_methods,
    run_grid,
    summarize,
)
from moderndl.multitask.multimnist import THREE_TASKS, TWO_TASKS, MultiMNISTConfig, load_multimnist
from moderndl.multitask.surgery import NORMALIZATIONS, MGDAConfig

DEFAULT_NORM = MGDAConfig().normalization
# Sener & Koltun 2018 on MultiMNIST: MGDA-UB ahead of the loss weightings, which are close
PUBLISHED = {("mgda", "equal"): ">", ("mgda", "uncertainty"): ">", ("mgda", "gradnorm"): ">",
             ("equal", "uncertainty"): "=", ("equal", "gradnorm"): "="}


def check_settings(s: Mapping[str, Any]) -> None:
    """Fail before any training: known methods, known normalisations, sweep weights in [0, 1]."""
    check_methods(s["methods"])
    bad = [k for k in s["normalizations"] if k not in NORMALIZATIONS]
    if bad:
        raise ValueError(f"normalizations {bad} not in {NORMALIZATIONS}")
    if any(not 0.0 <= float(w) <= 1.0 for w in s["sweep"]):
        raise ValueError(f"sweep weights must lie in [0, 1] (w for the left digit, 1 - w for the right), "
                         f"got {s['sweep']}")


def data(s: Mapping[str, Any], seed: int):
    """Train and test canvases of the profile's sizes (both task sets read the same canvases)."""
    return load_multimnist(MultiMNISTConfig(n_train=s["n_train"], n_test=s["n_test"]), seed=seed)


def recipe(s: Mapping[str, Any]) -> MultitaskRecipe:
    return MultitaskRecipe(steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], weight_lr=s["weight_lr"],
                           hidden=tuple(s["hidden"]), probe_every=s["probe_every"],
                           mixed_precision=s["mixed_precision"], cpu=s["device"].type == "cpu",
                           workers=s["workers"])


def seeds(seed: int, n: int) -> list[int]:
    return [seed + i for i in range(n)]


def comparison(s, train, test, seed: int) -> list[RunResult]:
    """Two tasks, every method of ``s.methods`` and both single-task baselines, ``s.seeds`` seeds."""
    return run_grid(s["methods"], seeds(seed, s["seeds"]), TWO_TASKS, train, test, recipe(s), desc="two tasks")


def ablation(s, train, test, seed: int) -> list[RunResult]:
    """MGDA-UB under each normalisation but the default (which the comparison ran), ``s.study_seeds`` seeds."""
    specs = [Spec(f"mgda/{k}", "mgda", {"normalization": k}) for k in s["normalizations"] if k != DEFAULT_NORM]
    if not specs:
        return []
    return run_grid(specs, seeds(seed, s["study_seeds"]), TWO_TASKS, train, test, recipe(s), singles=[],
                    desc="MGDA-UB normalisations")


def sweep(s, train, test, seed: int) -> list[RunResult]:
    """Fixed weights $(w, 1 - w)$ for each $w$ of ``s.sweep``, ``s.study_seeds`` seeds."""
    specs = [Spec(f"fixed/{w:g}", "fixed", {"weights": [w, 1 - w]}) for w in s["sweep"]]
    return run_grid(specs, seeds(seed, s["study_seeds"]), TWO_TASKS, train, test, recipe(s), singles=[],
                    desc="fixed weights")


def three_task(s, train, test, seed: int) -> list[RunResult]:
    """Three tasks: every method, plus MGDA-UB without normalisation, and the sum's single-task
    baseline (the digits' baselines are the comparison's), ``s.study_seeds`` seeds."""
    specs: list[str | Spec] = list(s["methods"])
    if "mgda" in s["methods"] and DEFAULT_NORM != "none":
        specs.append(Spec("mgda/none", "mgda", {"normalization": "none"}))
    return run_grid(specs, seeds(seed, s["study_seeds"]), THREE_TASKS, train, test, recipe(s),
                    singles=[THREE_TASKS[2]], desc="three tasks")


def pareto_points(results: Sequence[RunResult]) -> dict[str, dict[str, float]]:
    """Mean and standard error of (left, right) accuracy per label."""
    out = {}
    for label in dict.fromkeys(r.method for r in results if r.method != SINGLE):
        runs = A.runs_of(results, label)
        left, right = (measure.mean_std([r.metrics[n] for r in runs]) for n in ("left", "right"))
        out[label] = {"left": left["mean"], "right": right["mean"], "left_sem": left["sem"], "right_sem": right["sem"]}
    return out


def record(led, s, two: list[RunResult], abl: list[RunResult], swp: list[RunResult],
           three: list[RunResult]) -> dict[str, Any]:
    """Record the metrics and claims of all four parts; returns the numbers the notebook prints."""
    return {**record_comparison(led, s, two), **record_ablation(led, two, abl), **record_sweep(led, s, two, swp),
            **record_three_task(led, s, two, three)}


def record_comparison(led, s, two: list[RunResult]) -> dict[str, Any]:
    """The two-task table, gains per task, conflicts, the published ordering and random weighting."""
    out: dict[str, Any] = {}
    methods = list(s["methods"])
    names2 = [t.name for t in TWO_TASKS]
    base2 = baseline(two, TWO_TASKS)
    out["table"] = table = summarize(two, TWO_TASKS)
    led.record("two_task_table", table)
    out["ranking"] = led.record("ranking", [m for m in _order(table)])
    out["gains"] = gains = {m: A.task_gains(two, TWO_TASKS, m, base2) for m in methods}
    led.record("gain_over_single_task_pct", gains)

    if "equal" in methods:
        g = gains["equal"]
        led.claim("hard_sharing_beats_single_task",
                  "Hard sharing with equal weights beats the single-task network on each digit (Caruana 1997)",
                  ", ".join(f"{n} {g[n]['mean']:+.1f} ± {g[n]['sem']:.1f}%" for n in names2),
                  holds=all(g[n]["mean"] > 2 * g[n]["sem"] for n in names2), scope="laptop",
                  tolerance="relative accuracy gain > 2 standard errors over seeds, on every task",
                  note="gains per task and seed against the single-task mean; every method's gains are in "
                       "the metrics (gain_over_single_task_pct)")
        runs = A.runs_of(two, "equal")
        cross = [A.negative_fraction(r, "cross/") for r in runs]
        same = [A.negative_fraction(r, "same/") for r in runs]
        v = A.paired_verdict(cross, same)
        out["conflicts"] = led.record("conflict_fractions_equal", {
            "cross_task": measure.mean_std(cross), "same_task": measure.mean_std(same), "paired": v})
        led.claim("cross_task_conflict_exceeds_same_task",
                  "Gradients of the two tasks conflict more often than those of one task on two half-batches",
                  f"cross-task {100 * measure.mean_std(cross)['mean']:.1f}% vs same-task "
                  f"{100 * measure.mean_std(same)['mean']:.1f}% of probes (difference "
                  f"{100 * v['diff']:+.1f} ± {100 * v['sem']:.1f} points)",
                  holds=v["verdict"] == ">", scope="all",
                  tolerance="paired difference over seeds > 2 standard errors",
                  note="both on disjoint half-batches, so the mini-batch noise is the same; a conflict is a "
                       "negative cosine on the shared trunk, equal-weights runs")

    if all(m in methods for pair in PUBLISHED for m in pair):
        check = A.ordering_check(two, TWO_TASKS, base2, PUBLISHED)
        out["ordering"] = led.record("published_ordering_check", check)
        led.claim("published_ranking",
                  "The Delta_m ordering follows Sener & Koltun's MultiMNIST: MGDA-UB ahead of equal, uncertainty "
                  "and GradNorm, which tie",
                  "; ".join(f"{k}: {c['verdict']} ({c['diff']:+.2f} ± {c['sem']:.2f})" for k, c in check.items()),
                  holds=all(c["holds"] for c in check.values()), scope="laptop",
                  tolerance="paired Delta_m differences over seeds; a tie is within 2 standard errors",
                  note="each relation must hold: '>' needs the difference above 2 s.e., '=' within 2 s.e. "
                       "(a band that narrows as seeds are added)")
    if "random" in methods and "equal" in methods:
        v = A.paired_verdict(A.delta_m_by_seed(two, TWO_TASKS, "random", base2),
                             A.delta_m_by_seed(two, TWO_TASKS, "equal", base2))
        out["random_vs_equal"] = led.record("random_vs_equal", v)
        led.claim("random_weighting_ties_equal",
                  "Random loss weighting is as good as equal weights (Lin et al. 2022)",
                  f"Delta_m difference {v['diff']:+.2f} ± {v['sem']:.2f}: {v['verdict']}",
                  holds=v["verdict"] != "<", scope="laptop",
                  tolerance="not worse than equal weights by more than 2 standard errors",
                  note="Lin et al. find random weights comparable to the specialised methods")

    return out


def record_ablation(led, two: list[RunResult], abl: list[RunResult]) -> dict[str, Any]:
    """Delta_m of MGDA-UB under each normalisation (the default's runs are the comparison's)."""
    out: dict[str, Any] = {}
    base2 = baseline(two, TWO_TASKS)
    if abl or any(r.method == "mgda" for r in two):
        runs = [r for r in two if r.method == "mgda"] + abl
        labels = dict.fromkeys(r.method for r in runs)
        out["ablation"] = abl_table = {("mgda/" + DEFAULT_NORM if k == "mgda" else k):
                                       measure.mean_std([A.delta_m(r.metrics, base2, TWO_TASKS)
                                                         for r in runs if r.method == k]) for k in labels}
        led.record("mgda_normalization_delta_m", abl_table)
    return out


def record_sweep(led, s, two: list[RunResult], swp: list[RunResult]) -> dict[str, Any]:
    """The Pareto points of the sweep and the methods, and which fixed weights dominate a method."""
    out: dict[str, Any] = {}
    methods = list(s["methods"])
    out["pareto"] = points = pareto_points(two + swp)
    led.record("pareto_points", points)
    fixed = {k: (p["left"], p["right"]) for k, p in points.items() if k.startswith("fixed/")}
    out["dominated"] = dom = {m: A.dominated_by((points[m]["left"], points[m]["right"]), fixed)
                              for m in methods if m in points}
    led.record("dominated_by_fixed_weights", dom)
    if "mgda" in dom and fixed:
        led.claim("mgda_on_the_pareto_front",
                  "No fixed weighting (w, 1 - w) beats MGDA-UB on both digits (Sener & Koltun's Pareto picture)",
                  f"MGDA-UB dominated by: {dom['mgda'] or 'none'}", holds=not dom["mgda"], scope="laptop",
                  tolerance="means over seeds; dominated = at least as good on both and better on one",
                  note="every method's point and the sweep are in the metrics (pareto_points)")

    return out


def record_three_task(led, s, two: list[RunResult], three: list[RunResult]) -> dict[str, Any]:
    """The three-task table, uncertainty weighting's equilibrium and the update conflicts."""
    out: dict[str, Any] = {}
    names3 = [t.name for t in THREE_TASKS]
    if three:
        out["table3"] = table3 = summarize(three + [r for r in two if r.method == SINGLE], THREE_TASKS)
        led.record("three_task_table", table3)
        led.record("three_task_ranking", _order(table3))
        _three_task_claims(led, s, three, names3, out)
    return out


def _order(table) -> list[str]:
    return sorted((m for m in table if m != SINGLE), key=lambda m: -table[m]["delta_m"]["mean"])


def _three_task_claims(led, s, three: list[RunResult], names3: list[str], out: dict[str, Any]) -> None:
    labels = {r.method for r in three}
    if "uncertainty" in labels:
        lo, hi = int(0.8 * s["steps"]), s["steps"]
        checks = [A.uncertainty_check(r, names3, s["weight_lr"], lo, hi) for r in A.runs_of(three, "uncertainty")]
        out["uncertainty"] = led.record("uncertainty_equilibrium", checks)
        worst = max((c for check in checks for c in check.values()), key=lambda c: abs(c["log_factor"]))
        led.claim("uncertainty_inverse_loss",
                  "Uncertainty weights reach w_t = 1/(2 L_t) up to the lag their optimiser's time constant predicts",
                  "2 w L over the last 20% of steps: " + "; ".join(
                      ", ".join(f"{n} {c[n]['factor']:.2f} (tau {c[n]['tau_steps']:.0f})" for n in names3)
                      for c in checks),
                  holds=all(c["holds"] for check in checks for c in check.values()), scope="all",
                  tolerance=f"|log 2wL| <= start gap x exp(-t/tau) + 2 x ramp lag + 0.1, per task and seed; worst "
                            f"{worst['log_factor']:+.2f} against {worst['tolerance']:.2f}",
                  note="tau = 2 sqrt(v)/weight_lr steps, v Adam's second moment of log sigma^2; ramp lag = r tau "
                       "with r the loss's decay rate per step; the three-task study, where the scales differ "
                       "40-fold")
    if "pcgrad" in labels and "equal" in labels:
        pc = [A.update_conflict_fraction(r, names3) for r in A.runs_of(three, "pcgrad")]
        eq = [A.update_conflict_fraction(r, names3) for r in A.runs_of(three, "equal")]
        fractions = {m: measure.mean_std([A.update_conflict_fraction(r, names3) for r in A.runs_of(three, m)])
                     for m in sorted(labels - {SINGLE})}
        out["update_conflicts"] = led.record("update_conflict_fraction_three_task", fractions)
        v = A.paired_verdict(eq, pc)
        led.claim("pcgrad_update_conflicts_less",
                  "PCGrad's applied update conflicts with some task's gradient less often than the equal-weights sum",
                  f"PCGrad {100 * measure.mean_std(pc)['mean']:.1f}% vs equal {100 * measure.mean_std(eq)['mean']:.1f}%"
                  " of probes (three tasks)",
                  holds=v["verdict"] == ">", scope="laptop",
                  tolerance="paired difference over seeds > 2 standard errors",
                  note="a conflict: g_t . d < 0 for some task t, with d the trunk update actually applied; with "
                       "two tasks PCGrad makes this impossible, with three its guarantee no longer applies")


def experiment(s, led, seed: int) -> dict[str, Any]:
    """Everything of the chapter's training, as the notebook runs it: ``python -m moderndl.multitask``."""
    check_settings(s)
    train, test = data(s, seed)
    two = comparison(s, train, test, seed)
    abl = ablation(s, train, test, seed)
    swp = sweep(s, train, test, seed)
    three = three_task(s, train, test, seed)
    return record(led, s, two, abl, swp, three)
