"""DCGAN and CycleGAN against their papers and reference implementations."""

import pytest
import torch
from torch import nn

from moderndl.gan import art, cyclegan, dcgan, losses
from moderndl.gan.pool import ImagePool
from moderndl.measure import count_parameters
from moderndl.train import TrainConfig, rank_slice

pytestmark = pytest.mark.usefixtures("one_thread")


# -- DCGAN ---------------------------------------------------------------------------
def test_dcgan_parameter_counts_match_pytorch_examples():
    """pytorch/examples/dcgan at 64 px, nz=100, ngf=ndf=64: netG 3,576,704 and netD 2,765,568 parameters."""
    G, D = dcgan.build(dcgan.DCGANConfig())
    assert count_parameters(G) == 3_576_704
    assert count_parameters(D) == 2_765_568


@pytest.mark.parametrize("size", [16, 32, 64])
def test_dcgan_shapes_and_guidelines(size):
    config = dcgan.DCGANConfig(image_size=size, ngf=8, ndf=8)
    G, D = dcgan.build(config)
    x = G(torch.randn(3, config.nz))
    assert x.shape == (3, 3, size, size) and x.abs().max() <= 1  # Tanh output
    assert D(x).shape == (3,)
    g_layers, d_layers = list(G.net), list(D.net)
    # no BatchNorm at G's output and D's input; strided (transposed) convolutions, no pooling or linear layers
    assert isinstance(g_layers[-2], nn.ConvTranspose2d) and isinstance(g_layers[-1], nn.Tanh)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert d_layers[1].negative_slope == 0.2
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in [*G.modules(), *D.modules()])
    assert all(isinstance(m, nn.ReLU) for m in G.net if isinstance(m, (nn.ReLU, nn.LeakyReLU)))


def test_dcgan_init_and_optimizer():
    config = dcgan.DCGANConfig()
    G, D = dcgan.build(config, seed=0)
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 5e-4  # N(0, 0.02), Section 4
    bn = torch.cat([m.weight for m in D.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean() - 1) < 5e-3
    opt_g, opt_d = dcgan.optimizers(G, D, config)
    for opt in (opt_g, opt_d):
        assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)
    G2, _ = dcgan.build(config, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(G.parameters(), G2.parameters(), strict=True))  # seeded


def test_dcgan_bad_inputs():
    with pytest.raises(ValueError, match="power of two >= 16.*got 48"):
        dcgan.DCGANConfig(image_size=48)
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'; valid losses: bce, lsgan, hinge"):
        dcgan.DCGANConfig(loss="wgan")
    with pytest.raises(ValueError, match=r"images must be \(N, 3, 32, 32\)"):
        dcgan.train(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), dcgan.DCGANConfig(image_size=32),
                    TrainConfig(steps=1, cpu=True))


def _dcgan_run(tmp_path, steps, resume):
    config = dcgan.DCGANConfig(image_size=16, ngf=4, ndf=4)
    images = art.generate(16, 16, seed=0)
    tc = TrainConfig(steps=steps, log_every=1, checkpoint_dir=tmp_path, cpu=True)
    history, loop, _ = dcgan.train(images, config, tc, batch_size=4, seed=0, resume=resume)
    return history, loop


def test_dcgan_resume_matches_uninterrupted(tmp_path):
    full_history, full = _dcgan_run(tmp_path / "straight", 4, False)
    _dcgan_run(tmp_path / "split", 2, False)
    history, resumed = _dcgan_run(tmp_path / "split", 4, True)
    assert history == full_history
    for name in ("generator", "discriminator"):
        for a, b in zip(full[name].state_dict().values(), resumed[name].state_dict().values(), strict=True):
            assert torch.equal(a, b)


# -- losses ----------------------------------------------------------------------------
def test_losses_against_their_formulas():
    real, fake = torch.randn(5), torch.randn(5)
    sig = torch.sigmoid
    assert torch.allclose(losses.discriminator_loss(real, fake, "bce"),
                          -(sig(real).log().mean() + (1 - sig(fake)).log().mean()), atol=1e-6)
    assert torch.allclose(losses.generator_loss(fake, "bce"), -sig(fake).log().mean(), atol=1e-6)
    assert torch.allclose(losses.discriminator_loss(real, fake, "lsgan"),
                          0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean())
    assert torch.allclose(losses.generator_loss(fake, "lsgan"), ((fake - 1) ** 2).mean())
    with pytest.raises(ValueError, match="unknown GAN loss 'l2'"):
        losses.generator_loss(fake, "l2")


