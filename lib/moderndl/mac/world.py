"""A procedurally generated CLEVR-like world: 2D scenes, their objects, pixels and words.

CLEVR (Johnson et al. 2017, "CLEVR: A Diagnostic Dataset for Compositional Language and
Elementary Visual Reasoning", arXiv:1612.06890) is 18 GB of rendered 3D scenes. This module
and :mod:`moderndl.mac.questions` build a small stand-in with the same ingredients,
generated in seconds on a CPU:

- here: scenes of objects that vary in shape, colour, size and position, rendered to RGB
  images, each object's parameters (hence its mask and box), and the vocabularies;
- in ``questions``: templated questions of five program families with balanced answers.

Like CLEVR's renderer, the world keeps objects apart: centres are at least ``spacing``
cells of the knowledge-base grid (``resolution`` x ``resolution``) apart, so no two objects
share a cell at the resolution the model reads. The task is supervised classification,
$\\min_\\theta \\mathbb{E}_{(I, q, a)}[-\\log p_\\theta(a \\mid I, q)]$.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import torch

FAMILIES = ("query", "exist", "count", "compare", "relate")
ATTRIBUTES = ("size", "color", "shape")  # the order words take in a phrase: "large red circle"
RELATIONS = ("left of", "right of", "closest to")
PAD, UNK = "<pad>", "<unk>"
# CLEVR's eight colours (its render script's RGB values).
RGB = {"gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
       "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51)}
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "thing": "things"}


@dataclass(frozen=True)
class WorldConfig:
    """The world's vocabulary and scale; defaults are CLEVR's attributes in 2D."""

    image_size: int = 64
    colors: tuple[str, ...] = tuple(RGB)  # CLEVR's 8 colours
    shapes: tuple[str, ...] = ("circle", "square", "triangle")  # CLEVR: sphere, cube, cylinder
    sizes: tuple[str, ...] = ("small", "large")  # CLEVR's two sizes
    min_objects: int = 3  # CLEVR: 3 to 10 objects
    max_objects: int = 6
    max_hops: int = 3  # relate chains of 1..max_hops relations
    max_count: int = 3  # count answers 0..max_count (larger counts are rejected)
    families: tuple[str, ...] = FAMILIES
    questions_per_scene: int = 10  # CLEVR has about 10 questions per image
    radii: tuple[float, float] = (0.08, 0.13)  # small / large radius as a fraction of image_size (fits 6 objects)
    cells: int = 0  # > 0: centres snap to a cells x cells grid, one object per cell (an easier world)
    resolution: int = 8  # the knowledge-base grid the answers must be clear at: 64 px / 8 = 8-px cells
    spacing: float = 1.0  # min distance between centres, in knowledge-base cells (CLEVR: min_dist)
    margin: float = 0.4  # min lead of a relation's answer over the runner-up, in cells (CLEVR: margin)

    def __post_init__(self):
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if self.max_objects > len(self.colors) * len(self.shapes) * len(self.sizes):
            raise ValueError(f"max_objects={self.max_objects} exceeds the distinct objects of this world")
        bad = [c for c in self.colors if c not in RGB] + [s for s in self.shapes if s not in PLURAL]
        if bad:
            raise ValueError(f"unknown colours/shapes {bad}; valid colours {tuple(RGB)}, shapes {tuple(PLURAL)[:3]}")
        unknown = sorted(set(self.families) - set(FAMILIES))
        if unknown or not self.families:
            raise ValueError(f"families {self.families!r} must be a non-empty subset of {FAMILIES}")
        if self.max_hops < 1:
            raise ValueError(f"max_hops must be >= 1, got {self.max_hops}")
        if self.cells and (self.cells**2 < self.max_objects or self.image_size % self.cells):
            raise ValueError(f"cells={self.cells} must divide image_size={self.image_size} and hold max_objects")
        if not isinstance(self.resolution, int) or not 1 <= self.resolution <= self.image_size:
            raise ValueError(f"resolution={self.resolution!r} must be an int in [1, image_size={self.image_size}]")
        if self.spacing < 0 or self.margin < 0:
            raise ValueError(f"spacing={self.spacing} and margin={self.margin} must be >= 0 (knowledge-base cells)")

    @property
    def cell(self) -> float:
        """Side of one knowledge-base cell in pixels."""
        return self.image_size / self.resolution

    def values(self, attribute: str) -> tuple[str, ...]:
        return {"color": self.colors, "shape": self.shapes, "size": self.sizes}[attribute]


@dataclass(frozen=True)
class VQAData:
    """Questions about images, shared by the generated world and the real-CLEVR loader.

    ``images[scene[q]]`` is question ``q``'s image. ``objects`` rows are
    ``(shape, color, size, x, y, radius)`` (indices into ``attributes``, pixels), ``-1`` rows
    are absent; ``refs[q, o]`` marks the objects question ``q`` refers to, and ``chains[q]``
    lists a relate question's objects in the order of its program (the anchor first). All three
    are ``None`` for real CLEVR (it ships no masks).
    """

    images: torch.Tensor  # (S, 3, H, W) uint8
    scene: torch.Tensor  # (Q,) int64
    questions: tuple[str, ...]
    answers: torch.Tensor  # (Q,) int64, indices into answer_vocab
    families: torch.Tensor  # (Q,) int64, indices into family_names
    hops: torch.Tensor  # (Q,) int64, relation hops (0 when none)
    answer_vocab: tuple[str, ...]
    word_vocab: tuple[str, ...]  # PAD at 0, UNK at 1
    family_names: tuple[str, ...] = FAMILIES
    attributes: dict = field(default_factory=dict)  # {"shape": (...), "color": (...), "size": (...)}
    objects: torch.Tensor | None = None  # (S, O, 6) float32
    refs: torch.Tensor | None = None  # (Q, O) bool
    chains: tuple[tuple[int, ...], ...] | None = None  # relate: the anchor, then each hop's object

    def __len__(self) -> int:
        return len(self.questions)

    def encode(self, unknown: str = "error") -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(Q, T)`` (PAD = 0) and lengths ``(Q,)``; see :func:`encode`."""
        return encode(self.questions, self.word_vocab, unknown=unknown)


