r"""Graph statistics of the random graphs (Xie et al. 2019, arXiv:1904.01569, Sec. 3.2 and Fig. 3).

Computed from the adjacency matrix $A$ of the undirected graph with NumPy, independently of
networkx, so the tests can compare them with networkx's own measures:

- degree $d_i = \sum_j A_{ij}$ and its histogram;
- local clustering $c_i = \dfrac{(A^3)_{ii}}{d_i (d_i - 1)}$ (0 when $d_i < 2$) and its mean,
  Watts & Strogatz's clustering coefficient;
- average shortest path length $\ell = \dfrac{1}{|C|(|C|-1)} \sum_{u \ne v \in C} d(u, v)$ over the
  largest connected component $C$ (an ER graph with small P can be disconnected), by
  breadth-first search on $A$.
"""

from __future__ import annotations

import networkx as nx
import numpy as np


def adjacency(graph: nx.Graph) -> np.ndarray:
    """The 0/1 adjacency matrix ``(n, n)`` of an undirected graph with nodes ``0..n-1``."""
    n = graph.number_of_nodes()
    a = np.zeros((n, n), dtype=np.int64)  # (n, n)
    for u, v in graph.edges():
        a[u, v] = a[v, u] = 1
    return a


def degrees(a: np.ndarray) -> np.ndarray:
    """Node degrees ``(n,)``."""
    return a.sum(axis=1)


def degree_histogram(a: np.ndarray) -> list[int]:
    """``hist[d]`` = number of nodes of degree d, for d = 0..max degree (networkx's layout)."""
    return np.bincount(degrees(a)).tolist()


def clustering(a: np.ndarray) -> float:
    """Mean local clustering coefficient (triangles through i over pairs of i's neighbours)."""
    d = degrees(a).astype(float)  # (n,)
    closed = np.diag(a @ a @ a).astype(float)  # (n,): 2 x triangles through i
    pairs = d * (d - 1)  # (n,): 2 x pairs of neighbours
    local = np.divide(closed, pairs, out=np.zeros_like(closed), where=pairs > 0)
    return float(local.mean())


def largest_component(a: np.ndarray) -> np.ndarray:
    """Indices of the largest connected component (ties: the one with the smallest node)."""
    n = len(a)
    label = -np.ones(n, dtype=np.int64)
    for start in range(n):
        if label[start] >= 0:
            continue
        label[_reachable(a, start) >= 0] = start
    sizes = np.bincount(label, minlength=n)
    return np.flatnonzero(label == int(np.argmax(sizes)))


def average_path_length(a: np.ndarray) -> float:
    """Mean shortest-path length between distinct nodes of the largest component (BFS)."""
    nodes = largest_component(a)
    sub = a[np.ix_(nodes, nodes)]  # (c, c)
    c = len(nodes)
    if c < 2:
        return 0.0
    total = sum(int(_reachable(sub, s).sum()) for s in range(c))
    return total / (c * (c - 1))


def summary(graph: nx.Graph) -> dict[str, float]:
    """Edges, mean degree, clustering and average path length of one graph."""
    a = adjacency(graph)
    n = len(a)
    return {
        "edges": int(a.sum() // 2),
        "mean_degree": float(a.sum() / n),
        "clustering": clustering(a),
        "path_length": average_path_length(a),
        "largest_component": int(len(largest_component(a))),
    }


def networkx_summary(graph: nx.Graph) -> dict[str, float]:
    """The same quantities by networkx's own functions: the reference for :func:`summary`."""
    n = graph.number_of_nodes()
    component = max(nx.connected_components(graph), key=lambda c: (len(c), -min(c)))
    sub = graph.subgraph(component)
    return {
        "edges": graph.number_of_edges(),
        "mean_degree": 2 * graph.number_of_edges() / n,
        "clustering": nx.average_clustering(graph),
        "path_length": nx.average_shortest_path_length(sub) if len(sub) > 1 else 0.0,
        "largest_component": len(component),
    }


def _reachable(a: np.ndarray, start: int) -> np.ndarray:
    """BFS distances ``(n,)`` from ``start``; -1 for unreachable nodes."""
    dist = -np.ones(len(a), dtype=np.int64)
    dist[start] = 0
    frontier = np.array([start])
    step = 0
    while frontier.size:
        step += 1
        nxt = np.flatnonzero(a[frontier].any(axis=0) & (dist < 0))  # unvisited neighbours of the frontier
        dist[nxt] = step
        frontier = nxt
    return dist


def setting_table(settings, n: int, samples: int, seed: int = 0) -> list[dict[str, float]]:
    """Per generator setting, over ``samples`` graphs on ``n`` nodes: the expected and mean edge
    count, its z-score (:func:`graphs.edge_count_z`), the mean number of input nodes, mean
    degree, clustering and average path length (Sec. 3.2's measures, as in Fig. 3's analysis)."""
    from moderndl.randwire import graphs

    rows = []
    for name, params in settings:
        dags = [graphs.generate(name, params, n, seed + i) for i in range(samples)]
        edges = [d.graph.number_of_edges() for d in dags]
        summaries = [summary(d.graph) for d in dags]
        rows.append({"setting": graphs.label(name, params), "E expected": graphs.expected_edges(name, params, n),
                     "E mean": float(np.mean(edges)), "z": graphs.edge_count_z(name, params, n, edges),
                     "input nodes": float(np.mean([len(graphs.input_nodes(d)) for d in dags])),
                     "mean degree": 2 * float(np.mean(edges)) / n,
                     "clustering": float(np.mean([x["clustering"] for x in summaries])),
                     "path length": float(np.mean([x["path_length"] for x in summaries]))})
    return rows
