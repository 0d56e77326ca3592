r"""Hard parameter sharing: one shared trunk, one small head per task.

Caruana (1997), "Multitask Learning", Machine Learning 28:41–75: the tasks share the
hidden layers, so each task's training signal shapes the representation every other task
reads. With trunk $f_\theta$ and heads $h_t$, the prediction for task $t$ is
$\hat y_t = h_t(f_\theta(x))$, and the shared representation is $Z = f_\theta(x)$ (the
point at which MGDA-UB, arXiv:1810.04650, takes its gradients).

The trunk is a multilayer perceptron: MultiMNIST canvases from 8x8 digits are 10x14, too
small for convolutions to pay off on a CPU. The losses per task are cross-entropy for
classification and mean squared error for regression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from moderndl.multitask.multimnist import Task


@dataclass(frozen=True)
class HardSharingConfig:
    """Sizes of the shared trunk; one linear head per task sits on its last layer."""

    in_features: int = 140  # a 10 x 14 MultiMNIST canvas, flattened
    hidden: tuple[int, ...] = (128, 64)  # the last entry is the width of the shared representation Z


class HardSharingNet(nn.Module):
    """Shared trunk and task heads (Caruana 1997, Sec. 2). ``forward`` returns ``(z, {task: y_hat})``."""

    def __init__(self, tasks: Sequence[Task], config: HardSharingConfig = HardSharingConfig()):  # noqa: B008
        super().__init__()
        if not tasks:
            raise ValueError("HardSharingNet needs at least one task")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        self.tasks = tuple(tasks)
        layers: list[nn.Module] = [nn.Flatten()]  # (B, 1, H, W) -> (B, H*W)
        width = config.in_features
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({t.name: nn.Linear(width, t.num_outputs) for t in tasks})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.trunk(x)  # (B, D): the shared representation
        return z, {name: head(z) for name, head in self.heads.items()}  # (B, num_outputs) each

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every trunk parameter: what PCGrad projects."""
        return list(self.trunk.parameters())

    def shared_layer(self) -> list[nn.Parameter]:
        """The weight of the last shared layer: GradNorm's $W$ (Chen et al. 2018, Sec. 3.2)."""
        last = [m for m in self.trunk if isinstance(m, nn.Linear)][-1]
        return [last.weight]


def task_losses(outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                tasks: Sequence[Task], reduction: str = "mean") -> torch.Tensor:
    """One loss per task, in task order: ``(T,)``, or ``(T, B)`` per example with
    ``reduction="none"``. Heads and targets must match the tasks."""
    names = [t.name for t in tasks]
    if sorted(outputs) != sorted(names):
        raise ValueError(f"{len(outputs)} heads {sorted(outputs)} do not match {len(names)} tasks {names}")
    missing = [n for n in names if n not in targets]
    if missing:
        raise ValueError(f"no targets for tasks {missing}; targets given: {sorted(targets)}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction {reduction!r} not in ('mean', 'none')")
    losses = []
    for t in tasks:
        y_hat, y = outputs[t.name], targets[t.name]
        if t.kind == "classification":
            losses.append(nn.functional.cross_entropy(y_hat, y, reduction=reduction))
        else:
            losses.append(nn.functional.mse_loss(y_hat.squeeze(-1), y, reduction=reduction))  # (B, 1) -> (B,)
    return torch.stack(losses)  # (T,) or (T, B)


@torch.no_grad()
def evaluate(model: HardSharingNet, x: torch.Tensor, targets: Mapping[str, torch.Tensor],
             batch_size: int = 1024) -> dict[str, float]:
    """Test metric per task: accuracy (classification) or mean absolute error (regression)."""
    model.eval()
    device = next(model.parameters()).device
    sums = {t.name: 0.0 for t in model.tasks}
    for start in range(0, len(x), batch_size):
        _, out = model(x[start:start + batch_size].to(device))
        for t in model.tasks:
            y = targets[t.name][start:start + batch_size].to(device)
            if t.kind == "classification":
                sums[t.name] += float((out[t.name].argmax(dim=1) == y).sum())
            else:
                sums[t.name] += float((out[t.name].squeeze(-1) - y).abs().sum())
    return {name: s / len(x) for name, s in sums.items()}
