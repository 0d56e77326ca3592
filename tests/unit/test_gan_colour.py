"""The colour-aware SWD sees a recolouring that Karras's per-set normalisation cannot; the Lab
colour-transfer baseline against Reinhard et al.'s formula worked with scikit-image."""

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from moderndl.gan import art, colour, photos, swd

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = swd.SWDConfig(patches_per_image=16, directions=64, repeats=1)
COLOUR_SMALL = swd.SWDConfig(patches_per_image=16, directions=64, repeats=1, normalize="reference")


def _recolour(x: torch.Tensor) -> torch.Tensor:
    """A dark blue-violet recolouring of images in [-1, 1]: a gain and an offset per channel."""
    gain = torch.tensor([0.35, 0.25, 0.8]).view(1, 3, 1, 1)
    offset = torch.tensor([-0.55, -0.7, 0.05]).view(1, 3, 1, 1)
    return x * gain + offset


def test_own_normalisation_is_blind_to_a_recolouring_and_the_reference_form_is_not():
    x = photos.random_crops(48, 32, seed=0).float() / 127.5 - 1
    y = _recolour(x)
    own = swd.swd(y, x, config=SMALL)["mean"]
    ref = swd.swd(y, x, config=COLOUR_SMALL)["mean"]
    # an affine per-channel change is removed exactly by per-set normalisation (float rounding aside)
    assert own < 0.05
    # the colour-aware form sees it, and by more than the gap between photos and art under Karras's form
    between_domains = swd.swd(x, art.generate(48, 32, seed=1), config=SMALL)["mean"]
    assert ref > 20 * own and ref > between_domains
    assert swd.swd(x, x, config=COLOUR_SMALL)["mean"] == 0.0


def test_reference_normalisation_equals_normalising_by_hand():
    """Both sets normalised by y's per-channel mean and std, then the plain SWD: the same number."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 3 * 49, generator=g) * 2 + 1, torch.randn(40, 3 * 49, generator=g)
    mean = b.view(40, 3, 49).mean(dim=(0, 2)).view(1, 3, 1)
    std = b.view(40, 3, 49).std(dim=(0, 2)).view(1, 3, 1)
    by_hand = ((a.view(40, 3, 49) - mean) / std).view(40, -1)
    stats = swd.channel_stats(b, 3)
    assert torch.allclose(swd.normalize(a, 3, stats), by_hand, atol=1e-6)
    assert torch.allclose(swd.normalize(b, 3), ((b.view(40, 3, 49) - mean) / std).view(40, -1), atol=1e-6)
    with pytest.raises(ValueError, match="unknown SWD normalize 'global'"):
        swd.SWDConfig(normalize="global")


def test_a_recolouring_towards_the_art_moves_the_colour_metric_closer():
    """Matching colour statistics to the art helps on the colour-aware SWD (coarsest level)."""
    x, a, ref = photos.random_crops(48, 32, seed=0), art.generate(48, 32, seed=1), art.generate(48, 32, seed=2)
    moved = colour.transfer(x, a)
    before = swd.swd(x, ref, config=COLOUR_SMALL)["levels"][-1]
    after = swd.swd(moved, ref, config=COLOUR_SMALL)["levels"][-1]
    assert after < before


def test_colour_transfer_is_reinhards_formula_in_lab():
    g = np.random.default_rng(0)
    src = torch.from_numpy(g.integers(30, 220, (2, 3, 8, 8), dtype=np.uint8))
    tgt = torch.from_numpy(g.integers(0, 255, (3, 3, 8, 8), dtype=np.uint8))
    ours = colour.transfer(src, tgt)
    lab_t = rgb2lab(tgt.permute(0, 2, 3, 1).numpy() / 255.0).reshape(-1, 3)
    for i in range(2):
        lab = rgb2lab(src[i].permute(1, 2, 0).numpy() / 255.0)  # (8, 8, 3)
        out = (lab - lab.mean((0, 1))) / lab.std((0, 1)) * lab_t.std(0) + lab_t.mean(0)
        ref = np.clip(lab2rgb(out) * 255 + 0.5, 0, 255).astype(np.uint8)
        assert np.abs(ours[i].permute(1, 2, 0).numpy().astype(int) - ref.astype(int)).max() <= 1
    # the result has the target's Lab mean (before clipping to the RGB gamut, which is small here)
    assert np.allclose(colour.lab_stats(ours)[0], lab_t.mean(0), atol=3.0)


def test_colour_transfer_of_a_grey_photo_takes_the_mean_chroma():
    grey = torch.full((1, 3, 8, 8), 128, dtype=torch.uint8)
    grey[..., :4] = 60
    tgt = art.generate(4, 8, style="dream", seed=0)
    out = colour.transfer(grey, tgt)
    lab = rgb2lab(out[0].permute(1, 2, 0).numpy() / 255.0)
    assert lab[..., 1].std() < 0.6 and lab[..., 2].std() < 0.6  # one tint: no chroma spread made up
    assert abs(lab[..., 1].mean() - colour.lab_stats(tgt)[0][1]) < 3
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 3, H, W\)"):
        colour.transfer(grey.float(), tgt)
