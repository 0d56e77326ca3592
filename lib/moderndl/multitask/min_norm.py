r"""The min-norm point of a convex hull of gradients: MGDA's subproblem.

Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective Optimization",
arXiv:1810.04650, Eq. 3:

$$\min_{\alpha \in \Delta^T} \Bigl\lVert \sum_{t=1}^T \alpha_t g_t \Bigr\rVert_2^2,
\qquad \Delta^T = \{\alpha \ge 0, \textstyle\sum_t \alpha_t = 1\}.$$

If the minimum is zero the point is Pareto-stationary; otherwise $-\sum_t \alpha_t g_t$ is a
direction that decreases every task's loss. Two tasks have a closed form (Algorithm 1);
more tasks use Frank–Wolfe with that closed form as its exact line search (Algorithm 2).
Everything works on the Gram matrix $M_{ts} = g_t \cdot g_s$, so the cost does not grow
with the gradients' length beyond forming $M$.
"""

from __future__ import annotations

import torch


def min_norm_2(a: float, b: float, c: float) -> float:
    r"""Exact $\gamma^* = \arg\min_{\gamma \in [0,1]} \lVert \gamma v_1 + (1-\gamma) v_2 \rVert^2$.

    Sener & Koltun 2018, Algorithm 1, from the Gram entries $a = v_1 \cdot v_1$,
    $b = v_1 \cdot v_2$, $c = v_2 \cdot v_2$: $\gamma^* = \mathrm{clip}\bigl(\frac{c - b}{a + c - 2b}, 0, 1\bigr)$.
    """
    denom = a + c - 2.0 * b  # ||v1 - v2||^2
    if denom <= 1e-20:  # v1 == v2: every gamma gives the same point
        return 0.5
    return min(1.0, max(0.0, (c - b) / denom))


def frank_wolfe(gram: torch.Tensor, max_iter: int = 250, tol: float = 1e-8) -> torch.Tensor:
    r"""Min-norm point of the convex hull by Frank–Wolfe, Sener & Koltun 2018, Algorithm 2.

    ``gram`` (T, T) holds $\nabla_t \cdot \nabla_s$. Start at $\alpha = \mathbf{1}/T$; pick
    $\hat t = \arg\min_r (M\alpha)_r$, the vertex that decreases the norm most; line-search
    $\gamma$ between that vertex and the current point exactly (Algorithm 1); move
    $\alpha \leftarrow (1 - \gamma)\alpha + \gamma e_{\hat t}$; stop when the move is tiny.
    The $T \times T$ arithmetic runs on Python floats: per-op tensor overhead would dominate.
    """
    M = gram.double().tolist()  # (T, T)
    T = len(M)
    alpha = [1.0 / T] * T  # (T,)
    for _ in range(max_iter):
        Ma = [sum(M[r][s] * alpha[s] for s in range(T)) for r in range(T)]  # (T,) M alpha
        t = min(range(T), key=Ma.__getitem__)
        norm_sq = sum(a * m for a, m in zip(alpha, Ma, strict=True))  # alpha^T M alpha
        gamma = min_norm_2(M[t][t], Ma[t], norm_sq)  # v1 = vertex t, v2 = current point
        new = [(1.0 - gamma) * a for a in alpha]
        new[t] += gamma
        moved = sum(abs(a - b) for a, b in zip(new, alpha, strict=True))
        alpha = new
        if moved < tol:
            break
    return torch.tensor(alpha, dtype=gram.dtype)


def min_norm_from_gram(gram: torch.Tensor, max_iter: int = 250) -> torch.Tensor:
    """MGDA's $\\alpha$ (T,) from the Gram matrix ``gram`` (T, T) of the gradients: exact for
    T = 2 (Algorithm 1), Frank–Wolfe beyond (Algorithm 2). Returned in float64."""
    T = gram.shape[0]
    if gram.shape != (T, T):
        raise ValueError(f"gram must be square, got {tuple(gram.shape)}")
    if T == 1:
        return torch.ones(1, dtype=torch.float64)
    if T == 2:
        gamma = min_norm_2(float(gram[0, 0]), float(gram[0, 1]), float(gram[1, 1]))
        return torch.tensor([gamma, 1.0 - gamma], dtype=torch.float64)
    return frank_wolfe(gram.double(), max_iter=max_iter)


def min_norm_weights(grads: torch.Tensor, max_iter: int = 250) -> torch.Tensor:
    """MGDA's $\\alpha$ (T,) for gradients ``grads`` (T, P): exact for T = 2, Frank–Wolfe beyond."""
    gram = grads.double() @ grads.double().T  # (T, T)
    return min_norm_from_gram(gram, max_iter).to(grads.dtype)
