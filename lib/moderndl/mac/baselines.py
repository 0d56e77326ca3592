"""The CLEVR baselines MAC is compared with.

Johnson et al. (2017), "CLEVR: A Diagnostic Dataset for Compositional Language and
Elementary Visual Reasoning", arXiv:1612.06890, Sec. 4.1:

- **LSTM** (question only): the final LSTM state, then an MLP. It can only exploit answer
  bias given the question, so it measures how much a dataset can be solved blind.
- **CNN+LSTM**: image features from a CNN and the question's LSTM state, concatenated,
  then an MLP: $p(a \\mid I, q) = \\mathrm{softmax}(\\mathrm{MLP}([\\mathrm{vec}(\\mathrm{CNN}(I)); h_T]))$.

Both reuse MAC's input unit and stem, so the comparison isolates the reasoning cells.
"""

from __future__ import annotations

import torch
from torch import nn

from moderndl.mac.config import MACConfig
from moderndl.mac.network import InputUnit, Stem


def _mlp(d_in: int, config: MACConfig) -> nn.Sequential:
    """CLEVR Sec. 4.1: an MLP with one hidden layer (ours: d units, ELU, dropout)."""
    return nn.Sequential(nn.Linear(d_in, config.d), nn.ELU(), nn.Dropout(config.dropout),
                         nn.Linear(config.d, config.num_classes))


class QuestionLSTM(nn.Module):
    """CLEVR's "LSTM" baseline: the answer from the question alone; images are ignored."""

    def __init__(self, config: MACConfig):
        super().__init__()
        self.config = config
        self.input_unit = InputUnit(config)
        self.classifier = _mlp(config.d, config)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        q, _, _ = self.input_unit(tokens, lengths)  # (B, d)
        return self.classifier(q)  # (B, num_classes)


class CNNLSTM(nn.Module):
    """CLEVR's "CNN+LSTM" baseline: flattened CNN features concatenated with the question.

    A 1x1 convolution reduces the d-channel grid to ``d // 8`` channels before flattening
    (CLEVR flattens its pooled ResNet features the same way) to keep the MLP small.
    """

    def __init__(self, config: MACConfig):
        super().__init__()
        self.config = config
        self.input_unit, self.stem = InputUnit(config), Stem(config)
        self.reduce = nn.Linear(config.d, max(1, config.d // 8))  # a 1x1 conv on the (B, N, d) grid
        self.classifier = _mlp(config.d + config.grid**2 * max(1, config.d // 8), config)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        q, _, _ = self.input_unit(tokens, lengths)  # (B, d)
        kb = self.reduce(self.stem(images))  # (B, N, d // 8)
        return self.classifier(torch.cat([kb.flatten(1), q], dim=-1))  # (B, N * d // 8 + d) -> (B, num_classes)
