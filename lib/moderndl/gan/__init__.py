"""Generative adversarial networks for style transfer.

- ``losses``: the adversarial objectives (Goodfellow et al. 2014; LSGAN, Mao et al. 2017).
- ``dcgan``: Radford et al. 2016's deep convolutional GAN and its training step.
- ``cyclegan``: Zhu et al. 2017's unpaired translation (ResNet generator, PatchGAN).
- ``pool``: the history of generated images that CycleGAN's discriminators see.
- ``swd``: the sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018).
- ``pixels``: uint8 images to the generator's [-1, 1] range and back; image grids.
- ``bench``: CycleGAN training throughput, eager fp32 against bf16/channels_last/compile.
"""
