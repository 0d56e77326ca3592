"""The image pool: CycleGAN's discriminators see a history of generated images.

Shrivastava et al. 2017, *Learning from Simulated and Unsupervised Images through
Adversarial Training*, arXiv:1612.07828, Section 2.3; used by Zhu et al. 2017
(arXiv:1703.10593), Section 4: "we keep an image buffer that stores the 50 previously
created images". Once full, each new image replaces a random stored one half of the
time, and D is shown the stored image in its place.

The pool holds its own seeded generator and is checkpointable (``state_dict``), so a
resumed run draws what an uninterrupted run would.
"""

from __future__ import annotations

import torch


class ImagePool:
    """A buffer of at most ``size`` images (Zhu et al. Section 4: size 50); ``size=0`` is a pass-through."""

    def __init__(self, size: int = 50, *, seed: int = 0):
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"pool size must be an int >= 0, got {size!r}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch like ``images`` (N, C, H, W), mixing in stored images once the pool is full."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():  # (C, H, W)
            if len(self.images) < self.size:  # fill the pool first, and return the new image
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) > 0.5:  # swap with a stored image
                k = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[k].to(image.device, copy=True))  # a checkpoint restores on the CPU
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)  # (N, C, H, W)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [im.cpu() for im in self.images],
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size:
            raise ValueError(f"pool size {self.size} differs from the checkpoint's {state['size']}")
        self.images = list(state["images"])
        self.generator.set_state(state["generator"])
