r"""Randomly wired networks: a DAG becomes a trainable network (Xie et al. 2019, arXiv:1904.01569).

Every node of a random DAG (:mod:`moderndl.randwire.graphs`) runs one operation (Sec. 3.1):

$$
x_v = \mathrm{BN}\Big(\mathrm{SepConv}_{3\times 3}\Big(\mathrm{ReLU}\Big(\sum_{u \in \mathrm{pred}(v)}
\sigma(w_{uv})\, x_u\Big)\Big)\Big),
$$

- aggregation: a weighted sum of the inputs with positive weights $\sigma(w_{uv})$;
- transformation: ReLU, then a 3x3 depthwise-separable convolution, then batch norm;
- distribution: $x_v$ is sent unchanged along every out-edge.

The extra input node sends the stage's input to the graph's input nodes, whose convolutions
have stride 2 (they halve the resolution and change the width); the extra output node is the
plain average of the graph's output nodes. A network is a stack of stages (Table 1, small
regime): conv1 (3x3 conv, C/2), conv2 (3x3 conv, C), then random-graph stages conv3-conv5 with
C, 2C, 4C channels and N nodes each, each stage with its own graph, then a 1x1 conv to 1280
channels, global average pooling and a linear classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moderndl.randwire import graphs

STAGE_NAMES = ("conv3", "conv4", "conv5", "conv6", "conv7")


@dataclass(frozen=True)
class RandWireConfig:
    """The small regime of Table 1 at ImageNet scale (C = 78, N = 32, WS(4, 0.75): 5.6M params)."""

    generator: str = "WS"
    params: tuple[float, ...] = (4, 0.75)  # Sec. 4: WS(K=4, P=0.75) is the paper's default
    nodes: int = 32  # N: nodes per random-graph stage (Table 1)
    channels: int = 78  # C: the small regime's width that gives ~5.6M params / ~583M FLOPs
    stage_widths: tuple[int, ...] = (1, 2, 4)  # conv3..conv5 have C, 2C, 4C channels (Table 1)
    head_channels: int = 1280  # Table 1 classifier: 1x1 conv to 1280-d
    num_classes: int = 1000
    in_channels: int = 3
    stem_strides: tuple[int, int] = (2, 2)  # conv1 and conv2; (1, 1) for 32x32 images
    seed: int = 0  # s in g(θ, s): stage i draws its graph with a seed derived from (seed, i)

    def __post_init__(self):
        graphs.check(self.generator, self.params)
        for name in ("nodes", "channels", "head_channels", "num_classes", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RandWireConfig.{name} must be a positive int, got {value!r}")
        if self.channels < 2:
            raise ValueError(f"RandWireConfig.channels must be >= 2 (conv1 has C/2), got {self.channels}")
        if not self.stage_widths or len(self.stage_widths) > len(STAGE_NAMES):
            raise ValueError(f"RandWireConfig.stage_widths needs 1..{len(STAGE_NAMES)} entries, "
                             f"got {self.stage_widths!r}")
        if any(s not in (1, 2) for s in self.stem_strides) or len(self.stem_strides) != 2:
            raise ValueError(f"RandWireConfig.stem_strides must be two strides in {{1, 2}}, got {self.stem_strides!r}")


def stage_seed(seed: int, stage: int) -> int:
    """The seed of stage ``stage``'s graph: a pure function of the network seed and the stage."""
    return int(np.random.SeedSequence([seed, stage]).generate_state(1)[0])


