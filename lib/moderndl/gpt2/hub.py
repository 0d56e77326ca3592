"""Loading GPT-2 checkpoints by hub name, gpt-2-simple alias or local folder.

Everything goes through the real ``transformers`` ``from_pretrained``: a hub name such as
``"gpt2"`` (OpenAI's 124M weights of Radford et al. 2019, Table 2), one of gpt-2-simple's
size aliases (``124M``, ``355M``, ``774M``, ``1558M``; Woolf 2019), or a folder written by
``save_pretrained`` (our base checkpoint, a fine-tuning run). Offline without cached
weights is an error that says so and points at a local folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# gpt-2-simple's download names -> the Hugging Face hub names of the same OpenAI weights
ALIASES = {"124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl"}
HUB_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")
SIZE_LIKE = re.compile(r"^\d+(\.\d+)?[MmBb]$")  # looks like a gpt-2-simple alias ("117M", "1.5B")


def resolve(model_name: str | Path) -> str:
    """The argument for ``from_pretrained``: a local folder, or a hub name (aliases mapped).

    An unknown alias, or a bare name that is neither a folder nor a GPT-2 hub name, is an
    error listing what is valid. Hub ids with an owner (``"org/name"``) are passed through.
    """
    path = Path(model_name).expanduser()
    if path.is_dir():
        return str(path)
    name = str(model_name)
    if name in ALIASES:
        return ALIASES[name]
    valid = (f"gpt-2-simple aliases {', '.join(ALIASES)}; hub names {', '.join(HUB_NAMES)} or 'owner/name'; "
             "or a local folder written by save_pretrained")
    if SIZE_LIKE.match(name):
        raise ValueError(f"unknown model alias model_name={name!r}; valid: {valid}")
    if name in HUB_NAMES or name.startswith("openai-community/"):
        return name
    if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
        return name
    raise ValueError(f"unknown model_name={name!r}: not a folder, alias or GPT-2 hub name; valid: {valid}")


def _offline_error(name: str, err: Exception) -> OSError:
    return OSError(
        f"could not load {name!r} with from_pretrained: its weights are not in the local Hugging Face cache "
        f"and the hub cannot be reached (offline, or HF_HUB_OFFLINE=1). Pass a local folder instead, for "
        f"example model_name=moderndl.gpt2.pretrain.base_checkpoint(), or a folder written by save_pretrained. "
        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")


def load_model(model_name: str | Path, *, dropout: float = 0.0, **kwargs: Any):
    """``GPT2LMHeadModel.from_pretrained`` on the resolved name; offline misses are a clear error."""
    from transformers import GPT2LMHeadModel

    target = resolve(model_name)
    overrides = {"resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}
    try:
        return GPT2LMHeadModel.from_pretrained(target, **overrides, **kwargs)
    except OSError as err:
        if Path(target).is_dir():
            raise OSError(f"model_name={str(model_name)!r} is a folder but holds no GPT-2 checkpoint: {err}") from err
        raise _offline_error(target, err) from err


def load_tokenizer(model_name: str | Path):
    """``GPT2TokenizerFast.from_pretrained`` on the resolved name (folder or hub)."""
    from transformers import GPT2TokenizerFast

    target = resolve(model_name)
    try:
        tokenizer = GPT2TokenizerFast.from_pretrained(target)
    except OSError as err:
        if Path(target).is_dir():
            raise OSError(f"model_name={str(model_name)!r} is a folder but holds no tokenizer: {err}") from err
        raise _offline_error(target, err) from err
    if tokenizer.vocab_size == 0:  # transformers 5 returns an empty tokenizer for a folder without tokenizer files
        raise OSError(f"model_name={str(model_name)!r} is a folder but holds no tokenizer (tokenizer.json)")
    return tokenizer
