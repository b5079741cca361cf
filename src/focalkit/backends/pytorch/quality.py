r"""Quality Focal Loss in PyTorch operations (op ``quality_focal``; the only back-end of this op).

:func:`forward` returns the per-element loss and d loss / d x in one pass; :func:`differentiable` is the same loss
as a log-space composition that autograd differentiates to any order (used for double backward and for gradients
with respect to soft targets).

Math (Li et al. 2020, "Generalized Focal Loss", eq. 5; mmdetection ``quality_focal_loss``), p = sigmoid(x),
quality target y in [0, 1], d = y - p written as y (1 - p) - (1 - y) p (exact for y in {0, 1}: -p and 1 - p):

.. math::

    L = |d|^\beta\, \mathrm{CE},\qquad \mathrm{CE} = y\,\mathrm{softplus}(-x) + (1 - y)\,\mathrm{softplus}(x),

    \frac{\partial L}{\partial x} = -\mathrm{sign}(d) \left[|d|^{\beta + 1}
        + \beta\, e^{(\beta - 1) \log|d| + \log p + \log(1 - p) + \log \mathrm{CE}}\right].

|d|^beta is exp(beta log|d|) with log|d| = log p (y = 0) or log(1 - p) (y = 1) in closed form from the softplus
terms, so hard targets keep full accuracy at any logit; and the |d|^(beta - 1) of the derivative is combined with
p (1 - p) CE inside one exponential, so the gradient is finite wherever the true derivative is. For beta < 1 the true
derivative grows without bound as p -> y (a cusp at the loss' minimum); there focalkit returns 0 at p == y exactly
(0 is a subgradient at the minimum), saturates at the dtype's largest finite value instead of overflowing, and
treats |y - p| below 1e-30 for a soft target (both y and p below about 1e-30, where the loss is below 1e-58) as 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..._targets import one_hot_targets
from ...semantics import LOG_SPACE_BELOW
from ._logistic import compute_dtype, logistic_parts

__all__ = ["differentiable", "forward"]


def _quality_targets(logits: Tensor, targets: Tensor, scores: Tensor | None, ignore_index: int | None
                     ) -> tuple[Tensor, Tensor | None]:
    """Dense quality targets of the logits' shape in the compute dtype, and the row-validity mask (index targets).

    Index targets (N, d1, ...) put ``scores`` (same shape) in the labelled column; C is the all-negative background.
    """
    dtype = compute_dtype(logits)
    if targets.is_floating_point():
        return targets.to(dtype), None
    one_hot, valid = one_hot_targets(logits, targets, ignore_index)
    if scores is None:
        return one_hot.to(dtype), valid
    score = scores.to(dtype).unsqueeze(1)
    # where, not one_hot * score: a NaN score of a background or ignored row stays out of the loss
    return torch.where(one_hot.bool(), score, torch.zeros_like(score)), valid


def _log_abs_d(y: Tensor, abs_d: Tensor, log_p: Tensor, log_q: Tensor) -> tuple[Tensor, Tensor]:
    """(log|y - p| where it is used, the mask of elements where |y - p| counts as non-zero).

    Hard targets use the closed forms log p (y = 0) and log(1 - p) (y = 1) below 1e-30; a soft target with
    |y - p| <= 1e-30 counts as |y - p| = 0 (log|d| is then 0, a placeholder that is never used).
    """
    zero, one = y == 0, y == 1
    representable = abs_d > LOG_SPACE_BELOW
    closed = torch.where(zero, log_p, log_q)
    live = representable | zero | one
    log_abs_d = torch.where(
        representable, torch.log(torch.where(representable, abs_d, torch.ones_like(abs_d))),
        torch.where(zero | one, closed, torch.zeros_like(closed)),
    )
    return log_abs_d, live


def _zero_power(beta: float, like: Tensor) -> Tensor:
    """0^beta: 1 for beta = 0 (the modulating factor is then 1 everywhere), else 0."""
    return torch.full_like(like, 1.0 if beta == 0 else 0.0)


def forward(logits: Tensor, targets: Tensor, *, scores: Tensor | None = None, beta: float, ignore_index: int | None,
            reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-element quality focal loss and its derivative, following the kernel contract.

    Args:
        logits: float tensor (N, C, d1, ...), or any shape for float targets.
        targets: float quality targets in [0, 1] of the logits' shape, or int64 class indices (N, d1, ...) with
            C = background and ``ignore_index`` rows contributing nothing.
        scores: with index targets, the quality (IoU) of each row's labelled class, shape (N, d1, ...); None gives 1.
        beta: the exponent of |y - p|, >= 0.
        ignore_index: index-target value of ignored rows, or None.
        reduce_sum: return the 0-d sum instead of per-element losses.
        compute_grad: also return d loss / d logits (logits' dtype); otherwise None.

    Returns:
        ``(loss, grad)``: float32 (float64 for float64 logits) losses and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[0.9, 0.0]])
        >>> loss, grad = forward(x, y, beta=2.0, ignore_index=None, reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([[0.0001, 0.0227]])
    """
    x = logits.to(compute_dtype(logits))
    y, valid = _quality_targets(logits, targets, scores, ignore_index)
    p, q, softplus_pos, softplus_neg = logistic_parts(x)
    ce = y * softplus_neg + (1 - y) * softplus_pos
    d = y * q - (1 - y) * p  # y - p without the rounding of 1 - p
    log_abs_d, live = _log_abs_d(y, d.abs(), -softplus_neg, -softplus_pos)
    modulating = torch.where(live, torch.exp(beta * log_abs_d), _zero_power(beta, x))
    if valid is not None:
        modulating = modulating * valid
    loss = modulating * ce

    grad = None
    if compute_grad:
        # sign(y - p), exact for hard targets even where p has rounded to 0 or 1; 0 where |d| counts as 0
        sign = torch.where(y == 0, -torch.ones_like(d), torch.where(y == 1, torch.ones_like(d), torch.sign(d)))
        sign = torch.where(live, sign, torch.zeros_like(sign))
        magnitude = torch.exp((beta + 1) * log_abs_d)
        if beta != 0:
            log_pq_ce = -softplus_neg - softplus_pos + torch.log(ce)  # log CE = -inf where CE = 0: term 0
            magnitude = magnitude + beta * torch.exp((beta - 1) * log_abs_d + log_pq_ce)
        grad = -sign * magnitude
        if valid is not None:
            grad = grad * valid
        limit = torch.finfo(logits.dtype).max  # beta < 1, p -> y: saturate rather than overflow (NaN stays NaN)
        grad = grad.clamp(-limit, limit).to(logits.dtype)
    if reduce_sum:
        loss = loss.sum()
    return loss, grad


