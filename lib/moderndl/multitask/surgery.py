r"""Gradient manipulation: combine the task gradients otherwise than by a plain sum.

- Yu, Kumar, Gupta, Levine, Hausman & Finn (2020), "Gradient Surgery for Multi-Task
  Learning", arXiv:2001.06782: if $g_i \cdot g_j < 0$,
  $g_i \leftarrow g_i - \frac{g_i \cdot g_j}{\lVert g_j \rVert^2} g_j$ (Algorithm 1).
- Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective Optimization",
  arXiv:1810.04650: $\min_{\alpha \in \Delta^T} \bigl\lVert \sum_t \alpha_t \nabla_Z L_t \bigr\rVert^2$
  over the gradients with respect to the shared representation $Z$ (Eq. 3 with the
  MGDA-UB bound of Theorem 1), on gradients normalised as in the authors' code.

Both combine the gradients non-linearly, so under data parallelism they first average the
per-task gradients (PCGrad) or their Gram matrix (MGDA-UB) over ranks: the combination is
then the one a single process computes on the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moderndl.multitask.base import (
    Update,
    Weighting,
    assign_flat,
    mean_over_ranks,
    plain_backward,
    task_gradients,
    world_size,
)
from moderndl.multitask.min_norm import min_norm_from_gram


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

    def backward(self, losses, *, shared=(), representation=None, backward=plain_backward) -> Update:
        self._check(losses)
        params = list(shared)
        if not params:
            raise ValueError("pcgrad: no shared parameters given; pass shared=model.shared_parameters()")
        grads = mean_over_ranks(task_gradients(losses, params).detach())  # (T, P) of the global batch
        projected = pcgrad(grads, self.generator)  # (T, P); the same generator state on every rank
        backward(losses.sum())  # heads: each gets its own task's gradient (averaged over ranks by DDP)
        assign_flat(params, projected.sum(dim=0))  # shared: sum_i g_i^PC
        return Update(weights=torch.ones_like(losses.detach()), grads=grads, projected=projected)


NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@dataclass(frozen=True)
class MGDAConfig:
    """Sener & Koltun 2018; ``normalization`` of each task's gradient before the min-norm solve,
    as in the authors' code: ``none``, ``l2`` (its norm), ``loss`` (its loss) or ``loss+`` (both)."""

    normalization: str = "loss+"  # the authors' MultiMNIST configuration (LibMTL defaults to none)
    max_iter: int = 250  # Frank-Wolfe iterations (MinNormSolver.MAX_ITER in the official code)

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization {self.normalization!r} not in {NORMALIZATIONS}")


def normalizers(norms: torch.Tensor, losses: torch.Tensor, kind: str) -> torch.Tensor:
    """The divisor of each task's gradient (the official ``gradient_normalizers``): (T,)."""
    if kind == "l2":
        return norms
    if kind == "loss":
        return losses
    if kind == "loss+":
        return losses * norms
    if kind == "none":
        return torch.ones_like(norms)
    raise ValueError(f"normalization {kind!r} not in {NORMALIZATIONS}")


class MGDAUB(Weighting):
    r"""MGDA-UB: min-norm weights over $\nabla_Z L_t$, the gradients at the shared representation.

    Sener & Koltun 2018, Eq. 3 under the upper bound of Theorem 1: one backward pass per task
    stops at $Z$ (cheap), then the network minimises $\sum_t \alpha_t L_t$ with $\alpha$ fixed.
    As in the official code, the min-norm weights of the normalised gradients are used as is.
    """

    name = "mgda"

    def __init__(self, num_tasks: int, config: MGDAConfig = MGDAConfig()):  # noqa: B008
        super().__init__(num_tasks)
        self.config = config

    def backward(self, losses, *, shared=(), representation=None, backward=plain_backward) -> Update:
        self._check(losses)
        if representation is None:
            raise ValueError("mgda: no shared representation given; pass representation=z, the trunk's output")
        grads = task_gradients(losses, [representation]).detach().double()  # (T, B*D); fp64 under autocast
        gram = grads @ grads.T  # (T, T) over this rank's rows of Z
        n = world_size()
        if n > 1:  # rows of Z are examples: the global Gram matrix is sum_r gram_r / n^2
            gram = mean_over_ranks(gram) / n
        global_losses = mean_over_ranks(losses.detach().double())  # (T,)
        scale = normalizers(gram.diagonal().clamp_min(0).sqrt(), global_losses, self.config.normalization)
        scale = scale.clamp_min(1e-12)  # (T,)
        alpha = min_norm_from_gram(gram / (scale[:, None] * scale[None, :]), self.config.max_iter)  # (T,)
        alpha = alpha.to(device=losses.device, dtype=losses.dtype)
        backward((alpha.detach() * losses).sum())
        return Update(weights=alpha.detach(), grads=grads.float() if n == 1 else None)
