"""The MAC network: input unit, a recurrent chain of p MAC cells, output unit.

Hudson & Manning (2018), "Compositional Attention Networks for Machine Reasoning",
arXiv:1803.03067, Sec. 3.1 (input unit), 3.2 (cells) and 3.3 (output unit):

$$p(a \\mid K, q) = \\mathrm{softmax}\\big(W_2\\,\\mathrm{ELU}(W_1 [q; m_p] + b_1) + b_2\\big).$$

The paper's knowledge base is a frozen ResNet-101 conv4 map (14 x 14 x 1024) followed by
two 3x3 convolutions to d channels. We have no pretrained ResNet offline, so a stack of
stride-2 convolutions learns the features from pixels; the two d-channel convolutions
that follow are the paper's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from moderndl.mac.cell import MACCell
from moderndl.mac.config import MACConfig

UNK_ID = 1  # moderndl.mac.world: PAD = 0, UNK = 1


def check_tokens(tokens: torch.Tensor, num_words: int, unknown: str) -> torch.Tensor:
    """Token ids must lie in ``[0, num_words)``; out-of-vocabulary ids raise or map to UNK."""
    bad = (tokens < 0) | (tokens >= num_words)
    if bool(bad.any()):
        if unknown == "error":
            value = int(tokens[bad][0])
            raise ValueError(f"question token id {value} is not in the vocabulary of num_words={num_words}; "
                             f"set MACConfig(unknown='unk') to map unknown tokens to UNK={UNK_ID}")
        tokens = tokens.masked_fill(bad, UNK_ID)
    return tokens


def check_images(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Images ``(B, 3, image_size, image_size)``, uint8 in [0, 255] or float in [0, 1]; scaled to ~N(0, 1)."""
    if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (image_size, image_size):
        raise ValueError(f"images must be (B, 3, {image_size}, {image_size}) for image_size={image_size}, "
                         f"got an image of size {tuple(images.shape)}")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return (x - 0.5) / 0.25


class InputUnit(nn.Module):
    """Sec. 3.1: word embeddings, a biLSTM with d/2 units per direction.

    The contextual words are the biLSTM outputs $cw_s$ (B, S, d); the question is
    $q = [\\overleftarrow{cw_1}; \\overrightarrow{cw_S}]$ (B, d), the two final states.
    """

    def __init__(self, config: MACConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.num_words, config.embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(config.embed_dim, config.d // 2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``tokens`` (B, T) with PAD = 0 and ``lengths`` (B,). Returns q (B, d), words (B, S, d), mask (B, S)."""
        tokens = check_tokens(tokens, self.config.num_words, self.config.unknown)
        S = int(lengths.max())
        tokens = tokens[:, :S]  # (B, S): trim shared padding
        x = self.dropout(self.embed(tokens))  # (B, S, embed_dim)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        words, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, d)
        q = torch.cat([h[1], h[0]], dim=-1)  # (B, d): backward state of word 1, forward state of word S
        mask = torch.arange(S, device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]  # (B, S)
        return q, words, mask


class Stem(nn.Module):
    """The knowledge base $K$ (Sec. 3.1): pixels to a (B, H*W, d) grid of region features."""

    def __init__(self, config: MACConfig):
        super().__init__()
        self.config = config
        layers, channels = [], 3
        if config.stem == "patch":  # one feature vector per patch: (B, 3, H, W) -> (B, C, H / patch, W / patch)
            layers += [nn.Conv2d(3, config.stem_channels, config.patch, stride=config.patch), nn.ELU()]
            channels = config.stem_channels
        # stride-2 layers stand in for the frozen ResNet-101 (see the module docstring)
        for _ in range(config.stem_layers if config.stem == "conv" else 0):
            layers += [nn.Conv2d(channels, config.stem_channels, 3, stride=2, padding=1),
                       nn.BatchNorm2d(config.stem_channels), nn.ELU()]
            channels = config.stem_channels
        self.features = nn.Sequential(*layers)
        extra = 2 if config.coords else 0
        # Sec. 3.1: two CNN layers with d output channels (3x3, ELU) on top of the image features
        k = config.kb_kernel
        self.project = nn.Sequential(nn.Conv2d(channels + extra, config.d, k, padding=k // 2), nn.ELU(),
                                     nn.Conv2d(config.d, config.d, k, padding=k // 2), nn.ELU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(check_images(images, self.config.image_size))  # (B, C, g, g)
        if self.config.coords:
            B, _, g, _ = x.shape
            lin = torch.linspace(-1, 1, g, device=x.device, dtype=x.dtype)
            yy, xx = torch.meshgrid(lin, lin, indexing="ij")  # (g, g) each
            x = torch.cat([x, torch.stack([xx, yy]).expand(B, -1, -1, -1)], dim=1)  # (B, C + 2, g, g)
        kb = self.project(x)  # (B, d, g, g)
        return kb.flatten(2).transpose(1, 2)  # (B, g*g, d)


class OutputUnit(nn.Module):
    """Sec. 3.3: a two-layer classifier on $[q; m_p]$ with hidden size d."""

    def __init__(self, config: MACConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * config.d, config.d), nn.ELU(), nn.Dropout(config.dropout),
                                 nn.Linear(config.d, config.num_classes))

    def forward(self, q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([q, memory], dim=-1))  # (B, num_classes)


class MACNetwork(nn.Module):
    """Sec. 3: input unit, p weight-shared MAC cells, output unit.

    ``forward(images, tokens, lengths)`` returns logits (B, num_classes); with
    ``attention=True`` also ``{"control": (B, p, S), "read": (B, p, g, g)}``.
    """

    def __init__(self, config: MACConfig):
        super().__init__()
        self.config = config
        self.input_unit, self.stem = InputUnit(config), Stem(config)
        self.cell, self.output_unit = MACCell(config), OutputUnit(config)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, attention: bool = False):
        q, words, mask = self.input_unit(tokens, lengths)  # (B, d), (B, S, d), (B, S)
        kb = self.stem(images)  # (B, N, d)
        memory, cv, rv = self.cell(q, words, mask, kb)  # (B, d), (B, p, S), (B, p, N)
        logits = self.output_unit(q, memory)  # (B, num_classes)
        if not attention:
            return logits
        g = self.config.grid
        return logits, {"control": cv, "read": rv.reshape(rv.shape[0], rv.shape[1], g, g)}  # (B, p, g, g)


def cross_entropy(model: nn.Module, batch) -> tuple[torch.Tensor, dict]:
    """The objective of the module docstring on a batch ``(images, tokens, lengths, answers)``."""
    images, tokens, lengths, answers = batch
    logits = model(images, tokens, lengths)
    loss = F.cross_entropy(logits, answers)
    return loss, {"acc": (logits.argmax(-1) == answers).float().mean()}
