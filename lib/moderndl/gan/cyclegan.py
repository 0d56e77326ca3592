r"""CycleGAN: *Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks*, Zhu, Park, Isola & Efros 2017, arXiv:1703.10593.

Two generators $G: X \to Y$ and $F: Y \to X$ and two discriminators $D_X, D_Y$ play
(Eq. 3, with Eq. 1 for each adversarial term, Eq. 2 for the cycle, Section 5.2 identity)

$$\mathcal{L}(G, F, D_X, D_Y) = \mathcal{L}_\text{GAN}(G, D_Y, X, Y) + \mathcal{L}_\text{GAN}(F, D_X, Y, X)
  + \lambda\,\mathcal{L}_\text{cyc}(G, F) + \lambda_\text{idt}\lambda\,\mathcal{L}_\text{identity}(G, F),$$

$$\mathcal{L}_\text{cyc} = \mathbb{E}_x\lVert F(G(x)) - x\rVert_1 + \mathbb{E}_y\lVert G(F(y)) - y\rVert_1,\qquad
  \mathcal{L}_\text{identity} = \mathbb{E}_y\lVert G(y) - y\rVert_1 + \mathbb{E}_x\lVert F(x) - x\rVert_1.$$

Section 4 ("Implementation") and Appendix 7: the adversarial terms are least squares
(LSGAN), $\lambda = 10$, the identity weight is $0.5\lambda$, discriminators see a pool of
the 50 last generated images, Adam with lr 0.0002 and $\beta_1 = 0.5$, batch 1, constant
lr for 100 epochs then linear decay to zero over the next 100. The generator is
Johnson et al.'s ResNet (c7s1-64, d128, d256, 6 or 9 R256, u128, u64, c7s1-3, instance
norm, reflection padding); the discriminator is a 70x70 PatchGAN (C64-C128-C256-C512).

Here domain A is photos ($X$) and domain B is art ($Y$): ``g_ab`` is $G$, ``g_ba`` is $F$,
``d_a`` judges photos ($D_X$) and ``d_b`` judges art ($D_Y$).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from moderndl.gan import losses
from moderndl.gan.dcgan import init_weights
from moderndl.gan.pixels import to_model
from moderndl.gan.pool import ImagePool
from moderndl.train import Loop, TrainConfig, batches

GENERATORS = {"resnet_6blocks": 6, "resnet_9blocks": 9}  # Appendix 7.2: 6 blocks at 128 px, 9 at 256 px
DISCRIMINATORS = {"patch16": 1, "patch34": 2, "patch70": 3}  # strided layers; receptive field in the name
DOWNSAMPLINGS = 2  # the generator's two stride-2 convolutions (d128, d256)


@dataclass(frozen=True)
class CycleGANConfig:
    """A CycleGAN with Zhu et al.'s defaults (Section 4, Appendix 7)."""

    image_size: int = 256  # Appendix 7.1: 256x256 crops
    channels: int = 3
    generator: str = "resnet_9blocks"
    discriminator: str = "patch70"
    ngf: int = 64  # c7s1-64
    ndf: int = 64  # C64
    loss: str = "lsgan"  # Section 4: least-squares adversarial loss
    lambda_cycle: float = 10.0  # Section 4: lambda = 10
    lambda_identity: float = 0.5  # Section 5.2 / reference: identity weight 0.5 * lambda
    pool_size: int = 50  # Section 4: a buffer of 50 generated images
    lr: float = 2e-4  # Section 4
    beta1: float = 0.5  # reference implementation, --beta1 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # Section 4: constant for 100 of 200 epochs, then linear to 0
    init_std: float = 0.02  # reference implementation, --init_type normal --init_gain 0.02

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; valid generators: {', '.join(GENERATORS)}")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"unknown discriminator {self.discriminator!r}; "
                             f"valid discriminators: {', '.join(DISCRIMINATORS)}")
        losses.check(self.loss)
        check_image_size(self.image_size, self.discriminator)
        if not 0.0 <= self.decay_start <= 1.0:
            raise ValueError(f"decay_start must be in [0, 1], got {self.decay_start}")


def check_image_size(image_size: int, discriminator: str = "patch70") -> int:
    """The generator needs ``image_size`` divisible by 4; the PatchGAN needs a patch map >= 1x1."""
    multiple = 2 ** DOWNSAMPLINGS
    if not isinstance(image_size, int) or image_size % multiple:
        raise ValueError(f"CycleGAN image_size must be divisible by {multiple} (the generator downsamples "
                         f"{DOWNSAMPLINGS} times by stride 2 and upsamples back), got {image_size!r}")
    strided = DISCRIMINATORS[discriminator]
    smallest = 3 * 2 ** strided  # stride-2 convs halve the side; the two final 4x4 convs take 2 more pixels
    if image_size < smallest:
        raise ValueError(f"CycleGAN image_size must be at least {smallest} for the {discriminator} "
                         f"discriminator, got {image_size}")
    return image_size


