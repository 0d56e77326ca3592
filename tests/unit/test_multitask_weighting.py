"""The weightings against hand-computed cases, brute-force references and torchjd."""

import itertools
import math

import numpy as np
import pytest
import torch

from moderndl.multitask import min_norm as MN
from moderndl.multitask import weighting as W


# -- PCGrad ---------------------------------------------------------------------------
def test_pcgrad_two_conflicting_vectors_by_hand():
    # g1.g2 = -1 < 0: g1 - (-1/2) g2 = (0.5, 0.5); g2 - (-1/1) g1 = (0, 1)
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    out = W.pcgrad(g, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    torch.testing.assert_close(out.sum(0), torch.tensor([0.5, 1.5]))
    assert float(out[0] @ g[1]) == pytest.approx(0.0, abs=1e-7)  # projected onto the normal plane
    assert float(out[0] @ out[1]) >= 0.0  # no conflict is left between the two projected gradients


def test_pcgrad_leaves_agreeing_gradients_alone():
    g = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.1, 3.0]])  # dot = 0.7 > 0
    torch.testing.assert_close(W.pcgrad(g, torch.Generator().manual_seed(0)), g)


def _pcgrad_reference(grads, generator):
    """Algorithm 1 written naively on the P-long vectors."""
    out = grads.clone()
    for i in range(len(grads)):
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j != i and out[i] @ grads[j] < 0:
                out[i] = out[i] - (out[i] @ grads[j]) / (grads[j] @ grads[j]) * grads[j]
    return out


@pytest.mark.parametrize("T", [2, 3, 5])
def test_pcgrad_gram_form_equals_the_naive_algorithm(T):
    grads = torch.randn(T, 50, generator=torch.Generator().manual_seed(T), dtype=torch.float64)
    ours = W.pcgrad(grads, torch.Generator().manual_seed(7))
    ref = _pcgrad_reference(grads, torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours, ref)


def test_pcgrad_weighting_sets_shared_grads_to_the_projected_sum():
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 3)
    heads = torch.nn.ModuleList([torch.nn.Linear(3, 1) for _ in range(2)])
    x = torch.randn(8, 4)
    z = shared(x)
    losses = torch.stack([heads[0](z).mean(), -heads[1](z).mean() * 2])  # opposing objectives
    params = list(shared.parameters())
    grads = W.task_gradients(losses, params)
    expected = W.pcgrad(grads, torch.Generator().manual_seed(3)).sum(0)
    update = W.PCGrad(2, seed=3).backward(losses, shared=params)
    got = torch.cat([p.grad.reshape(-1) for p in params])
    torch.testing.assert_close(got, expected)
    assert W.pairwise_cosine(update.projected)[0, 1] >= -1e-6
    assert heads[0].weight.grad is not None and heads[1].weight.grad is not None


# -- MGDA ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("v1", "v2", "gamma"), [
    ([1.0, 0.0], [0.0, 1.0], 0.5),  # symmetric: the midpoint
    ([2.0, 0.0], [0.0, 1.0], 0.2),  # f = 4g^2 + (1-g)^2, f' = 0 at g = 0.2
    ([1.0, 0.0], [2.0, 0.0], 1.0),  # (c - b)/(a + c - 2b) = 2 is clipped: v1 itself is the min-norm point
])
def test_min_norm_two_vectors_closed_form(v1, v2, gamma):
    g = torch.tensor([v1, v2])
    alpha = MN.min_norm_weights(g)
    torch.testing.assert_close(alpha, torch.tensor([gamma, 1 - gamma]))


