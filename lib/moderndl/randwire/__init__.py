"""Randomly wired neural networks (Xie et al. 2019, arXiv:1904.01569).

- ``graphs``: the generator g(θ, s) over ER, BA and WS graphs, DAG conversion.
- ``stats``: graph statistics (degree, clustering, path length) checked against networkx.
- ``model``: nodes, random-graph stages and the small-regime network of Table 1.
- ``experiment``: data, the training recipe, the Fig. 3 study and the throughput benchmark.
"""
