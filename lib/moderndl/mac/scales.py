"""The MAC chapter's profiles: one entry per scale, the same keys in each.

- ``full`` is the paper's model (Sec. 4 and Appendix A of Hudson & Manning 2018: d = 512,
  p = 12, 300-d word vectors, Adam lr 1e-4, batch 64, EMA 0.999, clip 8, dropout 0.15) on a
  64-pixel world with CLEVR's eight colours, three shapes, up to six objects and three-hop
  relations, on one GPU.
- ``laptop`` asks all five families on a 32-pixel world whose objects (three colours, two
  shapes, two sizes, up to five) sit on a 4 x 4 grid of knowledge-base cells, one object per
  cell, with d = 64 and p = 4 (a 3-hop chain needs 4 retrievals), aiming at about 10 minutes
  on two idle cores; it also trains p = 1 and p = 2 for the step ablation, with equal steps.
  Independent models train two at a time (``workers``: one process of one thread per core).
- ``smoke`` keeps the two families that need the image most (query and relate, chains of at
  most two hops) and trains for a few hundred steps, for CI.
- ``dry`` is ``full`` with only steps and data sizes cut.
"""

from __future__ import annotations

_GRID_MODEL = dict(embed_dim=32, stem="patch", patch=8, stem_channels=32, kb_kernel=1, coords=True, dropout=0.0)

TABLE: dict[str, dict] = {
    "smoke": dict(image_size=32, n_train=12_000, n_test=1_000, n_val=0, d=64, p=3, lr=2e-3, batch_size=64,
                  ema_decay=0.95, steps=450, baseline_steps=450, ablation_p=[], ablation_steps=0, threads=1, workers=1,
                  eval_every=0, bench_repeats=3, variant="paper", clevr_dir="",
                  world=dict(colors=("red", "green", "blue"), shapes=("circle", "square"), max_objects=4,
                             max_hops=2, max_count=2, questions_per_scene=2, cells=4, resolution=4,
                             radii=(0.07, 0.12), families=("query", "relate")),
                  model=_GRID_MODEL),
    "laptop": dict(image_size=32, n_train=40_000, n_test=3_000, n_val=0, d=64, p=4, lr=2e-3, batch_size=64,
                   ema_decay=0.99, steps=4_000, baseline_steps=3_000, ablation_p=[1, 2], ablation_steps=4_000,
                   threads=1, workers=2, eval_every=0, bench_repeats=10, variant="paper", clevr_dir="",
                   world=dict(colors=("red", "green", "blue"), shapes=("circle", "square"), max_objects=5,
                              max_hops=3, max_count=3, questions_per_scene=5, cells=4, resolution=4,
                              radii=(0.07, 0.12)),
                   model=_GRID_MODEL),
    "full": dict(image_size=64, n_train=200_000, n_test=10_000, n_val=2_000, d=512, p=12, lr=1e-4, batch_size=64,
                 ema_decay=0.999, steps=20_000, baseline_steps=10_000, ablation_p=[1, 2, 4, 8],
                 ablation_steps=10_000, threads=0, workers=1, eval_every=1_000, bench_repeats=20, variant="paper",
                 clevr_dir="",
                 world=dict(max_objects=6, max_hops=3, max_count=3, questions_per_scene=10, resolution=8),
                 model=dict(embed_dim=300, stem="conv", stem_layers=3, stem_channels=128, coords=True,
                            dropout=0.15)),
}
# dry: one thread (two threads of small ops on a busy 2-core machine spin-wait)
TABLE["dry"] = dict(TABLE["full"], n_train=200, n_test=32, n_val=16, batch_size=8, steps=2, baseline_steps=2,
                    ablation_steps=2, eval_every=2, bench_repeats=1, threads=1,
                    world=dict(TABLE["full"]["world"], questions_per_scene=2))

RANGES = {"image_size": (16, None), "n_train": (10, None), "n_test": (10, None), "n_val": (0, None),
          "d": (2, None), "p": (1, None), "lr": (0.0, None), "batch_size": (1, None), "ema_decay": (0.0, 0.9999),
          "steps": (1, None), "baseline_steps": (1, None), "ablation_steps": (0, None), "threads": (0, None),
          "workers": (1, None), "eval_every": (0, None), "bench_repeats": (1, None)}
