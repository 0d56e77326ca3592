"""Reading MAC's attention: how much of the read attention lands on the objects a question names.

Hudson & Manning (2018), arXiv:1803.03067, Sec. 4.2 and Fig. 5 show the control attention
$cv_{i,s}$ (Eq. c2.2) over the words and the read attention $rv_{i,h,w}$ (Eq. r3.2) over
the image at each step. We quantify the second: with $M \\in [0, 1]^{H \\times W}$ the
fraction of each knowledge-base cell covered by the referenced objects,

$$\\mathrm{on\\_refs}_i = \\sum_{h,w} rv_{i,h,w}\\,M_{h,w}, \\qquad
\\mathrm{uniform} = \\frac{1}{HW}\\sum_{h,w} M_{h,w},$$

where "uniform" is what an attention spread evenly over the image would score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from moderndl.data.clevr import VQAData, object_masks, tokenize


def reference_coverage(data: VQAData, index: torch.Tensor, grid: int) -> torch.Tensor:
    """For questions ``index`` (B,): the union of their referenced objects' masks, area-pooled to ``grid``.

    Returns ``M`` (B, grid, grid) with values in [0, 1].
    """
    if data.objects is None or data.refs is None:
        raise ValueError("this dataset has no object masks (real CLEVR ships none); attention cannot be scored")
    size = data.images.shape[-1]
    masks = object_masks(data.objects[data.scene[index]], data.attributes["shape"], size)  # (B, O, H, W)
    union = (masks & data.refs[index][:, :, None, None]).any(dim=1).float()  # (B, H, W)
    return F.adaptive_avg_pool2d(union[:, None], grid)[:, 0]  # (B, grid, grid)


def attention_on_references(read: torch.Tensor, coverage: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per question: read mass on the references per step (B, p), its mean and max over steps, the uniform score.

    ``read``: (B, p, g, g) read attention (each step sums to 1); ``coverage``: (B, g, g).
    """
    on_refs = (read * coverage[:, None]).flatten(2).sum(-1)  # (B, p)
    return {"per_step": on_refs, "mean": on_refs.mean(1), "max": on_refs.max(1).values,
            "uniform": coverage.flatten(1).mean(-1)}  # (B,) each but per_step


@torch.no_grad()
def score_attention(model, data: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, *,
                    batch_size: int = 256, device="cpu") -> dict[str, float]:
    """Averages over every question that refers to at least one object (exist/count with answer 0 refer to none)."""
    model.eval().to(device)
    idx_all = torch.nonzero(data.refs.any(1)).squeeze(1)  # (Q',)
    sums = {"mean": 0.0, "max": 0.0, "uniform": 0.0}
    for start in range(0, len(idx_all), batch_size):
        idx = idx_all[start:start + batch_size]  # (b,)
        _, att = model(data.images[data.scene[idx]].to(device), tokens[idx].to(device), lengths[idx],
                       attention=True)
        coverage = reference_coverage(data, idx, att["read"].shape[-1])  # (b, g, g)
        scores = attention_on_references(att["read"].float().cpu(), coverage)
        for k in sums:
            sums[k] += float(scores[k].sum())
    n = max(1, len(idx_all))
    out = {k: v / n for k, v in sums.items()}
    out["lift_mean"] = out["mean"] / max(out["uniform"], 1e-12)
    out["lift_max"] = out["max"] / max(out["uniform"], 1e-12)
    out["questions"] = float(len(idx_all))
    return out


def plot_reasoning(image: torch.Tensor, question: str, control: torch.Tensor, read: torch.Tensor,
                   title: str = ""):
    """Fig. 5 of the paper for one question: the image dimmed where the read attention is low, per step (top), and
    control attention over the words per step (bottom). ``control``: (p, S); ``read``: (p, g, g)."""
    import matplotlib.pyplot as plt

    words = tokenize(question)
    p = read.shape[0]
    fig = plt.figure(figsize=(1.6 * p, 3.4), dpi=100)
    grid = fig.add_gridspec(2, p, height_ratios=[1.0, 0.9])
    img = image.permute(1, 2, 0).numpy()  # (H, W, 3)
    size = img.shape[0]
    for i in range(p):
        ax = fig.add_subplot(grid[0, i])
        heat = F.interpolate(read[i][None, None].float(), size=(size, size), mode="nearest")[0, 0]  # (H, W)
        weight = (0.15 + 0.85 * heat / heat.max()).numpy()[..., None]  # (H, W, 1): unattended regions fade
        ax.imshow((img * weight).astype("uint8"))
        ax.set_title(f"step {i + 1}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    ax.imshow(control[:, : len(words)].float().numpy(), cmap="Blues", aspect="auto", vmin=0.0)
    ax.set_xticks(range(len(words)), words, rotation=45, fontsize=7)
    ax.set_yticks(range(p), [f"{i + 1}" for i in range(p)], fontsize=7)
    ax.set_ylabel("step", fontsize=8)
    fig.suptitle(title or question, fontsize=9)
    fig.tight_layout()
    return fig
