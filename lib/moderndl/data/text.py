"""Text corpora without downloads: a user's file, CPython's bundled docs, installed licenses.

- :func:`load_text_file`: the user's own text file (the gpt-2-simple ``dataset`` argument).
- :func:`pydoc_topics`: the pretraining corpus, CPython's ``pydoc_data.topics`` (the
  language reference and library topics behind ``help()``, about 465 kB of technical prose
  interleaved with code).
- :func:`license_texts`: the fine-tuning corpus, the license, copyright and notice files that
  every installed distribution ships in its ``*.dist-info`` folder (legal English written by
  people: warranties, conditions, attributions), deduplicated by paragraph.
- :func:`split_text`: a contiguous train / held-out split at a paragraph boundary.
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

LICENSE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.IGNORECASE)


def load_text_file(path: str | Path, *, encoding: str = "utf-8") -> str:
    """Read a user's text file; a missing, unreadable or empty file is an error naming it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"dataset {str(path)!r}: no such file; pass the path of a UTF-8 text file")
    try:
        text = file.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise ValueError(f"dataset {str(path)!r} is not {encoding} text ({err.reason} at byte {err.start})") from err
    if not text.strip():
        raise ValueError(f"dataset {str(path)!r} is empty; it needs some text to fine-tune on")
    return text


def pydoc_topics() -> str:
    """CPython's ``pydoc_data.topics``: every help topic, joined in sorted key order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics))


def license_texts(*, max_chars: int | None = None) -> str:
    """The license/notice files of every installed distribution, unique paragraphs only.

    Distributions are visited in name order and files in path order, so the corpus is a
    function of the installed (pinned) environment. Identical paragraphs (the same MIT or
    Apache text shipped by many packages) are kept once, so the held-out part is not a
    verbatim copy of the training part.
    """
    seen: set[str] = set()
    paragraphs: list[str] = []
    dists = sorted(metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower())
    for dist in dists:
        for file in sorted(dist.files or [], key=str):
            if not LICENSE_FILE.search(str(file)):
                continue
            try:
                text = Path(dist.locate_file(file)).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for para in re.split(r"\n\s*\n", text):
                key = " ".join(para.split())
                if len(key) >= 20 and key not in seen:  # skip separators and bare names
                    seen.add(key)
                    paragraphs.append(para.strip("\n"))
    corpus = "\n\n".join(paragraphs)
    if not corpus:
        raise RuntimeError("no license texts found in the installed distributions")
    return corpus[:max_chars] if max_chars is not None else corpus


def split_text(text: str, held_out_fraction: float = 0.1) -> tuple[str, str]:
    """``(train, held_out)``: the last ``held_out_fraction`` of the text, cut at a paragraph.

    A contiguous split (rather than random windows) keeps held-out paragraphs unseen.
    """
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    cut = int(len(text) * (1.0 - held_out_fraction))
    boundary = text.find("\n\n", cut)
    cut = boundary if boundary != -1 else cut
    return text[:cut], text[cut:].lstrip("\n")


def fingerprint(text: str) -> str:
    """A short SHA-256 of the text, for the ledger: which exact corpus a result used."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
