"""The deduplicated split, the prompt, readability, the style classifier and dataset reading."""

import numpy as np
import pytest

from moderndl.gpt2 import corpus, dataset, style


class WordTokenizer:
    """A stand-in tokenizer: one id per character (enough to check chunking and joins)."""

    eos_token_id = 0

    def __call__(self, text):
        return {"input_ids": [ord(c) % 250 + 1 for c in text]}


def _para(i, extra=""):
    return f"Paragraph {i} says something only paragraph number {i} ever says {extra}" * 3


def test_split_holds_out_no_shared_phrase():
    shared = "THE SOFTWARE IS PROVIDED AS IS WITHOUT WARRANTY OF ANY KIND EXPRESS OR IMPLIED"
    paras = [_para(i) for i in range(40)] + [_para(100 + i, shared) for i in range(20)]
    sp = corpus.split("\n\n".join(paras), 0.25, seed=1, min_chars=10)
    held = corpus.paragraphs(sp.held_out)
    assert held and sp.moved > 0  # some of the drawn boilerplate paragraphs went back to training
    train_8 = corpus.shingles(sp.train, 8)
    assert all(not (corpus.shingles(p, 8) & train_8) for p in held)
    assert sorted(corpus.paragraphs(sp.train) + held) == sorted(paras)  # nothing lost or duplicated


def test_shared_prefix_and_novel_prompt():
    assert corpus.longest_shared_prefix("abcdefghij" * 3, "xx" + "abcdefghij" * 2) == 20
    assert corpus.novel_prompt(["Permission is", "Each contributor"], "permission is granted") == "Each contributor"
    with pytest.raises(ValueError, match="every candidate"):
        corpus.novel_prompt(["a"], "a")


def test_readability_counts_letter_words_in_the_vocabulary():
    vocab = corpus.vocabulary("The cat sat on the mat.")
    assert vocab == {"the", "cat", "sat", "on", "mat"}
    # words: the, cat, zzq, mat (x1 and a_b are not letters-only) -> 3 of 4 known
    assert corpus.readability(["The cat, zzq x1 a_b (mat)."], vocab) == pytest.approx(0.75)


def test_style_classifier_separates_two_registers():
    rng = np.random.default_rng(0)
    code_words = ["def", "return", "lambda", "import", "class", "self", "yield", "None"]
    law_words = ["licensee", "warranty", "hereby", "liability", "notice", "granted", "shall", "copyright"]
    a = " ".join(rng.choice(code_words, 4000))
    b = " ".join(rng.choice(law_words, 4000))
    clf = style.fit(a, b, chunk_chars=120, per_class=100)
    assert clf.accuracy == 1.0
    assert clf.fraction_target(style.chunks(b[:2000], 120)) == 1.0
    assert clf.fraction_target(style.chunks(a[:2000], 120)) == 0.0


def test_dataset_folder_glob_csv_and_npz(tmp_path):
    tok = WordTokenizer()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("alpha")
    (tmp_path / "d" / "b.txt").write_text("beta")
    # two short files are combined into one chunk, separated by <|endoftext|>
    chunks = dataset.load_dataset(tmp_path / "d", tok, combine=100)
    assert len(chunks) == 1
    assert chunks[0].tolist() == tok("alpha<|endoftext|>beta<|endoftext|>")["input_ids"]
    # combine=1: each file is its own chunk
    assert len(dataset.load_dataset(str(tmp_path / "d" / "*.txt"), tok, combine=1)) == 2
    csv = tmp_path / "rows.csv"
    csv.write_text('text,label\n"first, row",1\nsecond,0\n')
    joined = "<|startoftext|>first, row<|endoftext|>\n<|startoftext|>second<|endoftext|>\n"
    assert dataset.load_dataset(csv, tok)[0].tolist() == tok(joined)["input_ids"]
    npz = tmp_path / "enc.npz"
    np.savez(npz, np.arange(5), np.arange(3))
    got = dataset.load_dataset(npz, tok)
    assert [c.tolist() for c in got] == [[0, 1, 2, 3, 4], [0, 1, 2]]
    assert dataset.as_stream(got, 9).tolist() == [0, 1, 2, 3, 4, 9, 0, 1, 2]
    with pytest.raises(FileNotFoundError, match="no such file, folder or glob"):
        dataset.paths_of(tmp_path / "nothing*.txt")
