r"""Poly-1 cross-entropy on the Triton back-end (op ``poly1_cross_entropy``), fused forward + backward.

For a row (n, s) with class-index target t and per-class weight w (``class_weight``, 1 without it), with
m = max_k x_k, S = sum_k e^{x_k - m}, S' = sum_{k != t} e^{x_k - m}, u = 1 - p_t = S'/S and CE = -log p_t (the
quantities of the softmax focal kernel, :mod:`focalkit.backends.triton.softmax`, run with its ``POLY`` switch):

.. math::

    L = w_t\, (\mathrm{CE} + \epsilon\, u),\qquad
    \frac{\partial L}{\partial x_j} = w_t\, (1 + \epsilon\, p_t)\, (p_j - [j = t]),

with 1 + epsilon p_t formed as (1 + epsilon) - epsilon u and, for epsilon < 0, the loss as
(1 + epsilon) CE + (-epsilon) g(CE), g(s) = s - (1 - e^{-s}) >= 0: sums of non-negative terms, accurate where CE and
-epsilon u nearly cancel (p_t -> 1, epsilon = -1). ``ignore_index`` rows and targets outside [0, C) give 0.

Probability targets and ``label_smoothing > 0`` are computed by the PyTorch back-end's closed form
(:func:`focalkit.backends.pytorch.poly.forward_ce`) from here, with the same contract.

Example:
    >>> x = torch.tensor([[2.0, 0.5, -1.0]], device="cuda")
    >>> loss, grad = forward(x, torch.tensor([0], device="cuda"), epsilon=1.0, ignore_index=-100, reduce_sum=False,
    ...                      compute_grad=True)

Reference:
    Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov, "PolyLoss: A Polynomial Expansion
    Perspective of Classification Loss Functions", ICLR 2022, arXiv:2204.12511 (Poly-1, eq. 3).
"""

from __future__ import annotations

import torch

from . import softmax

__all__ = ["forward"]


def forward(logits: torch.Tensor, targets: torch.Tensor, *, class_weight: torch.Tensor | None = None, epsilon: float,
            label_smoothing: float = 0.0, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Poly-1 cross-entropy per row and its gradient in one pass (kernel contract, Triton back-end).

    Args:
        logits: float tensor (fp32 / fp16 / bf16) of shape (N, C) or (N, C, d1, ...), any strides.
        targets: integer class indices (N,) / (N, d1, ...); class probabilities of the logits' shape are computed
            by the PyTorch back-end.
        class_weight: per-class weights (C,) on the logits' device as ``F.cross_entropy``'s ``weight``, or None.
        epsilon: the Poly-1 coefficient, >= -1.
        label_smoothing: in [0, 1]; values > 0 are computed by the PyTorch back-end.
        ignore_index: target value of rows to ignore, or None.
        reduce_sum: return the 0-d float32 sum; compute_grad: also return d loss / d logits (logits' dtype).

    Returns:
        ``(loss, grad)``: float32 per-row losses of the targets' shape (or a 0-d sum) and the gradient or None.
    """
    if targets.is_floating_point() or label_smoothing != 0.0:
        from ..pytorch.poly import forward_ce

        return forward_ce(logits, targets, class_weight=class_weight, epsilon=epsilon, label_smoothing=label_smoothing,
                          ignore_index=ignore_index, reduce_sum=reduce_sum, compute_grad=compute_grad)
    weight = None if class_weight is None else class_weight.to(device=logits.device, dtype=torch.float32)
    return softmax.launch(logits, targets, weight=weight, alpha=None, gamma=0.0, ignore_index=ignore_index,
                          reduce_sum=reduce_sum, compute_grad=compute_grad, poly_epsilon=float(epsilon))
