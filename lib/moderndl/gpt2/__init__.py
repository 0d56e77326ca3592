"""GPT-2 fine-tuning, the gpt-2-simple workflow (Radford et al. 2019; Woolf 2019).

- ``api``: :func:`finetune`, :func:`generate`, :func:`load_gpt2`, :func:`generate_to_file`,
  with gpt-2-simple's parameters; ``runs``: run folders, restoring and snapshots;
  ``dataset``: files, folders, globs, CSV and ``.npz`` datasets, ``encode_dataset``.
- ``model``: a compact nanoGPT-style GPT-2 that loads any Hugging Face GPT-2 checkpoint, with
  a KV cache for decoding.
- ``lm``: the language-modelling loss, window sampler and perplexity; ``sampling``: decoding.
- ``hub``: ``from_pretrained`` by hub name, alias or folder, failing fast offline;
  ``pretrain``: the local base models.
- ``corpus``, ``style``, ``experiment``: the chapter's split, measures and experiment.
- ``bench``: training throughput and MFU against ``GPT2LMHeadModel``, decoding speed against
  its ``generate``; ``scales``: the profiles.
"""

from moderndl.gpt2.api import (
    FinetuneResult,
    LoadedModel,
    finetune,
    generate,
    generate_to_file,
    load,
    load_gpt2,
    save_pretrained,
)
from moderndl.gpt2.dataset import encode_dataset
from moderndl.gpt2.hub import ALIASES

__all__ = ["ALIASES", "FinetuneResult", "LoadedModel", "encode_dataset", "finetune", "generate", "generate_to_file",
           "load", "load_gpt2", "save_pretrained"]
