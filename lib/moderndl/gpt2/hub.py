"""Loading GPT-2 checkpoints by hub name, gpt-2-simple alias or local folder.

Everything goes through the real ``transformers`` ``from_pretrained``: a hub name such as
``"gpt2"`` (OpenAI's 124M weights of Radford et al. 2019, Table 2), one of gpt-2-simple's
size aliases (``124M``, ``355M``, ``774M``, ``1558M``, and the legacy ``117M`` and ``345M``;
Woolf 2019), or a folder written by ``save_pretrained`` (our base checkpoint, a fine-tuning
run). A hub name whose files are not in the local cache, on a machine that cannot reach the
hub, fails within seconds (:func:`check_reachable`) with a message that names the alias and
suggests a local folder, instead of retrying the network for minutes.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# gpt-2-simple's download names -> the Hugging Face hub names of the same OpenAI weights;
# 117M and 345M are OpenAI's first names for the 124M and 355M models (corrected in 2019)
ALIASES = {"124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl",
           "117M": "gpt2", "345M": "gpt2-medium"}
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


class HubUnreachableError(OSError):
    """A hub name was asked for, its files are not cached, and the hub cannot be reached."""


def _offline_error(model_name: str | Path, target: str, reason: str) -> HubUnreachableError:
    alias = f"model_name={str(model_name)!r}" + (f" (hub name {target!r})" if str(model_name) != target else "")
    return HubUnreachableError(
        f"{alias} is not in the local Hugging Face cache and the hub cannot be reached ({reason}). "
        f"Pass a local folder instead: one written by save_pretrained, a copy of {target!r} downloaded on "
        f"another machine, or moderndl.gpt2.pretrain.base_checkpoint().")


def is_cached(target: str) -> bool:
    """Whether ``target``'s ``config.json`` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(target, "config.json")
    return isinstance(found, str)


def _offline_env() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_reachable(timeout: float = 3.0) -> str | None:
    """``None`` when the hub answers a TCP connection within ``timeout`` seconds, else the reason.

    Name resolution has no timeout of its own, so the probe runs in a daemon thread.
    """
    if _offline_env():
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as err:
            result.append(f"{host}:{port}: {type(err).__name__} {err}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return result[0] if result else f"{host}:{port}: no answer within {timeout:g} s"


def _require_hub(model_name: str | Path, target: str) -> None:
    """Fail fast when ``target`` is a hub name that is neither cached nor reachable."""
    if Path(target).is_dir() or is_cached(target):
        return
    reason = check_reachable()
    if reason is not None:
        raise _offline_error(model_name, target, reason)


def load_model(model_name: str | Path, *, dropout: float = 0.0, **kwargs: Any):
    """``GPT2LMHeadModel.from_pretrained`` on the resolved name; offline misses are a clear error."""
    from transformers import GPT2LMHeadModel

    target = resolve(model_name)
    _require_hub(model_name, target)
    overrides = {"resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}
    try:
        return GPT2LMHeadModel.from_pretrained(target, **overrides, **kwargs)
    except OSError as err:
        if Path(target).is_dir():
            raise OSError(f"model_name={str(model_name)!r} is a folder but holds no readable GPT-2 checkpoint "
                          f"(config.json and model.safetensors): {err}") from err
        raise _offline_error(model_name, target, f"{type(err).__name__}: {str(err).splitlines()[0]}") from err


def load_tokenizer(model_name: str | Path):
    """``GPT2TokenizerFast.from_pretrained`` on the resolved name (folder or hub)."""
    from transformers import GPT2TokenizerFast

    target = resolve(model_name)
    _require_hub(model_name, target)
    try:
        tokenizer = GPT2TokenizerFast.from_pretrained(target)
    except OSError as err:
        if Path(target).is_dir():
            raise OSError(f"model_name={str(model_name)!r} is a folder but holds no tokenizer: {err}") from err
        raise _offline_error(model_name, target, f"{type(err).__name__}: {str(err).splitlines()[0]}") from err
    if tokenizer.vocab_size == 0:  # transformers 5 returns an empty tokenizer for a folder without tokenizer files
        raise OSError(f"model_name={str(model_name)!r} is a folder but holds no tokenizer (tokenizer.json)")
    return tokenizer