# -- CycleGAN ------------------------------------------------------------------------
def test_cyclegan_parameter_counts_match_reference():
    """junyanz/pytorch-CycleGAN-and-pix2pix prints 11.378 M (resnet_9blocks G) and 2.765 M (basic D) at 256 px."""
    gens, discs = cyclegan.build(cyclegan.CycleGANConfig(image_size=256))
    assert round(count_parameters(gens.g_ab) / 1e6, 3) == 11.378
    assert round(count_parameters(discs.d_a) / 1e6, 3) == 2.765
    assert count_parameters(gens.g_ab) == 11_378_179 and count_parameters(discs.d_a) == 2_764_737
    gens6, _ = cyclegan.build(cyclegan.CycleGANConfig(generator="resnet_6blocks"))
    assert round(count_parameters(gens6.g_ab) / 1e6, 3) == 7.838  # the reference's 6-block count
    with torch.no_grad():
        assert discs.d_a(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # 30x30 patch map at 256 px


@pytest.mark.parametrize("name,field", [("patch16", 16), ("patch34", 34), ("patch70", 70)])
def test_patchgan_receptive_field(name, field):
    """One output score depends on exactly a field x field window of the input (70x70 for the paper's D)."""
    config = cyclegan.CycleGANConfig(image_size=96, discriminator=name, ndf=4)
    _, discs = cyclegan.build(config)
    d = discs.d_a.eval()
    for m in d.modules():  # instance norm mixes every pixel; replace it to see the convolutions' field alone
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.01)
    d.net = nn.Sequential(*[nn.Identity() if isinstance(m, nn.InstanceNorm2d) else m for m in d.net])
    x = torch.zeros(1, 3, 96, 96, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
    cols = torch.nonzero(x.grad[0].abs().sum(0).sum(0)).flatten()
    assert rows.max() - rows.min() + 1 == field and cols.max() - cols.min() + 1 == field


def test_resnet_generator_shapes():
    config = cyclegan.CycleGANConfig(image_size=32, generator="resnet_6blocks", ngf=4)
    gens, _ = cyclegan.build(config)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = gens(x, x)
    assert set(out) == {"fake_a", "fake_b", "rec_a", "rec_b", "idt_a", "idt_b"}
    assert all(v.shape == x.shape and v.abs().max() <= 1 for v in out.values())
    assert sum(isinstance(m, cyclegan.ResnetBlock) for m in gens.g_ab.modules()) == 6
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gens.modules())  # instance norm throughout


