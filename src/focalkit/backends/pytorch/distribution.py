r"""Distribution Focal Loss in PyTorch operations (op ``distribution_focal``, per row; the only back-end of this op).

:func:`forward` returns the per-row loss and d loss / d x in one pass; :func:`differentiable` is the same loss as a
log-softmax composition that autograd differentiates to any order.

Math (Li et al. 2020, "Generalized Focal Loss", eq. 6; mmdetection ``distribution_focal_loss``, YOLOv8 ``DFLoss``):
logits x over the n + 1 bins along dim 1, continuous target y clamped to [0, n - 0.01] (as YOLOv8), left bin
l = floor(y), right bin r = l + 1, w_l = r - y, w_r = y - l, log p_k = log softmax(x)_k:

.. math::

    L = -(w_l \log p_l + w_r \log p_r),\qquad
    \frac{\partial L}{\partial x_j} = (w_l + w_r)\, p_j - w_l [j = l] - w_r [j = r].

log p_k = x_k - m - log S with m the row maximum and log S = log1p(sum of the other terms), so -log p keeps its
relative accuracy when one bin dominates (log_softmax rounds log S to 0 there and the loss to 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._targets import ncs
from ._logistic import compute_dtype

__all__ = ["differentiable", "forward"]

CLAMP_BELOW_TOP = 0.01  # targets are clamped to [0, n - 0.01] (YOLOv8: reg_max - 1 - 0.01 with reg_max = n + 1 bins)


def _bins(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(x as (N, n + 1, S), left index, right index, w_l, w_r), the last four of shape (N, 1, S)."""
    dtype = compute_dtype(logits)
    n_rows, bins, s = ncs(logits.shape)
    x = logits.to(dtype).reshape(n_rows, bins, s)
    n = bins - 1
    y = targets.to(dtype).reshape(n_rows, 1, s).clamp(0.0, n - CLAMP_BELOW_TOP)
    # clamp the bin too: n - 0.01 rounds to n for very large n; NaN targets index bin 0 (and give a NaN loss)
    left = torch.nan_to_num(torch.floor(y), nan=0.0).clamp(0, max(n - 1, 0))
    w_left = left + 1 - y
    w_right = y - left
    left_index = left.long()
    return x, left_index, left_index + 1, w_left, w_right


def _log_softmax(x: Tensor) -> Tensor:
    """log softmax along dim 1 with log S = log1p(sum of the non-maximal terms): accurate when one bin dominates.

    The maximum's own exp(0) - 1 = 0 is added inside the log1p, so autograd sees its dependence on every logit.
    """
    m, top = x.detach().max(dim=1, keepdim=True)  # one pass (argmax over dim 1 of (N, C, S) is ~10x slower)
    e = torch.exp(x - m)
    others = e.scatter(1, top, torch.zeros_like(top, dtype=e.dtype)).sum(dim=1, keepdim=True)
    return (x - m) - torch.log1p(others + (e.gather(1, top) - 1))


def forward(logits: Tensor, targets: Tensor, *, ignore_index: int | None = None, reduce_sum: bool,
            compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-row distribution focal loss and its gradient, following the kernel contract.

    Args:
        logits: (N, n + 1) or (N, n + 1, d1, ...) float tensor, n >= 1.
        targets: float targets of shape (N, d1, ...) (values in [0, n]; clamped to [0, n - 0.01]).
        ignore_index: unused.
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: per-row losses of shape (N, d1, ...) (or their 0-d sum) in float32 (float64 for float64
        logits), and the gradient or None.

    Example:
        >>> loss, grad = forward(torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([1.25]), reduce_sum=False,
        ...     compute_grad=True)
        >>> loss
        tensor([0.7395])
    """
    with torch.no_grad():
        if logits.numel() == 0:
            loss = logits.new_zeros(targets.shape, dtype=compute_dtype(logits))
            return (loss.sum() if reduce_sum else loss), (torch.zeros_like(logits) if compute_grad else None)
        x, left, right, w_left, w_right = _bins(logits, targets)
        log_p = _log_softmax(x)
        rows = -(w_left * log_p.gather(1, left) + w_right * log_p.gather(1, right))
        loss = rows.sum() if reduce_sum else rows.reshape(targets.shape)
        grad = None
        if compute_grad:
            g = (w_left + w_right) * torch.exp(log_p)
            g = g.scatter_add(1, left, -w_left).scatter_add(1, right, -w_right)
            grad = g.reshape(logits.shape).to(logits.dtype)
    return loss, grad


def differentiable(logits: Tensor, targets: Tensor, *, ignore_index: int | None = None) -> Tensor:
    """Per-row distribution focal loss, differentiable to any order with respect to the logits and the targets.

    Example:
        >>> differentiable(torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([1.25]))
        tensor([0.7395])
    """
    if logits.numel() == 0:
        return logits.to(compute_dtype(logits)).sum() * torch.zeros(targets.shape, dtype=compute_dtype(logits),
                                                                      device=logits.device)
    x, left, right, w_left, w_right = _bins(logits, targets)
    log_p = _log_softmax(x)
    rows = -(w_left * log_p.gather(1, left) + w_right * log_p.gather(1, right))
    return rows.reshape(targets.shape)
