"""The chapter's profiles: smoke (CI), laptop (the published book), full (one GPU), dry.

- ``model_name``: a local base (``pydoc-tiny``, ``pydoc-small``; see ``pretrain.PRESETS``),
  pretrained here for ``base_steps`` steps and cached, or anything ``from_pretrained`` takes.
  Without the hub, ``full`` falls back to ``offline_base``.
- ``steps``, ``batch_size`` (global), ``accumulate_gradients``, ``block_size``, ``lr``:
  fine-tuning; ``lr`` is gpt-2-simple's ``learning_rate``. ``full`` keeps gpt-2-simple's
  recipe (Adam at 1e-4, batch 1, five micro-batches, 1024-token windows).
- ``eval_every``: a snapshot every this many steps, scored for held-out perplexity.
- ``sample_length``, ``style_samples``: tokens per sample, samples per model for the style
  and readability measures.
- ``gen_tokens``: new tokens per sequence in the decoding benchmark (0: skip).
- ``benchmark``: the training-throughput comparison, ``"124M"``, ``"tiny"`` or ``"off"``.
"""

TABLE = {
    "smoke": {"threads": 1, "model_name": "pydoc-tiny", "offline_base": "pydoc-tiny", "base_steps": 150,
              "steps": 30, "batch_size": 8, "accumulate_gradients": 1, "block_size": 64, "lr": 1e-3,
              "eval_every": 10, "eval_windows": 48, "sample_length": 48, "style_samples": 8, "gen_tokens": 0,
              "benchmark": "off"},
    "laptop": {"threads": 1, "model_name": "pydoc-small", "offline_base": "pydoc-small", "base_steps": 300,
               "steps": 120, "batch_size": 8, "accumulate_gradients": 1, "block_size": 128, "lr": 1e-3,
               "eval_every": 20, "eval_windows": 64, "sample_length": 96, "style_samples": 24,
               "gen_tokens": 192, "benchmark": "off"},
    "full": {"threads": 0, "model_name": "gpt2", "offline_base": "pydoc-small", "base_steps": 300, "steps": 100,
             "batch_size": 1, "accumulate_gradients": 5, "block_size": 1024, "lr": 1e-4, "eval_every": 20,
             "eval_windows": 64, "sample_length": 200, "style_samples": 24, "gen_tokens": 192,
             "benchmark": "124M"},
}
# dry: the full profile's code paths on CPU, with only steps and sizes cut, on one thread (two
# threads of small ops on a busy 2-core machine spin-wait: many times the CPU time)
TABLE["dry"] = dict(TABLE["full"], offline_base="pydoc-tiny", base_steps=150, steps=2, block_size=64, eval_every=1,
                    eval_windows=4, sample_length=16, style_samples=4, gen_tokens=16, benchmark="tiny", threads=1)

RANGES = {
    "base_steps": (1, None), "steps": (1, None), "batch_size": (1, None), "accumulate_gradients": (1, None),
    "block_size": (2, 1024), "lr": (0.0, None), "eval_every": (1, None), "eval_windows": (1, None),
    "sample_length": (1, 1024), "style_samples": (2, None), "gen_tokens": (0, 1024), "threads": (0, None),
}
