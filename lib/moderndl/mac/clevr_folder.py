"""Real CLEVR from a user's folder, behind the same ``VQAData`` interface as the generated world.

Johnson et al. (2017), "CLEVR: A Diagnostic Dataset for Compositional Language and
Elementary Visual Reasoning", arXiv:1612.06890. The CLEVR_v1.0 layout::

    CLEVR_v1.0/questions/CLEVR_<split>_questions.json   {"questions": [{"question", "answer",
                                                          "image_filename", "program", ...}]}
    CLEVR_v1.0/images/<split>/CLEVR_<split>_000000.png ...

Questions are mapped to this chapter's families by their program's last function
(``exist``, ``count``, ``equal_*``/``greater_than``/``less_than`` -> compare, ``query_*`` ->
query, or relate when the program contains a ``relate``). Nothing is downloaded: the user
points to a copy they have. CLEVR ships no masks, so ``objects`` and ``refs`` are ``None``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from moderndl.mac.world import FAMILIES, PAD, UNK, VQAData, tokenize

LAYOUT = "questions/CLEVR_<split>_questions.json and images/<split>/*.png (the CLEVR_v1.0 layout)"


def family_of(program: list[dict]) -> tuple[str, int]:
    """The chapter family of a CLEVR program, and its number of ``relate`` hops."""
    functions = [str(node.get("function", node.get("type", ""))) for node in program]
    last = functions[-1] if functions else ""
    hops = sum(f.startswith("relate") for f in functions)
    if last in ("exist", "count"):
        return last, hops
    if last.startswith("equal") or last in ("greater_than", "less_than"):
        return "compare", hops
    if last.startswith("query"):
        return ("relate" if hops else "query"), hops
    raise ValueError(f"CLEVR program ending in {last!r} has no family; functions: {functions}")


def load_frame(path: str | Path, size: int) -> torch.Tensor:
    """The whole frame resized to ``(3, size, size)`` uint8, never cropped.

    CLEVR's frames are 480 x 320 and questions refer to objects anywhere in them; a square
    centre crop would cut off a sixth on each side. The paper's pipeline also resizes the
    whole frame (to 224 x 224 for ResNet-101), changing its aspect ratio.
    """
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.uint8)  # (size, size, 3)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, size, size)


def _questions_file(root: Path, split: str) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"CLEVR folder {root} does not exist; expected {LAYOUT}")
    path = root / "questions" / f"CLEVR_{split}_questions.json"
    if not path.is_file():
        found = sorted(p.name for p in (root / "questions").glob("CLEVR_*_questions.json")) \
            if (root / "questions").is_dir() else []
        raise FileNotFoundError(f"{root} is not a CLEVR folder: missing {path.relative_to(root)} "
                                f"(found {found or 'no question files'}); expected {LAYOUT}")
    return path


def load_clevr(root: str | Path, split: str = "val", *, image_size: int = 64, limit: int | None = None,
               word_vocab: tuple[str, ...] | None = None, answer_vocab: tuple[str, ...] | None = None) -> VQAData:
    """Questions (up to ``limit``) and their whole frames, resized to ``image_size``, as ``VQAData``.

    Vocabularies are built from the loaded questions unless given (pass the training
    split's to encode validation questions; unknown words then fail in ``VQAData.encode``).
    """
    root = Path(root).expanduser()
    path = _questions_file(root, split)
    try:
        records = json.loads(path.read_text())["questions"][:limit]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a CLEVR questions file (needs a 'questions' list): {err}") from err
    if not records:
        raise ValueError(f"{path} holds no questions")
    image_dir = root / "images" / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{root} is not a CLEVR folder: missing images/{split}/; expected {LAYOUT}")
    for q, rec in enumerate(records):
        missing = [k for k in ("question", "answer", "image_filename") if k not in rec]
        if missing:
            raise ValueError(f"{path}: question {q} lacks {missing} (the CLEVR test split has no answers)")

    files = sorted({rec["image_filename"] for rec in records})
    for name in files:
        if not (image_dir / name).is_file():
            raise FileNotFoundError(f"CLEVR folder {root} is missing image images/{split}/{name}")
    scene_of = {name: i for i, name in enumerate(files)}
    images = torch.stack([load_frame(image_dir / name, image_size) for name in files])  # (S, 3, size, size)

    families, hops = zip(*(family_of(rec.get("program", [])) if rec.get("program") else ("query", 0)
                           for rec in records), strict=True)
    if word_vocab is None:
        word_vocab = (PAD, UNK, *sorted({w for rec in records for w in tokenize(rec["question"])}))
    if answer_vocab is None:
        answer_vocab = tuple(sorted({str(rec["answer"]) for rec in records}))
    answer_index = {a: i for i, a in enumerate(answer_vocab)}
    unknown = sorted({str(r["answer"]) for r in records} - set(answer_index))
    if unknown:
        raise ValueError(f"answers {unknown[:5]} are not in the answer vocabulary of {len(answer_vocab)} answers")
    return VQAData(
        images=images,
        scene=torch.tensor([scene_of[rec["image_filename"]] for rec in records]),
        questions=tuple(rec["question"] for rec in records),
        answers=torch.tensor([answer_index[str(rec["answer"])] for rec in records]),
        families=torch.tensor([FAMILIES.index(f) for f in families]),
        hops=torch.tensor(hops),
        answer_vocab=tuple(answer_vocab),
        word_vocab=tuple(word_vocab),
    )
