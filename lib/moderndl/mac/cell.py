"""The MAC cell: Memory, Attention and Composition, one reasoning step.

Hudson & Manning (2018), "Compositional Attention Networks for Machine Reasoning",
arXiv:1803.03067, Sec. 3.2. A recurrent cell with a control state $c_i$ (what to do) and
a memory state $m_i$ (what has been found), both in $\\mathbb{R}^d$, and three units with
weights shared across the $p$ steps:

$$c_i = \\mathrm{Control}(c_{i-1}, q_i, cw_{1..S}),\\quad
r_i = \\mathrm{Read}(m_{i-1}, c_i, K),\\quad
m_i = \\mathrm{Write}(m_{i-1}, r_i, c_i).$$

The control unit attends over the question words $cw_s$, the read unit over the
knowledge-base regions $k_{h,w}$; both attentions are kept so the reasoning can be shown.
Equation names (c1, r3.2, w2, ...) are the paper's.

``MACConfig.variant = "reference"`` switches to the CLEVR settings of the authors' code
(stanfordnlp/mac-network, ``configs/args.txt``), which differ from the paper in five places:
the initial control is the question $q$ (not a learned $c_0$); the control unit does not see
$c_{i-1}$, so $cq_i = \tanh(W_i q + b_i)$; the read unit applies ELU after r2 and after the
product with the control; the memory dropout mask is drawn once per question and kept for
all steps (variational); and the memory gate's bias starts at 1 towards the new memory.
With self-attention, the reference also attends over $(c_0, m_0)$, so it is active at step 1.
"""

from __future__ import annotations

import torch
from torch import nn

from moderndl.mac.config import MACConfig


