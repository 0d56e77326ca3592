"""Randomly wired neural networks (Xie et al. 2019, arXiv:1904.01569).

- ``graphs``: the generator g(θ, s) over ER, BA and WS graphs, DAG conversion and its checks.
- ``stats``: graph statistics (degree, clustering, path length) checked against networkx.
- ``model``: nodes, random-graph stages, the small-regime network of Table 1, multiply-adds.
- ``shapes``: a procedural 10-class image task; ``cifar``: CIFAR-10 folders; ``data``: loading.
- ``experiment``: the training recipe (Sec. 4), the Fig. 3 grid, FLOPs matching, noise bounds.
- ``damage``: node removal on trained networks; ``study``: the chapter's experiment and claims.
- ``bench``: the throughput benchmark and the GPU check; ``scales``: the profile table.
"""
