r"""How to weigh tasks: five ways to turn $T$ task losses into one update of shared weights.

Every method fills the ``.grad`` of the model's parameters from the task losses
$L_1, \dots, L_T$ of one batch. Two kinds:

- *Loss weighting*: minimise $\sum_t w_t L_t$ for weights $w_t$ that are fixed
  (equal weights), learned by likelihood (uncertainty weighting) or learned by
  balancing gradient norms (GradNorm).
- *Gradient manipulation*: compute each task's gradient $g_t$ on the shared
  parameters and combine them differently from a plain sum, by projecting conflicting
  components away (PCGrad) or by taking the min-norm point of their convex hull (MGDA-UB).

Papers:

- Kendall, Gal & Cipolla (2018), "Multi-Task Learning Using Uncertainty to Weigh Losses
  for Scene Geometry and Semantics", arXiv:1705.07115:
  $\mathcal{L} = \sum_t \frac{1}{c_t \sigma_t^2} L_t + \log \sigma_t$ with $c_t = 2$ for
  regression (Gaussian likelihood) and $c_t = 1$ for classification (Eq. 7 and Eq. 10).
- Chen, Badrinarayanan, Lee & Rabinovich (2018), "GradNorm: Gradient Normalization for
  Adaptive Loss Balancing in Deep Multitask Networks", arXiv:1711.02257:
  $L_\text{grad} = \sum_t \bigl| G_W^{(t)} - \bar G_W \, r_t^\alpha \bigr|_1$ (Eq. 2).
- Yu, Kumar, Gupta, Levine, Hausman & Finn (2020), "Gradient Surgery for Multi-Task
  Learning", arXiv:2001.06782: if $g_i \cdot g_j < 0$,
  $g_i \leftarrow g_i - \frac{g_i \cdot g_j}{\lVert g_j \rVert^2} g_j$ (Algorithm 1).
- Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective Optimization",
  arXiv:1810.04650: $\min_{\alpha \in \Delta^T} \bigl\lVert \sum_t \alpha_t \nabla_Z L_t \bigr\rVert^2$
  over the gradients with respect to the shared representation $Z$ (Eq. 3 with the
  MGDA-UB bound of Theorem 1), solved exactly for two tasks (Algorithm 1) and by
  Frank–Wolfe for more (Algorithm 2); the solver is ``moderndl.multitask.min_norm``.

Gradient manipulation overwrites ``.grad`` after the backward pass, so it is written for
one process: under data parallelism the per-task gradients would have to be all-reduced
before the projection or the min-norm solve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from moderndl.multitask.min_norm import min_norm_weights

METHODS = ("equal", "uncertainty", "gradnorm", "pcgrad", "mgda")
Backward = Callable[[torch.Tensor], None]


def _plain_backward(loss: torch.Tensor) -> None:
    loss.backward()


def check_losses(losses: torch.Tensor, names: Sequence[str], step: int) -> None:
    """Fail loudly: one loss per head, and every loss finite (naming the task and the step)."""
    if losses.ndim != 1 or len(losses) != len(names):
        raise ValueError(f"got {tuple(losses.shape)} losses for {len(names)} heads {list(names)}; "
                         "pass one scalar loss per head")
    finite = torch.isfinite(losses.detach())  # (T,)
    if not bool(finite.all()):
        bad = [f"{n}={v:.4g}" for n, v, ok in zip(names, losses.tolist(), finite.tolist(), strict=True) if not ok]
        raise FloatingPointError(f"non-finite task loss at step {step}: {', '.join(bad)}; stopping")


def task_gradients(losses: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each task's gradient on ``params``, flattened: ``(T, P)`` with P the total size."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        flat = [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)]
        rows.append(torch.cat(flat))  # (P,)
    return torch.stack(rows)  # (T, P)


def pairwise_cosine(grads: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows of ``grads`` (T, P): a ``(T, T)`` matrix."""
    unit = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (T, P)
    return unit @ unit.T  # (T, T)


