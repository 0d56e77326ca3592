"""A style measure: which corpus does a text read like?

A character n-gram logistic regression (scikit-learn's ``TfidfVectorizer(analyzer="char_wb")``
and ``LogisticRegression``) is trained to tell pretraining text (label 0) from fine-tuning text
(label 1), on chunks of about the length of a generated sample. Its accuracy on held-out chunks
says whether the two styles are separable at all; applied to a model's samples, the fraction
labelled 1 is the share written in the fine-tuning style. A change of style by fine-tuning
shows as that fraction moving from near 0 (base model) to near 1 (fine-tuned model).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np


def chunks(text: str, size: int, *, limit: int | None = None, seed: int = 0) -> list[str]:
    """Non-overlapping chunks of ``size`` characters cut at spaces; ``limit`` draws that many."""
    out, i = [], 0
    while i + size <= len(text):
        j = text.rfind(" ", i + size // 2, i + size)
        j = j if j != -1 else i + size
        out.append(text[i:j].strip())
        i = j
    out = [c for c in out if c]
    if limit is not None and len(out) > limit:
        out = random.Random(seed).sample(out, limit)
    return out


@dataclass
class StyleClassifier:
    """A fitted pipeline and its held-out accuracy."""

    pipeline: Any
    accuracy: float  # on held-out chunks of both corpora
    n_train: int

    def fraction_target(self, texts: list[str]) -> float:
        """Share of ``texts`` classified as the fine-tuning (target) style."""
        if not texts:
            raise ValueError("no texts to classify")
        return float(np.mean(self.pipeline.predict(texts)))


def fit(source: str, target: str, *, chunk_chars: int = 400, per_class: int = 400, seed: int = 0,
        test_fraction: float = 0.25) -> StyleClassifier:
    """Train on chunks of ``source`` (label 0) and ``target`` (label 1); score on held-out chunks."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    a = chunks(source, chunk_chars, limit=per_class, seed=seed)
    b = chunks(target, chunk_chars, limit=per_class, seed=seed)
    x, y = a + b, [0] * len(a) + [1] * len(b)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    pipe = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
                         LogisticRegression(max_iter=1000, C=4.0))
    pipe.fit(x_train, y_train)
    return StyleClassifier(pipe, float(pipe.score(x_test, y_test)), len(x_train))