class ResnetBlock(nn.Module):
    """R256: two 3x3 convs with reflection padding and instance norm, plus the skip."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # (B, dim, H/4, W/4)


class ResnetGenerator(nn.Module):
    """Appendix 7.2: c7s1-64, d128, d256, n x R256, u128, u64, c7s1-3 (Tanh); same H, W out as in."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        ngf, c = config.ngf, config.channels
        # instance norm has no affine parameters, so every conv keeps its bias (as the reference)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(DOWNSAMPLINGS):  # d128, d256: (B, ngf*2^i, H/2^i) -> (B, ngf*2^(i+1), H/2^(i+1))
            width = ngf * 2 ** i
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * width), nn.ReLU(True)]
        width = ngf * 2 ** DOWNSAMPLINGS
        layers += [ResnetBlock(width) for _ in range(GENERATORS[config.generator])]
        for _ in range(DOWNSAMPLINGS):  # u128, u64: fractionally-strided, doubling H and W
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, c, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, C, H, W)


class PatchDiscriminator(nn.Module):
    """Appendix 7.2: C64-C128-C256-C512 then a 1-channel conv; one LSGAN score per 70x70 patch.

    C64 has no norm; C512 and the output conv have stride 1. At 256 px the map is 30x30.
    """

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        strided, ndf = DISCRIMINATORS[config.discriminator], config.ndf
        layers: list[nn.Module] = [nn.Conv2d(config.channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, strided):  # C128, C256: stride 2
            out = ndf * min(2 ** n, 8)
            layers += [nn.Conv2d(width, out, 4, 2, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            width = out
        out = ndf * min(2 ** strided, 8)  # C512: stride 1
        layers += [nn.Conv2d(width, out, 4, 1, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(out, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, 1, H/8 - 2, W/8 - 2) for patch70


class Generators(nn.Module):
    """Both translators; ``forward`` computes every generator-side term of Eq. 3 in one call."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.g_ab, self.g_ba = ResnetGenerator(config), ResnetGenerator(config)

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor, identity: bool = True) -> dict[str, torch.Tensor]:
        fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)  # G(x), F(y)
        out = {"fake_b": fake_b, "fake_a": fake_a,
               "rec_a": self.g_ba(fake_b), "rec_b": self.g_ab(fake_a)}  # F(G(x)), G(F(y)): Eq. 2
        if identity:
            out["idt_b"], out["idt_a"] = self.g_ab(real_b), self.g_ba(real_a)  # G(y), F(x): Section 5.2
        return out


class Discriminators(nn.Module):
    """``d_a`` judges domain A (photos), ``d_b`` domain B (art); ``forward`` scores one batch of each."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.d_a, self.d_b = PatchDiscriminator(config), PatchDiscriminator(config)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d_a(a), self.d_b(b)  # (B, 1, h, w) patch maps


def build(config: CycleGANConfig, *, seed: int = 0) -> tuple[Generators, Discriminators]:
    """Both generators and both discriminators, N(0, 0.02) init from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return (init_weights(Generators(config), config.init_std, generator=g),
            init_weights(Discriminators(config), config.init_std, generator=g))


def linear_decay(steps: int, decay_start: float) -> Callable[[int], float]:
    """Section 4's schedule in steps: factor 1 until ``decay_start * steps``, then linear to 0 at ``steps``."""
    constant = int(decay_start * steps)
    decay = max(1, steps - constant)

    def factor(step: int) -> float:
        return 1.0 - max(0, step - constant) / decay

    return factor


def optimizers(generators: nn.Module, discriminators: nn.Module, config: CycleGANConfig, steps: int):
    """Adam (lr 2e-4, betas (0.5, 0.999)) for each side, each with the linear decay over ``steps``."""
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(generators.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminators.parameters(), lr=config.lr, betas=betas)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, linear_decay(steps, config.decay_start))
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, linear_decay(steps, config.decay_start))
    return opt_g, opt_d, sched_g, sched_d


def make_step(loop: Loop, config: CycleGANConfig, *, channels_last: bool = False
              ) -> Callable[[tuple[torch.Tensor, torch.Tensor], int], Mapping]:
    """One update of the reference ``optimize_parameters``: G and F on Eq. 3 (D frozen), then D_X and D_Y.

    ``loop`` holds ``generators``, ``discriminators``, ``opt_g``, ``opt_d``, ``sched_g``,
    ``sched_d``, ``pool_a`` and ``pool_b``; the batch is ``(photos, art)``, uint8, unpaired.
    """
    gens, discs, frozen = loop["generators"], loop["discriminators"], loop.unwrap("discriminators")
    opt_g, opt_d, sched_g, sched_d = loop["opt_g"], loop["opt_d"], loop["sched_g"], loop["sched_d"]
    pool_a, pool_b = loop["pool_a"], loop["pool_b"]
    lam, lam_idt = config.lambda_cycle, config.lambda_identity * config.lambda_cycle
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def step(batch: tuple[torch.Tensor, torch.Tensor], t: int) -> Mapping[str, torch.Tensor]:
        gens.train()
        discs.train()
        real_a = to_model(batch[0]).contiguous(memory_format=fmt)  # (B, C, H, W) photos in [-1, 1]
        real_b = to_model(batch[1]).contiguous(memory_format=fmt)  # (B, C, H, W) art
        # -- generators: adversarial + lambda * cycle + 0.5 lambda * identity (Eq. 3)
        frozen.requires_grad_(False)
        with loop.autocast():
            out = gens(real_a, real_b, identity=lam_idt > 0)
            # the bare discriminators: no gradient reaches them, so DDP must not wait for one
            score_a, score_b = frozen(out["fake_a"], out["fake_b"])  # D_X(F(y)), D_Y(G(x))
            adv = losses.generator_loss(score_b, config.loss) + losses.generator_loss(score_a, config.loss)
            cycle = F.l1_loss(out["rec_a"].float(), real_a) + F.l1_loss(out["rec_b"].float(), real_b)
            idt = (F.l1_loss(out["idt_b"].float(), real_b) + F.l1_loss(out["idt_a"].float(), real_a)
                   if lam_idt > 0 else torch.zeros((), device=real_a.device))
            loss_g = adv + lam * cycle + lam_idt * idt
        opt_g.zero_grad(set_to_none=True)
        loop.backward(loss_g)
        opt_g.step()
        # -- discriminators: real vs a draw from the pool of generated images (Section 4)
        frozen.requires_grad_(True)
        fake_a = pool_a.query(out["fake_a"].detach())  # (B, C, H, W)
        fake_b = pool_b.query(out["fake_b"].detach())
        b = real_a.shape[0]
        with loop.autocast():
            # one call on real and pooled images together (instance norm is per image, so this
            # equals two calls), so DDP sees each parameter once per backward
            score_a, score_b = discs(torch.cat([real_a, fake_a]), torch.cat([real_b, fake_b]))  # (2B, 1, h, w)
            real_score_a, fake_score_a = score_a[:b], score_a[b:]
            real_score_b, fake_score_b = score_b[:b], score_b[b:]
            loss_d_a = losses.discriminator_loss(real_score_a, fake_score_a, config.loss)
            loss_d_b = losses.discriminator_loss(real_score_b, fake_score_b, config.loss)
            loss_d = loss_d_a + loss_d_b
        opt_d.zero_grad(set_to_none=True)
        loop.backward(loss_d)
        opt_d.step()
        sched_g.step()
        sched_d.step()
        return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach(), "adv": adv.detach(),
                "cycle": cycle.detach() / 2, "identity": idt.detach() / 2,  # mean L1 per direction
                "lr": sched_g.get_last_lr()[0]}

    return step


def setup(config: CycleGANConfig, train_config: TrainConfig, *, seed: int = 0,
          channels_last: bool = False) -> Loop:
    """Build the models, optimizers, schedules and pools into a core ``Loop``."""
    gens, discs = build(config, seed=seed)
    if channels_last:
        gens, discs = gens.to(memory_format=torch.channels_last), discs.to(memory_format=torch.channels_last)
    opt_g, opt_d, sched_g, sched_d = optimizers(gens, discs, config, train_config.steps)
    return Loop(train_config, generators=gens, discriminators=discs, opt_g=opt_g, opt_d=opt_d,
                sched_g=sched_g, sched_d=sched_d, pool_a=ImagePool(config.pool_size, seed=seed + 1),
                pool_b=ImagePool(config.pool_size, seed=seed + 2))


def unpaired(photos: torch.Tensor, art: torch.Tensor, *, batch_size: int, seed: int) -> Callable:
    """Step-indexed unpaired batches: ``data(t) = (photos_t, art_t)``, each domain shuffled on its own."""
    a = batches(photos, batch_size=batch_size, seed=seed)
    b = batches(art, batch_size=batch_size, seed=seed + 1)
    return lambda t: (a(t)[0], b(t)[0])


def train(photos: torch.Tensor, art: torch.Tensor, config: CycleGANConfig, train_config: TrainConfig, *,
          batch_size: int = 1, seed: int = 0, resume: bool = False, channels_last: bool = False):
    """Train a CycleGAN from uint8 ``photos`` (domain A) to ``art`` (domain B); Section 4's batch is 1.

    Returns ``(history, loop)``; ``loop["generators"]`` holds ``g_ab`` and ``g_ba``.
    """
    for name, images in (("photos", photos), ("art", art)):
        if images.ndim != 4 or images.shape[1:] != (config.channels, config.image_size, config.image_size):
            raise ValueError(f"{name} must be (N, {config.channels}, {config.image_size}, {config.image_size}), "
                             f"got {tuple(images.shape)}")
    loop = setup(config, train_config, seed=seed, channels_last=channels_last)
    step = make_step(loop, config, channels_last=channels_last)
    history = loop.run(step, unpaired(photos, art, batch_size=batch_size, seed=seed), resume=resume)
    return history, loop


@torch.no_grad()
def translate(generator: nn.Module, images: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """Apply one generator to uint8 ``images`` in eval mode; returns float in [-1, 1] on the CPU."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()  # instance norm without running stats: eval equals train, but be explicit
    out = torch.cat([generator(to_model(images[i:i + batch_size]).to(device)).float().cpu()
                     for i in range(0, len(images), batch_size)])  # (N, C, H, W)
    generator.train(was_training)
    return out
