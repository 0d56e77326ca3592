"""The text corpora: sizes, the split, and the errors for a user's file."""

import pytest

from moderndl.data import text


def test_license_corpus_is_large_unique_prose():
    corpus = text.license_texts()
    assert len(corpus.encode()) >= 100_000
    paragraphs = [" ".join(p.split()) for p in corpus.split("\n\n")]
    assert len(set(paragraphs)) == len(paragraphs)
    assert "WARRANT" in corpus.upper()


def test_pydoc_corpus():
    corpus = text.pydoc_topics()
    assert len(corpus) > 300_000 and "for" in corpus


def test_split_is_contiguous_at_a_paragraph():
    body = "\n\n".join(f"paragraph {i} " * 5 for i in range(100))
    train, held = text.split_text(body, 0.1)
    assert body.startswith(train) and body.endswith(held)
    assert held.startswith("paragraph") and 0.05 < len(held) / len(body) < 0.15
    with pytest.raises(ValueError, match="held_out_fraction"):
        text.split_text(body, 1.0)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        text.load_text_file(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        text.load_text_file(empty)
