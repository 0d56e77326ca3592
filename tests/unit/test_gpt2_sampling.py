"""Decoding filters against hand-computed sets, and the bad-input errors."""

import math

import pytest
import torch

from moderndl.gpt2 import sampling


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    out = sampling.filter_logits(logits, top_k=2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False]]


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    # mass before each token: 0, .5, .8, .95 -> p=0.8 keeps {0, 1}; p=0.81 keeps {0, 1, 2}
    assert torch.isfinite(sampling.filter_logits(logits, top_p=0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(sampling.filter_logits(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(sampling.filter_logits(logits, top_p=1e-9)).tolist() == [[True, False, False, False]]
    shuffled = logits[:, [2, 0, 3, 1]]  # the vocabulary order must not matter
    assert torch.isfinite(sampling.filter_logits(shuffled, top_p=0.8)).tolist() == [[False, True, False, True]]


def test_top_p_zero_and_one_are_off_as_in_gpt_2_simple():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert torch.equal(sampling.filter_logits(logits, top_p=0.0), logits)
    assert torch.equal(sampling.filter_logits(logits, top_p=1.0), logits)


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"temperature": -1.0}, "temperature must be > 0"),
    ({"top_p": -0.1}, r"top_p must be in \[0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \[0, 1\]"),
    ({"top_k": -1}, "top_k must be"),
])
def test_bad_decoding_knobs(kwargs, match):
    args = {"temperature": 1.0, "top_k": 0, "top_p": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        sampling.check_decoding(**args)


def test_sampling_follows_the_tempered_distribution():
    class Fixed(torch.nn.Module):  # logits log([.6, .3, .1]) at every position
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([0.6, 0.3, 0.1]).log())

        def forward(self, idx):
            return self.w.expand(*idx.shape, 3)

    idx = torch.zeros(4000, 1, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    out = sampling.sample(Fixed(), idx, 1, temperature=2.0, generator=g)[:, 1]
    expected = torch.tensor([0.6, 0.3, 0.1]) ** 0.5
    expected = expected / expected.sum()
    freq = torch.bincount(out, minlength=3).float() / len(out)
    assert torch.allclose(freq, expected, atol=3 * math.sqrt(0.25 / 4000))
