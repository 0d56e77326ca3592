r"""A procedural 10-class image task at 32 px: shapes on textures, among clutter.

The paper's Fig. 3 separates generators by a few tenths of a point of ImageNet accuracy, with a
spread of 0.2-0.4 points across seeds. Measuring spreads that small needs a test set whose
binomial noise, $\sqrt{p(1-p)/n_\text{test}}$, is well below them (0.4 points at 10,000 images
and $p = 0.8$), and a task that small networks do not saturate. This module makes one, with as
many training and test images as asked for, each a pure function of ``(seed, split, index)``:

- the class is one of ten shapes (:data:`CLASSES`), drawn as a signed distance field
  $d(u)$ in the shape's own frame and blended with an anti-aliased mask
  $\alpha = \sigma(-d \cdot s / \tau)$, where $s$ is the shape's radius in pixels;
- each shape has a random centre, radius, rotation (within ±20°, so that square/diamond and
  plus/X stay distinct), colour and stripe texture;
- the shape's colour is mostly a luminance step (lighter or darker) from the background's;
- the background is a random oriented grating between two nearby random colours;
- distractors (small blobs and bars of random colours) are drawn behind and over the shape;
- Gaussian pixel noise of std ``noise`` is added last.

All shapes are symmetric under a horizontal flip, so flip augmentation keeps labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from moderndl.seed import generator as seed_generator

CLASSES = ("disk", "ring", "square", "frame", "triangle", "plus", "cross", "diamond", "bars", "half-disk")
SPLITS = {"train": 0, "test": 1}  # each split draws from its own stream of the task seed


@dataclass(frozen=True)
class ShapesConfig:
    """Difficulty knobs of the task. The defaults were eased until the laptop profile's networks
    (C = 12, N = 12, 400 SGD steps of 64 images) land between 70% and 95%: one WS(4, 0.75)
    network reached 56% with two distractors, noise 0.04 and background contrast 0.3, and 74%
    with the values below (78% after 500 steps)."""

    image_size: int = 32
    radius: tuple[float, float] = (0.25, 0.4)  # shape radius as a fraction of the image side
    contrast: tuple[float, float] = (0.5, 1.0)  # colour distance between shape and background
    background: float = 0.2  # contrast of the background grating (0: flat, 1: any two colours)
    clutter: int = 1  # distractor blobs and bars per image (half behind the shape, the rest over it)
    clutter_size: tuple[float, float] = (0.04, 0.1)  # distractor radius, fraction of the side
    noise: float = 0.02  # std of the Gaussian pixel noise, in [0, 1] intensity units
    hue: float = 0.2  # hue part of the shape's colour step (0: a pure luminance step)
    stripes: tuple[float, float] = (0.0, 0.3)  # depth of the stripe texture on the shape
    max_rotation: float = 20.0  # degrees

    def __post_init__(self):
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"ShapesConfig.image_size must be an int >= 8, got {self.image_size!r}")
        if self.clutter < 0 or self.noise < 0:
            raise ValueError(f"ShapesConfig.clutter and noise must be >= 0, got {self.clutter}, {self.noise}")


NUM_CLASSES = len(CLASSES)


def _field(c: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) of shape class ``c`` at frame coordinates ``u, v``,
    in units of the shape's radius; ``v`` points up."""
    au, av = u.abs(), v.abs()
    s2 = math.sqrt(0.5)
    if c == 0:  # disk
        return torch.sqrt(u * u + v * v) - 0.95
    if c == 1:  # ring
        return (torch.sqrt(u * u + v * v) - 0.72).abs() - 0.25
    if c == 2:  # square
        return torch.maximum(au, av) - 0.8
    if c == 3:  # frame
        return (torch.maximum(au, av) - 0.68).abs() - 0.2
    if c == 4:  # triangle, apex up
        return torch.maximum(-v - 0.55, 0.866 * au + 0.5 * v - 0.5)
    if c in (5, 6):  # plus; cross = plus turned by 45 degrees
        if c == 6:
            au, av = (u + v).abs() * s2, (u - v).abs() * s2
        return torch.minimum(torch.maximum(au - 0.26, av - 0.95), torch.maximum(au - 0.95, av - 0.26))
    if c == 7:  # diamond
        return (au + av) * s2 - 0.72
    if c == 8:  # two bars
        return torch.maximum(au - 0.95, torch.minimum((v - 0.5).abs(), (v + 0.5).abs()) - 0.2)
    return torch.maximum(torch.sqrt(u * u + v * v) - 0.95, -(v + 0.35))  # half-disk, flat side down