def differentiable(logits: Tensor, targets: Tensor, *, scores: Tensor | None = None, beta: float,
                   ignore_index: int | None) -> Tensor:
    """Per-element quality focal loss as a log-space composition differentiable to any order, with respect to the
    logits and to float targets.

    |y - p| is y sigmoid(-x) - (1 - y) sigmoid(x) (no subtraction from 1), |d|^beta = exp(beta log|d|) with log|d|
    in closed form for hard targets below 1e-30, and every branch that is not selected is fed a finite placeholder,
    so first and second derivatives are finite at any logit (and 0 where |y - p| counts as 0).

    Example:
        >>> x = torch.tensor([[40.0, -3.0]], dtype=torch.float64, requires_grad=True)
        >>> loss = differentiable(x, torch.tensor([[1.0, 0.3]], dtype=torch.float64), beta=0.5, ignore_index=None)
        >>> h = torch.autograd.grad(torch.autograd.grad(loss.sum(), x, create_graph=True)[0].sum(), x)[0]
        >>> bool(torch.isfinite(h).all())
        True
    """
    x = logits.to(compute_dtype(logits))
    y, valid = _quality_targets(logits, targets, scores, ignore_index)
    softplus_pos = F.softplus(x)  # -log(1 - p)
    softplus_neg = F.softplus(-x)  # -log p
    d = y * torch.sigmoid(-x) - (1 - y) * torch.sigmoid(x)
    log_abs_d, live = _log_abs_d(y, d.abs(), -softplus_neg, -softplus_pos)
    modulating = torch.where(live, torch.exp(beta * log_abs_d), _zero_power(beta, x))
    loss = modulating * (y * softplus_neg + (1 - y) * softplus_pos)
    if valid is not None:
        loss = loss * valid
    return loss