def tokenize(text: str) -> list[str]:
    """Lower-case words and the punctuation CLEVR uses: ``"Is it red?" -> [is, it, red, ?]``."""
    return re.findall(r"[a-z0-9]+|[?;,]", text.lower())


def encode(questions, word_vocab, *, unknown: str = "error") -> tuple[torch.Tensor, torch.Tensor]:
    """Map questions to ids ``(Q, T)`` and lengths ``(Q,)``.

    ``unknown="error"`` raises on a word not in ``word_vocab``; ``unknown="unk"`` maps it to UNK.
    """
    if unknown not in ("error", "unk"):
        raise ValueError(f"unknown={unknown!r}; valid: 'error', 'unk'")
    index = {w: i for i, w in enumerate(word_vocab)}
    rows = []
    for q, text in enumerate(questions):
        ids = []
        for word in tokenize(text):
            if word not in index:
                if unknown == "error":
                    raise ValueError(f"question token {word!r} (question {q}: {text!r}) is not in the vocabulary "
                                   f"of {len(word_vocab)} words; pass unknown='unk' to map it to {UNK}")
                word = UNK
            ids.append(index[word])
        rows.append(ids)
    if not rows or not all(rows):
        raise ValueError("every question needs at least one token")
    lengths = torch.tensor([len(r) for r in rows])  # (Q,)
    tokens = torch.zeros(len(rows), int(lengths.max()), dtype=torch.int64)  # (Q, T), PAD = 0
    for q, r in enumerate(rows):
        tokens[q, : len(r)] = torch.tensor(r)
    return tokens, lengths


