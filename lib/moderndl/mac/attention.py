"""Reading MAC's attention: does the read attention land on the objects a question names?

Hudson & Manning (2018), arXiv:1803.03067, Sec. 4.2 and Fig. 5 show the control attention
$cv_{i,s}$ (Eq. c2.2) over the words and the read attention $rv_{i,h,w}$ (Eq. r3.2) over
the image at each step. We quantify the second. With $M^o \\in [0, 1]^{H \\times W}$ the
fraction of each knowledge-base cell covered by object $o$, the read mass on $o$ at step $i$
is $a_{i,o} = \\sum_{h,w} rv_{i,h,w} M^o_{h,w}$, and the share of the object-directed mass
that lands on the referenced objects $R$ is

$$\\mathrm{share} = \\frac{\\sum_{o \\in R} \\bar a_o}{\\sum_{o} \\bar a_o},
\\qquad \\bar a_o = \\tfrac1p \\sum_i a_{i,o} .$$

The baseline is the *object-only prior*: an attention spread over the objects' pixels
whatever the question asks, $rv \\propto \\sum_o M^o$. Looking at objects is easy; looking at
the right ones is the claim, so MAC's share is compared with the prior's by the odds ratio.
For relate chains, :func:`chain_order` asks whether the step at which each object of the
chain gets its most mass follows the chain: the anchor first, then each hop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from moderndl.mac.world import VQAData, object_masks, tokenize


def object_coverage(data: VQAData, index: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For questions ``index`` (B,): each object's mask area-pooled to ``grid`` (B, O, g, g), and
    which objects are present (B, O)."""
    if data.objects is None or data.refs is None:
        raise ValueError("this dataset has no object masks (real CLEVR ships none); attention cannot be scored")
    objects = data.objects[data.scene[index]]  # (B, O, 6)
    masks = object_masks(objects, data.attributes["shape"], data.images.shape[-1]).float()  # (B, O, H, W)
    B, O, H, W = masks.shape
    pooled = F.adaptive_avg_pool2d(masks.reshape(B * O, 1, H, W), grid).reshape(B, O, grid, grid)  # (B, O, g, g)
    return pooled, objects[..., 0] >= 0


def mass_on_objects(read: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Read mass on each object per step: ``read`` (B, p, g, g), ``coverage`` (B, O, g, g) -> (B, p, O)."""
    return torch.einsum("bphw,bohw->bpo", read, coverage)


def object_prior(coverage: torch.Tensor) -> torch.Tensor:
    """The question-blind attention over the objects' pixels: (B, O, g, g) -> (B, 1, g, g), summing to 1."""
    union = coverage.sum(1, keepdim=True)  # (B, 1, g, g)
    return union / union.flatten(1).sum(-1).clamp_min(1e-12)[:, None, None, None]


def reference_share(mass: torch.Tensor, refs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Per question, the share of the step-averaged object mass on the referenced objects.

    ``mass`` (B, p, O), ``refs`` and ``present`` (B, O) bool. Returns (B,).
    """
    mean = mass.mean(1) * present  # (B, O)
    return (mean * refs).sum(-1) / mean.sum(-1).clamp_min(1e-12)


def chain_order(mass: torch.Tensor, chains: list[tuple[int, ...]]) -> torch.Tensor:
    """Per question, the fraction of consecutive chain objects whose peak step comes strictly later.

    ``mass`` (B, p, O); ``chains[b]`` lists the objects in program order. Attention that follows
    the chain scores 1; peaks drawn at random from p steps score (p - 1) / (2p) on average.
    """
    out = []
    for b, chain in enumerate(chains):
        peaks = mass[b][:, list(chain)].argmax(0)  # (L,): the step of most mass on each chain object
        out.append((peaks[1:] > peaks[:-1]).float().mean())
    return torch.stack(out)  # (B,)


def odds_ratio(share: float, prior: float) -> float:
    """``share / (1 - share)`` over ``prior / (1 - prior)``: 1 means no better than the prior."""
    eps = 1e-9
    return (share / max(1 - share, eps)) / max(prior / max(1 - prior, eps), eps)


@torch.no_grad()
def score_attention(model, data: VQAData, tokens: torch.Tensor, lengths: torch.Tensor, *,
                    batch_size: int = 256, device="cpu") -> dict[str, float]:
    """MAC's reference share against the object-only prior's, and the chain order of relate chains.

    Averages over the questions that refer to at least one object and leave at least one out
    (the share is 1 by definition otherwise); the chain order over relate questions of 2+ hops.
    """
    model.eval().to(device)
    present_all = data.objects[data.scene][..., 0] >= 0  # (Q, O)
    keep = data.refs.any(1) & (present_all & ~data.refs).any(1)  # (Q,)
    relate = data.families == data.family_names.index("relate")
    keep_chain = relate & (data.hops >= 2)
    idx_all = torch.nonzero(keep | keep_chain).squeeze(1)  # (Q',)
    shares, priors, orders = [], [], []
    p = 1
    for start in range(0, len(idx_all), batch_size):
        idx = idx_all[start:start + batch_size]  # (b,)
        _, att = model(data.images[data.scene[idx]].to(device), tokens[idx].to(device), lengths[idx],
                       attention=True)
        read = att["read"].float().cpu()  # (b, p, g, g)
        p = read.shape[1]
        coverage, present = object_coverage(data, idx, read.shape[-1])  # (b, O, g, g), (b, O)
        mass = mass_on_objects(read, coverage)  # (b, p, O)
        prior = mass_on_objects(object_prior(coverage), coverage)  # (b, 1, O)
        sel = keep[idx]
        shares.append(reference_share(mass, data.refs[idx], present)[sel])
        priors.append(reference_share(prior, data.refs[idx], present)[sel])
        chained = keep_chain[idx]
        if chained.any() and data.chains is not None:
            orders.append(chain_order(mass[chained], [data.chains[int(q)] for q in idx[chained]]))
    share, prior = float(torch.cat(shares).mean()), float(torch.cat(priors).mean())
    order = float(torch.cat(orders).mean()) if orders else float("nan")
    return {"share": share, "prior_share": prior, "odds_ratio": odds_ratio(share, prior),
            "chain_order": order, "chain_order_chance": (p - 1) / (2 * p),
            "questions": int(keep.sum()), "chain_questions": int(keep_chain.sum())}


def plot_reasoning(image: torch.Tensor, question: str, control: torch.Tensor, read: torch.Tensor,
                   title: str = "", outline: torch.Tensor | None = None):
    """Fig. 5 of the paper for one question: the image dimmed where the read attention is low, per step (top), and
    control attention over the words per step (bottom). ``control``: (p, S); ``read``: (p, g, g);
    ``outline``: (K, 4) boxes ``(x0, y0, x1, y1)`` of the referenced objects in program order,
    drawn and numbered (0 = the anchor)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

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
        for k, (x0, y0, x1, y1) in enumerate([] if outline is None else outline.tolist()):
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.0, ec="black"))
            ax.text(x0, y0, str(k), fontsize=6, va="bottom", color="black")
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
