"""The fine-tuning dataset as gpt-2-simple reads it: a file, a folder, a glob, a CSV or an ``.npz``.

gpt-2-simple (Woolf 2019) accepts for ``dataset``:

- a text file, encoded whole;
- a folder (every file under it, in path order) or a glob pattern;
- a ``.csv`` with a header row: each row's first column becomes one document
  ``<|startoftext|>text<|endoftext|>``;
- an ``.npz`` of token arrays, written by :func:`encode_dataset` so that a large corpus is
  tokenised once.

Plain texts shorter than ``combine`` characters are joined (separated by ``<|endoftext|>``)
into one chunk before encoding; a chunk is encoded as one string. Training here draws windows
from all chunks laid end to end with ``<|endoftext|>`` between them (:func:`as_stream`),
where gpt-2-simple draws a window inside one chunk: with the default ``combine=50000`` the two
differ only in the few windows that would cross a chunk boundary.
"""

from __future__ import annotations

import csv
import glob
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moderndl.data import text as text_data

START, END = "<|startoftext|>", "<|endoftext|>"


def paths_of(dataset: str | Path) -> list[Path]:
    """The files a ``dataset`` argument names: a file, every file under a folder, or a glob."""
    path = Path(dataset).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"dataset {str(dataset)!r} is a folder with no files")
        return files
    files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not files:
        raise FileNotFoundError(f"dataset {str(dataset)!r}: no such file, folder or glob match; pass a text "
                                "file, a folder, a glob such as 'data/*.txt', a .csv or an .npz")
    return files


def csv_documents(path: Path) -> str:
    """One ``<|startoftext|>row<|endoftext|>`` line per row of a CSV's first column (header skipped)."""
    with path.open(encoding="utf-8", errors="replace", newline="") as fp:
        rows = list(csv.reader(fp))[1:]
    docs = "".join(f"{START}{row[0]}{END}\n" for row in rows if row)
    if not docs:
        raise ValueError(f"dataset {str(path)!r} has no rows after its header")
    return docs


def load_dataset(dataset: str | Path, tokenizer: Any, combine: int = 50_000) -> list[np.ndarray]:
    """Token chunks of ``dataset`` (gpt-2-simple's ``load_dataset``): a list of int arrays."""
    if isinstance(combine, bool) or not isinstance(combine, int) or combine < 0:
        raise ValueError(f"combine must be an int >= 0 (characters), got {combine!r}")
    chunks: list[np.ndarray] = []
    raw = ""

    def encode(text: str) -> np.ndarray:
        return np.asarray(tokenizer(text)["input_ids"], dtype=np.int64)

    for path in paths_of(dataset):
        if path.suffix == ".npz":
            with np.load(path) as npz:
                chunks.extend(np.asarray(npz[k], dtype=np.int64) for k in npz.files)
        elif path.suffix == ".csv":
            raw += csv_documents(path)
        else:
            raw += text_data.load_text_file(path)
            if len(raw) >= combine:
                chunks.append(encode(raw))
                raw = ""
            else:
                raw += END
    if raw:
        chunks.append(encode(raw))
    return chunks


def as_stream(chunks: list[np.ndarray], eos_token_id: int) -> torch.Tensor:
    """The chunks end to end, ``<|endoftext|>`` between them: ``(N,)`` int64."""
    parts: list[np.ndarray] = []
    for i, chunk in enumerate(chunks):
        if i:
            parts.append(np.asarray([eos_token_id], dtype=np.int64))
        parts.append(chunk)
    return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, dtype=torch.long)


def encode_dataset(dataset: str | Path, out_path: str | Path = "text_encoded.npz", *,
                   model_name: str | Path = "124M", combine: int = 50_000) -> Path:
    """Tokenise ``dataset`` once with ``model_name``'s tokenizer into an ``.npz`` (gpt-2-simple's
    ``encode_dataset``); pass the ``.npz`` as ``dataset`` later to skip the encoding."""
    from moderndl.gpt2 import hub

    chunks = load_dataset(dataset, hub.load_tokenizer(model_name), combine)
    out = Path(out_path).expanduser()
    np.savez_compressed(out, *chunks)
    return out
