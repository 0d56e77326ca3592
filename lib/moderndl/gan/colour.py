r"""A classical baseline for style transfer: colour transfer by matching statistics in Lab.

*Color Transfer between Images*, Reinhard, Ashikhmin, Gooch & Shirley 2001, IEEE CG&A 21(5).
Each channel $k$ of a source image, in a perceptual colour space, is shifted and scaled so
that its mean and standard deviation become the target's (their Section 2):

$$\ell'_k = \frac{\sigma^t_k}{\sigma^s_k}\,(\ell_k - \mu^s_k) + \mu^t_k .$$

Reinhard et al. work in their $\ell\alpha\beta$ space; we use CIE Lab through
scikit-image's conversions, the common modern form. The target statistics here are those of
a whole set (the art), pooled over its pixels; the source statistics are each photo's own.
A grey photo has no chroma spread ($\sigma^s = 0$ for a and b): it takes the target's mean
chroma, a uniform tint. Anything CycleGAN claims as *style* transfer has to beat this.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

EPS = 0.5  # Lab units: a channel with less spread is flat (a just noticeable difference is about 2.3)


def _lab(images: torch.Tensor) -> np.ndarray:
    """uint8 ``(N, 3, H, W)`` -> float64 Lab ``(N, H, W, 3)``."""
    from skimage.color import rgb2lab

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    rgb = images.permute(0, 2, 3, 1).numpy().astype(np.float64) / 255.0  # (N, H, W, 3)
    return rgb2lab(rgb, channel_axis=-1)


def lab_stats(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of L, a and b over every pixel of a set: two arrays of shape (3,)."""
    lab = _lab(images).reshape(-1, 3)  # (N * H * W, 3)
    return lab.mean(axis=0), lab.std(axis=0)


def transfer(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reinhard et al.'s Section 2 per image: match each photo's Lab mean and std to ``target``'s
    (a set, pooled). uint8 ``(N, 3, H, W)`` in, uint8 out."""
    from skimage.color import lab2rgb

    mu_t, sigma_t = lab_stats(target)
    lab = _lab(images)  # (N, H, W, 3)
    mu_s = lab.mean(axis=(1, 2), keepdims=True)  # (N, 1, 1, 3)
    sigma_s = lab.std(axis=(1, 2), keepdims=True)
    scale = np.where(sigma_s > EPS, sigma_t / np.maximum(sigma_s, EPS), 0.0)  # flat channel: take the mean
    out = (lab - mu_s) * scale + mu_t  # (N, H, W, 3)
    with warnings.catch_warnings():  # colours outside the sRGB gamut are clipped, as Reinhard et al. do
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(out, channel_axis=-1)
    array = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
