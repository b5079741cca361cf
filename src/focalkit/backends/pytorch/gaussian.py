r"""Gaussian focal loss (CornerNet / CenterNet heatmaps) in PyTorch operations.

Two ops, the only back-end of each: ``gaussian_focal`` from logits (:func:`forward`, :func:`differentiable`) and
``gaussian_focal_probs`` from probabilities (:func:`forward_probs`, :func:`differentiable_probs`).

Math (Law & Deng 2018, CornerNet eq. 1; Zhou et al. 2019, CenterNet; mmdetection ``gaussian_focal_loss`` with its
``alpha``, and its ``gamma`` named ``beta`` here), heatmap target y in [0, 1], peaks where y == 1 exactly:

.. math::

    L = [y = 1]\,(1 - p)^\alpha (-\log p) + [y < 1]\,(1 - y)^\beta\, p^\alpha (-\log(1 - p)).

From logits, with s+ = softplus(x) = -log(1 - p) and s- = softplus(-x) = -log p, everything is a closed form:

.. math::

    L = [y = 1]\, e^{-\alpha s_+} s_- + [y < 1]\,(1 - y)^\beta e^{-\alpha s_-} s_+,

    \frac{\partial L}{\partial x} = -[y = 1]\,(1 - p)^\alpha (\alpha\, p\, s_- + 1 - p)
        + [y < 1]\,(1 - y)^\beta p^\alpha (\alpha (1 - p)\, s_+ + p),

finite at every logit for every alpha, beta >= 0. From probabilities, p and 1 - p are clamped at the input dtype's
smallest normal number only where they have underflowed (as ``binary_focal``): the loss saturates at -log(tiny)
(87.3 in fp32) there, with a finite gradient; log(1 - p) / p and log p / (1 - p) take their limit -1 at p = 0 and
p = 1, so the gradient has no p^(alpha - 1) or (1 - p)^(alpha - 1) factor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._logistic import compute_dtype, logistic_parts

__all__ = ["differentiable", "differentiable_probs", "forward", "forward_probs"]


def _weights(targets: Tensor, beta: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(peak indicator, (1 - y)^beta off the peaks and 0 on them) in the compute dtype."""
    y = targets.to(dtype)
    peak = y == 1
    base = torch.where(peak, torch.ones_like(y), 1 - y)  # never 0^beta: its derivative in y would be inf * 0
    negative = torch.where(peak, torch.zeros_like(y), base.pow(beta))
    return peak.to(dtype), negative


def forward(logits: Tensor, targets: Tensor, *, alpha: float, beta: float, ignore_index: int | None = None,
            reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-element Gaussian focal loss from logits and its derivative.

    Example:
        >>> x = torch.tensor([2.0, -1.0]); y = torch.tensor([1.0, 0.5])
        >>> loss, grad = forward(x, y, alpha=2.0, beta=4.0, reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([0.0018, 0.0014])
    """
    dtype = compute_dtype(logits)
    x = logits.to(dtype)
    peak, negative_weight = _weights(targets, beta, dtype)
    p, q, softplus_pos, softplus_neg = logistic_parts(x)
    q_alpha = torch.exp(-alpha * softplus_pos)  # (1 - p)^alpha
    p_alpha = torch.exp(-alpha * softplus_neg)  # p^alpha
    loss = peak * q_alpha * softplus_neg + negative_weight * p_alpha * softplus_pos
    grad = None
    if compute_grad:
        grad = (negative_weight * p_alpha * (alpha * q * softplus_pos + p)
                - peak * q_alpha * (alpha * p * softplus_neg + q)).to(logits.dtype)
    return (loss.sum() if reduce_sum else loss), grad


def differentiable(logits: Tensor, targets: Tensor, *, alpha: float, beta: float, ignore_index: int | None = None
                   ) -> Tensor:
    """Per-element Gaussian focal loss from logits, as softplus compositions differentiable to any order.

    Example:
        >>> differentiable(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.5]), alpha=2.0, beta=4.0)
        tensor([0.0018, 0.0014])
    """
    dtype = compute_dtype(logits)
    x = logits.to(dtype)
    peak, negative_weight = _weights(targets, beta, dtype)
    softplus_pos, softplus_neg = F.softplus(x), F.softplus(-x)
    return (peak * torch.exp(-alpha * softplus_pos) * softplus_neg
            + negative_weight * torch.exp(-alpha * softplus_neg) * softplus_pos)


def _neg_logs(p: Tensor, tiny: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(-log p, -log(1 - p), clamped p, clamped 1 - p), clamped at ``tiny`` only where underflowed."""
    one_minus_p = 1 - p
    p_hat = p.clamp_min(tiny)
    q_hat = one_minus_p.clamp_min(tiny)
    ok = one_minus_p >= tiny
    # log(1 - p) as log1p(-p) (exact for small p); the placeholder 0 keeps log1p(-1) = -inf out of every branch
    neg_log_q = torch.where(ok, -torch.log1p(-torch.where(ok, p, torch.zeros_like(p))), -torch.log(q_hat))
    return -torch.log(p_hat), neg_log_q, p_hat, q_hat


