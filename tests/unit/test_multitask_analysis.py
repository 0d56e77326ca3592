"""The checks the chapter makes on its runs: paired verdicts, Pareto fronts, the uncertainty
lag model (against a simulation of Adam), conflict fractions."""

import math

import numpy as np
import pytest
import torch

from moderndl.multitask import analysis as A
from moderndl.multitask.experiment import RunResult


def test_paired_verdict_by_hand_and_stricter_as_seeds_grow():
    v = A.paired_verdict([3.0, 5.0], [1.0, 2.0])  # differences 2, 3: mean 2.5, s.e. 0.5
    assert v["diff"] == pytest.approx(2.5) and v["sem"] == pytest.approx(0.5) and v["verdict"] == ">"
    # the same spread of differences (mean 0.3, std 1) is a tie with 4 seeds and a win with 400
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(400)
    noise = (noise - noise.mean()) / noise.std(ddof=1)
    assert A.paired_verdict(0.3 + noise[:4] / noise[:4].std(ddof=1) - noise[:4].mean() / noise[:4].std(ddof=1),
                            np.zeros(4))["verdict"] == "="
    assert A.paired_verdict(0.3 + noise, np.zeros(400))["verdict"] == ">"
    with pytest.raises(ValueError, match="at least 2 seeds"):
        A.paired_verdict([1.0], [0.0])


def test_pareto_front_and_domination_by_hand():
    pts = [(0.9, 0.1), (0.5, 0.5), (0.4, 0.4), (0.1, 0.9), (0.5, 0.2)]
    assert A.pareto_front(pts) == [0, 1, 3]
    assert A.dominated_by((0.4, 0.4), {"a": (0.5, 0.5), "b": (0.9, 0.1), "c": (0.4, 0.4)}) == ["a"]


def _simulate_adam(losses, c, lr, steps, beta1=0.9, beta2=0.999, reg=0.5):
    """log sigma^2 under torch's Adam, fed a loss trajectory: what uncertainty weighting does
    (``reg`` = 0.5: log sigma = s / 2, Kendall et al.'s regulariser)."""
    s = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([s], lr=lr, betas=(beta1, beta2))
    hist = []
    for t in range(steps):
        opt.zero_grad()
        L = float(losses(t))
        (torch.exp(-s) / c * L + reg * s).sum().backward()
        hist.append({"step": t + 1, "weight/a": float(torch.exp(-s.detach()) / c), "loss/a": L})
        opt.step()
    v_hat = opt.state[s]["exp_avg_sq"] / (1 - beta2 ** float(opt.state[s]["step"]))
    return RunResult("uncertainty", 0, ("a",), {}, hist, extra={"adam_sqrt_v": [float(v_hat.sqrt())]})


def test_uncertainty_lag_model_predicts_a_simulated_adam():
    # a loss that falls as e^{-r t}: log(2 w L) settles near -r tau, tau = 2 sqrt(v) / lr
    r, lr = 2e-3, 0.05
    noise = np.random.default_rng(0).uniform(0.7, 1.3, 3000)  # batch-to-batch spread of the loss
    run = _simulate_adam(lambda t: 5.0 * math.exp(-r * t) * noise[t], 1.0, lr, 3000)
    check = A.uncertainty_check(run, ["a"], lr, 2400, 3000)["a"]
    assert check["ramp_lag"] < 0 and check["log_factor"] < 0  # the weight trails: 2 w L < 1
    assert check["log_factor"] == pytest.approx(check["ramp_lag"], rel=0.3)
    assert check["holds"]


def test_uncertainty_check_fails_for_the_wrong_equilibrium():
    # a regulariser of s instead of s / 2 (log sigma^2 for log sigma) settles at w = 1/L: 2 w L = 2
    noise = np.random.default_rng(1).uniform(0.7, 1.3, 2000)
    run = _simulate_adam(lambda t: 3.0 * noise[t], 1.0, 0.05, 2000, reg=1.0)
    check = A.uncertainty_check(run, ["a"], 0.05, 1600, 2000)["a"]
    assert check["factor"] == pytest.approx(2.0, rel=0.05)
    assert check["tolerance"] < 0.2 and not check["holds"]
    right = A.uncertainty_check(_simulate_adam(lambda t: 3.0 * noise[t], 1.0, 0.05, 2000), ["a"], 0.05, 1600, 2000)
    assert right["a"]["factor"] == pytest.approx(1.0, abs=0.05) and right["a"]["holds"]


def test_conflict_fractions_read_the_probes():
    hist = [{"step": 1, "upd/a": 0.5, "upd/b": -0.2, "cross/a~b": -0.1, "cross/b~a": 0.3},
            {"step": 11, "upd/a": 0.4, "upd/b": 0.1, "cross/a~b": 0.2, "cross/b~a": 0.3},
            {"step": 12, "loss/a": 1.0}]
    run = RunResult("equal", 0, ("a", "b"), {}, hist)
    assert A.update_conflict_fraction(run, ["a", "b"]) == 0.5
    assert A.negative_fraction(run, "cross/") == 0.25
    with pytest.raises(KeyError, match="no keys starting with 'same/'"):
        A.negative_fraction(run, "same/")
