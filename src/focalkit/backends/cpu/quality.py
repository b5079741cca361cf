r"""Fused CPU Quality Focal Loss: loss and gradient in one pass of the logistic-family kernel (op ``quality_focal``).

Per element, p = sigmoid(x), quality target y in [0, 1], d = y - p written as y (1 - p) - (1 - y) p, all in float32
(``fk_quality_elem`` of ``csrc/focal_cpu.c``, the closed form of :mod:`focalkit.backends.pytorch.quality`):

.. math::

    L = |d|^\beta\, \mathrm{CE},\qquad \mathrm{CE} = y\,\mathrm{softplus}(-x) + (1 - y)\,\mathrm{softplus}(x),

    \frac{\partial L}{\partial x} = -\mathrm{sign}(d) \left[|d|^{\beta + 1}
        + \beta\, e^{(\beta - 1) \log|d| + \log p + \log(1 - p) + \log \mathrm{CE}}\right].

log|d| is log p (y = 0) or log(1 - p) (y = 1) in closed form below 1e-30; a soft target with |d| <= 1e-30 counts
as |d| = 0 (loss 0, or CE for beta = 0; gradient 0). For beta < 1 the gradient saturates at the logits dtype's
largest finite value instead of overflowing (the cusp at p = y). Index targets (N, d1, ...) put ``scores`` (or 1) in
the labelled column; C is the all-negative background and ``ignore_index`` rows give 0.

Reference:
    X. Li et al., "Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes for Dense Object
    Detection", NeurIPS 2020, arXiv:2006.04388, eq. (5).
"""

from __future__ import annotations

from torch import Tensor

from . import logistic

__all__ = ["forward"]


def forward(logits: Tensor, targets: Tensor, *, scores: Tensor | None = None, beta: float, ignore_index: int | None,
            reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-element quality focal loss and its derivative (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (fp32 / fp16 / bf16) (N, C, d1, ...), or any shape for float targets.
        targets: float quality targets in [0, 1] of the logits' shape, or int64 class indices (N, d1, ...).
        scores: with index targets, the quality of each row's labelled class, shape (N, d1, ...); None gives 1.
        beta: the exponent of |y - p|, >= 0.
        ignore_index: index-target value of ignored rows, or None.
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 losses (or their 0-d sum) and the gradient in the logits' dtype or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[0.9, 0.0]])
        >>> loss, grad = forward(x, y, beta=2.0, ignore_index=None, reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([[0.0001, 0.0227]])
    """
    return logistic.run("quality_focal", logits, targets, params=(beta,), element=scores, ignore_index=ignore_index,
                        reduce_sum=reduce_sum, compute_grad=compute_grad)
