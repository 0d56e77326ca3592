r"""Graph damage on a trained network, with no retraining: remove one node at a time.

Removing node $v$ of a stage sets its output $x_v$ to zero, so each successor aggregates only
its other inputs, $\sum_{u \ne v} \sigma(w_{uw})\,x_u$, and the output node averages the
remaining outputs. The accuracy drop $a_0 - a_{-v}$ of each removal, over every node of every
stage, measures how much the trained network leans on single nodes: a chain-like wiring
has nodes that every path crosses, a well-connected one spreads the load.
This experiment goes beyond the paper's Fig. 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from moderndl.randwire.experiment import evaluate
from moderndl.randwire.model import RandWire


@torch.no_grad()
def node_removal(model: RandWire, x: torch.Tensor, y: torch.Tensor, *, stages: Sequence[int] | None = None,
                 batch_size: int = 1000) -> dict[str, Any]:
    """Accuracy of ``model`` on ``(x, y)`` intact and with each single node removed.

    Returns ``{"intact": a0, "drops": [{"stage", "node", "drop"}...]}`` with ``drop = a0 - a``
    for every graph node of the chosen stages (all by default). The model is left intact.
    """
    stages = range(len(model.stages)) if stages is None else stages
    intact = evaluate(model, x, y, batch_size=batch_size)
    drops = []
    for i in stages:
        stage = model.stages[i]
        try:
            for v in range(1, stage.n + 1):
                stage.removed = frozenset({v})
                drops.append({"stage": i, "node": v, "drop": intact - evaluate(model, x, y, batch_size=batch_size)})
        finally:
            stage.removed = frozenset()
    return {"intact": intact, "drops": drops}