def forward_probs(probs: Tensor, targets: Tensor, *, alpha: float, beta: float, ignore_index: int | None = None,
                  reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    r"""Per-element Gaussian focal loss from probabilities and its derivative d loss / d p.

    .. math::

        \frac{\partial L}{\partial p} = -[y = 1]\,(1 - p)^\alpha \left[\alpha \frac{-\log \hat p}{1 - p}
            + \frac{1}{\hat p}\right] + [y < 1]\,(1 - y)^\beta p^\alpha
            \left[\alpha \frac{-\log(1 - \hat p)}{p} + \frac{1}{1 - \hat p}\right]

    with the two ratios taken as their limit 1 where their denominator is 0.

    Example:
        >>> loss, _ = forward_probs(torch.tensor([0.9, 0.1]), torch.tensor([1.0, 0.5]), alpha=2.0, beta=4.0,
        ...     reduce_sum=False, compute_grad=False)
        >>> loss
        tensor([1.0536e-03, 6.5850e-05])
    """
    dtype = compute_dtype(probs)
    tiny = torch.finfo(probs.dtype).tiny
    p = probs.to(dtype)
    peak, negative_weight = _weights(targets, beta, dtype)
    neg_log_p, neg_log_q, p_hat, q_hat = _neg_logs(p, tiny)
    one_minus_p = 1 - p
    q_alpha = one_minus_p.pow(alpha)
    p_alpha = p.pow(alpha)
    loss = peak * q_alpha * neg_log_p + negative_weight * p_alpha * neg_log_q
    grad = None
    if compute_grad:
        ones = torch.ones_like(p)
        log_p_ratio = torch.where(one_minus_p > 0, neg_log_p / torch.where(one_minus_p > 0, one_minus_p, ones), ones)
        log_q_ratio = torch.where(p > 0, neg_log_q / torch.where(p > 0, p, ones), ones)
        grad = (negative_weight * p_alpha * (alpha * log_q_ratio + 1 / q_hat)
                - peak * q_alpha * (alpha * log_p_ratio + 1 / p_hat)).to(probs.dtype)
    return (loss.sum() if reduce_sum else loss), grad


def differentiable_probs(probs: Tensor, targets: Tensor, *, alpha: float, beta: float,
                         ignore_index: int | None = None) -> Tensor:
    """Per-element Gaussian focal loss from probabilities, differentiable to any order: the powers are
    exp(alpha log(max(., tiny))) and the logs are clamped as in :func:`forward_probs`, so every derivative is finite.

    Example:
        >>> differentiable_probs(torch.tensor([0.9, 0.1]), torch.tensor([1.0, 0.5]), alpha=2.0, beta=4.0)
        tensor([1.0536e-03, 6.5850e-05])
    """
    dtype = compute_dtype(probs)
    tiny = torch.finfo(probs.dtype).tiny
    p = probs.to(dtype)
    peak, negative_weight = _weights(targets, beta, dtype)
    neg_log_p, neg_log_q, p_hat, q_hat = _neg_logs(p, tiny)
    q_alpha = torch.exp(alpha * torch.log(q_hat))
    p_alpha = torch.exp(alpha * torch.log(p_hat))
    return peak * q_alpha * neg_log_p + negative_weight * p_alpha * neg_log_q
