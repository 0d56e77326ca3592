r"""Sliced Wasserstein distance on Laplacian-pyramid patches: a GAN metric with no pretrained network.

*Progressive Growing of GANs for Improved Quality, Stability, and Variation*, Karras,
Aila, Laine & Lehtinen 2018, arXiv:1710.10196, Section 5 and Appendix D. Each image is
decomposed into a Laplacian pyramid (Burt & Adelson 1983) from its full resolution down to
16x16; from every level, 128 random 7x7 neighbourhoods are taken per image as descriptors
($7 \cdot 7 \cdot 3 = 147$ numbers), each channel normalised to zero mean and unit variance
over the set. Two sets of descriptors $A, B \subset \mathbb{R}^d$ are compared by the sliced
Wasserstein distance (Rabin et al. 2011): for random unit directions $\theta$,

$$\mathrm{SWD}(A, B) = \mathbb{E}_{\theta \sim U(S^{d-1})}\; W_1\!\left(\theta^\top A,\; \theta^\top B\right),
\qquad W_1(a, b) = \frac1n \sum_{i=1}^n \lvert a_{(i)} - b_{(i)} \rvert,$$

where $a_{(i)}$ are the sorted projections (the exact 1-D Wasserstein-1 for equal-size sets).
The reference code draws 4 x 128 directions and reports the distance x $10^3$; so do we.
Small distances at fine levels mean matching textures and edges; at the coarsest level,
matching large-scale colour and composition.

Both sets are sampled at the same patch positions and projected on the same directions
(common random numbers, drawn from ``seed``), so ``swd(x, x) == 0`` exactly and differences
between calls measure the sets, not the sampling.

**Colour.** Karras normalises each set by its *own* per-channel statistics
(``normalize="own"``), which suits image quality but makes the distance blind to any
per-channel brightness or contrast change: photos and a blue-violet recolouring of the same
photos are at distance ~0. For style, where colour is half the point, ``normalize="reference"``
normalises *both* sets with the statistics of the second, reference set ``y``, so a
recolouring of ``x`` moves the distance. The chapter's style metric is this colour-aware form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # Burt & Adelson's 5-tap Gaussian approximation, / 16
NORMALIZE = ("own", "reference")


@dataclass(frozen=True)
class SWDConfig:
    """Appendix D's settings."""

    patch_size: int = 7  # "7x7 pixel neighborhoods"
    patches_per_image: int = 128  # "128 descriptors per image"
    min_resolution: int = 16  # pyramid "from 16x16 up to the full resolution"
    directions: int = 128  # per repeat (reference: dirs_per_repeat = 128)
    repeats: int = 4  # reference: dir_repeats = 4
    scale: float = 1e3  # reported x 10^3
    normalize: str = "own"  # "own": each set by its own statistics (Karras); "reference": both by y's

    def __post_init__(self):
        if self.normalize not in NORMALIZE:
            raise ValueError(f"unknown SWD normalize {self.normalize!r}; valid: {', '.join(NORMALIZE)}")


COLOUR = SWDConfig(normalize="reference")  # the chapter's colour-aware style metric


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5x5 binomial filter with reflect padding, per channel: (N, C, H, W) -> same."""
    k = torch.tensor(BINOMIAL, dtype=x.dtype, device=x.device) / 16.0
    c = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5).contiguous(), groups=c)  # along W
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1).contiguous(), groups=c)  # along H


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur, then keep every second pixel: (N, C, H, W) -> (N, C, H/2, W/2)."""
    return _blur(x)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """Zero-insert to twice the size, then blur (x4 to keep the mean): (N, C, H, W) -> (N, C, 2H, 2W)."""
    n, c, h, w = x.shape
    up = torch.zeros(n, c, 2 * h, 2 * w, dtype=x.dtype, device=x.device)
    up[:, :, ::2, ::2] = x
    return _blur(up) * 4.0


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Burt & Adelson's pyramid: ``levels - 1`` band-pass images, then the low-pass residual.

    ``x`` is (N, C, H, W) with H and W divisible by ``2 ** (levels - 1)``; level ``l`` is
    (N, C, H / 2^l, W / 2^l). :func:`reconstruct` inverts it exactly.
    """
    if x.shape[-1] % 2 ** (levels - 1) or x.shape[-2] % 2 ** (levels - 1):
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by 2^{levels - 1} for {levels} levels")
    pyramid = []
    for _ in range(levels - 1):
        down = pyr_down(x)
        pyramid.append(x - pyr_up(down))  # band-pass detail at this scale
        x = down
    pyramid.append(x)  # low-pass residual
    return pyramid


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Collapse a Laplacian pyramid back to the image."""
    x = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        x = pyr_up(x) + band
    return x