class SeparableConv(nn.Module):
    """3x3 depthwise conv then 1x1 pointwise conv (Sec. 3.1, "transformation"), no biases."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))  # (B, c_in, H, W) -> (B, c_out, H/stride, W/stride)


class Node(nn.Module):
    """One node (Sec. 3.1): sigmoid-weighted sum of the inputs, then ReLU-SepConv-BN."""

    def __init__(self, in_degree: int, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(in_degree))  # w_uv; sigmoid(0) = 1/2 at init
        self.conv = SeparableConv(c_in, c_out, stride)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        gates = torch.sigmoid(self.weight)  # (in_degree,), positive aggregation weights
        if len(inputs) == 1:
            # relu(g x) = g relu(x) for g > 0, and the depthwise conv is linear: scale its
            # (C, 1, 3, 3) kernel instead of the (B, C, H, W) activation.
            dw = self.conv.depthwise
            x = F.conv2d(torch.relu(inputs[0]), dw.weight * gates[0], stride=dw.stride, padding=dw.padding,
                         groups=dw.groups)
            return self.bn(self.conv.pointwise(x))
        x = gates[0] * inputs[0]
        for gate, xi in zip(gates[1:], inputs[1:], strict=True):
            x = torch.addcmul(x, gate, xi)  # (B, c_in, H, W): x + gate * xi in one op
        return self.bn(self.conv(torch.relu_(x)))  # x is this node's own buffer: ReLU in place


class Stage(nn.Module):
    """One random-graph stage (Table 1, conv3..conv5): a DAG of :class:`Node` s.

    The input node (0) passes ``x``; graph input nodes convolve it with stride 2 from
    ``c_in`` to ``c_out`` channels; the output node averages the graph's output nodes.
    ``removed`` (empty in training) lists graph nodes whose output is taken as zero, for the
    node-removal experiment of :mod:`moderndl.randwire.damage`.
    """

    def __init__(self, dag: graphs.RandomDAG, c_in: int, c_out: int):
        super().__init__()
        self.n, self.c_out = dag.n, c_out
        self.preds = [dag.predecessors(v) for v in range(dag.n + 2)]
        nodes = []
        for v in range(1, dag.n + 1):
            first = self.preds[v] == [0]  # fed by the input node only: an original input node
            nodes.append(Node(len(self.preds[v]), c_in if first else c_out, c_out, stride=2 if first else 1))
        self.nodes = nn.ModuleList(nodes)
        self.dag = dag
        self.removed: frozenset[int] = frozenset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.removed:
            return self._forward_removed(x)
        outs: list[torch.Tensor | None] = [x] + [None] * (self.n + 1)
        for v in range(1, self.n + 1):  # node indices are a topological order
            outs[v] = self.nodes[v - 1]([outs[u] for u in self.preds[v]])  # (B, c_out, H/2, W/2)
        last = self.preds[self.n + 1]
        y = outs[last[0]]
        for u in last[1:]:
            y = y + outs[u]
        return y / len(last)  # (B, c_out, H/2, W/2): the output node's plain average

    def _forward_removed(self, x: torch.Tensor) -> torch.Tensor:
        """The stage with the nodes of ``removed`` outputting zeros (a node whose inputs are all
        zero outputs the constant BN(0), as it would in the network)."""
        b, _, h, w = x.shape
        zero = x.new_zeros(b, self.c_out, (h + 1) // 2, (w + 1) // 2)  # (B, c_out, H/2, W/2)
        outs: list[torch.Tensor] = [x] + [zero] * (self.n + 1)
        for v in range(1, self.n + 1):
            if v not in self.removed:
                outs[v] = self.nodes[v - 1]([outs[u] for u in self.preds[v]])
        last = self.preds[self.n + 1]
        return sum(outs[u] for u in last) / len(last)


class RandWire(nn.Module):
    """The small-regime network of Table 1: conv1, conv2, random stages, classifier."""

    def __init__(self, config: RandWireConfig):
        super().__init__()
        self.config = config
        c = config.channels
        s1, s2 = config.stem_strides
        # conv1: 3x3 conv, C/2 (stride 2 at ImageNet scale); conv2: ReLU-3x3 conv-BN, C.
        self.conv1 = nn.Sequential(nn.Conv2d(config.in_channels, c // 2, 3, s1, 1, bias=False), nn.BatchNorm2d(c // 2))
        self.conv2 = nn.Sequential(nn.ReLU(), nn.Conv2d(c // 2, c, 3, s2, 1, bias=False), nn.BatchNorm2d(c))
        self.dags = sample_stages(config)
        stages, c_in = [], c
        for dag, width in zip(self.dags, config.stage_widths, strict=True):
            stages.append(Stage(dag, c_in, width * c))
            c_in = width * c
        self.stages = nn.ModuleList(stages)
        # Classifier (Table 1): 1x1 conv to 1280-d, global average pool, fully connected.
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, config.head_channels, 1, bias=False),
                                  nn.BatchNorm2d(config.head_channels), nn.ReLU())
        self.fc = nn.Linear(config.head_channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))  # (B, C, H/4, W/4) at ImageNet scale
        for stage in self.stages:
            x = stage(x)  # (B, width*C, h/2, w/2)
        x = self.head(x).mean(dim=(2, 3))  # (B, 1280, h, w) -> (B, 1280)
        return self.fc(x)  # (B, num_classes)


def multiply_adds(config: RandWireConfig, image_size: int = 224, dags: Sequence[graphs.RandomDAG] | None = None
                  ) -> int:
    """Multiply-adds of one forward pass of one image (the paper's "FLOPs", Table 1), in
    closed form over the graphs: convolutions and the classifier, as FlopCounterMode counts
    them (BN, ReLU and the aggregation are not counted)."""
    dags = sample_stages(config) if dags is None else dags
    c = config.channels
    s1, s2 = config.stem_strides
    h = -(-image_size // s1)  # conv1's output side (padding 1, 3x3)
    total = 9 * config.in_channels * (c // 2) * h * h
    h = -(-h // s2)
    total += 9 * (c // 2) * c * h * h  # conv2
    c_in = c
    for dag, width in zip(dags, config.stage_widths, strict=True):
        c_out, h_out = width * c, -(-h // 2)
        for v in range(1, dag.n + 1):
            cin = c_in if dag.predecessors(v) == [0] else c_out
            total += (9 * cin + cin * c_out) * h_out * h_out  # depthwise + pointwise
        c_in, h = c_out, h_out
    total += c_in * config.head_channels * h * h + config.head_channels * config.num_classes
    return total


def sample_stages(config: RandWireConfig) -> list[graphs.RandomDAG]:
    """One graph per random stage, each drawn by g(θ, s_i) with its own seed (Table 1)."""
    need = graphs.min_nodes(config.generator, config.params)
    dags = []
    for i in range(len(config.stage_widths)):
        if config.nodes < need:
            raise ValueError(
                f"n={config.nodes} nodes is too small for stage {STAGE_NAMES[i]} with generator "
                f"{graphs.label(config.generator, config.params)}: it needs n >= {need}")
        dags.append(graphs.generate(config.generator, config.params, config.nodes, stage_seed(config.seed, i)))
    return dags
