"""Attention scores against hand-worked cases: the object-only prior, the reference share, the chain order."""

from __future__ import annotations

import math

import torch

from moderndl.mac.attention import (
    chain_order,
    mass_on_objects,
    object_prior,
    odds_ratio,
    reference_share,
)


def two_objects():
    coverage = torch.zeros(1, 2, 2, 2)  # (B, O, g, g): object 0 fills cell (0, 0), object 1 half of (1, 1)
    coverage[0, 0, 0, 0] = 1.0
    coverage[0, 1, 1, 1] = 0.5
    return coverage, torch.tensor([[True, False]]), torch.tensor([[True, True]])


def test_object_prior_scores_the_area_share_and_odds_ratio_one():
    coverage, refs, present = two_objects()
    prior = object_prior(coverage)  # mass 1/1.5 on cell (0, 0), 0.5/1.5 on (1, 1)
    torch.testing.assert_close(prior.flatten(), torch.tensor([2 / 3, 0, 0, 1 / 3]))
    mass = mass_on_objects(prior, coverage)  # (1, 1, 2): 2/3 * 1 and 1/3 * 0.5
    torch.testing.assert_close(mass, torch.tensor([[[2 / 3, 1 / 6]]]))
    share = float(reference_share(mass, refs, present))
    assert math.isclose(share, (2 / 3) / (2 / 3 + 1 / 6), rel_tol=1e-6)
    assert math.isclose(odds_ratio(share, share), 1.0, rel_tol=1e-9)


def test_focused_attention_scores_one_and_an_evenly_spread_one_does_not():
    coverage, refs, present = two_objects()
    focused = torch.zeros(1, 3, 2, 2)
    focused[0, :, 0, 0] = 1.0  # every step on the referenced object
    assert float(reference_share(mass_on_objects(focused, coverage), refs, present)) == 1.0
    uniform = torch.full((1, 3, 2, 2), 0.25)  # mass 0.25 on object 0, 0.125 on object 1
    assert math.isclose(float(reference_share(mass_on_objects(uniform, coverage), refs, present)), 2 / 3,
                        rel_tol=1e-6)
    absent = torch.tensor([[True, False]])  # an absent object's mass does not count
    assert float(reference_share(mass_on_objects(uniform, coverage), refs, absent)) == 1.0


def test_chain_order_counts_strictly_later_peaks():
    mass = torch.zeros(2, 3, 4)  # (B, p, O)
    mass[0, 0, 2], mass[0, 1, 0], mass[0, 2, 3] = 1.0, 1.0, 1.0  # chain (2, 0, 3) visited at steps 0, 1, 2
    mass[1, 2, 1], mass[1, 0, 3] = 1.0, 1.0  # chain (1, 3): peaks at 2 then 0
    torch.testing.assert_close(chain_order(mass, [(2, 0, 3), (1, 3)]), torch.tensor([1.0, 0.0]))