def levels_for(size: int, min_resolution: int = 16) -> int:
    """Pyramid levels from ``size`` down to ``min_resolution``: 5 for 256 -> 16, 2 for 32 -> 16."""
    if size < min_resolution or size % min_resolution:
        raise ValueError(f"SWD needs an image size that is a multiple of {min_resolution}, got {size}")
    levels, s = 1, size
    while s // 2 >= min_resolution and s % 2 == 0:
        s, levels = s // 2, levels + 1
    return levels


def patch_positions(n: int, height: int, width: int, config: SWDConfig, generator: torch.Generator):
    """Top-left corners ``(n, patches_per_image)`` each for rows and columns, uniform over valid places."""
    p = config.patch_size
    rows = torch.randint(0, height - p + 1, (n, config.patches_per_image), generator=generator)
    cols = torch.randint(0, width - p + 1, (n, config.patches_per_image), generator=generator)
    return rows, cols


def descriptors(level: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The 7x7 neighbourhoods at ``(rows, cols)``: (N, C, H, W) -> (N * P, C * 7 * 7)."""
    n, c = level.shape[:2]
    offsets = torch.arange(patch_size, device=level.device)
    r = rows.to(level.device)[:, :, None, None] + offsets[None, None, :, None]  # (N, P, 7, 1)
    q = cols.to(level.device)[:, :, None, None] + offsets[None, None, None, :]  # (N, P, 1, 7)
    idx = torch.arange(n, device=level.device)[:, None, None, None]  # (N, 1, 1, 1)
    patches = level.permute(0, 2, 3, 1)[idx, r, q]  # (N, P, 7, 7, C)
    return patches.permute(0, 1, 4, 2, 3).reshape(-1, c * patch_size * patch_size)  # (N * P, C * 49)


def channel_stats(desc: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per colour channel over all descriptors of a set: two (1, C, 1) tensors."""
    d = desc.view(desc.shape[0], channels, -1)  # (M, C, 49)
    return d.mean(dim=(0, 2), keepdim=True), d.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)


def normalize(desc: torch.Tensor, channels: int, stats: tuple[torch.Tensor, torch.Tensor] | None = None
              ) -> torch.Tensor:
    """Appendix D: zero mean, unit variance per colour channel over all descriptors of the set,
    or with the given ``stats`` (another set's, for the colour-aware form)."""
    mean, std = stats if stats is not None else channel_stats(desc, channels)
    d = desc.view(desc.shape[0], channels, -1)  # (M, C, 49)
    return ((d - mean) / std).view(desc.shape[0], -1)  # (M, C * 49)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, *, directions: int = 128, repeats: int = 4,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """The Rabin et al. 2011 SWD of two equal-size point sets (M, d): the mean W1 over random directions."""
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs equal-size sets, got {tuple(a.shape)} and {tuple(b.shape)}")
    total = a.new_zeros(())
    for _ in range(repeats):
        theta = torch.randn(directions, a.shape[1], generator=generator).to(a)  # (K, d)
        theta = theta / theta.norm(dim=1, keepdim=True)  # unit directions
        proj_a, _ = torch.sort(theta @ a.T, dim=1)  # (K, M) sorted projections; rows sort fastest
        proj_b, _ = torch.sort(theta @ b.T, dim=1)
        total = total + (proj_a - proj_b).abs().mean()  # mean over points and directions: W1 per direction
    return total / repeats


def swd(x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, config: SWDConfig = SWDConfig()) -> dict[str, object]:
    """SWD x 10^3 per pyramid level between image sets ``x`` and ``y`` (N, C, H, W), float in [-1, 1] or uint8.

    Returns ``{"levels": [finest, ..., 16 px], "mean": their average}`` (Karras et al. Table 2
    reports the levels and their average). With ``config.normalize == "reference"`` both
    sets are normalised by ``y``'s statistics, so ``y`` is the reference (the art).
    """
    if x.shape != y.shape:
        raise ValueError(f"swd needs two sets of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = (t.float() / 127.5 - 1.0 if t.dtype == torch.uint8 else t.float() for t in (x, y))
    n, c, h, w = x.shape
    levels = levels_for(min(h, w), config.min_resolution)
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for lx, ly in zip(laplacian_pyramid(x, levels), laplacian_pyramid(y, levels), strict=True):
            rows, cols = patch_positions(n, lx.shape[2], lx.shape[3], config, g)  # shared by both sets
            ra = descriptors(lx, rows, cols, config.patch_size)  # (N * 128, C * 49)
            rb = descriptors(ly, rows, cols, config.patch_size)
            stats = channel_stats(rb, c) if config.normalize == "reference" else None
            da, db = normalize(ra, c, stats), normalize(rb, c, stats)
            dist = sliced_wasserstein(da, db, directions=config.directions, repeats=config.repeats, generator=g)
            out.append(float(dist) * config.scale)
    return {"levels": out, "mean": sum(out) / len(out)}
