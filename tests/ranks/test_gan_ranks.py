"""GANs on two gloo CPU ranks. CycleGAN has no BatchNorm (instance norm is per image): with the
image pool off, two ranks train exactly like one process with the global batch. DCGAN has
BatchNorm, and without SyncBatchNorm on CPU each rank normalises its own half, so its weights
differ from one process; what holds is that the ranks split the global batch of images and of
noise, and stay in sync with each other."""

import torch
from torch import nn

from ..conftest import run_ranks


def shift_invariant(module: nn.Module) -> set[str]:
    """Biases of convolutions that an affine-free instance norm follows: the norm subtracts each
    channel's mean, so their gradient is zero in exact arithmetic, and Adam scales float noise
    up to full steps. They are excluded from the comparison (and checked to have no gradient)."""
    names = set()
    for prefix, seq in module.named_modules():
        if isinstance(seq, nn.Sequential):
            layers = list(seq.named_children())
            for (name, layer), (_, after) in zip(layers, layers[1:], strict=False):
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(after, nn.InstanceNorm2d):
                    names.add(f"{prefix}.{name}.bias")
    return names

SETUP = """
import torch
from moderndl.gan import art, cyclegan, dcgan
from moderndl.train import TrainConfig

def cycle_setup():
    config = cyclegan.CycleGANConfig(image_size=24, generator="resnet_6blocks", ngf=4, ndf=4, pool_size=0)
    photos, paintings = art.generate(8, 24, style="grid", seed=1), art.generate(8, 24, style="dream", seed=2)
    return config, photos, paintings

def dc_setup():
    return dcgan.DCGANConfig(image_size=16, ngf=4, ndf=4), art.generate(16, 16, seed=0)
"""

SCRIPT = SETUP + r'''
import os
from pathlib import Path

out = Path(os.environ["OUT"])
torch.set_num_threads(1)
config, photos, paintings = cycle_setup()
# the loop is built first: its Accelerator(cpu=True) sets up the gloo ranks that the samplers then read
history, loop = cyclegan.train(photos, paintings, config, TrainConfig(steps=3, log_every=1, cpu=True, progress=False),
                               batch_size=4, seed=0)
dconfig, images = dc_setup()
dhistory, dloop, _ = dcgan.train(images, dconfig, TrainConfig(steps=3, log_every=1, cpu=True, progress=False),
                                 batch_size=8, seed=0)
data = cyclegan.unpaired(photos, paintings, batch_size=4, seed=0)
rank = torch.distributed.get_rank()
torch.save({"batches": [data(t) for t in range(3)],
            "noise": [dcgan.rank_noise(8, dconfig.nz, seed=0, step=t) for t in range(3)],
            "cycle": loop.unwrap("generators").state_dict(), "cycle_d": loop.unwrap("discriminators").state_dict(),
            "cycle_history": history, "dcgan": dloop.unwrap("generator").state_dict(),
            "dcgan_d": dloop.unwrap("discriminator").state_dict()}, out / f"rank{rank}.pt")
'''


def test_two_ranks_split_the_global_batch_and_cyclegan_trains_like_one_process(tmp_path, one_thread):
    run_ranks(SCRIPT, tmp_path, nproc=2, timeout=240)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    namespace = {}
    exec(SETUP, namespace)  # noqa: S102 - the same setup as the ranks
    cyclegan, dcgan, TrainConfig = namespace["cyclegan"], namespace["dcgan"], namespace["TrainConfig"]
    config, photos, paintings = namespace["cycle_setup"]()
    one = cyclegan.unpaired(photos, paintings, batch_size=4, seed=0)
    for t in range(3):  # each rank holds half of the global batch of each domain; together, all of it
        for k in range(2):
            assert torch.equal(torch.cat([r0["batches"][t][k], r1["batches"][t][k]]), one(t)[k])
        assert torch.equal(torch.cat([r0["noise"][t], r1["noise"][t]]), dcgan.noise(8, 100, seed=0, step=t))
    history, loop = cyclegan.train(photos, paintings, config, TrainConfig(steps=3, log_every=1, cpu=True,
                                                                          progress=False), batch_size=4, seed=0)
    gens, discs = loop.unwrap("generators"), loop.unwrap("discriminators")
    for key, module in (("cycle", gens), ("cycle_d", discs)):
        skip = shift_invariant(module)
        assert len(skip) > 5
        for name, want in module.state_dict().items():
            assert torch.equal(r0[key][name], r1[key][name]), name  # DDP keeps the ranks identical
            if name not in skip:
                assert torch.allclose(r0[key][name], want, atol=1e-5), name
    # those biases get no gradient: G's adversarial, cycle and identity terms are blind to them
    fresh = cyclegan.build(config, seed=0)[0]
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    sum(v.square().mean() for v in fresh(x, x.flip(0)).values()).backward()
    grads = dict(fresh.named_parameters())
    assert max(float(grads[n].grad.abs().max()) for n in shift_invariant(fresh)) < 1e-5
    # logged scalars are the mean over ranks, which for equal halves is the one-process value
    assert [h["cycle"] for h in r0["cycle_history"]] == [
        __import__("pytest").approx(h["cycle"], abs=1e-5) for h in history]
    # DCGAN: BatchNorm statistics per rank, so only the ranks' agreement with each other holds
    for name in r0["dcgan"]:
        if "running" in name or "num_batches" in name:
            continue  # DDP broadcasts rank 0's buffers at each forward; rank 1's last update is its own
        assert torch.equal(r0["dcgan"][name], r1["dcgan"][name]), name
    dconfig, images = namespace["dc_setup"]()
    _, dloop, _ = dcgan.train(images, dconfig, TrainConfig(steps=3, log_every=1, cpu=True, progress=False),
                              batch_size=8, seed=0)
    weight = "net.0.weight"
    assert not torch.allclose(r0["dcgan"][weight], dloop.unwrap("generator").state_dict()[weight], atol=1e-7), \
        "DCGAN's BatchNorm should make two ranks differ from one process"