def _exact_min_norm(grads: np.ndarray):
    """The QP solved by brute force over active sets: for every face S of the simplex, the
    min-norm point of its affine hull solves [[M_SS, 1], [1^T, 0]] [a; l] = [0; 1]; keep the
    feasible (a >= 0) candidates and return the smallest norm."""
    M = grads @ grads.T
    T = len(M)
    best = (math.inf, None)
    for size in range(1, T + 1):
        for S in itertools.combinations(range(T), size):
            K = np.zeros((size + 1, size + 1))
            K[:size, :size], K[:size, size], K[size, :size] = M[np.ix_(S, S)], 1.0, 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            try:
                sol = np.linalg.solve(K, rhs)
            except np.linalg.LinAlgError:
                continue
            if np.all(sol[:size] >= -1e-12):
                alpha = np.zeros(T)
                alpha[list(S)] = sol[:size]
                best = min(best, (float(alpha @ M @ alpha), tuple(alpha)), key=lambda b: b[0])
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_frank_wolfe_matches_a_brute_force_qp_on_three_vectors(seed):
    g = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    k = 2000
    alpha = MN.frank_wolfe(g @ g.T, max_iter=k, tol=0.0)
    ours = float(alpha @ (g @ g.T) @ alpha)
    ref, ref_alpha = _exact_min_norm(g.numpy())
    # Frank-Wolfe's primal gap after k steps is at most 2 C_f / (k + 2) (Jaggi 2013, Thm. 1), with
    # curvature C_f <= diam^2 * Lip(grad f) = max_ij (g_i - g_j)^T 2 (g_i - g_j) on the simplex
    c_f = 2 * max(float(((g[i] - g[j]) ** 2).sum()) for i in range(3) for j in range(3))
    assert ref - 1e-12 <= ours <= ref + 2 * c_f / (k + 2)
    assert float(alpha.sum()) == pytest.approx(1.0) and float(alpha.min()) >= 0.0
    np.testing.assert_allclose(alpha.numpy(), ref_alpha, atol=0.05)  # the weights themselves, loosely


def test_frank_wolfe_on_orthonormal_vectors_is_the_centroid():
    alpha = MN.frank_wolfe(torch.eye(3))
    torch.testing.assert_close(alpha, torch.full((3,), 1 / 3))


def test_frank_wolfe_agrees_with_the_exact_two_task_solution():
    g = torch.tensor([[3.0, 1.0], [-1.0, 2.0]], dtype=torch.float64)
    exact = MN.min_norm_weights(g)
    fw = MN.frank_wolfe(g @ g.T, max_iter=5000)
    torch.testing.assert_close(fw, exact, atol=1e-4, rtol=0)


def test_mgda_optimality_condition_on_the_representation():
    # min-norm point theta*: theta* . g_t >= ||theta*||^2 for every task (first-order optimality)
    torch.manual_seed(1)
    z = torch.randn(5, 3, requires_grad=True)
    losses = torch.stack([(z ** 2).sum(), (z * 2).sum(), (z[:, 0] - 1).abs().sum()])
    update = W.MGDAUB(3, W.MGDAConfig(normalization="none")).backward(losses, representation=z)
    theta = update.weights.double() @ update.grads.double()
    assert torch.all(update.grads.double() @ theta >= (theta @ theta) * (1 - 1e-4) - 1e-8)


# -- uncertainty weighting ---------------------------------------------------------------
def test_uncertainty_loss_formula_by_hand():
    u = W.UncertaintyWeighting(["regression", "classification"])
    with torch.no_grad():
        u.log_var.copy_(torch.tensor([math.log(2.0), 0.0]))
    losses = torch.tensor([4.0, 1.0])
    # e^{-log 2}/2 * 4 + e^0 * 1 + (log 2 + 0)/2
    assert float(u.loss(losses).detach()) == pytest.approx(1.0 + 1.0 + 0.5 * math.log(2.0))
    torch.testing.assert_close(u.weights(), torch.tensor([0.25, 1.0]))