def vocabularies(world: WorldConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fixed word and answer vocabularies of a world (independent of the seed)."""
    words = set("what is the are there how many a any ? does have same as more fewer than number of and thing things "
                "left right closest to color shape size".split())
    words |= set(world.colors) | set(world.sizes) | set(world.shapes) | {PLURAL[s] for s in world.shapes}
    answers = ["yes", "no", *[str(k) for k in range(world.max_count + 1)], *world.colors, *world.shapes, *world.sizes]
    return (PAD, UNK, *sorted(words)), tuple(answers)


# -- scenes ------------------------------------------------------------------------
def radius(world: WorldConfig, size: int) -> float:
    """Object radius in pixels, from ``world.radii``."""
    return world.image_size * world.radii[0 if world.sizes[size] == "small" else 1]


def sample_scenes(world: WorldConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, max_objects, 6)`` rows ``(shape, color, size, x, y, r)``; distinct objects, apart."""
    out = np.full((n, world.max_objects, 6), -1.0, dtype=np.float32)
    combos = len(world.shapes) * len(world.colors) * len(world.sizes)
    s, gap = world.image_size, world.spacing * world.cell
    for i in range(n):
        k = int(rng.integers(world.min_objects, world.max_objects + 1))
        kinds = rng.choice(combos, size=k, replace=False)  # distinct (shape, color, size) triples
        placed: list[tuple[float, float, float]] = []
        for j, kind in enumerate(kinds):
            shape, rest = divmod(int(kind), len(world.colors) * len(world.sizes))
            color, size = divmod(rest, len(world.sizes))
            r = radius(world, size)
            if world.cells:  # one object per free cell, centred in it
                cell = s / world.cells
                taken = {int(py // cell) * world.cells + int(px // cell) for px, py, _ in placed}  # row * cells + col
                free = [c for c in range(world.cells**2) if c not in taken]
                row, col = divmod(int(rng.choice(free)), world.cells)
                placed.append(((col + 0.5) * cell, (row + 0.5) * cell, r))
                out[i, j] = (shape, color, size, *placed[-1])
                continue
            for _ in range(100):  # rejection: no overlap, and centres at least `spacing` cells apart
                x, y = rng.uniform(r + 1, s - r - 1, size=2)
                if all((x - px) ** 2 + (y - py) ** 2 > max(r + pr + 1, gap) ** 2 for px, py, pr in placed):
                    break
            else:
                break  # scene is full: keep the objects placed so far
            placed.append((x, y, r))
            out[i, j] = (shape, color, size, x, y, r)
    return out


def object_masks(objects: torch.Tensor | np.ndarray, shapes: tuple[str, ...], image_size: int) -> torch.Tensor:
    """Per-object boolean masks ``(S, O, H, W)`` from object rows ``(S, O, 6)``."""
    obj = np.asarray(objects, dtype=np.float32)
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float32) + 0.5  # (H, W) pixel centres
    S, O = obj.shape[:2]
    masks = np.zeros((S, O, image_size, image_size), dtype=bool)
    for name_idx, name in enumerate(shapes):
        sel = obj[..., 0] == name_idx  # (S, O)
        if not sel.any():
            continue
        x, y, r = (obj[sel][:, c, None, None] for c in (3, 4, 5))  # each (N, 1, 1)
        dx, dy = xx[None] - x, yy[None] - y  # (N, H, W)
        if name == "circle":
            m = dx**2 + dy**2 <= r**2
        elif name == "square":
            m = (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)  # 0.85: similar area to the circle
        else:  # triangle pointing up, inscribed in the circle of radius r
            m = (dy <= r * 0.5) & (dy >= -r + 2 * np.abs(dx) * 0.866)
        masks[sel] = m
    return torch.from_numpy(masks)


def render(world: WorldConfig, objects: np.ndarray) -> torch.Tensor:
    """RGB images ``(S, 3, H, W)`` uint8: a light background, objects painted in order."""
    S, O = objects.shape[:2]
    masks = object_masks(objects, world.shapes, world.image_size).numpy()  # (S, O, H, W)
    img = np.full((S, world.image_size, world.image_size, 3), 200, dtype=np.uint8)  # (S, H, W, 3)
    palette = np.array([RGB[c] for c in world.colors], dtype=np.uint8)  # (C, 3)
    for o in range(O):
        present = objects[:, o, 0] >= 0  # (S,)
        colors = palette[np.clip(objects[:, o, 1].astype(int), 0, None)]  # (S, 3)
        m = masks[:, o] & present[:, None, None]  # (S, H, W)
        img[m] = np.broadcast_to(colors[:, None, None, :], img.shape)[m]
    return torch.from_numpy(img).permute(0, 3, 1, 2).contiguous()  # (S, 3, H, W)


def boxes(objects: torch.Tensor) -> torch.Tensor:
    """Bounding boxes ``(S, O, 4)`` as ``(x0, y0, x1, y1)`` pixels from object rows."""
    x, y, r = objects[..., 3], objects[..., 4], objects[..., 5]
    return torch.stack([x - r, y - r, x + r, y + r], dim=-1)  # (S, O, 4)


# -- helpers -----------------------------------------------------------------------
def subsets(items: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Non-empty subsets of ``items``, smallest first, in ``items`` order."""
    return [c for k in range(1, len(items) + 1) for c in combinations(items, k)]
