"""Question templates of the CLEVR-like world, and answer-balanced rejection sampling.

Each family follows a CLEVR program shape (Johnson et al. 2017, arXiv:1612.06890, Sec. 3):

- ``query``:   ``query_attr(unique(filter(scene)))``       "what color is the large circle ?"
- ``exist``:   ``exist(filter(scene))``                     "is there a red square ?"
- ``count``:   ``count(filter(scene))``                     "how many small things are there ?"
- ``compare``: ``equal_attr(query(a), query(b))`` or ``greater/less/equal(count(a), count(b))``
- ``relate``:  ``query_attr(relate^h(unique(filter(scene))))`` with h = 1..max_hops
  "what shape is the thing left of the thing closest to the blue circle ?"

Balance (CLEVR Sec. 3, rejection sampling): within each family $f$ the answers cycle through
a fixed target list, so $\\max_a \\hat P(a \\mid f) \\le \\tfrac12$ for yes/no families and less for
the others; relate questions also cycle through the hop counts $1..H$, so each chain length
is $1/H$ of them. A filter names at most the attributes it needs; a referring expression
("the blue circle") names a random subset of attributes that picks out exactly one object,
never the queried one.

Relations are functions, and unambiguous at the knowledge-base resolution (CLEVR's renderer
enforces a margin the same way): ``left of X`` is the nearest object whose centre lies left
of X's, ``right of X`` likewise, ``closest to X`` the object with the nearest centre; the
answer must lead the runner-up by ``WorldConfig.margin`` cells, and no object may sit within
that margin of X's column for left and right.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch

from moderndl.mac.world import (
    ATTRIBUTES,
    FAMILIES,
    PLURAL,
    RELATIONS,
    VQAData,
    WorldConfig,
    render,
    sample_scenes,
    subsets,
    vocabularies,
)

Obj = tuple[int, int, int, float, float]  # (shape, color, size, x, y)
COLUMN = {"shape": 0, "color": 1, "size": 2}


@dataclass(frozen=True)
class Row:
    """One generated question: its scene, text, answer, family, hops and referenced objects."""

    scene: int
    text: str
    answer: str
    family: str
    hops: int
    refs: tuple[int, ...]


class QuestionMaker:
    """Draws questions on a fixed set of scenes with a seeded ``random.Random``."""

    def __init__(self, world: WorldConfig, objects: np.ndarray, rng: random.Random):
        self.world, self.rng = world, rng
        self.scenes: list[list[Obj]] = [
            [tuple(int(v) for v in row[:3]) + (float(row[3]), float(row[4])) for row in scene if row[0] >= 0]
            for scene in objects
        ]
        self._options: dict[tuple[int, int, str | None], list[tuple[str, ...]]] = {}
        self.draw = {"query": self.query, "exist": self.exist, "count": self.count, "compare": self.compare,
                     "relate": self.relate}

    def targets(self, family: str) -> list[str]:
        """The answers a family cycles through (Sec. 3 of CLEVR: rejection sampling to balance answers)."""
        w = self.world
        if family in ("exist", "compare"):
            return ["yes", "no"]
        if family == "count":
            return [str(k) for k in range(w.max_count + 1)]
        return [*w.colors, *w.shapes, *w.sizes]

    def make(self, counts: dict[str, int], max_tries: int = 2000) -> list[Row]:
        rows = []
        for family, n in counts.items():
            targets = self.targets(family)
            if family in ("query", "relate"):  # attribute uniform, then value uniform: no answer dominates
                per = math.lcm(*(len(self.world.values(a)) for a in ATTRIBUTES))
                targets = [v for a in ATTRIBUTES for v in self.world.values(a)
                           for _ in range(per // len(self.world.values(a)))]
            hops = list(range(1, self.world.max_hops + 1)) if family == "relate" else [0]
            order = [(h, t) for h in hops for t in targets]  # relate: every hop count equally often
            for k in range(n):
                if k % len(order) == 0:
                    self.rng.shuffle(order)
                h, target = order[k % len(order)]
                rows.append(self._until(family, target, h, max_tries))
        return rows

    def _until(self, family: str, target: str, hops: int, max_tries: int) -> Row:
        for _ in range(max_tries):
            s = self.rng.randrange(len(self.scenes))
            row = (self.relate(s, self.scenes[s], target, hops) if family == "relate"
                   else self.draw[family](s, self.scenes[s], target))
            if row is not None and row.answer == target:
                return row
        raise RuntimeError(f"no {family!r} question with answer {target!r} ({hops} hops) in {max_tries} draws; "
                           f"the world {self.world} cannot produce it often enough")

    # -- phrases ---------------------------------------------------------------------
    def _name(self, attrs: dict[str, int], plural: bool = False) -> str:
        w = self.world
        words = [w.sizes[attrs["size"]]] if "size" in attrs else []
        words += [w.colors[attrs["color"]]] if "color" in attrs else []
        noun = w.shapes[attrs["shape"]] if "shape" in attrs else "thing"
        return " ".join([*words, PLURAL[noun] if plural else noun])

    def _filter(self, scene: list[Obj]) -> dict[str, int]:
        """A random filter of one or two attributes, often taken from an object present."""
        attrs = self.rng.choice([a for a in subsets(ATTRIBUTES) if len(a) <= 2])
        source = self.rng.choice(scene) if self.rng.random() < 0.5 else None
        return {a: (source[COLUMN[a]] if source else self.rng.randrange(len(self.world.values(a)))) for a in attrs}

    @staticmethod
    def _matching(scene: list[Obj], f: dict[str, int]) -> list[int]:
        return [i for i, o in enumerate(scene) if all(o[COLUMN[a]] == v for a, v in f.items())]

    def _refer(self, scene: list[Obj], i: int, exclude: str | None = None) -> str | None:
        """A referring expression naming object ``i`` uniquely without ``exclude``; ``None`` if none."""
        key = (id(scene), i, exclude)
        if key not in self._options:  # the attribute subsets that single out object i
            self._options[key] = [a for a in subsets(tuple(a for a in ATTRIBUTES if a != exclude))
                                  if self._matching(scene, {b: scene[i][COLUMN[b]] for b in a}) == [i]]
        options = self._options[key]
        if not options:
            return None
        attrs = self.rng.choice(options)
        return self._name({a: scene[i][COLUMN[a]] for a in attrs})

    def _value(self, obj: Obj, attribute: str) -> str:
        return self.world.values(attribute)[obj[COLUMN[attribute]]]

    def _attribute_of(self, target: str) -> str:
        return next(a for a in ATTRIBUTES if target in self.world.values(a))

    # -- families ----------------------------------------------------------------------
    def query(self, s: int, scene: list[Obj], target: str) -> Row | None:
        attribute = self._attribute_of(target)
        candidates = [i for i, o in enumerate(scene) if self._value(o, attribute) == target]
        if not candidates:
            return None
        i = self.rng.choice(candidates)
        ref = self._refer(scene, i, exclude=attribute)
        if ref is None:
            return None
        return Row(s, f"what {attribute} is the {ref} ?", target, "query", 0, (i,))

    def exist(self, s: int, scene: list[Obj], target: str) -> Row | None:
        f = self._filter(scene)
        hits = self._matching(scene, f)
        return Row(s, f"is there a {self._name(f)} ?", "yes" if hits else "no", "exist", 0, tuple(hits))

    def count(self, s: int, scene: list[Obj], target: str) -> Row | None:
        f = self._filter(scene)
        hits = self._matching(scene, f)
        if len(hits) > self.world.max_count:
            return None
        return Row(s, f"how many {self._name(f, plural=True)} are there ?", str(len(hits)), "count", 0, tuple(hits))

    def compare(self, s: int, scene: list[Obj], target: str) -> Row | None:
        if self.rng.random() < 0.5:  # compare attributes: equal_attr(query(a), query(b))
            if len(scene) < 2:
                return None
            i, j = self.rng.sample(range(len(scene)), 2)
            attribute = self.rng.choice(ATTRIBUTES)
            ri, rj = self._refer(scene, i, exclude=attribute), self._refer(scene, j, exclude=attribute)
            if ri is None or rj is None:
                return None
            same = scene[i][COLUMN[attribute]] == scene[j][COLUMN[attribute]]
            text = f"does the {ri} have the same {attribute} as the {rj} ?"
            return Row(s, text, "yes" if same else "no", "compare", 0, (i, j))
        fa, fb = self._filter(scene), self._filter(scene)  # compare numbers: greater / less / equal counts
        if fa == fb:
            return None
        a, b = self._matching(scene, fa), self._matching(scene, fb)
        pa, pb = self._name(fa, plural=True), self._name(fb, plural=True)
        kind = self.rng.randrange(3)
        text = [f"are there more {pa} than {pb} ?", f"are there fewer {pa} than {pb} ?",
                f"are there the same number of {pa} and {pb} ?"][kind]
        truth = [len(a) > len(b), len(a) < len(b), len(a) == len(b)][kind]
        return Row(s, text, "yes" if truth else "no", "compare", 0, tuple(sorted(set(a) | set(b))))

    def relate(self, s: int, scene: list[Obj], target: str, hops: int | None = None) -> Row | None:
        if len(scene) < 2:
            return None
        hops = self.rng.randint(1, self.world.max_hops) if hops is None else hops
        anchor = self.rng.randrange(len(scene))
        chain, relations = [anchor], []
        margin = self.world.margin * self.world.cell
        for _ in range(hops):  # each hop: a relation with a clear answer that does not loop back
            options = [(rel, nxt) for rel in RELATIONS
                       if (nxt := _relate(scene, chain[-1], rel, margin)) is not None and nxt not in chain]
            if not options:
                return None
            relation, nxt = self.rng.choice(options)
            chain.append(nxt)
            relations.append(relation)
        attribute = self._attribute_of(target)
        answer = self._value(scene[chain[-1]], attribute)
        ref = self._refer(scene, anchor) if answer == target else None
        if ref is None:
            return None
        phrase = f"the {ref}"
        for relation in relations:
            phrase = f"the thing {relation} {phrase}"
        return Row(s, f"what {attribute} is {phrase} ?", answer, "relate", hops, tuple(chain))


def _relate(scene: list[Obj], i: int, relation: str, margin: float = 1e-6) -> int | None:
    """The object ``relation`` object ``i``: nearest to its left / right, or closest overall.

    ``None`` when there is none, or when the answer is not clear by ``margin`` pixels: the
    runner-up is within ``margin`` of it, or (left / right) an object's centre is within
    ``margin`` of X's column, so that whether it is left or right is unclear.
    """
    x, y = scene[i][3], scene[i][4]
    if relation == "closest to":
        keys = [(math.hypot(o[3] - x, o[4] - y), j) for j, o in enumerate(scene) if j != i]
    else:
        sign = -1 if relation == "left of" else 1
        offsets = [((o[3] - x) * sign, j) for j, o in enumerate(scene) if j != i]
        if any(abs(k) < margin for k, _ in offsets):
            return None  # an object about level with X: neither clearly left nor clearly right
        keys = [(k, j) for k, j in offsets if k > 0]
    keys.sort()
    if not keys or (len(keys) > 1 and keys[1][0] - keys[0][0] < margin):
        return None  # nothing there, or a runner-up too close to call
    return keys[0][1]


def generate(world: WorldConfig, n_questions: int, seed: int) -> VQAData:
    """``n_questions`` balanced questions on freshly rendered scenes; a pure function of ``seed``."""
    if n_questions < len(world.families):
        raise ValueError(f"n_questions={n_questions} must be >= the {len(world.families)} families")
    n_scenes = max(1, math.ceil(n_questions / world.questions_per_scene))
    objects = sample_scenes(world, n_scenes, np.random.default_rng(seed))
    maker = QuestionMaker(world, objects, random.Random(seed))
    word_vocab, answer_vocab = vocabularies(world)
    answer_index = {a: i for i, a in enumerate(answer_vocab)}
    rows = maker.make(_family_counts(world.families, n_questions))
    refs = torch.zeros(len(rows), world.max_objects, dtype=torch.bool)  # (Q, O)
    for q, row in enumerate(rows):
        refs[q, list(row.refs)] = True
    return VQAData(
        images=render(world, objects),
        scene=torch.tensor([r.scene for r in rows]),
        questions=tuple(r.text for r in rows),
        answers=torch.tensor([answer_index[r.answer] for r in rows]),
        families=torch.tensor([FAMILIES.index(r.family) for r in rows]),
        hops=torch.tensor([r.hops for r in rows]),
        answer_vocab=answer_vocab,
        word_vocab=word_vocab,
        attributes={"shape": world.shapes, "color": world.colors, "size": world.sizes},
        objects=torch.from_numpy(objects),
        refs=refs,
        chains=tuple(r.refs if r.family == "relate" else () for r in rows),
    )


def _family_counts(families: tuple[str, ...], n: int) -> dict[str, int]:
    """Split ``n`` evenly over families; yes/no families get even counts so they balance exactly."""
    base, extra = divmod(n, len(families))
    counts = {f: base + (i < extra) for i, f in enumerate(families)}
    for f in ("exist", "compare"):
        if f in counts and counts[f] % 2:
            counts[f] -= 1
            other = next((g for g in families if g not in ("exist", "compare")), None)
            if other is not None:
                counts[other] += 1
    return counts


def hop_distribution(data: VQAData) -> dict[int, float]:
    """The share of each hop count among relate questions: ``{1: 0.33, 2: 0.33, 3: 0.33}``."""
    hops = data.hops[data.families == data.family_names.index("relate")]
    if not len(hops):
        return {}
    return {int(h): float((hops == h).float().mean()) for h in hops.unique()}
