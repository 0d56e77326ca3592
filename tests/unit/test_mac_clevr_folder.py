"""The real-CLEVR loader on a tiny fake CLEVR_v1.0 folder: same interface, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from moderndl.mac import MACConfig, MACNetwork
from moderndl.mac.clevr_folder import family_of, load_clevr, load_frame

QUESTIONS = [
    ("Is there a big brown object of the same shape as the green thing?", "yes", 0,
     ["scene", "filter_color", "unique", "same_shape", "filter_size", "filter_color", "exist"], "exist"),
    ("How many cyan cubes are there?", "2", 0, ["scene", "filter_color", "filter_shape", "count"], "count"),
    ("What color is the sphere left of the cube?", "red", 1,
     ["scene", "filter_shape", "unique", "relate", "filter_shape", "unique", "query_color"], "relate"),
    ("What material is the small cylinder?", "metal", 1,
     ["scene", "filter_size", "filter_shape", "unique", "query_material"], "query"),
    ("Are there more spheres than cubes?", "no", 2,
     ["scene", "filter_shape", "count", "scene", "filter_shape", "count", "greater_than"], "compare"),
]


def make_clevr(root, split="val", drop_image=None):
    (root / "questions").mkdir(parents=True)
    (root / "images" / split).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        name = f"CLEVR_{split}_{i:06d}.png"
        if name != drop_image:
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "images" / split / name)
    records = [{"question": q, "answer": a, "image_filename": f"CLEVR_{split}_{img:06d}.png",
                "program": [{"function": f} for f in program]} for q, a, img, program, _ in QUESTIONS]
    (root / "questions" / f"CLEVR_{split}_questions.json").write_text(json.dumps({"questions": records}))
    return root


def test_loads_with_the_generated_world_interface(tmp_path):
    data = load_clevr(make_clevr(tmp_path / "CLEVR_v1.0"), "val", image_size=32)
    assert data.images.shape == (3, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.scene.tolist() == [0, 0, 1, 1, 2]
    assert [data.family_names[f] for f in data.families] == [q[4] for q in QUESTIONS]
    assert [data.answer_vocab[a] for a in data.answers] == [q[1] for q in QUESTIONS]
    assert data.hops.tolist() == [0, 0, 1, 0, 0] and data.objects is None and data.refs is None
    tokens, lengths = data.encode()
    model = MACNetwork(MACConfig(num_words=len(data.word_vocab), num_classes=len(data.answer_vocab), image_size=32,
                                 d=8, p=2, embed_dim=4, stem_channels=4, stem_layers=2, dropout=0.0))
    assert model(data.images[data.scene], tokens, lengths).shape == (5, len(data.answer_vocab))


def test_family_of_programs():
    for *_, program, family in QUESTIONS:
        assert family_of([{"function": f} for f in program])[0] == family


def test_missing_question_file_is_named(tmp_path):
    root = make_clevr(tmp_path / "CLEVR_v1.0", split="val")
    with pytest.raises(FileNotFoundError, match=r"not a CLEVR folder: missing questions/CLEVR_train_questions.json"):
        load_clevr(root, "train")


def test_missing_image_is_named(tmp_path):
    root = make_clevr(tmp_path / "CLEVR_v1.0", drop_image="CLEVR_val_000001.png")
    with pytest.raises(FileNotFoundError, match="missing image images/val/CLEVR_val_000001.png"):
        load_clevr(root, "val")


def test_not_a_folder_and_not_clevr(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clevr(tmp_path / "nowhere")
    (tmp_path / "photos").mkdir()
    with pytest.raises(FileNotFoundError, match="not a CLEVR folder"):
        load_clevr(tmp_path / "photos")
    bad = tmp_path / "bad"
    (bad / "questions").mkdir(parents=True)
    (bad / "questions" / "CLEVR_val_questions.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a CLEVR questions file"):
        load_clevr(bad)


def test_test_split_without_answers_is_an_error(tmp_path):
    root = make_clevr(tmp_path / "CLEVR_v1.0", split="test")
    path = root / "questions" / "CLEVR_test_questions.json"
    records = json.loads(path.read_text())["questions"]
    for r in records:
        del r["answer"]
    path.write_text(json.dumps({"questions": records}))
    with pytest.raises(ValueError, match=r"lacks \['answer'\]"):
        load_clevr(root, "test")


def test_whole_frame_is_resized_not_cropped(tmp_path):
    """A 480 x 320 CLEVR frame with coloured corner blocks keeps all four corners at 32 x 32."""
    frame = np.full((320, 480, 3), 128, dtype=np.uint8)
    corners = {(0, 0): (255, 0, 0), (0, 1): (0, 255, 0), (1, 0): (0, 0, 255), (1, 1): (255, 255, 0)}
    for (row, col), color in corners.items():
        frame[row * 240:row * 240 + 80, col * 400:col * 400 + 80] = color  # 80-px blocks in the corners
    Image.fromarray(frame).save(tmp_path / "frame.png")
    x = load_frame(tmp_path / "frame.png", 32)  # (3, 32, 32)
    assert x.shape == (3, 32, 32)
    for (row, col), color in corners.items():
        pixel = x[:, 2 + row * 28, 2 + col * 28].tolist()  # well inside each corner block after resizing
        assert all(abs(a - b) <= 8 for a, b in zip(pixel, color, strict=True)), (row, col, pixel)