def test_linear_decay_schedule():
    f = cyclegan.linear_decay(200, 0.5)  # 100 constant, then linear to 0 at step 200
    assert [f(0), f(99), f(100), f(150), f(200)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    config = cyclegan.CycleGANConfig(image_size=32, ngf=4, ndf=4, generator="resnet_6blocks")
    gens, discs = cyclegan.build(config)
    opt_g, _, sched_g, _ = cyclegan.optimizers(gens, discs, config, steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt_g.param_groups[0]["lr"])
        opt_g.step()
        sched_g.step()
    assert lrs[:6] == [2e-4] * 6 and lrs[6] == pytest.approx(2e-4 * 4 / 5) and opt_g.param_groups[0]["lr"] == 0


def test_image_pool_follows_reference():
    pool = ImagePool(3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: images pass through
    later = torch.full((200, 1, 1, 1), 9.0)
    out = pool.query(later)
    swapped = (out != 9).sum()
    assert 0 < swapped <= 3  # stored images come out, each at most once before being replaced by 9s
    state = pool.state_dict()
    a = pool.query(torch.full((50, 1, 1, 1), 7.0))
    twin = ImagePool(3, seed=123)
    twin.load_state_dict(state)
    assert torch.equal(twin.query(torch.full((50, 1, 1, 1), 7.0)), a)
    assert torch.equal(ImagePool(0).query(first), first)


def test_cyclegan_bad_inputs():
    with pytest.raises(ValueError, match="divisible by 4.*got 30"):
        cyclegan.CycleGANConfig(image_size=30)
    with pytest.raises(ValueError, match="at least 24 for the patch70"):
        cyclegan.CycleGANConfig(image_size=16)
    with pytest.raises(ValueError, match="unknown generator 'unet_256'; valid generators: resnet_6blocks"):
        cyclegan.CycleGANConfig(generator="unet_256")
    with pytest.raises(ValueError, match="unknown discriminator 'pixel'"):
        cyclegan.CycleGANConfig(discriminator="pixel")
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
        cyclegan.CycleGANConfig(loss="wgan")


def _cyclegan_run(tmp_path, steps, resume):
    config = cyclegan.CycleGANConfig(image_size=24, generator="resnet_6blocks", ngf=4, ndf=4, pool_size=2)
    photos, paintings = art.generate(6, 24, style="grid", seed=1), art.generate(6, 24, style="dream", seed=2)
    tc = TrainConfig(steps=steps, log_every=1, checkpoint_dir=tmp_path, cpu=True)
    return cyclegan.train(photos, paintings, config, tc, batch_size=2, seed=0, resume=resume)


def test_cyclegan_resume_matches_uninterrupted(tmp_path):
    """Weights, optimizer moments, lr schedule and the image pools all come back from the checkpoint."""
    full_history, full = _cyclegan_run(tmp_path / "straight", 4, False)
    # the split run has its own 4-step schedule; it stops after 2 steps by checkpointing, as if killed
    first = TrainConfig(steps=4, log_every=1, checkpoint_dir=tmp_path / "split", checkpoint_every=2, cpu=True)
    config = cyclegan.CycleGANConfig(image_size=24, generator="resnet_6blocks", ngf=4, ndf=4, pool_size=2)
    loop = cyclegan.setup(config, first, seed=0)
    step = cyclegan.make_step(loop, config)
    photos, paintings = art.generate(6, 24, style="grid", seed=1), art.generate(6, 24, style="dream", seed=2)
    data = cyclegan.unpaired(photos, paintings, batch_size=2, seed=0)

    class StopError(Exception):
        pass

    def step_then_stop(batch, t):
        if t == 2:
            raise StopError
        return step(batch, t)

    with pytest.raises(StopError):
        loop.run(step_then_stop, data)
    history, resumed = _cyclegan_run(tmp_path / "split", 4, True)
    assert [h["loss_g"] for h in history] == [h["loss_g"] for h in full_history]
    for name in ("generators", "discriminators"):
        for a, b in zip(full[name].state_dict().values(), resumed[name].state_dict().values(), strict=True):
            assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(full["pool_b"].images, resumed["pool_b"].images, strict=True))


def test_cyclegan_learns_identity_direction():
    """A few steps reduce the cycle + identity terms from their value at initialisation."""
    config = cyclegan.CycleGANConfig(image_size=24, generator="resnet_6blocks", ngf=4, ndf=4, lr=2e-3)
    photos, paintings = art.generate(4, 24, style="grid", seed=1), art.generate(4, 24, style="dream", seed=2)
    history, _ = cyclegan.train(photos, paintings, config, TrainConfig(steps=12, log_every=1, cpu=True), batch_size=4)
    assert history[-1]["cycle"] < history[0]["cycle"]


def test_benchmark_runs_on_cpu():
    """The GPU benchmark's code path at toy scale: every non-compiled variant runs and reports it/s."""
    from moderndl.gan import bench

    config = cyclegan.CycleGANConfig(generator="resnet_6blocks", ngf=4, ndf=4)
    rows = bench.benchmark(image_size=24, batch_sizes=(1, 2), variants=("eager_fp32", "bf16_channels_last"),
                           config=config, warmup=1, repeats=1, cpu=True)
    assert [(r["variant"], r["batch_size"]) for r in rows] == [
        ("eager_fp32", 1), ("bf16_channels_last", 1), ("eager_fp32", 2), ("bf16_channels_last", 2)]
    for r in rows:  # the one benchmark shape: images per second at the median step time
        assert r["device"].startswith("cpu") and r["items_per_step"] == r["batch_size"]
        assert r["items_per_s"] == pytest.approx(r["batch_size"] / r["median_s"])
    with pytest.raises(ValueError, match="unknown benchmark variant"):
        bench.benchmark(variants=("fp8",))


def test_dcgan_snapshots_and_sampling_leave_g_untouched(tmp_path):
    config = dcgan.DCGANConfig(image_size=16, ngf=4, ndf=4)
    z = dcgan.noise(8, config.nz, seed=1)
    _, loop, snaps = dcgan.train(art.generate(16, 16, seed=0), config, TrainConfig(steps=3, log_every=1, cpu=True),
                                 batch_size=4, snapshot_steps=(0, 3), snapshot_z=z)
    assert sorted(snaps) == [0, 3] and snaps[3].shape == (8, 3, 16, 16)
    G = loop["generator"]
    before = {k: v.clone() for k, v in G.state_dict().items()}
    again = dcgan.sample(G, z)
    assert torch.allclose(again, snaps[3]) and all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert not torch.allclose(snaps[0], snaps[3])  # three steps moved G


def test_dcgan_noise_is_this_ranks_slice_of_the_global_batch():
    """Two ranks draw rows [0, 4) and [4, 8) of the one-process noise at the same step."""
    whole = dcgan.noise(8, 5, seed=3, step=7)
    parts = [dcgan.noise(8, 5, seed=3, step=7)[rank_slice(8, r, 2)] for r in range(2)]
    assert torch.equal(torch.cat(parts), whole)
    assert torch.equal(dcgan.rank_noise(8, 5, seed=3, step=7), whole)  # one process keeps the whole batch
    assert not torch.equal(dcgan.noise(8, 5, seed=3, step=8), whole)
