"""The ZeRO chapter's profiles: one row of settings per scale (see :mod:`moderndl.profiles`).

- ``kind``, ``sizes`` (MLP, unused by the transformer) or ``width``, ``layers``, ``heads``,
  ``seq_len`` (transformer): the workload every method trains; ``batch_size`` is the global batch.
- ``n_ds``: data-parallel degrees measured for memory, traffic and trajectory; ``dtypes``:
  float32 (exact Adam reference) and bfloat16 (2-byte states, as the paper's fp16).
- ``bucket_numel``: the reduce bucket of stages 0-2, about a quarter of the laptop model (so
  the whole model is never one bucket), DeepSpeed's ``reduce_bucket_size``.
- ``methods``, ``rounds``, ``repeats``: the side-by-side run on ``max(n_ds)`` ranks and its
  interleaved timing rounds.
- ``ds_n_d``, ``ds_stages``: the DeepSpeed launch (empty stages skip it).
- ``offload_*``: the GPU-only ZeRO-Offload run (full profile); ``offload_toy`` runs the same
  accelerate + DeepSpeed path on CPU at toy size (dry), where no GPU is needed.
"""

from moderndl.zero.libraries import METHODS

TABLE = {
    # A tiny transformer (about 42k parameters, largest layer 8.4k): many layers, each a small
    # share of the model, as in the models ZeRO is for.
    "smoke": dict(kind="transformer", sizes=[64, 10], width=32, layers=2, heads=4, seq_len=16, batch_size=8,
                  steps=3, n_ds=[2], dtypes=["float32", "bfloat16"], bucket_numel=10_000,
                  methods=list(METHODS), rounds=2, repeats=2, ds_n_d=2, ds_stages=[1, 2, 3],
                  offload_params=1.5e9, offload_gpu_cap_gb=16.0, offload_toy=False, threads=1),
    # About 10.8M parameters (6 blocks of width 384); layers from 768 (LayerNorms) up to 591k.
    "laptop": dict(kind="transformer", sizes=[64, 10], width=384, layers=6, heads=6, seq_len=32, batch_size=8,
                   steps=3, n_ds=[4], dtypes=["float32", "bfloat16"], bucket_numel=3_000_000,
                   methods=list(METHODS), rounds=3, repeats=2, ds_n_d=4, ds_stages=[1, 2, 3],
                   offload_params=1.5e9, offload_gpu_cap_gb=16.0, offload_toy=False, threads=1),
    # GPT-2-small width with 12 blocks (about 86M parameters), 8 gloo ranks; the offload run
    # trains 1.5B parameters in a 16 GB cap, which plain Adam (24 GB of states) cannot.
    "full": dict(kind="transformer", sizes=[64, 10], width=768, layers=12, heads=12, seq_len=64, batch_size=16,
                 steps=5, n_ds=[2, 4, 8], dtypes=["float32", "bfloat16"], bucket_numel=20_000_000,
                 methods=list(METHODS), rounds=5, repeats=3, ds_n_d=4, ds_stages=[1, 2, 3],
                 offload_params=1.5e9, offload_gpu_cap_gb=16.0, offload_toy=True, threads=1),
}
# The full settings, cut to run on CPU in under a minute: a tiny transformer, two ranks, one
# step, one timing round; the offload path runs at toy size through accelerate's DeepSpeed
# plugin. No DeepSpeed launch: its code does not depend on the profile, the smoke run launches
# all three stages (the unit tests stages 1 and 3), and its launcher alone (three Python
# start-ups before the ranks) would take a third of the minute.
TABLE["dry"] = dict(TABLE["full"], width=32, layers=1, heads=4, seq_len=8, batch_size=4, steps=1, n_ds=[2],
                    bucket_numel=4_000, rounds=1, repeats=1, ds_n_d=2, ds_stages=[], offload_params=2e5)
RANGES = {"steps": (1, None), "batch_size": (1, None), "bucket_numel": (1, None), "rounds": (1, None),
          "repeats": (1, None), "ds_n_d": (1, None), "width": (1, None), "layers": (1, None), "heads": (1, None),
          "seq_len": (2, None), "threads": (0, None)}