def test_uncertainty_stationary_point_is_the_inverse_loss():
    losses = torch.tensor([9.0, 0.5, 2.0])
    kinds = ["regression", "classification", "classification"]
    u = W.UncertaintyWeighting(kinds)
    c = torch.tensor([2.0, 1.0, 1.0])
    with torch.no_grad():
        u.log_var.copy_(torch.log(2 * losses / c))  # w_t = e^{-s}/c = 1/(2 L_t)
    u.loss(losses).backward()
    torch.testing.assert_close(u.log_var.grad, torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(u.weights(), 1 / (2 * losses))


# -- GradNorm -------------------------------------------------------------------------------
def test_gradnorm_weight_gradient_by_hand_and_renormalisation():
    Wp = torch.nn.Parameter(torch.ones(2))
    losses = torch.stack([3 * Wp.sum(), Wp[0]])  # grad norms: 3 sqrt 2 and 1; losses 6 and 1
    gn = W.GradNorm(2)
    gn.backward(losses, shared=[Wp])
    n1, n2 = 3 * math.sqrt(2), 1.0
    # first step: r = 1, target = mean(G) = (n1 + n2)/2; dL_grad/dw_t = sign(G_t - target) n_t
    torch.testing.assert_close(gn.w.grad, torch.tensor([n1, -n2]))
    torch.testing.assert_close(Wp.grad, torch.tensor([4.0, 3.0]))  # network sees sum_t w_t L_t, w = 1
    opt = torch.optim.SGD(gn.parameters(), lr=0.1)
    opt.step()
    gn.after_step()
    assert float(gn.w.detach().sum()) == pytest.approx(2.0)
    assert float(gn.w.detach()[1]) > float(gn.w.detach()[0])  # the task with the smaller gradient is pulled up


def test_gradnorm_weights_sum_to_t_along_a_run():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    heads = torch.nn.ModuleList([torch.nn.Linear(8, 1) for _ in range(3)])
    gn = W.GradNorm(3)
    opt = torch.optim.Adam([*net.parameters(), *heads.parameters(), *gn.parameters()], lr=0.05)
    x, y = torch.randn(32, 4), torch.randn(32, 3) * torch.tensor([1.0, 10.0, 0.1])
    for _ in range(20):
        z = net(x)
        losses = torch.stack([((h(z).squeeze(1) - y[:, t]) ** 2).mean() for t, h in enumerate(heads)])
        opt.zero_grad()
        gn.backward(losses, shared=[net[0].weight])
        opt.step()
        gn.after_step()
        assert float(gn.w.detach().sum()) == pytest.approx(3.0, rel=1e-5)
        assert float(gn.w.detach().min()) > 0


def test_gradnorm_relative_rate_uses_alpha():
    Wp = torch.nn.Parameter(torch.ones(2))
    gn = W.GradNorm(2)
    gn.backward(torch.stack([2 * Wp[0], 2 * Wp[1]]), shared=[Wp])  # L(0) = (2, 2)
    Wp.grad = None
    gn.backward(torch.stack([1 * Wp[0], 2 * Wp[1]]), shared=[Wp])
    # L / L(0) = (0.5, 1), so r = (2/3, 4/3); grad norms (1, 2) and w = 1 give G = (1, 2), mean 1.5;
    # targets 1.5 (2/3)^1.5 = 0.816 and 1.5 (4/3)^1.5 = 2.309, so dL_grad/dw = (+1 * 1, -1 * 2)
    torch.testing.assert_close(gn.w.grad, torch.tensor([1.0, -2.0]))
    assert float(1.5 * (4 / 3) ** gn.config.alpha) > 2.0  # with alpha = 1 the second sign would flip


# -- equal weights and bad input ---------------------------------------------------------
def test_equal_weighting_is_the_plain_sum():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    losses = torch.stack([p[0] ** 2, 3 * p[1]])
    W.EqualWeighting(2).backward(losses)
    torch.testing.assert_close(p.grad, torch.tensor([2.0, 3.0]))


def test_unknown_method_is_an_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown method 'adam'; valid methods: equal, uncertainty, gradnorm"):
        W.make_weighting("adam", ["classification"])


@pytest.mark.parametrize("method", W.METHODS)
def test_mismatched_losses_and_heads_is_an_error(method):
    w = W.make_weighting(method, ["classification", "classification", "regression"])
    p = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match=r"got \(2,\) losses for 3 tasks"):
        w.backward(torch.stack([p[0], p[1]]), shared=[p], representation=p)


def test_gradnorm_without_a_shared_layer_is_an_error():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="gradnorm: no shared layer given"):
        W.GradNorm(2).backward(torch.stack([p[0], p[1]]))


def test_nan_loss_names_the_task_and_the_step():
    with pytest.raises(FloatingPointError, match=r"non-finite task loss at step 17: sum=nan"):
        W.check_losses(torch.tensor([0.3, 0.2, float("nan")]), ["left", "right", "sum"], step=17)
    with pytest.raises(ValueError, match=r"got \(2,\) losses for 3 heads"):
        W.check_losses(torch.tensor([0.3, 0.2]), ["left", "right", "sum"], step=1)


# -- MGDA-UB normalisation -----------------------------------------------------------------
def test_mgda_default_is_the_official_multimnist_normalisation():
    assert W.MGDAConfig().normalization == "loss+"
    with pytest.raises(ValueError, match=r"normalization 'l1' not in \('none', 'l2', 'loss', 'loss\+'\)"):
        W.MGDAConfig(normalization="l1")


