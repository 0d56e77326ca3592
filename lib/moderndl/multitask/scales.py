"""The chapter's profiles: one entry per scale, the same parameters in each.

- ``seeds``: seeds of the two-task comparison (standard errors need at least 2);
  ``study_seeds``: seeds of the sweep, the MGDA-UB ablation and the three-task study.
- ``methods``: the weightings compared; ``normalizations``: MGDA-UB's ablation;
  ``sweep``: the fixed weights $w$ of the left digit, $(w, 1 - w)$, for the Pareto front.
- ``workers``: runs trained at once on CPU, one process of one thread each (laptop: one per
  core); the results equal those of one run at a time.
"""

from moderndl.multitask.surgery import NORMALIZATIONS
from moderndl.multitask.weighting import METHODS

_full = dict(seeds=5, study_seeds=5, methods=list(METHODS), normalizations=list(NORMALIZATIONS),
             sweep=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], n_train=20000, n_test=5000, steps=5000,
             batch_size=256, lr=1e-3, weight_lr=0.05, hidden=[1024, 512], probe_every=25, threads=0,
             mixed_precision="bf16", workers=1)

TABLE = {
    "smoke": dict(seeds=2, study_seeds=2, methods=list(METHODS), normalizations=["none", "loss+"],
                  sweep=[0.25, 0.75], n_train=2000, n_test=500, steps=150, batch_size=64, lr=3e-3,
                  weight_lr=0.05, hidden=[128, 64], probe_every=10, threads=1, mixed_precision="no", workers=1),
    "laptop": dict(seeds=5, study_seeds=3, methods=list(METHODS), normalizations=list(NORMALIZATIONS),
                   sweep=[0.1, 0.25, 0.5, 0.75, 0.9], n_train=4000, n_test=1000, steps=1000, batch_size=64,
                   lr=3e-3, weight_lr=0.05, hidden=[256, 128], probe_every=10, threads=1, mixed_precision="no",
                   workers=2),
    "full": _full,
    # the full settings with steps, data and grid sizes cut: every code path of the full run, on a CPU,
    # on one thread (two threads on a busy 2-core machine spin-wait: five times the CPU time here)
    "dry": dict(_full, seeds=2, study_seeds=2, sweep=[0.5], normalizations=["none", "loss+"], n_train=600,
                n_test=200, steps=2, threads=1),
}

RANGES = {"seeds": (2, None), "study_seeds": (2, None), "steps": (1, None), "batch_size": (2, None),
          "n_train": (2, None), "n_test": (1, None), "probe_every": (0, None), "threads": (0, None),
          "workers": (1, None)}
