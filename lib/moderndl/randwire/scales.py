"""The chapter's profile table: every notebook parameter, declared once, per profile.

- ``smoke``: small networks on scikit-learn's digits (the shapes task needs more steps than
  CI can give); CI asserts its claims.
- ``laptop``: the study of the book's page on 2 CPU cores in about 10 minutes: ER(0.2),
  BA(5), WS(4, 0.75) and the control WS(4, 0) (every seed wires the same lattice), 5 seeds
  each, on 10,000 test images, widths matched for FLOPs, then node removal; two networks
  train at once (``workers=2``, one process of one thread per core).
- ``full``: every setting of Fig. 3 with 5 seeds on one GPU, in bf16 with channels_last.
- ``dry``: ``full`` with steps, data and the number of settings cut, so it runs on CPU.
"""

from __future__ import annotations

from moderndl.randwire import graphs

STUDY = ["ER(0.2)", "BA(5)", "WS(4, 0.75)", "WS(4, 0)"]  # the paper's highlighted settings + control

TABLE = {
    "smoke": dict(data_dir="digits", image_size=16, train_size=2000, test_size=1000, channels=8, nodes=8,
                  head_channels=64, stem_strides=[2, 1], generators=STUDY, seeds=2, steps=80, batch_size=64,
                  match_flops=True, augment=False, mixed_precision="no", channels_last=False, compile=False,
                  stats_nodes=32, stats_samples=20, damage_images=200, benchmark=False, bench_batch_size=4,
                  threads=1, workers=1),
    # Sized from CPU time on this 2-core machine: about 0.12 s per step of 64 images for C = 12,
    # N = 12 on one idle core, so 20 networks of 400 steps, two at a time, take about 8 minutes.
    "laptop": dict(data_dir="", image_size=32, train_size=10000, test_size=10000, channels=12, nodes=12,
                   head_channels=128, stem_strides=[2, 1], generators=STUDY, seeds=5, steps=400, batch_size=64,
                   match_flops=True, augment=True, mixed_precision="no", channels_last=False, compile=False,
                   stats_nodes=32, stats_samples=100, damage_images=300, benchmark=False, bench_batch_size=4,
                   threads=1, workers=2),
    # Fig. 3 in full: every setting, 5 seeds. compile stays off for the grid: each network has
    # its own graph, so each would recompile; the benchmark measures compile separately.
    "full": dict(data_dir="", image_size=32, train_size=50000, test_size=10000, channels=32, nodes=32,
                 head_channels=512, stem_strides=[1, 1], generators=[graphs.label(*g) for g in graphs.FIG3_SETTINGS],
                 seeds=5, steps=300, batch_size=256, match_flops=True, augment=True, mixed_precision="bf16",
                 channels_last=True, compile=False, stats_nodes=32, stats_samples=200, damage_images=5000,
                 benchmark=True, bench_batch_size=64, threads=0, workers=1),
}
# dry: one thread, since on a shared 2-core machine OpenMP's spinning threads slow these small
# ops many times over (the full profile's threads=0 means torch's default).
TABLE["dry"] = dict(TABLE["full"], steps=2, train_size=256, test_size=128, batch_size=32, seeds=1,
                    generators=TABLE["full"]["generators"][:1], stats_samples=4, damage_images=8,
                    bench_batch_size=2, threads=1)

RANGES = {"image_size": (8, None), "train_size": (1, None), "test_size": (1, None), "channels": (2, None),
          "nodes": (2, None), "head_channels": (1, None), "seeds": (1, None), "steps": (1, None),
          "batch_size": (1, None), "stats_nodes": (2, None), "stats_samples": (1, None),
          "damage_images": (0, None), "bench_batch_size": (1, None), "threads": (0, None),
          "workers": (1, None)}
