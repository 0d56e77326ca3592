"""Mode coverage of a generator: a small classifier that tells the two art styles apart.

A GAN that paints only one of the two styles (mode collapse) can still score well on a
distribution distance. So we train a small convolutional classifier on held-out art,
"dream" against "grid", and ask of the generated samples: what share of them does it call
each style, against that style's share in the data, and how confident is it? A sample the
classifier calls neither with confidence (probability below ``threshold`` for both) is a
sample of no recognisable style.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from moderndl.gan import art
from moderndl.gan.pixels import to_model
from moderndl.train import TrainConfig, batches, fit


@dataclass(frozen=True)
class StyleClassifierConfig:
    """A three-layer CNN; any image size divisible by 8."""

    width: int = 16
    lr: float = 1e-3  # Adam
    batch_size: int = 64
    steps: int = 200


class StyleClassifier(nn.Module):
    """Three stride-2 convs, global average pooling, a linear layer: logits over ``art.STYLES``."""

    def __init__(self, width: int = 16, num_classes: int = len(art.STYLES)):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(True),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(True),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(True))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, C, H, W) -> (B, 4w) -> (B, classes)


def labels_of(n: int, style: str = "mixed") -> torch.Tensor:
    """Class indices (into ``art.STYLES``) of the images ``art.generate(n, style=style)`` draws."""
    return torch.tensor([art.STYLES.index(k) for k in art.styles_of(n, style)])


def train_classifier(images: torch.Tensor, labels: torch.Tensor,
                     config: StyleClassifierConfig = StyleClassifierConfig(), *, seed: int = 0) -> StyleClassifier:
    """Fit the classifier on uint8 ``images`` with ``labels`` by cross-entropy; returns it on the CPU in eval mode."""
    with torch.random.fork_rng():  # seeded init that leaves the caller's stream alone
        torch.manual_seed(seed)
        model = StyleClassifier(config.width)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)

    def loss_fn(m, batch):
        x, y = batch
        return F.cross_entropy(m(to_model(x)), y)

    _, loop = fit(model, opt, loss_fn, batches(images, labels, batch_size=config.batch_size, seed=seed),
                  TrainConfig(steps=config.steps, log_every=config.steps, cpu=True, progress=False,
                              desc="style classifier"))
    return loop.unwrap("model").cpu().eval()


@torch.no_grad()
def probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(N, classes)`` of uint8 images or float images in [-1, 1]."""
    x = to_model(images) if images.dtype == torch.uint8 else images.float()
    return torch.cat([F.softmax(model(x[i:i + 256].cpu()), dim=1) for i in range(0, len(x), 256)])


def coverage(model: nn.Module, samples: torch.Tensor, data_labels: torch.Tensor, *, threshold: float = 0.9) -> dict:
    """Each style's share among ``samples`` (by the classifier's argmax) against its share in the
    data (``data_labels``), in percentage points; and the fraction of samples called with
    probability at least ``threshold``.

    Returns ``{"share": {style: %}, "data_share": {style: %}, "gap": max |share - data_share|,
    "confident": fraction, "mean_confidence": mean max probability}``.
    """
    p = probabilities(model, samples)  # (N, classes)
    conf, pred = p.max(dim=1)
    k = len(art.STYLES)
    share = torch.bincount(pred, minlength=k).float() / len(pred) * 100
    data_share = torch.bincount(data_labels, minlength=k).float() / len(data_labels) * 100
    return {"share": dict(zip(art.STYLES, share.tolist(), strict=True)),
            "data_share": dict(zip(art.STYLES, data_share.tolist(), strict=True)),
            "gap": float((share - data_share).abs().max()),
            "confident": float((conf >= threshold).float().mean()),
            "mean_confidence": float(conf.mean())}
