"""A small GPT-2-architecture base checkpoint, built here: tokenizer, pretraining, cache.

The tests and the smoke profile cannot download OpenAI's weights, so the library makes a
stand-in with the same architecture and the same objective (Radford et al. 2019, Sec. 2,
Eq. 1, $\\min_\\theta -\\sum_t \\log p_\\theta(x_t \\mid x_{<t})$):

1. a byte-level BPE tokenizer (Sec. 2.2) trained with ``tokenizers`` on CPython's
   ``pydoc_data.topics``;
2. a small ``GPT2Config`` pretrained briefly on the same text through ``moderndl.train``;
3. ``save_pretrained`` of both into ``_build/artifacts/gpt2_base/<key>/``, where ``key`` hashes
   the :class:`BaseConfig` and the corpus, so the checkpoint is built once per machine and config.

The result is an ordinary Hugging Face folder: ``from_pretrained`` loads it like ``"gpt2"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from moderndl import paths, train
from moderndl.data import text as text_data
from moderndl.gpt2 import lm
from moderndl.gpt2.model import GPT, GPTConfig, configure_optimizer, to_hf
from moderndl.seed import set_seed

EOS = "<|endoftext|>"  # GPT-2's document separator (Sec. 2.2)


@dataclass(frozen=True)
class BaseConfig:
    """A local base model; the defaults are the smoke-scale one. A change to any field builds a
    new cached checkpoint."""

    vocab_size: int = 2048  # BPE merges + 256 bytes + <|endoftext|>; GPT-2 has 50,257
    n_positions: int = 128
    n_embd: int = 128
    n_layer: int = 2
    n_head: int = 4
    block_size: int = 64  # pretraining window
    batch_size: int = 16
    steps: int = 200
    lr: float = 2e-3  # small model, short run: a high peak, cosine decay to 10%
    warmup: int = 20
    seed: int = 0
    format: int = 1  # bump when the build recipe changes

    def key(self) -> str:
        """Hash of the fields and of the corpus (``pydoc_data`` differs between CPython versions)."""
        blob = json.dumps({**asdict(self), "corpus": text_data.fingerprint(text_data.pydoc_topics())},
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def model_config(self) -> GPTConfig:
        return GPTConfig(vocab_size=self.vocab_size, n_positions=self.n_positions, n_embd=self.n_embd,
                         n_layer=self.n_layer, n_head=self.n_head)


# The local base models by name (``model_name`` in the chapter): "pydoc-tiny" is built in
# seconds for tests and the smoke profile; "pydoc-small" is pretrained long enough to write
# readable pydoc-style English (the laptop profile; a few minutes on two CPU cores, then cached).
PRESETS = {
    "pydoc-tiny": BaseConfig(),
    "pydoc-small": BaseConfig(vocab_size=4096, n_positions=256, n_embd=160, n_layer=4, n_head=4, block_size=128,
                              batch_size=16, steps=300, lr=2e-3, warmup=30),
}


def preset(name: str, **overrides) -> BaseConfig:
    """``PRESETS[name]`` with ``overrides``; an unknown name is an error listing the presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown local base {name!r}; valid: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (Sec. 2.2) trained on ``texts``, as a ``GPT2TokenizerFast``.

    Built with ``tokenizer_object=``: in transformers 5, ``vocab_file=``/``merges_file=``
    silently give an empty tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = GPT2TokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS)
    if len(fast) != vocab_size:
        raise RuntimeError(f"trained tokenizer has {len(fast)} tokens, expected vocab_size={vocab_size}")
    return fast


def encode_documents(tokenizer, documents: list[str]) -> torch.Tensor:
    """Token ids of the documents, each followed by ``<|endoftext|>``: ``(N,)`` int64."""
    ids: list[int] = []
    for doc in documents:
        ids.extend(tokenizer(doc)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def pretrain(config: BaseConfig, tokens: torch.Tensor) -> tuple[GPT, list[dict]]:
    """Pretrain our compact GPT on ``tokens`` with AdamW, warmup and cosine decay (Eq. 1)."""
    set_seed(config.seed)
    model = GPT(config.model_config())
    optimizer = configure_optimizer(model, config.lr, weight_decay=0.1, betas=(0.9, 0.95))

    def lr_factor(t: int) -> float:  # linear warmup, then cosine to 10% of the peak
        if t < config.warmup:
            return (t + 1) / config.warmup
        progress = (t - config.warmup) / max(1, config.steps - config.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    sampler = lm.random_windows(tokens, config.block_size, config.batch_size, config.seed)
    loop_config = train.TrainConfig(steps=config.steps, log_every=25, grad_clip=1.0, desc="pretrain base", cpu=True)
    history, _ = train.fit(model, optimizer, lm.lm_loss, lambda t: sampler(t)[0], loop_config,
                           scheduler=scheduler)
    return model, history


def build(config: BaseConfig, out_dir: str | Path) -> Path:
    """Train the tokenizer and the model on ``pydoc_data.topics``; ``save_pretrained`` both."""
    from pydoc_data.topics import topics

    started = time.perf_counter()
    documents = [topics[k].strip() for k in sorted(topics)]
    tokenizer = train_tokenizer(documents, config.vocab_size)
    tokens = encode_documents(tokenizer, documents)  # (N,)
    model, history = pretrain(config, tokens)
    out = Path(out_dir)
    to_hf(model, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id).save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"config": asdict(config), "corpus": "pydoc_data.topics", "corpus_sha": text_data.fingerprint(
        text_data.pydoc_topics()), "tokens": len(tokens), "final_loss": history[-1]["loss"], "history": history,
        "build_s": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads()}
    (out / "pretrain.json").write_text(json.dumps(info, indent=1))
    return out


def base_checkpoint(config: BaseConfig | None = None, *, root: str | Path | None = None) -> Path:
    """The cached base checkpoint folder for ``config``; built on first use (atomic rename)."""
    config = config or BaseConfig()
    root = Path(root) if root is not None else paths.artifacts("gpt2_base")
    key = config.key()
    final = root / key
    if (final / "pretrain.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-{os.getpid()}-", dir=root))
    try:
        build(config, tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process finished first: use theirs
            if not (final / "pretrain.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def scratch_copy(base: str | Path, out_dir: str | Path, *, seed: int = 0) -> Path:
    """A randomly initialised model with ``base``'s architecture and tokenizer (the baseline).

    ``base`` is anything :mod:`moderndl.gpt2.hub` resolves: a folder, hub name or alias.
    """
    from transformers import GPT2Config

    from moderndl.gpt2 import hub

    hf_config = GPT2Config.from_pretrained(hub.resolve(base))
    tokenizer = hub.load_tokenizer(base)
    set_seed(seed)
    model = GPT(GPTConfig.from_hf(hf_config))
    out = Path(out_dir)
    eos = tokenizer.eos_token_id
    to_hf(model, bos_token_id=eos, eos_token_id=eos).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
