"""GPT-2 fine-tuning, the gpt-2-simple workflow (Radford et al. 2019; Woolf 2019).

- ``api``: :func:`finetune` and :func:`generate`, with gpt-2-simple's parameters.
- ``model``: a compact nanoGPT-style GPT-2 that loads any Hugging Face GPT-2 checkpoint.
- ``lm``: the language-modelling loss, window sampler and perplexity; ``sampling``: decoding.
- ``hub``: ``from_pretrained`` by hub name, alias or folder; ``pretrain``: the local base model.
- ``bench``: GPU throughput and MFU against ``GPT2LMHeadModel``.
"""

from moderndl.gpt2.api import FinetuneResult, finetune, generate, load, save_pretrained
from moderndl.gpt2.hub import ALIASES

__all__ = ["ALIASES", "FinetuneResult", "finetune", "generate", "load", "save_pretrained"]
