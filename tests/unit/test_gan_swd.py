"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, Appendix D)."""

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from moderndl.gan import art, swd

SMALL = swd.SWDConfig(patches_per_image=16, directions=64, repeats=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_pyramid_reconstructs_exactly_and_has_the_sizes():
    x = torch.rand(2, 3, 64, 64)
    pyramid = swd.laplacian_pyramid(x, 3)
    assert [p.shape[-1] for p in pyramid] == [64, 32, 16]
    assert torch.allclose(swd.reconstruct(pyramid), x, atol=1e-5)
    assert swd.levels_for(256) == 5 and swd.levels_for(32) == 2  # 256 -> 16 as in the paper
    const = torch.full((1, 3, 32, 32), 0.3)
    band, low = swd.laplacian_pyramid(const, 2)
    assert band.abs().max() < 1e-6 and torch.allclose(low, const[..., :16, :16])  # a flat image has no band-pass detail


def test_sliced_wasserstein_in_1d_equals_scipy():
    """For 1-D points every unit direction is +-1, so SWD is the exact W1 (scipy as the reference)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 1, generator=g), torch.randn(500, 1, generator=g) * 2 + 1
    ours = swd.sliced_wasserstein(a.double(), b.double(), directions=8, repeats=2, generator=g)
    assert float(ours) == pytest.approx(wasserstein_distance(a.flatten().numpy(), b.flatten().numpy()), rel=1e-9)


def test_sliced_wasserstein_of_a_shift():
    """Shifting a set by s moves every projection by theta.s; for d-dim directions E|theta.s| is known."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 2, generator=g, dtype=torch.float64)
    s = torch.tensor([3.0, 0.0], dtype=torch.float64)
    ours = swd.sliced_wasserstein(a, a + s, directions=2048, repeats=1, generator=g)
    # theta uniform on the circle: E|cos phi| * |s| = (2 / pi) * 3
    assert float(ours) == pytest.approx(2 / np.pi * 3, rel=0.03)


def test_swd_of_a_set_with_itself_is_zero_and_grows_with_noise():
    x = art.generate(32, 32, seed=0).float() / 127.5 - 1
    assert swd.swd(x, x, config=SMALL)["mean"] == 0.0
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    values = [swd.swd(x, x + sigma * noise, config=SMALL)["mean"] for sigma in (0.02, 0.1, 0.3, 1.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values
    assert values[0] > 0


def test_swd_separates_domains():
    """Two independent draws of the same art distribution are closer than art and a different style."""
    a, b = art.generate(32, 32, seed=0), art.generate(32, 32, seed=1)
    grid = art.generate(32, 32, style="grid", seed=2)
    assert swd.swd(a, b, config=SMALL)["mean"] < swd.swd(a, grid, config=SMALL)["mean"]


def test_swd_bad_inputs():
    x = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="same shape"):
        swd.swd(x, torch.zeros(3, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 16"):
        swd.swd(torch.zeros(2, 3, 24, 24), torch.zeros(2, 3, 24, 24))
    with pytest.raises(ValueError, match="equal-size sets"):
        swd.sliced_wasserstein(torch.zeros(3, 2), torch.zeros(4, 2))
