"""RandWire graphs (Xie et al. 2019, Sec. 3): g(θ, s) against networkx and the models' expectations."""

import math

import networkx as nx
import numpy as np
import pytest

from moderndl.randwire import graphs, stats
from moderndl.randwire.model import RandWireConfig, sample_stages

SETTINGS = [("ER", (0.2,)), ("BA", (5,)), ("WS", (4, 0.75)), ("ER", (0.05,)), ("WS", (2, 0.0)), ("BA", (1,))]


@pytest.mark.parametrize("name,params", SETTINGS)
def test_same_theta_and_seed_give_the_same_graph(name, params):
    a, b = graphs.generate(name, params, 32, seed=7), graphs.generate(name, params, 32, seed=7)
    assert sorted(a.dag.edges) == sorted(b.dag.edges)


@pytest.mark.parametrize("name,params", [("ER", (0.2,)), ("BA", (5,)), ("WS", (4, 0.75))])
def test_different_seeds_give_different_graphs(name, params):
    edge_sets = {tuple(sorted(graphs.generate(name, params, 32, seed=s).graph.edges)) for s in range(5)}
    assert len(edge_sets) == 5


@pytest.mark.parametrize("name,params", SETTINGS)
def test_dag_is_acyclic_with_one_input_and_one_output(name, params):
    for seed in range(10):
        g = graphs.generate(name, params, 32, seed)
        dag = g.dag
        assert nx.is_directed_acyclic_graph(dag)
        assert [v for v in dag if dag.in_degree(v) == 0] == [0]
        assert [v for v in dag if dag.out_degree(v) == 0] == [33]
        assert all(u < v for u, v in dag.edges)
        # The internal edges are exactly the undirected graph's, shifted by one.
        internal = {(u - 1, v - 1) for u, v in dag.edges if u != 0 and v != 33}
        assert internal == {(min(u, v), max(u, v)) for u, v in g.graph.edges}
        # Every node lies on a path from the input to the output.
        assert nx.descendants(dag, 0) | {0} == set(dag) == nx.ancestors(dag, 33) | {33}


