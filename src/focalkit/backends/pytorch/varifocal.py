r"""Varifocal Loss in PyTorch operations (op ``varifocal``; the only back-end of this op).

:func:`forward` returns the per-element loss and d loss / d x in one pass; :func:`differentiable` is the same loss
as softplus compositions that autograd differentiates to any order.

Math (Zhang et al. 2021, VarifocalNet, eq. 2; mmdetection ``varifocal_loss``; YOLO-style with labels), p = sigmoid(x),
target score q in [0, 1], label l in [0, 1] (l = [q > 0] unless given), w+ = q (``iou_weighted``) or 1:

.. math::

    L = \left[l\, w_+ + (1 - l)\, \alpha\, p^\gamma\right] \mathrm{CE},\qquad
    \mathrm{CE} = q\,\mathrm{softplus}(-x) + (1 - q)\,\mathrm{softplus}(x),

    \frac{\partial L}{\partial x} = l\, w_+\, \mathrm{CE}' + (1 - l)\, \alpha\, p^\gamma
        \left[\gamma (1 - p)\, \mathrm{CE} + \mathrm{CE}'\right],\qquad \mathrm{CE}' = (1 - q)\, p - q\, (1 - p).

p^gamma is exp(-gamma softplus(-x)), exact in the tails, and the derivative has no p^(gamma - 1) factor, so both are
finite for every gamma >= 0 at any logit. ``iou_weighted`` travels as the float 1.0 or 0.0 (w+ = iw q + 1 - iw).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._logistic import compute_dtype, logistic_parts

__all__ = ["differentiable", "forward"]


def _label(targets: Tensor, labels: Tensor | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    q = targets.to(dtype)
    label = (q > 0).to(dtype) if labels is None else labels.to(dtype)
    return q, label


def forward(logits: Tensor, targets: Tensor, *, labels: Tensor | None = None, alpha: float, gamma: float,
            iou_weighted: float, ignore_index: int | None = None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[Tensor, Tensor | None]:
    """Per-element varifocal loss and its derivative, following the kernel contract.

    Args:
        logits: float tensor of any shape.
        targets: float target scores q in [0, 1] of the logits' shape (the IoU of positives, 0 for negatives).
        labels: per-element labels of the logits' shape (1 positive, 0 negative, values between interpolate), or
            None: positives are q > 0.
        alpha: weight of the negatives' term; gamma: exponent of p on negatives; iou_weighted: 1.0 weighs
            positives by q, 0.0 by 1.
        ignore_index: unused (dense targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Example:
        >>> x = torch.tensor([2.0, -1.0]); q = torch.tensor([0.8, 0.0])
        >>> loss, _ = forward(x, q, alpha=0.75, gamma=2.0, iou_weighted=1.0, reduce_sum=False, compute_grad=False)
        >>> loss
        tensor([0.4215, 0.0170])
    """
    dtype = compute_dtype(logits)
    x = logits.to(dtype)
    q, label = _label(targets, labels, dtype)
    p, one_minus_p, softplus_pos, softplus_neg = logistic_parts(x)
    ce = q * softplus_neg + (1 - q) * softplus_pos
    positive_weight = label * (iou_weighted * q + (1 - iou_weighted))
    negative_weight = (1 - label) * alpha * torch.exp(-gamma * softplus_neg)  # (1 - l) alpha p^gamma
    loss = (positive_weight + negative_weight) * ce
    grad = None
    if compute_grad:
        d_ce = (1 - q) * p - q * one_minus_p  # p - q without cancellation at q in {0, 1}
        grad = (positive_weight * d_ce + negative_weight * (gamma * one_minus_p * ce + d_ce)).to(logits.dtype)
    return (loss.sum() if reduce_sum else loss), grad


def differentiable(logits: Tensor, targets: Tensor, *, labels: Tensor | None = None, alpha: float, gamma: float,
                   iou_weighted: float, ignore_index: int | None = None) -> Tensor:
    """Per-element varifocal loss, [l w+ + (1 - l) alpha exp(-gamma softplus(-x))] CE, differentiable to any order
    (with respect to the logits and to float targets; the indicator q > 0 is constant).

    Example:
        >>> differentiable(torch.tensor([2.0, -1.0]), torch.tensor([0.8, 0.0]), alpha=0.75, gamma=2.0, iou_weighted=1.0)
        tensor([0.4215, 0.0170])
    """
    dtype = compute_dtype(logits)
    x = logits.to(dtype)
    q, label = _label(targets, labels, dtype)
    softplus_pos, softplus_neg = F.softplus(x), F.softplus(-x)
    weight = label * (iou_weighted * q + (1 - iou_weighted)) + (1 - label) * alpha * torch.exp(-gamma * softplus_neg)
    return weight * (q * softplus_neg + (1 - q) * softplus_pos)
