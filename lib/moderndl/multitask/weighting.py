r"""How to weigh tasks: ways to turn $T$ task losses into one update of shared weights.

Every method fills the ``.grad`` of the model's parameters from the task losses
$L_1, \dots, L_T$ of one batch. Two kinds:

- *Loss weighting*: minimise $\sum_t w_t L_t$ for weights $w_t$ that are fixed (equal
  weights, or any fixed $w$ for a sweep), drawn at random every step (random loss
  weighting), learned by likelihood (uncertainty weighting) or learned by balancing
  gradient norms (GradNorm). They live here.
- *Gradient manipulation*: compute each task's gradient and combine them differently from
  a plain sum (PCGrad, MGDA-UB), in :mod:`moderndl.multitask.surgery`.

Papers:

- Kendall, Gal & Cipolla (2018), "Multi-Task Learning Using Uncertainty to Weigh Losses
  for Scene Geometry and Semantics", arXiv:1705.07115:
  $\mathcal{L} = \sum_t \frac{1}{c_t \sigma_t^2} L_t + \log \sigma_t$ with $c_t = 2$ for
  regression (Gaussian likelihood) and $c_t = 1$ for classification (Eq. 7 and Eq. 10).
- Chen, Badrinarayanan, Lee & Rabinovich (2018), "GradNorm: Gradient Normalization for
  Adaptive Loss Balancing in Deep Multitask Networks", arXiv:1711.02257:
  $L_\text{grad} = \sum_t \bigl| G_W^{(t)} - \bar G_W \, r_t^\alpha \bigr|_1$ (Eq. 2).
- Lin, Ye, Zhang & Tsang (2022), "Reasonable Effectiveness of Random Weighting: A Litmus
  Test for Multi-Task Learning", arXiv:2111.10603: $w = \mathrm{softmax}(\tilde w)$,
  $\tilde w \sim \mathcal{N}(0, I_T)$ drawn afresh at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from moderndl.multitask.base import (  # noqa: F401 - re-exported: the weighting vocabulary in one place
    Update,
    Weighting,
    check_losses,
    mean_grads_over_ranks,
    mean_over_ranks,
    pairwise_cosine,
    plain_backward,
    task_gradients,
)
from moderndl.multitask.surgery import MGDAUB, NORMALIZATIONS, MGDAConfig, PCGrad, pcgrad  # noqa: F401
from moderndl.seed import generator as seed_generator

METHODS = ("equal", "uncertainty", "gradnorm", "pcgrad", "mgda", "random")
EXTRA = ("fixed",)  # needs its weights: make_weighting("fixed", kinds, weights=[...])


class EqualWeighting(Weighting):
    r"""Equal weights: $\mathcal{L} = \sum_t L_t$, the plain hard-sharing objective (Caruana 1997)."""

    name = "equal"

    def backward(self, losses, *, shared=(), representation=None, backward=plain_backward) -> Update:
        self._check(losses)
        backward(losses.sum())
        return Update(weights=torch.ones_like(losses.detach()))


class FixedWeighting(Weighting):
    r"""Fixed weights $w$: $\mathcal{L} = \sum_t w_t L_t$, one point of a linear-scalarisation sweep."""

    name = "fixed"

    def __init__(self, weights: Sequence[float]):
        super().__init__(len(weights))
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"fixed weights must be >= 0 with a positive sum, got {list(weights)}")
        self.register_buffer("w", torch.tensor([float(w) for w in weights]))  # (T,)

    def backward(self, losses, *, shared=(), representation=None, backward=plain_backward) -> Update:
        self._check(losses)
        backward((self.w.to(losses.dtype) * losses).sum())
        return Update(weights=self.w.clone())


class RandomWeighting(Weighting):
    r"""Random loss weighting (RLW), Lin et al. 2022, Algorithm 1 with normal logits:
    $w = \mathrm{softmax}(\tilde w)$, $\tilde w \sim \mathcal{N}(0, I)$ at every step.

    The draw at step $t$ comes from ``seed.generator(seed, t)``: the same on every rank, and
    the same whether a run is resumed or not (the step counter is checkpointed).
    """

    name = "random"

    def __init__(self, num_tasks: int, seed: int = 0):
        super().__init__(num_tasks)
        self.seed = seed
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def weights(self) -> torch.Tensor:
        logits = torch.randn(self.num_tasks, generator=seed_generator(self.seed, int(self.step)))  # (T,)
        return torch.softmax(logits, dim=0)

    def backward(self, losses, *, shared=(), representation=None, backward=plain_backward) -> Update:
        self._check(losses)
        w = self.weights().to(device=losses.device, dtype=losses.dtype)  # (T,)
        backward((w * losses).sum())
        return Update(weights=w)

    def after_step(self) -> None:
        self.step += 1


class UncertaintyWeighting(Weighting):
    r"""Homoscedastic uncertainty weighting, Kendall et al. 2018, Eq. 7 and Eq. 10.

    With $s_t = \log\sigma_t^2$: $\mathcal{L} = \sum_t \frac{e^{-s_t}}{c_t} L_t + \frac{s_t}{2}$,
    $c_t = 2$ for a regression task (Gaussian likelihood, Eq. 7) and $c_t = 1$ for a
    classification task (the softmax approximation of Eq. 10). Setting
    $\partial \mathcal{L} / \partial s_t = 0$ gives the weight $w_t = e^{-s_t}/c_t = 1/(2 L_t)$:
    at equilibrium each task is weighted by the inverse of its loss. ``init_log_var`` is
    $s_t$ at the start: 0, so $\sigma^2 = 1$ and every task starts at weight $1/c_t$.
    """

    name = "uncertainty"

    def __init__(self, kinds: Sequence[str], init_log_var: float = 0.0):
        super().__init__(len(kinds))
        unknown = [k for k in kinds if k not in ("classification", "regression")]
        if unknown:
            raise ValueError(f"uncertainty: task kinds {unknown} not in ('classification', 'regression')")
        c = [2.0 if k == "regression" else 1.0 for k in kinds]  # Eq. 7 (1/2 sigma^2) vs Eq. 10 (1/sigma^2)
        self.register_buffer("c", torch.tensor(c))  # (T,)
        self.log_var = nn.Parameter(torch.full((len(kinds),), float(init_log_var)))  # (T,) s_t

    def weights(self) -> torch.Tensor:
        """$w_t = e^{-s_t} / c_t$, the factor in front of each loss."""
        return torch.exp(-self.log_var) / self.c  # (T,)

    def loss(self, losses: torch.Tensor) -> torch.Tensor:
        """The objective of Eq. 10 generalised to $T$ tasks: $\\sum_t w_t L_t + \\log\\sigma_t$."""
        self._check(losses)
        return (self.weights() * losses).sum() + 0.5 * self.log_var.sum()  # log sigma = s / 2

    def backward(self, losses, *, shared=(), representation=None, backward=plain_backward) -> Update:
        backward(self.loss(losses))
        # d/ds_t is linear in this rank's L_t: its mean over ranks is the global batch's
        mean_grads_over_ranks([self.log_var])
        return Update(weights=self.weights().detach())


@dataclass(frozen=True)
class GradNormConfig:
    """Chen et al. 2018. ``alpha`` = 1.5 is the value the paper uses for NYUv2 (Sec. 5)."""

    alpha: float = 1.5  # asymmetry: how strongly slow tasks are pulled up
    min_weight: float = 1e-3  # weights are clamped positive before renormalising


class GradNorm(Weighting):
    r"""GradNorm, Chen et al. 2018, Eq. 1–2 and Algorithm 1.

    $G_W^{(t)} = \lVert \nabla_W w_t L_t \rVert_2$ on the last shared layer $W$;
    $\tilde L_t = L_t / L_t(0)$; $r_t = \tilde L_t / \mathbb{E}_t[\tilde L_t]$;
    $L_\text{grad} = \sum_t | G_W^{(t)} - \bar G_W \, r_t^\alpha |$ with the target held
    constant. The network minimises $\sum_t w_t L_t$; the weights follow
    $\nabla_w L_\text{grad}$ and are renormalised to $\sum_t w_t = T$ after every step.
    Norms and loss ratios are those of the global batch (averaged over ranks).
    """

    name = "gradnorm"

    def __init__(self, num_tasks: int, config: GradNormConfig = GradNormConfig()):  # noqa: B008
        super().__init__(num_tasks)
        self.config = config
        self.w = nn.Parameter(torch.ones(num_tasks))  # (T,) start equal, summing to T
        self.register_buffer("initial", torch.zeros(num_tasks))  # (T,) L_t(0), set at the first step
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def weights(self) -> torch.Tensor:
        return self.w.detach().clone()

    def backward(self, losses, *, shared=(), representation=None, backward=plain_backward) -> Update:
        self._check(losses)
        if shared is None or len(shared) == 0:
            raise ValueError("gradnorm: no shared layer given; pass shared=[W], the weight of the last "
                             "shared layer (GradNorm measures every task's gradient norm on it, Eq. 1)")
        global_losses = mean_over_ranks(losses.detach())  # (T,)
        if not bool(self.started):
            self.initial.copy_(global_losses)  # L_t(0)
            self.started.fill_(True)
        # ||grad_W L_t||: the norm of w_t L_t's gradient is w_t times it (w_t > 0), which keeps
        # L_grad differentiable in w without a second-order graph through the network.
        grads = mean_over_ranks(task_gradients(losses, list(shared)).detach())  # (T, P_W), global batch
        G = self.w * grads.norm(dim=1)  # (T,) G_W^(t)
        ratio = global_losses / self.initial.clamp_min(1e-12)  # (T,) inverse training rate L~_t
        r = ratio / ratio.mean()  # (T,) relative inverse training rate
        target = (G.mean() * r ** self.config.alpha).detach()  # (T,) held constant (Sec. 3.2)
        l_grad = (G - target).abs().sum()  # Eq. 2
        self.w.grad = torch.autograd.grad(l_grad, self.w)[0]  # (T,), the same on every rank
        backward((self.w.detach() * losses).sum())  # the network sees fixed weights
        return Update(weights=self.weights())

    @torch.no_grad()
    def after_step(self) -> None:
        """Renormalise so that $\\sum_t w_t = T$ (Sec. 3.2)."""
        self.w.clamp_(min=self.config.min_weight)
        self.w.mul_(self.num_tasks / self.w.sum())


def make_weighting(method: str, kinds: Sequence[str], *, seed: int = 0, **options) -> Weighting:
    """The weighting named ``method`` for tasks of the given ``kinds``; ``options`` go to its
    config (``normalization`` for mgda, ``alpha`` for gradnorm, ``weights`` for fixed, ...)."""
    T = len(kinds)
    if method == "equal":
        return EqualWeighting(T)
    if method == "fixed":
        weights = options.get("weights")
        if weights is None or len(weights) != T:
            raise ValueError(f"fixed: pass weights=[...] with one weight per task ({T}), got {weights!r}")
        return FixedWeighting(weights)
    if method == "random":
        return RandomWeighting(T, seed=seed)
    if method == "uncertainty":
        return UncertaintyWeighting(kinds, **options)
    if method == "gradnorm":
        return GradNorm(T, GradNormConfig(**options))
    if method == "pcgrad":
        return PCGrad(T, seed=seed)
    if method == "mgda":
        return MGDAUB(T, MGDAConfig(**options))
    raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS + EXTRA)}")
