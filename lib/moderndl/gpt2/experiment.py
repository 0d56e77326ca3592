"""The chapter's experiment: fine-tune a base model on license texts and measure what changed.

Used by the notebook step by step and by ``python -m moderndl.gpt2`` as one call
(:func:`run`). What is measured (Radford et al. 2019, Sec. 2, Eq. 1 for perplexity):

- held-out perplexity of base and fine-tuned model on a deduplicated split
  (:func:`moderndl.gpt2.corpus.split`), and at every snapshot along fine-tuning;
- the style of their samples, by a character n-gram classifier (:mod:`moderndl.gpt2.style`);
- the readability of the base model's samples: the share of their words found in the
  pretraining vocabulary (:func:`moderndl.gpt2.corpus.readability`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from moderndl import paths
from moderndl.data import text
from moderndl.gpt2 import api, corpus, hub, lm, pretrain, runs, sampling, style

HELD_OUT_FRACTION = 0.2  # of the long paragraphs; deduplication moves some back to training
PROMPTS = ["The recipient of this work may", "Each contributor agrees that", "Nothing in this notice"]


@dataclass
class Corpora:
    pretrain: str
    train: str
    held_out: str
    split: corpus.Split
    prompt: str  # occurs nowhere in the fine-tuning training text


def corpora(seed: int = 0) -> Corpora:
    """Pretraining text, and the license texts split into training and deduplicated held-out text."""
    licenses = text.license_texts()
    sp = corpus.split(licenses, HELD_OUT_FRACTION, seed=seed)
    return Corpora(text.pydoc_topics(), sp.train, sp.held_out, sp, corpus.novel_prompt(PROMPTS, sp.train))


@dataclass
class Base:
    folder: Path | str
    name: str  # what was asked for
    note: str  # why a different base is used, or ""
    build_s: float | None  # one-off pretraining cost of a local base (from its pretrain.json)
    info: dict[str, Any]


def base_model(model_name: str, *, offline_base: str, base_steps: int, root: Path | None = None) -> Base:
    """The base checkpoint: a local preset (built once, cached), or a hub model; without the
    hub, the local ``offline_base`` with a note saying why."""
    note = ""
    if model_name not in pretrain.PRESETS:
        try:
            hub.load_tokenizer(model_name)  # fails within seconds when the hub is unreachable
            return Base(model_name, model_name, "", None, {})
        except hub.HubUnreachableError as err:
            note = f"{err} Falling back to the local base {offline_base!r}."
            model_name_local = offline_base
    else:
        model_name_local = model_name
    folder = pretrain.base_checkpoint(pretrain.preset(model_name_local, steps=base_steps), root=root)
    info = json.loads((folder / "pretrain.json").read_text())
    return Base(folder, model_name, note, info.get("build_s"), info)


def held_out_ppl(model: Any, tokens: torch.Tensor, *, block_size: int, max_windows: int) -> float:
    return lm.perplexity(model, tokens, block_size=block_size, max_windows=max_windows)


def ppl_over_steps(run_dir: Path, tokens: torch.Tensor, *, block_size: int, max_windows: int,
                   device: torch.device) -> list[tuple[int, float]]:
    """Held-out perplexity of every ``step-NNNNNN`` snapshot of a run, in step order."""
    out = []
    for snap in sorted(p for p in run_dir.iterdir() if runs.SNAPSHOT.match(p.name)):
        model, _ = api.load(snap)
        step = int(runs.SNAPSHOT.match(snap.name).group(1))
        out.append((step, held_out_ppl(model.to(device), tokens, block_size=block_size, max_windows=max_windows)))
    return sorted(out)


def samples(model: Any, tokenizer: Any, n: int, length: int, *, temperature: float = 0.8, prompt: str | None = None,
            seed: int = 0) -> list[str]:
    """``n`` samples of ``length`` tokens (KV-cached), unconditional or after ``prompt``."""
    device = next(model.parameters()).device
    ids = tokenizer(prompt)["input_ids"] if prompt else [tokenizer.eos_token_id]
    idx = torch.tensor([ids] * n, dtype=torch.long, device=device)  # (n, T0)
    g = torch.Generator(device=device).manual_seed(seed)
    out = sampling.sample(model, idx, length, temperature=temperature, generator=g)  # (n, T0 + length)
    texts = [tokenizer.decode(row[len(ids):].tolist()) for row in out]
    return [(prompt + t) if prompt else t for t in texts]


def as_cell(sample: str, limit: int = 600) -> str:
    """A sample as one line of a Markdown table: document breaks shown as a pilcrow, emphasis
    characters escaped."""
    body = re.sub(r"\s*<\|endoftext\|>\s*", " ¶ ", sample[:limit]).replace("\n", " ")
    return re.sub(r"([*_`<>#\[\]])", r"\\\1", body)


def clean(sample: str) -> str:
    """A sample as one text for the classifier: ``<|endoftext|>`` marks become blank lines."""
    return re.sub(r"\s*<\|endoftext\|>\s*", "\n\n", sample).strip()


def run(s: Any, led: Any, seed: int) -> dict[str, Any]:
    """The experiment outside the notebook: base, fine-tuning, perplexity, style; claims into ``led``."""
    data = corpora(seed)
    work = paths.artifacts("gpt2_finetune")
    base = base_model(s.model_name, offline_base=s.offline_base, base_steps=s.base_steps)
    model, tokenizer = api.load(base.folder)
    model = model.to(s.device)
    block = min(s.block_size, model.config.n_positions)
    held = torch.tensor(tokenizer(data.held_out)["input_ids"])
    dataset = work / "licenses_train.txt"
    from accelerate.state import PartialState

    if PartialState().is_main_process:
        dataset.write_text(data.train)
    PartialState().wait_for_everyone()
    ppl_base = held_out_ppl(model, held, block_size=block, max_windows=s.eval_windows)
    ft = api.finetune(dataset, base.folder, s.steps, run_name="licenses", checkpoint_dir=work / "checkpoint",
                      restore_from="fresh", overwrite=True, batch_size=s.batch_size,
                      accumulate_gradients=s.accumulate_gradients, block_size=block, learning_rate=s.lr,
                      sample_every=0, save_every=0, print_every=max(1, s.steps // 5), seed=seed,
                      cpu=s.device.type == "cpu")
    tuned, _ = api.load(ft.run_dir)
    tuned = tuned.to(s.device)
    ppl_ft = held_out_ppl(tuned, held, block_size=block, max_windows=s.eval_windows)
    clf = style.fit(data.pretrain, data.train, seed=seed)
    shares = {name: clf.fraction_target([clean(t) for t in samples(m, tokenizer, s.style_samples, s.sample_length,
                                                                  seed=seed)])
              for name, m in (("base", model), ("finetuned", tuned))}
    led.record("ppl_base", ppl_base)
    led.record("ppl_finetuned", ppl_ft)
    led.record("style_share", shares)
    led.claim("finetune_lowers_ppl", "Fine-tuning lowers held-out perplexity on the deduplicated split",
              round(ppl_ft / ppl_base, 4), holds=ppl_ft < ppl_base, tolerance="ratio < 1")
    return {"ppl_base": ppl_base, "ppl_finetuned": ppl_ft, "style_share": shares, "run_dir": str(ft.run_dir)}
