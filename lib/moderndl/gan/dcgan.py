r"""DCGAN: *Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks*, Radford, Metz & Chintala 2016, arXiv:1511.06434.

The adversarial game of Goodfellow et al. 2014 (arXiv:1406.2661, Eq. 1),

$$\min_G \max_D \; \mathbb{E}_{x\sim p_\text{data}}[\log D(x)]
  + \mathbb{E}_{z\sim\mathcal{N}(0, I)}[\log(1 - D(G(z)))],$$

played by convolutional networks built to the "architecture guidelines for stable deep
convolutional GANs" of Section 3:

- strided convolutions (D) and fractionally-strided convolutions (G) instead of pooling;
- batch normalisation in both, except at G's output layer and D's input layer;
- no fully connected hidden layers;
- ReLU in G except Tanh at its output; LeakyReLU with slope 0.2 in D.

Section 4 ("Details of adversarial training"): weights from $\mathcal{N}(0, 0.02)$,
Adam with lr 0.0002 and $\beta_1 = 0.5$, minibatch 128, images scaled to [-1, 1].
The layer widths follow the 64 px model of Figure 1 (1024 at 4x4 in the paper; 512 in
the widely used reference, ``pytorch/examples/dcgan``, whose parameter counts we test).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from moderndl.gan import losses
from moderndl.gan.pixels import to_model
from moderndl.seed import generator as seed_generator
from moderndl.train import Loop, TrainConfig, batches, rank_slice


@dataclass(frozen=True)
class DCGANConfig:
    """A DCGAN and its optimiser (Radford et al. 2016, Sections 3-4)."""

    image_size: int = 64  # Figure 1: 64x64 output; any power of two >= 16
    channels: int = 3
    nz: int = 100  # Figure 1: a 100-dimensional uniform z (we draw N(0, I), as the reference does)
    ngf: int = 64  # G's width at its last hidden layer (pytorch/examples/dcgan)
    ndf: int = 64  # D's width at its first layer
    init_std: float = 0.02  # Section 4: N(0, 0.02)
    lr: float = 2e-4  # Section 4: "learning rate of 0.0002"
    beta1: float = 0.5  # Section 4: "reducing beta1 to 0.5 helped stabilize training"
    beta2: float = 0.999
    loss: str = "bce"  # Goodfellow et al. Eq. 1, non-saturating G

    def __post_init__(self):
        check_image_size(self.image_size)
        losses.check(self.loss)


def check_image_size(image_size: int) -> int:
    """DCGAN halves (D) or doubles (G) the resolution per layer from 4x4: a power of two >= 16."""
    if not isinstance(image_size, int) or image_size < 16 or image_size & (image_size - 1):
        raise ValueError(f"DCGAN image_size must be a power of two >= 16 (each layer doubles from 4x4), "
                         f"got {image_size!r}")
    return image_size


def _levels(image_size: int) -> int:
    """Number of resolution doublings between 4x4 and ``image_size``: 4 for 64 px."""
    return int(math.log2(image_size)) - 2


class Generator(nn.Module):
    """Figure 1: z (B, nz, 1, 1) -> 4x4 -> ... -> (B, channels, size, size) by fractionally-strided convs."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        levels = _levels(config.image_size)
        width = config.ngf * 2 ** (levels - 1)  # 512 at 4x4 for 64 px
        layers: list[nn.Module] = [  # project z to 4x4: a 4x4 transposed conv on a 1x1 input
            nn.ConvTranspose2d(config.nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(levels - 1):  # each doubles H and W and halves the width
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                       nn.ReLU(True)]
            width //= 2
        # output layer: no BatchNorm, Tanh (Section 3)
        layers += [nn.ConvTranspose2d(width, config.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.nz = config.nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.nz, 1, 1))  # (B, nz) -> (B, nz, 1, 1) -> (B, C, H, W)


class Discriminator(nn.Module):
    """Mirror of G: strided convs to 4x4, then one 4x4 conv to a logit per image, ``(B,)``."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        levels = _levels(config.image_size)
        width = config.ndf
        # input layer: no BatchNorm (Section 3)
        layers: list[nn.Module] = [nn.Conv2d(config.channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(levels - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                       nn.LeakyReLU(0.2, True)]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))  # (B, width, 4, 4) -> (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0])  # (B, 1, 1, 1) -> (B,)


def init_weights(module: nn.Module, std: float = 0.02, *, generator: torch.Generator | None = None) -> nn.Module:
    """Section 4: conv weights from N(0, std); BatchNorm scale from N(1, std), shift 0 (as the reference)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std, generator=generator)
            nn.init.zeros_(m.bias)
    return module


