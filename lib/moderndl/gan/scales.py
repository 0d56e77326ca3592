"""The chapter's profiles: one entry per scale, the same parameters in each.

- ``dcgan_*``: the DCGAN's image side, width (``ngf = ndf``), steps, global batch and lr;
  ``dcgan_snapshots``: points of its SWD curve (and image grid) over training.
- ``cyclegan_*``: CycleGAN's side, generator, width, steps, global batch, lr, and the number
  of seeds (``seed``, ``seed + 1``, ...).
- ``n_images``: training images per domain; ``swd_*``: images, patches per image and
  direction repeats of the metric; ``classifier_*``: held-out art and steps of the style
  classifier.
- ``threads``: torch intra-op threads (0 keeps the default); ``mixed_precision``,
  ``channels_last``, ``compile``: the GPU switches (the CPU runs fp32: the loop decides);
  ``benchmark``: the CycleGAN throughput benchmark in the notebook (on a GPU).
- ``art_folder``, ``photo_folder``: a user's own images instead of the generated ones.
- ``workers``: CycleGAN seeds trained at once on CPU, one process of one thread each (the
  runs equal those trained one after another).

The full profile is the paper's networks and optimiser (64 px DCGAN; 256 px CycleGAN with the
9-block ResNet, batch 1, lr 2e-4 with linear decay over the second half), but not its length:
12,000 steps at batch 1 over 2,000 photos are 6 epochs, where Zhu et al. train 200.
"""

_full = dict(dcgan_image_size=64, dcgan_width=64, dcgan_steps=4000, dcgan_batch_size=128, dcgan_lr=2e-4,
             dcgan_snapshots=8,
             cyclegan_image_size=256, cyclegan_generator="resnet_9blocks", cyclegan_width=64, cyclegan_steps=12000,
             cyclegan_batch_size=1, cyclegan_lr=2e-4, cyclegan_seeds=1,
             n_images=2000, swd_images=1000, swd_patches=128, swd_repeats=4,
             classifier_images=2000, classifier_steps=400,
             threads=0, mixed_precision="bf16", channels_last=True, compile=False, benchmark=True,
             art_folder=None, photo_folder=None, workers=1)

TABLE = {
    "smoke": dict(_full, dcgan_image_size=32, dcgan_width=16, dcgan_steps=240, dcgan_batch_size=32,
                  dcgan_snapshots=4,
                  cyclegan_image_size=32, cyclegan_generator="resnet_6blocks", cyclegan_width=8, cyclegan_steps=150,
                  cyclegan_batch_size=4, cyclegan_lr=1e-3, cyclegan_seeds=1,
                  n_images=512, swd_images=256, swd_patches=32, swd_repeats=1,
                  classifier_images=512, classifier_steps=100,
                  threads=1, mixed_precision="no", channels_last=False, benchmark=False),
    "laptop": dict(_full, dcgan_image_size=32, dcgan_width=16, dcgan_steps=1200, dcgan_batch_size=64,
                   dcgan_snapshots=6,
                   cyclegan_image_size=32, cyclegan_generator="resnet_6blocks", cyclegan_width=16,
                   cyclegan_steps=700, cyclegan_batch_size=1, cyclegan_lr=5e-4, cyclegan_seeds=3,
                   n_images=2000, swd_images=500, swd_patches=64, swd_repeats=2,
                   classifier_images=1000, classifier_steps=200,
                   threads=1, mixed_precision="no", channels_last=False, benchmark=False, workers=2),
    "full": _full,
    # the full settings with steps, data and the CycleGAN's image side cut: every code path on a CPU
    # (n_images: one DCGAN batch; one thread: the CPU's small convolutions run best so)
    "dry": dict(_full, dcgan_steps=2, dcgan_snapshots=2, cyclegan_image_size=64, cyclegan_steps=2,
                n_images=_full["dcgan_batch_size"], swd_images=8, swd_patches=16, swd_repeats=1,
                classifier_images=64, classifier_steps=2, threads=1, benchmark=False),
}

RANGES = {"dcgan_steps": (1, None), "cyclegan_steps": (1, None), "dcgan_batch_size": (1, None),
          "cyclegan_batch_size": (1, None), "cyclegan_seeds": (1, None), "dcgan_snapshots": (1, None),
          "n_images": (1, None), "swd_images": (2, None), "swd_patches": (1, None), "swd_repeats": (1, None),
          "classifier_images": (4, None), "classifier_steps": (1, None), "threads": (0, None),
          "dcgan_width": (1, None), "cyclegan_width": (1, None), "workers": (1, None)}
