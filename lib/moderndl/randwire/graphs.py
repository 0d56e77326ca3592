r"""Random graphs for randomly wired networks: the generator g(θ, s) of Xie et al. (2019).

Paper: Saining Xie, Alexander Kirillov, Ross Girshick, Kaiming He, "Exploring Randomly Wired
Neural Networks for Image Recognition", ICCV 2019, arXiv:1904.01569.

A stochastic network generator maps parameters θ and a seed s to a network,

$$
\mathcal{N} = g(\theta, s), \qquad \theta \in \{\mathrm{ER}(P),\ \mathrm{BA}(M),\ \mathrm{WS}(K, P)\},
$$

and the same (θ, s) always gives the same network (Sec. 2). This module is the graph half of
g (Sec. 3.2, "Random graph models", and Sec. 3.1, "Edges and nodes"):

1. sample an undirected graph: networkx's own generators for ER and WS, and the paper's BA
   (M initial nodes without edges, each later node attached to M distinct earlier ones with
   probability proportional to their degree), which networkx does not offer;
2. relabel its nodes in the paper's order: random for ER, order of insertion for BA, ring
   order for WS;
3. orient every edge from the lower index to the higher one, which makes a DAG (the order
   is a topological order);
4. add one input node that feeds every node without in-edges and one output node that reads
   every node without out-edges.

Nodes of the returned DAG are integers: ``0`` is the extra input node, ``1..n`` the graph's
nodes in the paper's order, ``n + 1`` the extra output node, so every edge ``(u, v)`` has
``u < v``. The expected edge counts of the undirected graphs are
$P\,n(n-1)/2$ (ER), $M(n-M)$ (BA) and $nK/2$ (WS).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

GENERATORS = ("ER", "BA", "WS")
# How many parameters each generator takes, and their names, in the paper's order.
PARAM_NAMES = {"ER": ("P",), "BA": ("M",), "WS": ("K", "P")}

# The generator settings of the paper's Fig. 3 (small regime, ImageNet), as this book reads its
# x-axis: ER(P) for P = 0.1..0.8, BA(M) for M = 1..8 and WS(K, P) for K in {2, 4, 6, 8} and
# P in {0, 0.25, 0.5, 0.75, 1}. No machine-readable copy of the figure was at hand to confirm
# this list, so the chapter says so where it uses it.
FIG3_SETTINGS: tuple[tuple[str, tuple[float, ...]], ...] = (
    *(("ER", (p,)) for p in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
    *(("BA", (m,)) for m in (1, 2, 3, 4, 5, 6, 7, 8)),
    *(("WS", (k, p)) for k in (2, 4, 6, 8) for p in (0.0, 0.25, 0.5, 0.75, 1.0)),
)


@dataclass(frozen=True)
class RandomDAG:
    """A sampled graph and its DAG with one input (node 0) and one output (node n + 1)."""

    name: str
    params: tuple[float, ...]
    n: int
    seed: int
    graph: nx.Graph  # undirected, nodes 0..n-1 in the paper's order
    dag: nx.DiGraph  # nodes 0..n+1, every edge u -> v with u < v

    @property
    def input_node(self) -> int:
        return 0

    @property
    def output_node(self) -> int:
        return self.n + 1

    def predecessors(self, v: int) -> list[int]:
        """The nodes feeding node ``v``, sorted."""
        return sorted(self.dag.predecessors(v))

    @property
    def label(self) -> str:
        return label(self.name, self.params)


def label(name: str, params: Sequence[float] | float) -> str:
    """``"WS(4, 0.75)"``: a generator setting as the paper writes it."""
    name, params = check(name, params)
    return f"{name}({', '.join(_fmt(p) for p in params)})"


def parse(text: str) -> tuple[str, tuple[float, ...]]:
    """``"WS(4, 0.75)"`` -> ``("WS", (4, 0.75))``, validated; the inverse of :func:`label`."""
    match = re.fullmatch(r"\s*([A-Za-z]+)\s*\(([^()]*)\)\s*", str(text))
    if match is None:
        raise ValueError(f"cannot parse generator setting {text!r}; expected e.g. 'ER(0.2)', 'BA(5)', 'WS(4, 0.75)'")
    try:
        values = tuple(float(v) if "." in v or "e" in v.lower() else int(v) for v in match[2].split(","))
    except ValueError:
        raise ValueError(f"cannot parse the parameters of generator setting {text!r}") from None
    return check(match[1], values)


def check(name: str, params: Sequence[float] | float, n: int | None = None) -> tuple[str, tuple[float, ...]]:
    """Validate a generator setting (Sec. 3.2); returns the canonical ``(name, params)``.

    Raises ``ValueError`` naming the offending parameter, its value and the valid range:
    an unknown name, a wrong number of parameters, P outside [0, 1], M < 1 or M >= n,
    odd K, K < 2 or K >= n.
    """
    key = str(name).upper()
    if key not in GENERATORS:
        raise ValueError(f"unknown generator name {name!r}; valid generators: {', '.join(GENERATORS)}")
    values = tuple(params) if isinstance(params, (tuple, list)) else (params,)
    expected = PARAM_NAMES[key]
    if len(values) != len(expected):
        raise ValueError(f"{key} takes parameters ({', '.join(expected)}), got {values!r}")
    if n is not None and (not isinstance(n, (int, np.integer)) or n < 2):
        raise ValueError(f"n must be an int >= 2 (number of graph nodes), got n={n!r}")
    for pname, value in zip(expected, values, strict=True):
        if pname == "P" and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise ValueError(f"{key}: P must lie in [0, 1], got P={value!r}")
    if key == "BA":
        (m,) = values
        if int(m) != m or m < 1:
            raise ValueError(f"BA: M must be a positive int, got M={m!r}")
        if n is not None and m >= n:
            raise ValueError(f"BA: M must be < n (1 <= M < n={n}), got M={m!r}")
        values = (int(m),)
    if key == "WS":
        k, p = values
        if int(k) != k or k < 2 or k % 2:
            raise ValueError(f"WS: K must be an even int >= 2 (each node links K/2 ring neighbours per side), "
                             f"got K={k!r}")
        if n is not None and k >= n:
            raise ValueError(f"WS: K must be < n (even K with 2 <= K < n={n}), got K={k!r}")
        values = (int(k), float(p))
    if key == "ER":
        values = (float(values[0]),)
    return key, values


def sample_graph(name: str, params: Sequence[float] | float, n: int, seed: int) -> nx.Graph:
    """The undirected graph of Sec. 3.2 with nodes ``0..n-1`` in the paper's order.

    - ER(P): ``nx.gnp_random_graph``; "indices are assigned randomly", so the nodes are
      relabelled by a seeded permutation.
    - BA(M): :func:`barabasi_albert`, the paper's process from M nodes without edges, in
      order of insertion (the paper's order). networkx's ``barabasi_albert_graph`` starts
      from a star on M + 1 nodes instead, which makes node 0 a hub and the only input node.
    - WS(K, P): ``nx.watts_strogatz_graph``; networkx labels nodes in ring order.
    """
    key, values = check(name, params, n)
    rng = np.random.default_rng(seed)
    graph_seed = int(rng.integers(2**31 - 1))  # one stream for networkx, one for the ER order
    if key == "ER":
        graph = nx.gnp_random_graph(n, values[0], seed=graph_seed)
        order = rng.permutation(n)  # node i gets index order[i]
        graph = nx.relabel_nodes(graph, {i: int(order[i]) for i in range(n)})
    elif key == "BA":
        graph = barabasi_albert(n, values[0], np.random.default_rng(graph_seed))
    else:
        graph = nx.watts_strogatz_graph(n, values[0], values[1], seed=graph_seed)
    out = nx.Graph()
    out.add_nodes_from(range(n))
    out.add_edges_from(graph.edges())
    return out


def barabasi_albert(n: int, m: int, rng: np.random.Generator) -> nx.Graph:
    """BA(M) as Sec. 3.2 defines it: start from M nodes without edges, then add nodes one at a
    time, each with M edges to distinct existing nodes drawn with probability proportional to
    their degree. The first new node has only the M initial nodes to choose from (all of degree
    0), so it links to all of them; every later node adds exactly M edges, hence M(n - M) edges
    in all, and the M initial nodes are the only ones without a lower-indexed neighbour.
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    degree = np.zeros(n)  # (n,)
    for v in range(m, n):
        if v == m:  # all M earlier nodes have degree 0: the only way to get M distinct edges
            targets = np.arange(m)
        else:
            p = degree[:v] / degree[:v].sum()  # (v,), preferential attachment
            targets = rng.choice(v, size=m, replace=False, p=p)
        graph.add_edges_from((int(u), v) for u in targets)
        degree[targets] += 1
        degree[v] += m
    return graph


def input_nodes(dag: RandomDAG) -> list[int]:
    """The graph's input nodes (Sec. 3.1): DAG nodes fed by the extra input node 0 alone."""
    return sorted(dag.dag.successors(0))


def output_nodes(dag: RandomDAG) -> list[int]:
    """The graph's output nodes: DAG nodes read by the extra output node ``n + 1``."""
    return sorted(dag.dag.predecessors(dag.n + 1))


def is_valid_dag(dag: RandomDAG) -> bool:
    """Acyclic, every edge ``u -> v`` with ``u < v``, exactly one source (node 0) and one sink
    (node ``n + 1``), and the internal edges exactly the undirected graph's, shifted by one."""
    d = dag.dag
    internal = {(u - 1, v - 1) for u, v in d.edges if u != 0 and v != dag.n + 1}
    return (nx.is_directed_acyclic_graph(d) and all(u < v for u, v in d.edges)
            and [v for v in d if d.in_degree(v) == 0] == [0]
            and [v for v in d if d.out_degree(v) == 0] == [dag.n + 1]
            and internal == {(min(u, v), max(u, v)) for u, v in dag.graph.edges})


def edge_count_z(name: str, params: Sequence[float] | float, n: int, edge_counts: Sequence[int]) -> float:
    """z-score of the mean edge count of independent samples against :func:`expected_edges`,
    with the binomial standard error for ER; 0 for an exact match of the deterministic BA and
    WS counts and ``inf`` for any deviation from them."""
    counts = np.asarray(edge_counts, dtype=float)
    expected, sd = expected_edges(name, params, n), edges_std(name, params, n)
    if sd == 0:
        return 0.0 if bool((counts == expected).all()) else math.inf
    return float((counts.mean() - expected) / (sd / math.sqrt(len(counts))))


def to_dag(graph: nx.Graph) -> nx.DiGraph:
    """Sec. 3.1: orient each edge low index -> high index, then add one input and one output.

    The graph's node ``i`` becomes DAG node ``i + 1``. Node ``0`` feeds every node without
    in-edges ("input nodes") and node ``n + 1`` reads every node without out-edges
    ("output nodes"); an isolated node is both.
    """
    n = graph.number_of_nodes()
    if sorted(graph.nodes) != list(range(n)):
        raise ValueError(f"graph nodes must be 0..{n - 1}, got {sorted(graph.nodes)[:8]}...")
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n + 2))
    dag.add_edges_from((min(u, v) + 1, max(u, v) + 1) for u, v in graph.edges())
    inputs = [v for v in range(1, n + 1) if dag.in_degree(v) == 0]
    outputs = [v for v in range(1, n + 1) if dag.out_degree(v) == 0]
    dag.add_edges_from((0, v) for v in inputs)
    dag.add_edges_from((v, n + 1) for v in outputs)
    return dag