def build(config: DCGANConfig, *, seed: int = 0) -> tuple[Generator, Discriminator]:
    """G and D, initialised from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return init_weights(Generator(config), config.init_std, generator=g), \
        init_weights(Discriminator(config), config.init_std, generator=g)


def optimizers(generator: nn.Module, discriminator: nn.Module, config: DCGANConfig):
    """Section 4: one Adam per player, lr 2e-4, betas (0.5, 0.999)."""
    betas = (config.beta1, config.beta2)
    return (torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas),
            torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=betas))


def noise(n: int, nz: int, *, seed: int, step: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """z ~ N(0, I), ``(n, nz)``, a pure function of ``(seed, step)`` so that resuming redraws it exactly."""
    g = seed_generator(seed, step)
    return torch.randn(n, nz, generator=g).to(device)


def rank_noise(batch_size: int, nz: int, *, seed: int, step: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """This rank's rows of the global batch's noise: ``noise(batch_size, ...)[rank_slice(batch_size)]``,
    ``(batch_size // world_size, nz)``, so N ranks draw exactly the z of one process."""
    return noise(batch_size, nz, seed=seed, step=step)[rank_slice(batch_size)].to(device)


@torch.no_grad()
def sample(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """G(z) in [-1, 1] with batch statistics, as in training; a copy runs it so G's buffers stay untouched."""
    twin = copy.deepcopy(generator).train()
    return twin(z)


def make_step(loop: Loop, config: DCGANConfig, *, seed: int, batch_size: int
              ) -> Callable[[tuple[torch.Tensor], int], Mapping]:
    """One alternating update (Goodfellow et al. Algorithm 1 with k = 1): D on real and G(z), then G.

    ``loop`` holds ``generator``, ``discriminator``, ``opt_g`` and ``opt_d``; the batch is
    this rank's ``(real,)`` with ``real`` uint8 ``(B, C, H, W)``, ``B = batch_size // world_size``
    (``batch_size`` is the global batch). Under several ranks each normalises its own slice
    (no SyncBatchNorm on CPU), so the run differs from one process in D's and G's batch statistics.
    """
    G, D, opt_g, opt_d = loop["generator"], loop["discriminator"], loop["opt_g"], loop["opt_d"]

    def step(batch: tuple[torch.Tensor], t: int) -> Mapping[str, torch.Tensor]:
        G.train()
        D.train()
        real = to_model(batch[0])  # (B, C, H, W) in [-1, 1]
        z = rank_noise(batch_size, config.nz, seed=seed, step=t, device=real.device)  # (B, nz), this rank's rows
        with loop.autocast():
            fake = G(z)  # (B, C, H, W)
            d_real, d_fake = D(real), D(fake.detach())  # (B,) logits each; G gets no gradient here
            loss_d = losses.discriminator_loss(d_real, d_fake, config.loss)
        opt_d.zero_grad(set_to_none=True)
        loop.backward(loss_d)
        opt_d.step()
        with loop.autocast():
            loss_g = losses.generator_loss(D(fake), config.loss)  # D just stepped, as in the reference
        opt_g.zero_grad(set_to_none=True)
        loop.backward(loss_g)
        opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(d_real.detach().float()).mean(),
                "d_fake": torch.sigmoid(d_fake.detach().float()).mean()}

    return step


def train(images: torch.Tensor, config: DCGANConfig, train_config: TrainConfig, *, batch_size: int = 128,
          seed: int = 0, resume: bool = False, channels_last: bool = False,
          snapshot_steps: Sequence[int] = (), snapshot_z: torch.Tensor | None = None):
    """Train a DCGAN on uint8 ``images`` through the core ``Loop``; Section 4's batch is 128.

    Returns ``(history, loop, snapshots)``; ``snapshots[t]`` holds ``sample(G, snapshot_z)``
    after ``t`` steps (``t = 0``: at initialisation) for each ``t`` in ``snapshot_steps``.
    """
    if images.ndim != 4 or images.shape[1:] != (config.channels, config.image_size, config.image_size):
        raise ValueError(f"images must be (N, {config.channels}, {config.image_size}, {config.image_size}), "
                         f"got {tuple(images.shape)}")
    G, D = build(config, seed=seed)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d = optimizers(G, D, config)
    loop = Loop(train_config, generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d)
    data = batches(images, batch_size=batch_size, seed=seed)
    step = make_step(loop, config, seed=seed, batch_size=batch_size)
    snapshots: dict[int, torch.Tensor] = {}
    if snapshot_z is None:
        snapshot_z = noise(64, config.nz, seed=seed + 1)
    snapshot_z = snapshot_z.to(loop.device)
    wanted = set(snapshot_steps)

    def step_and_snapshot(batch, t):
        if t == 0 and 0 in wanted:
            snapshots[0] = sample(loop.unwrap("generator"), snapshot_z).cpu()
        logs = step(batch, t)
        if t + 1 in wanted:
            snapshots[t + 1] = sample(loop.unwrap("generator"), snapshot_z).cpu()
        return logs

    history = loop.run(step_and_snapshot, data, resume=resume)
    return history, loop, snapshots