class ControlUnit(nn.Module):
    """Sec. 3.2.1, Eqs. c1-c2.3: attend over the question words to pick this step's operation."""

    def __init__(self, config: MACConfig):
        super().__init__()
        d = config.d
        self.paper = config.variant == "paper"
        # q_i = W_i^{d x d} q + b_i: a position-aware question for each step (Sec. 3.2.1)
        self.position_aware = nn.ModuleList([nn.Linear(d, d) for _ in range(config.p)])
        if self.paper:  # the reference code feeds no c_{i-1}: cq_i = tanh(q_i)
            self.combine = nn.Linear(2 * d, d)  # c1: cq_i = W^{d x 2d}[c_{i-1}, q_i] + b^d
        self.score = nn.Linear(d, 1)  # c2.1: ca_{i,s} = W^{1 x d}(cq_i * cw_s) + b^1

    def forward(self, step: int, c_prev: torch.Tensor, q: torch.Tensor, words: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``c_prev``, ``q``: (B, d); ``words``: (B, S, d); ``mask``: (B, S) True on real words.

        Returns the control ``c_i`` (B, d) and its attention ``cv_i`` (B, S).
        """
        q_i = self.position_aware[step](q)  # (B, d)
        if self.paper:
            cq = self.combine(torch.cat([c_prev, q_i], dim=-1))  # (B, d)         c1
        else:
            cq = torch.tanh(q_i)  # (B, d): the reference code's control input
        ca = self.score(cq[:, None, :] * words).squeeze(-1)  # (B, S)             c2.1
        ca = ca.masked_fill(~mask, float("-inf"))  # padding gets no attention
        cv = torch.softmax(ca, dim=-1)  # (B, S)                                  c2.2
        c = torch.einsum("bs,bsd->bd", cv, words)  # (B, d)                       c2.3
        return c, cv


class ReadUnit(nn.Module):
    """Sec. 3.2.2, Eqs. r1-r3.3: retrieve from the knowledge base guided by memory and control."""

    def __init__(self, config: MACConfig):
        super().__init__()
        d = config.d
        self.memory_proj = nn.Linear(d, d)  # r1: W_m^{d x d} m_{i-1} + b_m
        self.kb_proj = nn.Linear(d, d)  # r1: W_k^{d x d} k_{h,w} + b_k
        self.combine = nn.Linear(2 * d, d)  # r2: I' = W^{d x 2d}[I, k] + b^d
        # r3.1 is printed with W^{d x d}; it must give one logit per region, so W^{1 x d} as in the official code
        self.score = nn.Linear(d, 1)
        self.dropout = nn.Dropout(config.dropout)  # Appendix A: dropout on the memory
        self.act = nn.ELU() if config.variant == "reference" else nn.Identity()  # the reference's ELUs

    def forward(self, c: torch.Tensor, m_prev: torch.Tensor, kb: torch.Tensor,
                memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``c``, ``m_prev``: (B, d); ``kb``: (B, N, d) with N = H*W regions; ``memory_mask``
        (B, d): a variational dropout mask used instead of fresh dropout.

        Returns the retrieved ``r_i`` (B, d) and the read attention ``rv_i`` (B, N).
        """
        m = self.dropout(m_prev) if memory_mask is None else m_prev * memory_mask
        interaction = self.memory_proj(m)[:, None, :] * self.kb_proj(kb)  # (B, N, d)    r1
        interaction = self.act(self.combine(torch.cat([interaction, kb], dim=-1)))  # (B, N, d)  r2
        ra = self.score(self.act(c[:, None, :] * interaction)).squeeze(-1)  # (B, N)     r3.1
        rv = torch.softmax(ra, dim=-1)  # (B, N)                                          r3.2
        r = torch.einsum("bn,bnd->bd", rv, kb)  # (B, d)                                  r3.3
        return r, rv


class WriteUnit(nn.Module):
    """Sec. 3.2.3, Eqs. w1-w3: integrate the retrieved information into the memory.

    Self-attention over earlier memories (w2) and the memory gate (w3) are switched by
    ``MACConfig.self_attention`` and ``MACConfig.memory_gate``.
    """

    def __init__(self, config: MACConfig):
        super().__init__()
        d = config.d
        self.config = config
        self.combine = nn.Linear(2 * d, d)  # w1: m_info = W^{d x 2d}[r_i, m_{i-1}] + b^d
        if config.self_attention:
            self.sa_score = nn.Linear(d, 1)  # w2.1: sa_ij = softmax_j(W^{1 x d}(c_i * c_j) + b^1)
            self.sa_proj = nn.Linear(d, d, bias=False)  # w2.3: W_s m_sa
            self.info_proj = nn.Linear(d, d)  # w2.3: W_p m_info + b
        if config.memory_gate:
            self.gate = nn.Linear(d, 1)  # w3: c'_i = W^{1 x d} c_i + b^1
            if config.variant == "reference":  # gate bias 1 towards the new memory: sigma(-1) on m_{i-1}
                nn.init.constant_(self.gate.bias, -1.0)

    def forward(self, c: torch.Tensor, r: torch.Tensor, m_prev: torch.Tensor,
                past_c: list[torch.Tensor], past_m: list[torch.Tensor]) -> torch.Tensor:
        """``c``, ``r``, ``m_prev``: (B, d); ``past_c``/``past_m``: the earlier steps' states (B, d) each."""
        m_new = self.combine(torch.cat([r, m_prev], dim=-1))  # (B, d)                     w1
        if self.config.self_attention and past_c:
            cs, ms = torch.stack(past_c, dim=1), torch.stack(past_m, dim=1)  # (B, j, d) each
            sa = torch.softmax(self.sa_score(c[:, None, :] * cs).squeeze(-1), dim=-1)  # (B, j)  w2.1
            m_sa = torch.einsum("bj,bjd->bd", sa, ms)  # (B, d)                           w2.2
            m_new = self.sa_proj(m_sa) + self.info_proj(m_new)  # (B, d)                   w2.3
        if self.config.memory_gate:
            g = torch.sigmoid(self.gate(c))  # (B, 1)                                      w3.1
            m_new = g * m_prev + (1 - g) * m_new  # (B, d)                                 w3.2
        return m_new


class MACCell(nn.Module):
    """Sec. 3.2: one control-read-write step, with the learned initial states $c_0$, $m_0$."""

    def __init__(self, config: MACConfig):
        super().__init__()
        self.config = config
        self.control, self.read, self.write = ControlUnit(config), ReadUnit(config), WriteUnit(config)
        self.c0 = nn.Parameter(torch.zeros(config.d))  # Sec. 3.2: learned initial control
        self.m0 = nn.Parameter(torch.zeros(config.d))  # and memory states

    def forward(self, q: torch.Tensor, words: torch.Tensor, mask: torch.Tensor,
                kb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run all ``p`` steps. Returns the final memory (B, d), control attentions (B, p, S)
        and read attentions (B, p, N)."""
        B = q.shape[0]
        reference = self.config.variant == "reference"
        c = q if reference else self.c0.expand(B, -1)  # (B, d): the reference starts from the question
        m = self.m0.expand(B, -1)  # (B, d)
        past_c: list[torch.Tensor] = [c] if reference else []  # the reference's self-attention sees (c_0, m_0)
        past_m: list[torch.Tensor] = [m] if reference else []
        memory_mask = None
        if reference and self.training and self.config.dropout > 0:  # variational: one mask for all steps
            keep = 1.0 - self.config.dropout
            memory_mask = torch.bernoulli(torch.full_like(m, keep)) / keep  # (B, d)
        cvs, rvs = [], []
        for step in range(self.config.p):
            c, cv = self.control(step, c, q, words, mask)
            r, rv = self.read(c, m, kb, memory_mask)
            m = self.write(c, r, m, past_c, past_m)  # attends over steps j < i (w2)
            past_c.append(c)
            past_m.append(m)
            cvs.append(cv)
            rvs.append(rv)
        return m, torch.stack(cvs, dim=1), torch.stack(rvs, dim=1)  # (B, d), (B, p, S), (B, p, N)