def test_ws_uses_ring_order():
    """WS(K, 0) is the ring lattice: node i links to its K/2 ring neighbours on each side."""
    n, k = 16, 4
    g = graphs.generate("WS", (k, 0.0), n, seed=3).graph
    ring = {(min(i, (i + j) % n), max(i, (i + j) % n)) for i in range(n) for j in range(1, k // 2 + 1)}
    assert {(min(e), max(e)) for e in g.edges} == ring


def test_ba_uses_insertion_order():
    """Each BA node after the M initial ones arrives with exactly M edges to earlier nodes."""
    n, m = 32, 3
    for seed in range(5):
        g = graphs.generate("BA", (m,), n, seed).graph
        for v in range(m, n):
            assert sum(1 for u in g.neighbors(v) if u < v) == m
        assert all(u > v for v in range(m) for u in g.neighbors(v))  # the M initial nodes had no edges


@pytest.mark.parametrize("m", [1, 2, 5, 8])
def test_ba_starts_from_m_nodes_without_edges_so_each_stage_has_m_input_nodes(m):
    """Sec. 3.2: BA starts from M nodes without edges, so the DAG has exactly M input nodes
    (networkx's star seed would give one), and M(n - M) edges."""
    for seed in range(10):
        g = graphs.generate("BA", (m,), 32, seed)
        assert graphs.input_nodes(g) == list(range(1, m + 1))
        assert g.graph.number_of_edges() == m * (32 - m)
        assert sorted(u for u in g.graph.neighbors(m) if u < m) == list(range(m))  # the first arrival links to all M
    star = nx.barabasi_albert_graph(32, 5, seed=0)  # networkx's seed graph, for contrast
    assert sum(1 for v in star if all(u > v for u in star.neighbors(v))) == 1


def test_ba_attachment_is_preferential():
    """BA(2) on 4 nodes: after the first arrival (node 2, linked to 0 and 1) the degrees are
    (1, 1, 2), so node 3 draws two distinct targets with probability proportional to degree and
    picks the hub 2 with probability 1/2 + 1/2 * 2/3 = 5/6 (uniform attachment: 2/3)."""
    trials = 3000
    hits = sum(graphs.generate("BA", (2,), 4, s).graph.has_edge(2, 3) for s in range(trials))
    se = math.sqrt(5 / 6 * 1 / 6 / trials)
    assert abs(hits / trials - 5 / 6) < 4 * se


def test_is_valid_dag_rejects_broken_dags():
    g = graphs.generate("WS", (4, 0.75), 12, seed=0)
    assert graphs.is_valid_dag(g)
    extra_sink = g.dag.copy()
    extra_sink.add_edge(0, 14)  # an unreachable new node: a second sink
    back = g.dag.copy()
    back.add_edge(5, 2)  # a back edge
    dropped = g.dag.copy()
    dropped.remove_edge(*next((u, v) for u, v in g.dag.edges if u != 0 and v != 13))
    for broken in (extra_sink, back, dropped):
        assert not graphs.is_valid_dag(graphs.RandomDAG(g.name, g.params, g.n, g.seed, g.graph, broken))


def test_edge_count_z_is_the_binomial_z_score():
    n, p = 32, 0.2
    counts = [graphs.generate("ER", (p,), n, s).graph.number_of_edges() for s in range(200)]
    pairs = n * (n - 1) / 2
    expected = (np.mean(counts) - p * pairs) / math.sqrt(pairs * p * (1 - p) / len(counts))
    assert graphs.edge_count_z("ER", (p,), n, counts) == pytest.approx(expected)
    assert abs(expected) < 4
    ba = [graphs.generate("BA", (5,), n, s).graph.number_of_edges() for s in range(20)]
    assert graphs.edge_count_z("BA", (5,), n, ba) == 0.0
    assert graphs.edge_count_z("WS", (4, 0.5), n, [64, 65]) == math.inf


def test_er_uses_a_random_order_of_networkx_gnp():
    """ER is networkx's gnp graph relabelled by a seeded permutation (the same graph up to order)."""
    n, p, seed = 32, 0.3, 11
    ours = graphs.generate("ER", (p,), n, seed).graph
    rng = np.random.default_rng(seed)
    ref = nx.gnp_random_graph(n, p, seed=int(rng.integers(2**31 - 1)))
    order = rng.permutation(n)
    assert {frozenset((int(order[u]), int(order[v]))) for u, v in ref.edges} == {frozenset(e) for e in ours.edges}
    assert not np.array_equal(order, np.arange(n))


def test_er_edge_count_matches_p_n_n_minus_1_over_2():
    n, p, samples = 32, 0.2, 200
    counts = [graphs.generate("ER", (p,), n, s).graph.number_of_edges() for s in range(samples)]
    expected, sd = graphs.expected_edges("ER", (p,), n), graphs.edges_std("ER", (p,), n)
    assert expected == pytest.approx(0.2 * 32 * 31 / 2)
    z = (np.mean(counts) - expected) / (sd / math.sqrt(samples))
    assert abs(z) < 4, f"mean {np.mean(counts)} vs {expected}: z = {z:.2f}"
    assert np.std(counts, ddof=1) == pytest.approx(sd, rel=0.2)  # binomial spread


@pytest.mark.parametrize("name,params,formula", [("BA", (5,), 5 * (32 - 5)), ("BA", (1,), 31), ("WS", (4, 0.75), 64),
                                                 ("WS", (6, 1.0), 96)])
def test_ba_and_ws_edge_counts_are_exact(name, params, formula):
    assert graphs.expected_edges(name, params, 32) == formula
    for seed in range(10):
        g = graphs.generate(name, params, 32, seed).graph
        assert g.number_of_edges() == formula
        assert stats.summary(g)["mean_degree"] == pytest.approx(2 * formula / 32)


@pytest.mark.parametrize("name,params", SETTINGS)
def test_statistics_match_networkx(name, params):
    for seed in range(3):
        g = graphs.generate(name, params, 32, seed).graph
        ours, ref = stats.summary(g), stats.networkx_summary(g)
        for key in ref:
            assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
        assert stats.degree_histogram(stats.adjacency(g)) == nx.degree_histogram(g)


@pytest.mark.parametrize("k", [2, 4, 6, 8])
def test_ring_lattice_clustering_is_watts_strogatz_formula(k):
    g = graphs.generate("WS", (k, 0.0), 32, seed=0).graph
    assert stats.clustering(stats.adjacency(g)) == pytest.approx(3 * (k - 2) / (4 * (k - 1)))


def test_fig3_settings_are_valid_at_n32():
    assert len(graphs.FIG3_SETTINGS) == len(set(graphs.FIG3_SETTINGS))
    for name, params in graphs.FIG3_SETTINGS:
        graphs.check(name, params, 32)
    assert graphs.label("WS", (4, 0.75)) == "WS(4, 0.75)" and graphs.label("er", 0.2) == "ER(0.2)"


# -- bad input: each error names the parameter and its value -----------------------------------
@pytest.mark.parametrize("name,params,n,match", [
    ("WS", (3, 0.5), 32, r"WS: K must be an even int .* got K=3"),
    ("WS", (32, 0.5), 32, r"WS: K must be < n .* got K=32"),
    ("WS", (40, 0.5), 32, r"WS: K must be < n"),
    ("WS", (4, 1.5), 32, r"WS: P must lie in \[0, 1\], got P=1.5"),
    ("ER", (-0.1,), 32, r"ER: P must lie in \[0, 1\], got P=-0.1"),
    ("ER", (1.01,), 32, r"ER: P must lie in \[0, 1\]"),
    ("BA", (32,), 32, r"BA: M must be < n .* got M=32"),
    ("BA", (0,), 32, r"BA: M must be a positive int"),
    ("XY", (1,), 32, r"unknown generator name 'XY'; valid generators: ER, BA, WS"),
    ("WS", (4,), 32, r"WS takes parameters \(K, P\)"),
    ("ER", (0.2,), 1, r"n must be an int >= 2"),
])
def test_bad_input_is_a_clear_error(name, params, n, match):
    with pytest.raises(ValueError, match=match):
        graphs.generate(name, params, n, seed=0)


def test_n_too_small_for_the_stage_names_it():
    with pytest.raises(ValueError, match=r"n=4 nodes is too small for stage conv3 with generator BA\(5\)"):
        sample_stages(RandWireConfig(generator="BA", params=(5,), nodes=4))
    with pytest.raises(ValueError, match=r"too small for stage conv3 with generator WS\(4, 0.75\): it needs n >= 5"):
        sample_stages(RandWireConfig(nodes=4))
    with pytest.raises(ValueError, match="unknown generator name"):
        RandWireConfig(generator="Kleinberg")


def test_parse_is_the_inverse_of_label():
    for name, params in graphs.FIG3_SETTINGS:
        assert graphs.parse(graphs.label(name, params)) == graphs.check(name, params)
    with pytest.raises(ValueError, match=r"cannot parse generator setting 'WS 4'"):
        graphs.parse("WS 4")
    with pytest.raises(ValueError, match=r"unknown generator name 'XY'"):
        graphs.parse("XY(1)")


def test_depth_is_the_longest_path_in_convolutions():
    assert graphs.depth(graphs.generate("WS", (4, 0.0), 8, seed=0)) == 8  # the ring order is a chain
    assert graphs.depth(graphs.generate("ER", (0.0,), 8, seed=0)) == 1  # isolated nodes: one conv each
    g = graphs.generate("BA", (2,), 16, seed=0)
    assert graphs.depth(g) == len(nx.dag_longest_path(g.dag)) - 2


def test_setting_table_against_networkx_and_the_closed_forms():
    rows = stats.setting_table([("WS", (4, 0.0)), ("BA", (3,)), ("ER", (0.3,))], 16, samples=6, seed=2)
    ws, ba, er = rows
    assert ws["E mean"] == ws["E expected"] == 32 and ws["z"] == 0.0 and ws["input nodes"] == 1
    assert ws["clustering"] == pytest.approx(0.5)  # 3(K - 2) / (4(K - 1)) for K = 4
    assert ba["E mean"] == 3 * 13 and ba["input nodes"] == 3
    graphs_er = [graphs.generate("ER", (0.3,), 16, 2 + i).graph for i in range(6)]
    assert er["clustering"] == pytest.approx(np.mean([nx.average_clustering(g) for g in graphs_er]))
    assert er["mean degree"] == pytest.approx(np.mean([2 * g.number_of_edges() / 16 for g in graphs_er]))
