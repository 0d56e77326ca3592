"""What the question text alone can answer: chance given the question type, and a blind lookup.

CLEVR (Johnson et al. 2017, arXiv:1612.06890, Sec. 4.1) measures its dataset's bias with
blind baselines. A family's majority answer is the wrong yardstick when the question names
what it asks: "what color is ..." has 8 possible answers, "what size is ..." 2. So chance is
taken *given the question type* $\\tau(q)$ (family and asked attribute or comparison):

$$\\mathrm{chance}_f = \\frac{1}{|T_f|}\\sum_{q \\in T_f} [\\hat a(\\tau(q)) = a_q], \\qquad
\\hat a(\\tau) = \\arg\\max_a \\#\\{q' \\in \\mathrm{train}: \\tau(q') = \\tau, a_{q'} = a\\} .$$

The *text lookup* goes further: it answers each test question with the majority training
answer of the very same question text (falling back to its type's majority when the text
is new). No model of the question does better than the best text-to-answer table over the
training questions by more than what generalises across texts.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import torch

from moderndl.mac.world import VQAData


def question_type(text: str, family: str) -> str:
    """The family and what it asks: ``query:color``, ``compare:more``, ``exist``, ..."""
    text = text.lower()
    if m := re.match(r"what (\w+) is", text):
        return f"{family}:{m.group(1)}"
    if m := re.search(r"the same (\w+) as", text):
        return f"{family}:same_{m.group(1)}"
    for kind in ("more", "fewer", "same number"):
        if f"are there {kind}" in text or f"are there the {kind}" in text:
            return f"{family}:{kind.replace(' ', '_')}"
    return family


def _majority(groups: dict[str, Counter]) -> dict[str, int]:
    return {k: c.most_common(1)[0][0] for k, c in groups.items()}


def _types(data: VQAData) -> list[str]:
    return [question_type(t, data.family_names[int(f)]) for t, f in zip(data.questions, data.families, strict=True)]


def type_majority(train: VQAData, test: VQAData) -> torch.Tensor:
    """Predictions ``(Q,)`` on ``test``: the majority training answer of each question's type."""
    groups: dict[str, Counter] = defaultdict(Counter)
    for kind, a in zip(_types(train), train.answers.tolist(), strict=True):
        groups[kind][a] += 1
    best, fallback = _majority(groups), Counter(train.answers.tolist()).most_common(1)[0][0]
    return torch.tensor([best.get(kind, fallback) for kind in _types(test)])


def text_lookup(train: VQAData, test: VQAData) -> torch.Tensor:
    """Predictions ``(Q,)``: the majority training answer of the same question text, else of its type."""
    groups: dict[str, Counter] = defaultdict(Counter)
    for text, a in zip(train.questions, train.answers.tolist(), strict=True):
        groups[text][a] += 1
    best, by_type = _majority(groups), type_majority(train, test)
    return torch.tensor([best.get(text, int(by_type[q])) for q, text in enumerate(test.questions)])


def seen_texts(train: VQAData, test: VQAData) -> float:
    """The fraction of test questions whose exact text occurs among the training questions."""
    known = set(train.questions)
    return sum(t in known for t in test.questions) / max(1, len(test))
