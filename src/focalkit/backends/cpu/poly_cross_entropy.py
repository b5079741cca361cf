r"""Fused CPU Poly-1 cross-entropy: loss and gradient in one pass of the softmax kernel (op ``poly1_cross_entropy``).

For each row (column (n, :, s) of logits viewed as (N, C, S)) with class-index target t and per-class weight w
(``class_weight``, 1 without it), all in float32 (``fk_poly1_cross_entropy`` of ``csrc/focal_cpu.c``: the pass of
the softmax focal loss with gamma = 0 and the poly term):

.. math::

    m = \max_k x_k,\quad S = \sum_k e^{x_k - m},\quad S' = \sum_{k \ne t} e^{x_k - m},\quad
    u = 1 - p_t = S'/S,\quad \mathrm{CE} = -\log p_t

    L = w_t\, (\mathrm{CE} + \epsilon\, u),\qquad
    \frac{\partial L}{\partial x_j} = w_t\, (1 + \epsilon\, p_t)\, (p_j - [j = t])

(d(1 - p_t)/dx_j = -p_t ([j = t] - p_j)). u is accumulated from S' (never as 1 - p_t), CE is -log1p(S'/e_t) when
p_t >= 1/2, and 1 + epsilon p_t is formed as (1 + epsilon) - epsilon u; for epsilon < 0 the loss is
(1 + epsilon) CE + (-epsilon) g(CE) with g(s) = s - (1 - e^{-s}) >= 0, a sum of non-negative terms that stays
accurate where CE and -epsilon u nearly cancel (p_t -> 1, epsilon = -1). One exp per logit, as the softmax focal
loss. ``ignore_index`` rows and out-of-range targets give 0 loss and 0 gradient.

Class-index targets without label smoothing run on the kernel. Probability targets, ``label_smoothing > 0`` and
inputs without rows or classes are computed by the PyTorch back-end's closed form
(:func:`focalkit.backends.pytorch.poly.forward_ce`) from here, with the same contract.

Reference:
    Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov, "PolyLoss: A Polynomial Expansion
    Perspective of Classification Loss Functions", ICLR 2022, arXiv:2204.12511 (Poly-1, eq. 3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._targets import ncs
from . import library as cpu_lib
from .softmax import run_rows

__all__ = ["forward"]


def forward(logits: Tensor, targets: Tensor, *, class_weight: Tensor | None = None, epsilon: float,
            label_smoothing: float = 0.0, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[Tensor, Tensor | None]:
    """Poly-1 cross-entropy per row and its gradient in one pass (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (N, C) or (N, C, d1, ...) (fp32 / fp16 / bf16).
        targets: int64 class indices (N,) / (N, d1, ...) in [0, C) or ``ignore_index``; class probabilities of the
            logits' shape are computed by the PyTorch back-end.
        class_weight: per-class weights (C,) as ``F.cross_entropy``'s ``weight``, or None.
        epsilon: the Poly-1 coefficient, >= -1.
        label_smoothing: in [0, 1]; values > 0 are computed by the PyTorch back-end.
        ignore_index: target value of rows to ignore, or None.
        reduce_sum: return the 0-d float32 sum (float64 block partials added in order).
        compute_grad: also return d loss / d logits (logits' shape and dtype); otherwise None and no gradient work.

    Returns:
        ``(loss, grad)``: float32 per-row losses of the targets' shape (or a 0-d sum) and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]])
        >>> loss, grad = forward(x, torch.tensor([0]), epsilon=1.0, ignore_index=-100, reduce_sum=False,
        ...                      compute_grad=True)
        >>> loss
        tensor([0.4557])
    """
    shape = logits.shape
    n, c, s = ncs(shape)
    if targets.is_floating_point() or label_smoothing != 0.0 or n * s == 0 or c == 0:
        from ..pytorch.poly import forward_ce

        return forward_ce(logits, targets, class_weight=class_weight, epsilon=epsilon, label_smoothing=label_smoothing,
                          ignore_index=ignore_index, reduce_sum=reduce_sum, compute_grad=compute_grad)
    lib = cpu_lib.lib()
    eps = float(epsilon)
    return run_rows(lambda xp, xdt, tp, wp, ign, has_ignore, n, c, s, start, end, lp, gp, sp, *per_thread:
                    lib.fk_poly1_cross_entropy(xp, xdt, tp, wp, eps, ign, has_ignore, n, c, s, start, end, lp, gp,
                                               sp, *per_thread),
                    logits, targets, class_weight, ignore_index, reduce_sum, compute_grad)
