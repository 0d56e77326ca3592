r"""Adversarial losses: the two-player game of Goodfellow et al. 2014 and its least-squares form.

*Generative Adversarial Nets*, Goodfellow et al. 2014, arXiv:1406.2661, Eq. 1:

$$\min_G \max_D \; \mathbb{E}_{x}[\log D(x)] + \mathbb{E}_{z}[\log(1 - D(G(z)))].$$

``"bce"``: D maximises Eq. 1; G uses the non-saturating heuristic of Section 3,
maximising $\log D(G(z))$ instead of minimising $\log(1 - D(G(z)))$. DCGAN trains with it.

``"lsgan"``: *Least Squares GANs*, Mao et al. 2017, arXiv:1611.04076, Eq. 2 with
$a=0, b=c=1$, the form CycleGAN uses (Zhu et al. 2017, Section 4, "Training details"):

$$\mathcal{L}_D = \tfrac12\mathbb{E}_x[(D(x) - 1)^2] + \tfrac12\mathbb{E}_z[D(G(z))^2],\qquad
  \mathcal{L}_G = \mathbb{E}_z[(D(G(z)) - 1)^2].$$

``"hinge"``: the hinge game (Lim & Ye 2017, arXiv:1705.02894), for comparison.
Every function takes raw discriminator outputs (logits, or patch maps) of any shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "lsgan", "hinge")


def check(kind: str) -> str:
    """``kind`` if it is a known loss; else a ValueError listing the valid ones."""
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; valid losses: {', '.join(LOSSES)}")
    return kind


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    """D's loss on its outputs for real and generated inputs (Eq. 1 of each paper, D's side)."""
    check(kind)
    real, fake = real.float(), fake.float()
    if kind == "bce":  # -log D(x) - log(1 - D(G(z)))
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "lsgan":  # 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2, CycleGAN's 0.5 factor on D
        return 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()  # hinge


def generator_loss(fake: torch.Tensor, kind: str) -> torch.Tensor:
    """G's loss on D's outputs for generated inputs (non-saturating for ``"bce"``)."""
    check(kind)
    fake = fake.float()
    if kind == "bce":  # -log D(G(z)), Goodfellow et al. Section 3
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "lsgan":  # (D(G(z)) - 1)^2
        return F.mse_loss(fake, torch.ones_like(fake))
    return -fake.mean()  # hinge