def sdf(label: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance of shape ``label`` ``(B,)`` at frame coordinates ``u, v`` ``(B, S, S)``:
    each class's field evaluated on its own images only."""
    d = torch.empty_like(u)  # (B, S, S)
    for c in range(NUM_CLASSES):
        rows = (label == c).nonzero().flatten()
        if len(rows):
            d[rows] = _field(c, u[rows], v[rows])
    return d


def _uniform(g: torch.Generator, n: int, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, *shape, generator=g)


def render(label: torch.Tensor, g: torch.Generator, config: ShapesConfig = ShapesConfig()) -> torch.Tensor:
    """Images ``(B, 3, S, S)`` in [0, 1] of the shapes ``label`` ``(B,)``, every random draw
    taken from ``g`` in a fixed order (so a batch is a pure function of the generator's seed)."""
    b, size = len(label), config.image_size
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # (S,) in [-1, 1]
    y, x = torch.meshgrid(-axis, axis, indexing="ij")  # (S, S), y points up
    x, y = x.expand(b, size, size), y.expand(b, size, size)  # (B, S, S)

    # Background: an oriented grating between two colours.
    bg0 = torch.rand(b, 3, 1, 1, generator=g)
    bg1 = bg0 + config.background * (torch.rand(b, 3, 1, 1, generator=g) - bg0)
    theta = _uniform(g, b, 0, math.pi).view(b, 1, 1)
    freq = _uniform(g, b, 2, 9).view(b, 1, 1)
    phase = _uniform(g, b, 0, 2 * math.pi).view(b, 1, 1)
    wave = 0.5 + 0.5 * torch.sin(freq * (x * torch.cos(theta) + y * torch.sin(theta)) * math.pi + phase)
    image = bg0 + (bg1 - bg0) * wave.unsqueeze(1)  # (B, 3, S, S)

    def blobs(count: int) -> None:
        nonlocal image
        for _ in range(count):
            cx, cy = _uniform(g, b, -1, 1).view(b, 1, 1), _uniform(g, b, -1, 1).view(b, 1, 1)
            rad = (2 * _uniform(g, b, *config.clutter_size)).view(b, 1, 1)
            bar = (torch.rand(b, generator=g) < 0.5).view(b, 1, 1)
            angle = _uniform(g, b, 0, math.pi).view(b, 1, 1)
            colour = torch.rand(b, 3, 1, 1, generator=g)
            du, dv = x - cx, y - cy
            along = du * torch.cos(angle) + dv * torch.sin(angle)
            across = -du * torch.sin(angle) + dv * torch.cos(angle)
            dist = torch.where(bar, torch.maximum(along.abs() - 2.5 * rad, across.abs() - 0.35 * rad),
                               torch.sqrt(du * du + dv * dv) - rad)  # (B, S, S)
            alpha = torch.sigmoid(-dist * size / 2 / 0.6).unsqueeze(1)  # (B, 1, S, S)
            image = torch.lerp(image, colour.expand_as(image), alpha)

    behind = config.clutter - config.clutter // 2
    blobs(behind)

    # The shape: centre, radius, rotation, colour (at a random distance from the background) and stripes.
    radius = _uniform(g, b, *config.radius).view(b, 1, 1) * 2  # in [-1, 1] units
    margin = radius * 0.9
    cx = (_uniform(g, b, -1, 1).view(b, 1, 1)) * (1 - margin)
    cy = (_uniform(g, b, -1, 1).view(b, 1, 1)) * (1 - margin)
    rot = _uniform(g, b, -config.max_rotation, config.max_rotation).view(b, 1, 1) * math.pi / 180
    # Mostly a luminance step (lighter or darker than the background), with some hue.
    sign = torch.where(torch.rand(b, 1, 1, 1, generator=g) < 0.5, -1.0, 1.0)
    direction = sign * torch.full((b, 3, 1, 1), 3 ** -0.5) + config.hue * torch.randn(b, 3, 1, 1, generator=g)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-6)
    contrast = _uniform(g, b, *config.contrast).view(b, 1, 1, 1)
    mean_bg = (bg0 + bg1) / 2
    colour = mean_bg + contrast * direction  # (B, 3, 1, 1)
    colour = colour - colour.amax(dim=1, keepdim=True).clamp_min(1) + 1  # keep the step inside [0, 1]
    colour = colour - colour.amin(dim=1, keepdim=True).clamp_max(0)
    stripes = _uniform(g, b, *config.stripes).view(b, 1, 1, 1)
    stripe_freq = _uniform(g, b, 2, 6).view(b, 1, 1)
    du, dv = (x - cx) / radius, (y - cy) / radius
    u = du * torch.cos(rot) + dv * torch.sin(rot)
    v = -du * torch.sin(rot) + dv * torch.cos(rot)
    d = sdf(label, u, v)  # (B, S, S), in radii
    alpha = torch.sigmoid(-d * radius * size / 2 / 0.6).unsqueeze(1)  # (B, 1, S, S): ~1 px edge
    texture = 1 - stripes * (0.5 + 0.5 * torch.sin(stripe_freq * math.pi * u)).unsqueeze(1)
    image = torch.lerp(image, colour * texture, alpha)

    blobs(config.clutter // 2)
    image.add_(torch.randn(image.shape, generator=g), alpha=config.noise)
    return image.clamp_(0, 1)


def sample(n: int, seed: int, index: int, split: str = "train",
           config: ShapesConfig = ShapesConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch number ``index`` of ``n`` images ``(n, 3, S, S)`` and labels ``(n,)`` of ``split``.

    Labels are uniform over the ten classes. The draw is a pure function of ``(seed, split,
    index, n, config)``; train and test come from disjoint streams of the task seed.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    g = seed_generator(2 * seed + SPLITS[split], index)
    label = torch.randint(0, NUM_CLASSES, (n,), generator=g)  # (n,)
    return render(label, g, config), label


def test_set(n: int, seed: int, config: ShapesConfig = ShapesConfig(), chunk: int = 1000
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images ``(n, 3, S, S)`` and labels, drawn in chunks of ``chunk``."""
    parts = [sample(min(chunk, n - i), seed, i // chunk, "test", config) for i in range(0, n, chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
