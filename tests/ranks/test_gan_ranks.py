"""GANs on two gloo CPU ranks. CycleGAN has no BatchNorm (instance norm is per image): with the
image pool off, two ranks train exactly like one process with the global batch. DCGAN has
BatchNorm, and without SyncBatchNorm on CPU each rank normalises its own half, so its weights
differ from one process; what holds is that the ranks split the global batch of images and of
noise, and stay in sync with each other."""

import torch

from ..conftest import run_ranks

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
from accelerate.state import PartialState

out = Path(os.environ["OUT"])
rank = PartialState().process_index
torch.set_num_threads(1)
config, photos, paintings = cycle_setup()
data = cyclegan.unpaired(photos, paintings, batch_size=4, seed=0)
history, loop = cyclegan.train(photos, paintings, config, TrainConfig(steps=3, log_every=1, cpu=True, progress=False),
                               batch_size=4, seed=0)
dconfig, images = dc_setup()
dhistory, dloop, _ = dcgan.train(images, dconfig, TrainConfig(steps=3, log_every=1, cpu=True, progress=False),
                                 batch_size=8, seed=0)
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
    for name, want in loop.unwrap("generators").state_dict().items():
        assert torch.allclose(r0["cycle"][name], want, atol=1e-5), name
        assert torch.equal(r0["cycle"][name], r1["cycle"][name]), name
    for name, want in loop.unwrap("discriminators").state_dict().items():
        assert torch.allclose(r0["cycle_d"][name], want, atol=1e-5), name
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
