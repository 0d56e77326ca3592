"""Multitask learning: hard parameter sharing and the ways to weigh tasks.

- ``multimnist``: MultiMNIST from scikit-learn's digits (two tasks, or three with the sum).
- ``base``: per-task gradients, and averaging them over data-parallel ranks.
- ``weighting``: equal, fixed, random, uncertainty and GradNorm weighting; ``make_weighting``.
- ``surgery``: PCGrad and MGDA-UB, which combine the task gradients themselves.
- ``min_norm``: MGDA's min-norm solver (exact for two tasks, Frank–Wolfe beyond).
- ``model``: the hard-sharing network, its per-task losses and test metrics.
- ``experiment``: one run through the core loop (with gradient probes), the grid, $\\Delta_m$.
- ``analysis``: the checks on the runs (equilibria, conflicts, paired rankings, Pareto fronts).
- ``study``: the chapter's experiment and claims; ``scales``: its profiles; ``bench``: costs.
"""