def generate(name: str, params: Sequence[float] | float, n: int, seed: int) -> RandomDAG:
    """g(θ, s) (Sec. 2): the DAG of generator ``name`` with ``params`` on ``n`` nodes, seed ``seed``."""
    key, values = check(name, params, n)
    graph = sample_graph(key, values, n, seed)
    return RandomDAG(name=key, params=values, n=n, seed=seed, graph=graph, dag=to_dag(graph))


def depth(dag: RandomDAG) -> int:
    """Nodes on the longest input-to-output path, extra nodes excluded: the stage's depth in convolutions."""
    return nx.dag_longest_path_length(dag.dag) - 1


def expected_edges(name: str, params: Sequence[float] | float, n: int) -> float:
    """Expected undirected edge count: ER P n(n-1)/2, BA M(n-M), WS nK/2 (Sec. 3.2)."""
    key, values = check(name, params, n)
    if key == "ER":
        return values[0] * n * (n - 1) / 2
    if key == "BA":
        return float(values[0] * (n - values[0]))
    return n * values[0] / 2


def edges_std(name: str, params: Sequence[float] | float, n: int) -> float:
    """Standard deviation of one graph's edge count: binomial for ER, 0 for BA and WS."""
    key, values = check(name, params, n)
    if key == "ER":
        pairs = n * (n - 1) / 2
        return math.sqrt(pairs * values[0] * (1 - values[0]))
    return 0.0


def min_nodes(name: str, params: Sequence[float] | float) -> int:
    """The smallest n for which the setting is valid: BA needs n > M, WS needs n > K."""
    key, values = check(name, params)
    if key == "BA":
        return values[0] + 1
    if key == "WS":
        return values[0] + 1
    return 2


def _fmt(value: float) -> str:
    return f"{value:g}"