def _assign_flat(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Write a flat ``(P,)`` gradient into the ``.grad`` of ``params``, in order."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()  # (P,) slice -> p's shape
        offset += n


@dataclass
class Update:
    """What one weighting step did: the task weights, and the gradients if it computed them."""

    weights: torch.Tensor  # (T,)
    grads: torch.Tensor | None = None  # (T, P) raw task gradients on the shared parameters
    projected: torch.Tensor | None = None  # (T, P) after PCGrad's projections


class Weighting(nn.Module):
    """Base class: ``backward`` fills gradients from ``losses`` (T,); ``after_step`` runs post-optimizer."""

    name = "base"

    def __init__(self, num_tasks: int):
        super().__init__()
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        self.num_tasks = num_tasks

    def _check(self, losses: torch.Tensor) -> None:
        if losses.ndim != 1 or len(losses) != self.num_tasks:
            raise ValueError(f"{self.name}: got {tuple(losses.shape)} losses for {self.num_tasks} tasks (heads); "
                             "the number of losses must equal the number of heads")

    def backward(self, losses: torch.Tensor, *, shared: Sequence[torch.Tensor] = (),
                 representation: torch.Tensor | None = None, backward: Backward = _plain_backward) -> Update:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after ``optimizer.step()``; GradNorm renormalises its weights here."""


class EqualWeighting(Weighting):
    r"""Equal weights: $\mathcal{L} = \sum_t L_t$, the plain hard-sharing objective (Caruana 1997)."""

    name = "equal"

    def backward(self, losses, *, shared=(), representation=None, backward=_plain_backward) -> Update:
        self._check(losses)
        backward(losses.sum())
        return Update(weights=torch.ones_like(losses.detach()))


@dataclass(frozen=True)
class UncertaintyConfig:
    """Kendall et al. 2018: one learnable $s_t = \\log \\sigma_t^2$ per task, initialised at 0."""

    init_log_var: float = 0.0  # sigma^2 = 1: every task starts at weight 1/c_t


class UncertaintyWeighting(Weighting):
    r"""Homoscedastic uncertainty weighting, Kendall et al. 2018, Eq. 7 and Eq. 10.

    With $s_t = \log\sigma_t^2$: $\mathcal{L} = \sum_t \frac{e^{-s_t}}{c_t} L_t + \frac{s_t}{2}$,
    $c_t = 2$ for a regression task (Gaussian likelihood, Eq. 7) and $c_t = 1$ for a
    classification task (the softmax approximation of Eq. 10). Setting
    $\partial \mathcal{L} / \partial s_t = 0$ gives the weight $w_t = e^{-s_t}/c_t = 1/(2 L_t)$:
    at equilibrium each task is weighted by the inverse of its loss.
    """

    name = "uncertainty"

    def __init__(self, kinds: Sequence[str], config: UncertaintyConfig = UncertaintyConfig()):  # noqa: B008
        super().__init__(len(kinds))
        unknown = [k for k in kinds if k not in ("classification", "regression")]
        if unknown:
            raise ValueError(f"uncertainty: task kinds {unknown} not in ('classification', 'regression')")
        c = [2.0 if k == "regression" else 1.0 for k in kinds]  # Eq. 7 (1/2 sigma^2) vs Eq. 10 (1/sigma^2)
        self.register_buffer("c", torch.tensor(c))  # (T,)
        self.log_var = nn.Parameter(torch.full((len(kinds),), float(config.init_log_var)))  # (T,) s_t

    def weights(self) -> torch.Tensor:
        """$w_t = e^{-s_t} / c_t$, the factor in front of each loss."""
        return torch.exp(-self.log_var) / self.c  # (T,)

    def loss(self, losses: torch.Tensor) -> torch.Tensor:
        """The objective of Eq. 10 generalised to $T$ tasks: $\\sum_t w_t L_t + \\log\\sigma_t$."""
        self._check(losses)
        return (self.weights() * losses).sum() + 0.5 * self.log_var.sum()  # log sigma = s / 2

    def backward(self, losses, *, shared=(), representation=None, backward=_plain_backward) -> Update:
        backward(self.loss(losses))
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

    def backward(self, losses, *, shared=(), representation=None, backward=_plain_backward) -> Update:
        self._check(losses)
        if shared is None or len(shared) == 0:
            raise ValueError("gradnorm: no shared layer given; pass shared=[W], the weight of the last "
                             "shared layer (GradNorm measures every task's gradient norm on it, Eq. 1)")
        if not bool(self.started):
            self.initial.copy_(losses.detach())  # L_t(0)
            self.started.fill_(True)
        # ||grad_W L_t||: the norm of w_t L_t's gradient is w_t times it (w_t > 0), which keeps
        # L_grad differentiable in w without a second-order graph through the network.
        norms = task_gradients(losses, list(shared)).norm(dim=1).detach()  # (T,)
        G = self.w * norms  # (T,) G_W^(t)
        ratio = losses.detach() / self.initial.clamp_min(1e-12)  # (T,) inverse training rate L~_t
        r = ratio / ratio.mean()  # (T,) relative inverse training rate
        target = (G.mean() * r ** self.config.alpha).detach()  # (T,) held constant (Sec. 3.2)
        l_grad = (G - target).abs().sum()  # Eq. 2
        self.w.grad = torch.autograd.grad(l_grad, self.w)[0]  # (T,)
        backward((self.w.detach() * losses).sum())  # the network sees fixed weights
        return Update(weights=self.weights())

    @torch.no_grad()
    def after_step(self) -> None:
        """Renormalise so that $\\sum_t w_t = T$ (Sec. 3.2)."""
        self.w.clamp_(min=self.config.min_weight)
        self.w.mul_(self.num_tasks / self.w.sum())


def pcgrad(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Project conflicting gradients, Yu et al. 2020, Algorithm 1. ``grads`` (T, P) -> (T, P).

    For each task $i$, visit the other tasks $j$ in a random order; whenever the running
    $g_i^\text{PC}$ conflicts with the original $g_j$ ($g_i^\text{PC} \cdot g_j < 0$),
    remove its component along $g_j$. The update is $\sum_i g_i^\text{PC}$.

    Every $g_i^\text{PC}$ stays a combination $\sum_k C_{ik} g_k$ of the original gradients,
    so the projections run on the $T \times T$ Gram matrix and only the final
    $C\,G$ touches the $P$-long vectors (the same arithmetic, without $T^2$ passes over $P$).
    """
    T = grads.shape[0]
    gram = (grads.double() @ grads.double().T).tolist()  # (T, T) g_k . g_j
    coef = [[1.0 if k == i else 0.0 for k in range(T)] for i in range(T)]  # C = I: g_i^PC = g_i
    for i in range(T):
        order = torch.randperm(T, generator=generator).tolist()
        for j in order:
            if j == i:
                continue
            dot = sum(coef[i][k] * gram[k][j] for k in range(T))  # g_i^PC . g_j
            if dot < 0:
                scale = dot / max(gram[j][j], 1e-20)  # (g_i^PC . g_j) / ||g_j||^2
                coef[i][j] -= scale
    C = torch.tensor(coef, dtype=grads.dtype, device=grads.device)  # (T, T)
    return C @ grads  # (T, P)


class PCGrad(Weighting):
    """PCGrad on the shared parameters; task-specific heads get their own gradients unchanged."""

    name = "pcgrad"

    def __init__(self, num_tasks: int, seed: int = 0):
        super().__init__(num_tasks)
        self.generator = torch.Generator().manual_seed(seed)  # the random task order of Algorithm 1

    def get_extra_state(self):
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state) -> None:
        self.generator.set_state(state["generator"])

    def backward(self, losses, *, shared=(), representation=None, backward=_plain_backward) -> Update:
        self._check(losses)
        params = list(shared)
        if not params:
            raise ValueError("pcgrad: no shared parameters given; pass shared=model.shared_parameters()")
        grads = task_gradients(losses, params).detach()  # (T, P)
        projected = pcgrad(grads, self.generator)  # (T, P)
        backward(losses.sum())  # heads: each gets its own task's gradient
        _assign_flat(params, projected.sum(dim=0))  # shared: sum_i g_i^PC
        return Update(weights=torch.ones_like(losses.detach()), grads=grads, projected=projected)