@pytest.mark.parametrize("kind", ["none", "l2", "loss", "loss+"])
def test_mgda_weights_are_the_min_norm_point_of_the_normalised_gradients(kind):
    # the official code divides each task's gradient by 1, its norm, its loss, or both, then solves
    torch.manual_seed(2)
    z = torch.randn(6, 4, requires_grad=True)
    losses = torch.stack([(z ** 2).mean() * 30, (z.sum(1) - 1).abs().mean(), torch.sigmoid(z).mean()])
    grads = W.task_gradients(losses, [z]).detach().double()
    n = {"none": torch.ones(3, dtype=torch.float64), "l2": grads.norm(dim=1), "loss": losses.detach().double(),
         "loss+": losses.detach().double() * grads.norm(dim=1)}[kind]
    expected = MN.min_norm_weights(grads / n[:, None])
    update = W.MGDAUB(3, W.MGDAConfig(normalization=kind)).backward(losses, representation=z)
    torch.testing.assert_close(update.weights.double(), expected, atol=1e-6, rtol=0)
    # the network sees sum_t alpha_t L_t
    torch.testing.assert_close(z.grad.double(), (update.weights.double()[:, None] * grads).sum(0).view(6, 4),
                               atol=1e-6, rtol=0)


# -- random and fixed weights --------------------------------------------------------------
def test_random_weighting_draws_softmax_normal_weights_per_step():
    from moderndl.seed import generator

    rw = W.RandomWeighting(3, seed=5)
    p = torch.nn.Parameter(torch.ones(3))
    for step in range(3):
        p.grad = None
        update = rw.backward(p * torch.tensor([1.0, 2.0, 3.0]))
        expected = torch.softmax(torch.randn(3, generator=generator(5, step)), dim=0)
        torch.testing.assert_close(update.weights, expected)
        torch.testing.assert_close(p.grad, expected * torch.tensor([1.0, 2.0, 3.0]))
        assert float(update.weights.sum()) == pytest.approx(1.0)
        rw.after_step()
    clone = W.RandomWeighting(3, seed=5)
    clone.load_state_dict(rw.state_dict())  # resume: the step counter is part of the state
    torch.testing.assert_close(clone.weights(), rw.weights())


def test_fixed_weighting_by_hand_and_bad_weights():
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    W.make_weighting("fixed", ["classification"] * 2, weights=[0.25, 0.75]).backward(torch.stack([p[0] * 2, p[1]]))
    torch.testing.assert_close(p.grad, torch.tensor([0.5, 0.75]))
    with pytest.raises(ValueError, match="fixed: pass weights"):
        W.make_weighting("fixed", ["classification"] * 2)
    with pytest.raises(ValueError, match="fixed weights must be >= 0"):
        W.FixedWeighting([-1.0, 2.0])


def test_per_example_losses_average_to_the_task_losses():
    from moderndl.multitask.model import task_losses
    from moderndl.multitask.multimnist import TASKS

    torch.manual_seed(0)
    out = {"left": torch.randn(5, 10), "right": torch.randn(5, 10), "sum": torch.randn(5, 1)}
    tgt = {"left": torch.randint(10, (5,)), "right": torch.randint(10, (5,)), "sum": torch.randn(5)}
    per = task_losses(out, tgt, TASKS, reduction="none")
    assert per.shape == (3, 5)
    torch.testing.assert_close(per.mean(1), task_losses(out, tgt, TASKS))


# -- against torchjd, a maintained implementation of the same aggregators ---------------------
@pytest.mark.parametrize("T", [2, 3, 4])
def test_pcgrad_equals_torchjd(T):
    tj = pytest.importorskip("torchjd.aggregation")
    grads = torch.randn(T, 30, generator=torch.Generator().manual_seed(10 + T), dtype=torch.float64)
    grads[1] = -0.7 * grads[0] + 0.3 * grads[1]  # make sure some pairs conflict
    torch.manual_seed(3)  # torchjd draws its task orders from the global generator
    theirs = tj.PCGrad()(grads)
    ours = W.pcgrad(grads, torch.Generator().manual_seed(3)).sum(0)  # the same draws from the same seed
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("T", [2, 3, 5])
def test_mgda_min_norm_point_equals_torchjd(T):
    tj = pytest.importorskip("torchjd.aggregation")
    grads = torch.randn(T, 20, generator=torch.Generator().manual_seed(T), dtype=torch.float64)
    theirs = tj.MGDA(epsilon=1e-12, max_iters=20000)(grads) / 1.0  # sum_t alpha_t g_t
    ours = MN.min_norm_weights(grads, max_iter=20000) @ grads
    # both are Frank-Wolfe (exact for T = 2 here); the min-norm point is unique
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
