"""What every weighting shares: per-task gradients, their cosines, and one process's view of many.

A weighting fills the ``.grad`` of the model's parameters from the task losses
$L_1, \\dots, L_T$ of one batch (:class:`Weighting`). Gradient-manipulating methods need each
task's gradient $g_t$ separately (:func:`task_gradients`). Under data parallelism every rank
holds the gradient of its own slice of the global batch; a method that combines the $g_t$
non-linearly (PCGrad's projections, MGDA's min-norm solve, GradNorm's norms) must first
average them over ranks (:func:`mean_over_ranks`), so that it combines the gradients of
the global batch, exactly as one process would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

Backward = Callable[[torch.Tensor], None]


def plain_backward(loss: torch.Tensor) -> None:
    loss.backward()


def world_size() -> int:
    """Ranks in the running process group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """``x`` averaged over ranks (a new tensor); ``x`` itself in one process.

    Each rank's loss is the mean over its equal slice of the global batch, so the mean of
    the ranks' gradients (and losses) is the gradient (and loss) of the global batch.
    """
    n = world_size()
    if n == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out)  # sum over ranks
    return out / n


def mean_grads_over_ranks(params: Iterable[torch.Tensor]) -> None:
    """Average the ``.grad`` of ``params`` over ranks in place (parameters DDP does not sync)."""
    if world_size() == 1:
        return
    for p in params:
        if p.grad is not None:
            p.grad = mean_over_ranks(p.grad)


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


def flat_grad(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The current ``.grad`` of ``params`` as one ``(P,)`` vector (zeros where none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def assign_flat(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Write a flat ``(P,)`` gradient into the ``.grad`` of ``params``, in order."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()  # (P,) slice -> p's shape
        offset += n


def pairwise_cosine(grads: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows of ``grads`` (T, P): a ``(T, T)`` matrix."""
    unit = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (T, P)
    return unit @ unit.T  # (T, T)


@dataclass
class Update:
    """What one weighting step did: the task weights, and the gradients if it computed them."""

    weights: torch.Tensor  # (T,)
    grads: torch.Tensor | None = None  # (T, P) task gradients on the shared parameters (global batch)
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
                 representation: torch.Tensor | None = None, backward: Backward = plain_backward) -> Update:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after ``optimizer.step()``; GradNorm renormalises its weights here."""
