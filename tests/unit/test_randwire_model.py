"""RandWire network (Xie et al. 2019, Sec. 3.1 and Table 1) against reference computations."""

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

from moderndl import measure
from moderndl.randwire import damage, graphs
from moderndl.randwire.model import Node, RandWire, RandWireConfig, Stage, multiply_adds, stage_seed

TINY = RandWireConfig(nodes=8, channels=8, head_channels=16, num_classes=10, in_channels=1, stem_strides=(1, 1))


pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_node(node: Node, inputs):
    """Eq. of Sec. 3.1 written out with functional ops."""
    w = torch.sigmoid(node.weight)
    agg = sum(wi * xi for wi, xi in zip(w, inputs, strict=True))
    dw, pw = node.conv.depthwise, node.conv.pointwise
    y = F.conv2d(F.conv2d(F.relu(agg), dw.weight, stride=dw.stride, padding=1, groups=dw.groups), pw.weight)
    bn = node.bn
    return F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)


def test_node_is_weighted_sum_relu_sepconv_bn():
    torch.manual_seed(0)
    node = Node(3, 4, 6, stride=1).eval()
    with torch.no_grad():
        node.weight.copy_(torch.tensor([-1.0, 0.5, 2.0]))
        node.bn.running_mean.uniform_(-1, 1)
        node.bn.running_var.uniform_(0.5, 2)
    xs = [torch.randn(2, 4, 5, 5) for _ in range(3)]
    torch.testing.assert_close(node(xs), _reference_node(node, xs))


@pytest.mark.parametrize("in_degree", [1, 2])
def test_node_matches_the_reference_in_value_and_gradient(in_degree):
    """The single-input shortcut (gate folded into the depthwise kernel) and the in-place
    aggregation give the reference's outputs and gradients, in training mode."""
    torch.manual_seed(0)
    node = Node(in_degree, 4, 6, stride=2).train()
    with torch.no_grad():
        node.weight.copy_(torch.linspace(-1, 1, in_degree))
    xs = [torch.randn(2, 4, 6, 6, requires_grad=True) for _ in range(in_degree)]
    out = node(xs)
    w = torch.sigmoid(node.weight)
    agg = sum(wi * xi for wi, xi in zip(w, xs, strict=True))
    dw, pw = node.conv.depthwise, node.conv.pointwise
    y = F.conv2d(F.conv2d(F.relu(agg), dw.weight, stride=2, padding=1, groups=dw.groups), pw.weight)
    ref = F.batch_norm(y, None, None, node.bn.weight, node.bn.bias, training=True, eps=node.bn.eps)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, [node.weight, dw.weight, *xs], g)
    ref_grads = torch.autograd.grad(ref, [node.weight, dw.weight, *xs], g)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_stage_matches_a_reference_walk_over_the_dag():
    """Evaluate the DAG with networkx's topological sort and explicit strides; compare to Stage."""
    torch.manual_seed(0)
    dag = graphs.generate("WS", (4, 0.75), 10, seed=1)
    stage = Stage(dag, c_in=4, c_out=8).eval()
    x = torch.randn(2, 4, 8, 8)
    values = {0: x}
    for v in nx.topological_sort(dag.dag):
        if v in (0, dag.n + 1):
            continue
        preds = list(dag.dag.predecessors(v))
        node = stage.nodes[v - 1]
        if preds == [0]:
            assert node.conv.depthwise.stride == (2, 2) and node.conv.depthwise.in_channels == 4
        else:
            assert node.conv.depthwise.stride == (1, 1) and node.conv.depthwise.in_channels == 8
        values[v] = _reference_node(node, [values[u] for u in sorted(preds)])
    outputs = [values[u] for u in dag.dag.predecessors(dag.n + 1)]
    expected = sum(outputs) / len(outputs)  # the output node is an unweighted average
    out = stage(x)
    assert out.shape == (2, 8, 4, 4)
    torch.testing.assert_close(out, expected)


def test_removed_node_outputs_zero_in_the_reference_walk():
    """Removing node v = the reference walk with x_v = 0 (successors aggregate the rest, the
    output node still divides by all its inputs)."""
    torch.manual_seed(0)
    dag = graphs.generate("ER", (0.3,), 10, seed=2)
    stage = Stage(dag, c_in=4, c_out=8).eval()
    x = torch.randn(2, 4, 8, 8)
    for v_removed in (1, 5, 10):
        values = {0: x}
        for v in nx.topological_sort(dag.dag):
            if v in (0, dag.n + 1):
                continue
            if v == v_removed:
                values[v] = torch.zeros(2, 8, 4, 4)
            else:
                values[v] = _reference_node(stage.nodes[v - 1], [values[u] for u in sorted(dag.dag.predecessors(v))])
        outputs = [values[u] for u in dag.dag.predecessors(dag.n + 1)]
        stage.removed = frozenset({v_removed})
        torch.testing.assert_close(stage(x), sum(outputs) / len(outputs))
    stage.removed = frozenset()


