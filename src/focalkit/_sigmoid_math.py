"""Sigmoid focal loss and its gradient in one pass of PyTorch operations (the portable back-end).

This is the PyTorch implementation of the kernel contract in ``docs/CONTRACT.md``: it computes the per-element loss
and, when asked, the per-element derivative d loss_i / d x_i in the same pass, in float32 whatever the input dtype.

Math (soft target y in [0, 1], p = sigmoid(x)), Lin et al. 2017 with the stable forms of ``FOCAL_LOSS_FACTS.md``:

.. math::

    u = 1 - p_t = p (1 - y) + (1 - p) y, \\qquad
    \\mathrm{CE} = \\max(x, 0) - x y + \\log(1 + e^{-|x|}), \\qquad
    a_t = \\alpha^+ y + \\alpha^- (1 - y)

    L = a_t\\, u^\\gamma\\, \\mathrm{CE}, \\qquad
    \\frac{\\partial L}{\\partial x} = a_t\\, u^\\gamma \\left[(p - y) + \\gamma (1 - 2y)\\, r\\, \\mathrm{CE}\\right],
    \\quad r = \\frac{p (1 - p)}{u} \\in [0, 1]\\ (0 \\text{ where } u = 0).

The gradient has no :math:`u^{\\gamma - 1}` factor, so it is finite for every gamma >= 0 at any logit. p and 1 - p
are both computed from e = exp(-|x|) without subtraction, so u keeps full relative accuracy in the tails, and the
cross-entropy is a sum of non-negative softplus terms with log1p (torch's BCE-with-logits returns exactly 0 at
x = -17, t = 0, and the textbook form max(x, 0) - x y + log1p(e) cancels to 0 at x = 17, y = 1 in fp32).

With ``pos_weight`` (as in ``nn.BCEWithLogitsLoss``) the cross-entropy becomes
pos_weight * y * softplus(-x) + (1 - y) * softplus(x) and (p - y) becomes its derivative (1 - y) p - pos_weight y (1 - p).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._targets import class_shape, one_hot_targets


def sigmoid_focal_forward_torch(
    logits: Tensor,
    targets: Tensor,
    alpha_pos: Tensor | None,
    alpha_neg: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduce_sum: bool,
    pos_weight: Tensor | None = None,
    *,
    compute_grad: bool,
) -> tuple[Tensor, Tensor | None]:
    """Per-element sigmoid focal loss and its derivative, following the kernel contract.

    Args:
        logits: float tensor (N, C, d1, ...) or any shape for float targets.
        targets: float tensor of the logits' shape, or int64 class indices of shape (N, d1, ...).
        alpha_pos, alpha_neg: float32 per-class weights of shape (C,) for positive / negative terms, or None (1).
        gamma: focusing parameter >= 0.
        ignore_index: index-target value whose rows contribute nothing (None: no such value).
        reduce_sum: return the float32 sum instead of per-element losses.
        compute_grad: also return d loss_i / d x_i (in the logits' dtype); otherwise None.
        pos_weight: optional float32 per-class weight of positive cross-entropy terms, shape (C,).

    Returns:
        ``(loss, grad)``: float32 loss (float64 for float64 logits; logits-shaped, or 0-d when ``reduce_sum``)
        and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[1.0, 0.0]])
        >>> loss, grad = sigmoid_focal_forward_torch(x, y, alpha_pos=None, alpha_neg=None, gamma=2.0,
        ...     ignore_index=None, reduce_sum=False, compute_grad=True)
    """
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)  # fp16/bf16 -> fp32, fp64 stays fp64
    x = logits.to(compute_dtype)
    if targets.is_floating_point():
        y, valid = targets.to(compute_dtype), None
    else:
        y, valid = one_hot_targets(logits, targets, ignore_index)
        y = y.to(compute_dtype)
    shape = class_shape(logits)

    e = torch.exp(-x.abs())
    log1p_e = torch.log1p(e)
    inv = 1.0 / (1.0 + e)
    nonneg = x >= 0
    p = torch.where(nonneg, inv, e * inv)
    q = torch.where(nonneg, e * inv, inv)  # 1 - p without cancellation
    softplus_pos = x.clamp_min(0) + log1p_e  # -log(1 - p)
    softplus_neg = (-x).clamp_min(0) + log1p_e  # -log(p)
    # A sum of two non-negative terms: max(x, 0) - x y + log1p(e) would cancel to 0 in fp32 at y = 1, x = 17.
    positive_term = y * softplus_neg if pos_weight is None else pos_weight.view(shape) * y * softplus_neg
    ce = positive_term + (1 - y) * softplus_pos
    u = p * (1 - y) + q * y
    modulating = u.pow(gamma)

    weight = modulating
    if alpha_pos is not None and alpha_neg is not None:
        weight = weight * (alpha_pos.view(shape) * y + alpha_neg.view(shape) * (1 - y))
    if valid is not None:
        weight = weight * valid
    loss = weight * ce

    grad = None
    if compute_grad:
        r = torch.where(u > 0, p * q / u, torch.zeros_like(u))
        # d CE / dx = p - y, written as (1 - y) p - y (1 - p) so that p - 1 never cancels.
        positive_slope = y * q if pos_weight is None else pos_weight.view(shape) * y * q
        d_ce = (1 - y) * p - positive_slope
        grad = (weight * (d_ce + gamma * (1 - 2 * y) * r * ce)).to(logits.dtype)
    if reduce_sum:
        loss = loss.sum()
    return loss, grad