@dataclass(frozen=True)
class MGDAConfig:
    """Sener & Koltun 2018; ``normalization`` as in their code: none, l2, loss or loss+."""

    normalization: str = "none"  # LibMTL's default; the paper's Algorithm 2 normalises nothing
    max_iter: int = 250  # Frank-Wolfe iterations (MinNormSolver.MAX_ITER in the official code)

    def __post_init__(self):
        if self.normalization not in ("none", "l2", "loss", "loss+"):
            raise ValueError(f"normalization {self.normalization!r} not in ('none', 'l2', 'loss', 'loss+')")


class MGDAUB(Weighting):
    r"""MGDA-UB: min-norm weights over $\nabla_Z L_t$, the gradients at the shared representation.

    Sener & Koltun 2018, Eq. 3 under the upper bound of Theorem 1: one backward pass per task
    stops at $Z$ (cheap), then the network minimises $\sum_t \alpha_t L_t$ with $\alpha$ fixed.
    """

    name = "mgda"

    def __init__(self, num_tasks: int, config: MGDAConfig = MGDAConfig()):  # noqa: B008
        super().__init__(num_tasks)
        self.config = config

    def _normalizers(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        norms = grads.norm(dim=1)  # (T,)
        kind = self.config.normalization
        if kind == "l2":
            return norms
        if kind == "loss":
            return losses
        if kind == "loss+":
            return losses * norms
        return torch.ones_like(norms)

    def backward(self, losses, *, shared=(), representation=None, backward=_plain_backward) -> Update:
        self._check(losses)
        if representation is None:
            raise ValueError("mgda: no shared representation given; pass representation=z, the trunk's output")
        grads = task_gradients(losses, [representation]).detach().float()  # (T, B*D); fp32 under bf16 autocast
        scale = self._normalizers(grads, losses.detach()).clamp_min(1e-12)  # (T,)
        # as in the official code, the min-norm weights of the normalised gradients are used as is
        alpha = min_norm_weights(grads / scale[:, None], self.config.max_iter)  # (T,), on the CPU
        alpha = alpha.to(device=losses.device, dtype=losses.dtype)
        backward((alpha.detach() * losses).sum())
        return Update(weights=alpha.detach(), grads=grads)


def make_weighting(method: str, kinds: Sequence[str], *, seed: int = 0, **config) -> Weighting:
    """The weighting named ``method`` for tasks of the given ``kinds``; config overrides its dataclass."""
    T = len(kinds)
    if method == "equal":
        return EqualWeighting(T)
    if method == "uncertainty":
        return UncertaintyWeighting(kinds, UncertaintyConfig(**config))
    if method == "gradnorm":
        return GradNorm(T, GradNormConfig(**config))
    if method == "pcgrad":
        return PCGrad(T, seed=seed)
    if method == "mgda":
        return MGDAUB(T, MGDAConfig(**config))
    raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
