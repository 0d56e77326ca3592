"""The chapter's two corpora, split so that held-out text is really unseen.

- Pretraining: CPython's ``pydoc_data.topics`` (:func:`moderndl.data.text.pydoc_topics`).
- Fine-tuning: the license and notice files of the installed distributions
  (:func:`moderndl.data.text.license_texts`), deduplicated by paragraph.

License texts repeat themselves: the same warranty disclaimer opens many files with small
changes. A contiguous split therefore leaves held-out paragraphs whose first sentences occur
verbatim in the training part, and perplexity on them measures memorisation. :func:`split`
assigns paragraphs at random (seeded) and then moves to the training part every held-out
paragraph that shares any run of ``shingle`` consecutive words with it, so no held-out
paragraph repeats a ``shingle``-word phrase of the training text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

WORD = re.compile(r"\S+")


def paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs (blank-line separated), stripped of surrounding newlines."""
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def shingles(text: str, n: int) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive whitespace-separated words, case-folded."""
    words = [w.lower() for w in WORD.findall(text)]
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Split:
    train: str
    held_out: str
    moved: int  # held-out paragraphs moved to training because they shared a phrase with it
    held_out_paragraphs: int


def split(text: str, held_out_fraction: float = 0.1, *, seed: int = 0, shingle: int = 8,
          min_chars: int = 200) -> Split:
    """``held_out_fraction`` of the paragraphs of at least ``min_chars`` characters, drawn with
    ``seed``, held out unless they share a ``shingle``-word phrase with the rest."""
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    paras = paragraphs(text)
    candidates = [i for i, p in enumerate(paras) if len(p) >= min_chars]
    rng = random.Random(seed)
    held = set(rng.sample(candidates, round(held_out_fraction * len(candidates))))
    train_shingles: set[tuple[str, ...]] = set()
    for i, p in enumerate(paras):
        if i not in held:
            train_shingles |= shingles(p, shingle)
    moved = {i for i in held if shingles(paras[i], shingle) & train_shingles}
    # moving a paragraph adds its phrases to the training side: repeat until nothing more moves
    while moved:
        held -= moved
        for i in moved:
            train_shingles |= shingles(paras[i], shingle)
        newly = {i for i in held if shingles(paras[i], shingle) & train_shingles}
        if not newly:
            break
        moved |= newly
    n_moved = round(held_out_fraction * len(candidates)) - len(held)
    train = "\n\n".join(p for i, p in enumerate(paras) if i not in held)
    held_out = "\n\n".join(paras[i] for i in sorted(held))
    return Split(train, held_out, n_moved, len(held))


def longest_shared_prefix(paragraph: str, train: str, *, step: int = 10) -> int:
    """Characters at the start of ``paragraph`` found verbatim in ``train`` (to ``step``)."""
    n = 0
    while n + step <= len(paragraph) and paragraph[: n + step] in train:
        n += step
    return n


def novel_prompt(candidates: list[str], train: str) -> str:
    """The first candidate that occurs nowhere in ``train`` (case-insensitive)."""
    low = train.lower()
    for c in candidates:
        if c.lower() not in low:
            return c
    raise ValueError(f"every candidate prompt occurs in the training text: {candidates}")


def vocabulary(text: str) -> set[str]:
    """Lower-cased words made of letters only (the reference for :func:`readability`)."""
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


def letter_words(text: str) -> list[str]:
    """The whitespace-separated words of ``text`` that are letters only once their leading and
    trailing punctuation is stripped (``"hello,"`` counts, ``"x1"`` and ``"a_b"`` do not)."""
    out = []
    for w in WORD.findall(text):
        core = w.strip(".,;:!?\"'()[]{}`*-")
        if core.isascii() and core.isalpha():
            out.append(core.lower())
    return out


def readability(texts: list[str], vocab: set[str]) -> float:
    """Share of the letters-only words of ``texts`` that occur in ``vocab``."""
    words = [w for t in texts for w in letter_words(t)]
    if not words:
        raise ValueError("the texts hold no letters-only words")
    return sum(w in vocab for w in words) / len(words)
