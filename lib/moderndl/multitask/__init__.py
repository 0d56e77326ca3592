"""Multitask learning: hard parameter sharing and five ways to weigh tasks.

- ``weighting``: equal weights, uncertainty weighting, GradNorm, PCGrad, MGDA-UB.
- ``min_norm``: MGDA's min-norm solver (exact for two tasks, Frank–Wolfe beyond).
- ``model``: the hard-sharing network, its per-task losses and test metrics.
- ``experiment``: baselines, the grid of methods x seeds, and the LibMTL Delta_m.

The data (MultiMNIST from scikit-learn's digits) lives in ``moderndl.data.multimnist``.
"""