def test_node_removal_reports_every_node_and_restores_the_model():
    torch.manual_seed(0)
    model = RandWire(TINY).eval()
    x, y = torch.randn(40, 1, 16, 16), torch.randint(0, 10, (40,))
    with torch.no_grad():
        before = model(x)
    out = damage.node_removal(model, x, y, stages=[1])
    assert [(d["stage"], d["node"]) for d in out["drops"]] == [(1, v) for v in range(1, TINY.nodes + 1)]
    model.stages[1].removed = frozenset({3})
    with torch.no_grad():
        acc3 = int((model(x).argmax(-1) == y).sum()) / len(y)
    model.stages[1].removed = frozenset()
    assert out["drops"][2]["drop"] == pytest.approx(out["intact"] - acc3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)


@pytest.mark.parametrize("config,size", [
    (RandWireConfig(generator="BA", params=(5,), channels=16, nodes=12, stem_strides=(1, 2), num_classes=10,
                    head_channels=64), 32),
    (RandWireConfig(generator="ER", params=(0.2,), channels=9, nodes=10, stem_strides=(2, 1), num_classes=7,
                    head_channels=32), 33),
])
def test_multiply_adds_equal_flop_counter_mode_over_two(config, size):
    """The closed form over the graphs against torch's FlopCounterMode (a multiply-add = 2 FLOPs)."""
    model = RandWire(config).eval()
    assert multiply_adds(config, size) == measure.count_flops(model, torch.randn(1, 3, size, size)) // 2


def test_paper_small_regime_multiply_adds_are_close_to_583m():
    """Table 2: 583M FLOPs (multiply-adds) for the small regime at 224 x 224."""
    assert abs(multiply_adds(RandWireConfig(), 224) / 583e6 - 1) < 0.02


def test_network_shapes_and_one_graph_per_stage():
    model = RandWire(TINY)
    assert model(torch.randn(3, 1, 16, 16)).shape == (3, 10)
    edges = [sorted(d.graph.edges) for d in model.dags]
    assert len(model.dags) == 3 and edges[0] != edges[1] != edges[2]
    assert [d.seed for d in model.dags] == [stage_seed(0, i) for i in range(3)]
    again = RandWire(TINY)
    assert [sorted(d.dag.edges) for d in again.dags] == [sorted(d.dag.edges) for d in model.dags]


def test_every_aggregation_weight_gets_a_gradient():
    torch.manual_seed(0)
    model = RandWire(TINY)
    F.cross_entropy(model(torch.randn(4, 1, 16, 16)), torch.arange(4)).backward()
    for stage in model.stages:
        for node in stage.nodes:
            assert node.weight.grad is not None and torch.isfinite(node.weight.grad).all()


def test_stage_widths_and_resolutions_follow_table_1():
    """At 224x224: conv1 112, conv2 56, conv3 28 (C), conv4 14 (2C), conv5 7 (4C)."""
    config = RandWireConfig(nodes=8, channels=8, head_channels=16, num_classes=10)
    model = RandWire(config).eval()
    shapes = []
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        x = model.conv1(x)
        shapes.append(tuple(x.shape[1:]))
        x = model.conv2(x)
        shapes.append(tuple(x.shape[1:]))
        for stage in model.stages:
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(4, 112, 112), (8, 56, 56), (8, 28, 28), (16, 14, 14), (32, 7, 7)]


def test_paper_small_regime_parameters_are_close_to_5_6m():
    """Table 2 reports 5.6M parameters for the small regime (C=78, N=32, WS(4, 0.75))."""
    params = measure.count_parameters(RandWire(RandWireConfig()))
    assert abs(params / 5.6e6 - 1) < 0.02, params


@pytest.mark.parametrize("field,value,match", [
    ("nodes", 0, r"RandWireConfig.nodes must be a positive int, got 0"),
    ("channels", 1, r"channels must be >= 2"),
    ("stem_strides", (3, 1), r"stem_strides must be two strides"),
    ("params", (0.2,), r"WS takes parameters \(K, P\)"),
])
def test_bad_config_is_a_clear_error(field, value, match):
    with pytest.raises(ValueError, match=match):
        RandWireConfig(**{field: value})
