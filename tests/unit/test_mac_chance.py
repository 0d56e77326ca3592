"""Blind baselines against hand counts: question types, chance given the type, the text lookup."""

from __future__ import annotations

import torch

from moderndl.mac.chance import question_type, seen_texts, text_lookup, type_majority
from moderndl.mac.world import FAMILIES, VQAData


def vqa(questions, answers, families):
    vocab = ("yes", "no", "red", "blue", "small", "large")
    return VQAData(images=torch.zeros(1, 3, 16, 16, dtype=torch.uint8), scene=torch.zeros(len(questions),
                   dtype=torch.int64), questions=tuple(questions),
                   answers=torch.tensor([vocab.index(a) for a in answers]),
                   families=torch.tensor([FAMILIES.index(f) for f in families]),
                   hops=torch.zeros(len(questions), dtype=torch.int64), answer_vocab=vocab, word_vocab=("<pad>",))


def test_question_types():
    assert question_type("what color is the thing left of the red circle ?", "relate") == "relate:color"
    assert question_type("does the red circle have the same size as the square ?", "compare") == "compare:same_size"
    assert question_type("are there fewer circles than squares ?", "compare") == "compare:fewer"
    assert question_type("are there the same number of circles and squares ?", "compare") == "compare:same_number"
    assert question_type("is there a red square ?", "exist") == "exist"


def test_type_majority_and_text_lookup_against_hand_counts():
    train = vqa(["what color is the circle ?", "what color is the circle ?", "what color is the square ?",
                 "what size is the square ?", "is there a red square ?", "is there a red square ?",
                 "is there a circle ?"],
                ["red", "red", "blue", "small", "no", "no", "yes"],
                ["query", "query", "query", "query", "exist", "exist", "exist"])
    test = vqa(["what color is the square ?", "what color is the triangle ?", "what size is the circle ?",
                "is there a circle ?", "is there a blue thing ?"],
               ["blue", "blue", "large", "yes", "yes"], ["query", "query", "query", "exist", "exist"])
    vocab = train.answer_vocab
    # type majorities: query:color -> red (2 of 3), query:size -> small, exist -> no (2 of 3)
    assert [vocab[a] for a in type_majority(train, test)] == ["red", "red", "small", "no", "no"]
    # the lookup knows "what color is the square ?" (blue) and "is there a circle ?" (yes)
    assert [vocab[a] for a in text_lookup(train, test)] == ["blue", "red", "small", "yes", "no"]
    assert seen_texts(train, test) == 2 / 5
