"""Sigmoid focal loss in PyTorch operations: the fused loss + gradient, and the differentiable composition.

:func:`forward` is the portable back-end of the ``sigmoid_focal`` op of the kernel contract
(:mod:`focalkit.backends.contract`): the per-element loss and, when asked, d loss_i / d x_i in the same pass, in
float32 whatever the input dtype. :func:`differentiable` is the same loss written as ordinary log-space torch
operations, which autograd differentiates to any order (used for double backward).

Math (soft target y in [0, 1], p = sigmoid(x)), Lin et al. 2017, written in stable closed forms:

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

Reduced focal loss (Sergievskiy & Ponamarev 2019; segmentation_models_pytorch's ``reduced_threshold``): with
threshold th in (0, 1] the modulating factor is ((1 - p_t) / th)^gamma where p_t >= th and 1 below (plain
cross-entropy there). In closed form the loss and gradient are those above with gamma replaced by 0 below the
threshold and multiplied by th^-gamma above it; ``reduced_threshold=0`` switches the option off.

With ``pos_weight`` (as in ``nn.BCEWithLogitsLoss``) the cross-entropy becomes
pos_weight * y * softplus(-x) + (1 - y) * softplus(x) and (p - y) becomes its derivative (1 - y) p - pos_weight y (1 - p).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

import torch.nn.functional as F

from ..._targets import class_shape, one_hot_targets
from ...semantics import LOG_SPACE_BELOW
from ._reduced import reduced_factor

__all__ = ["differentiable", "forward", "modulating_factor"]


def forward(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None,
            pos_weight: Tensor | None = None, gamma: float | Tensor, ignore_index: int | None, reduce_sum: bool,
            compute_grad: bool, class_weight: Tensor | None = None, reduced_threshold: float = 0.0
            ) -> tuple[Tensor, Tensor | None]:
    """Per-element sigmoid focal loss and its derivative, following the kernel contract.

    Args:
        logits: float tensor (N, C, d1, ...) or any shape for float targets.
        targets: float tensor of the logits' shape, or int64 class indices of shape (N, d1, ...).
        alpha_pos, alpha_neg: float32 per-class weights of shape (C,) for positive / negative terms, or None (1).
        gamma: focusing parameter >= 0, or a per-class (C,) tensor of them (the equalized focal loss).
        class_weight: optional per-class (C,) factor of every term (the equalized focal loss' gamma_j / gamma_b).
        ignore_index: index-target value whose rows contribute nothing (None: no such value).
        reduce_sum: return the float32 sum instead of per-element losses.
        compute_grad: also return d loss_i / d x_i (in the logits' dtype); otherwise None.
        pos_weight: optional float32 per-class weight of positive cross-entropy terms, shape (C,).
        reduced_threshold: th in (0, 1] for the reduced focal loss, or 0 (off).

    Returns:
        ``(loss, grad)``: float32 loss (float64 for float64 logits; logits-shaped, or 0-d when ``reduce_sum``)
        and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[1.0, 0.0]])
        >>> loss, grad = forward(x, y, gamma=2.0, ignore_index=None, reduce_sum=False, compute_grad=True)
        >>> grad.shape
        torch.Size([1, 2])
    """
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp16/bf16 -> fp32, fp64 stays fp64
    y, valid = _binary_or_soft(logits, targets, ignore_index)
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
    gamma = _class_view(gamma, shape, x.dtype)
    weight = u.pow(gamma)  # 0^0 = 1
    if reduced_threshold:
        weight, gamma = reduced_factor(u, gamma, reduced_threshold)
    if class_weight is not None:
        weight = weight * _class_view(class_weight, shape, x.dtype)
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


def _log_space_factor(x: Tensor, y: Tensor, gamma: float | Tensor, reduced_threshold: float, softplus_pos: Tensor,
                      softplus_neg: Tensor) -> Tensor:
    """The modulating factor (1 - p_t)^gamma (reduced: ((1 - p_t) / th)^gamma where p_t >= th, a constant 1 below)
    as a log-space composition differentiable to any order (see :func:`differentiable`)."""
    u = torch.sigmoid(x) * (1 - y) + torch.sigmoid(-x) * y
    representable = u > LOG_SPACE_BELOW
    log_u_closed = torch.where(y >= 0.5, -softplus_pos, -softplus_neg)
    log_u = torch.where(representable, torch.log(torch.where(representable, u, torch.ones_like(u))), log_u_closed)
    if not reduced_threshold:
        return torch.exp(gamma * log_u)
    reduced = (u <= 1 - reduced_threshold).detach()
    return torch.where(reduced, torch.exp(gamma * (log_u - math.log(reduced_threshold))), torch.ones_like(u))


def modulating_factor(logits: Tensor, targets: Tensor, *, gamma: float, ignore_index: int | None,
                      reduced_threshold: float = 0.0) -> Tensor:
    """The per-element modulating factor (1 - p_t)^gamma (or the reduced focal loss'), 0 on ignored rows, as a
    composition autograd differentiates: the denominator of the normalized focal loss.

    Example:
        >>> modulating_factor(torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 1.0]]), gamma=2.0, ignore_index=None)
        tensor([[0.2500, 0.0022]])
    """
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    y, valid = _binary_or_soft(logits, targets, ignore_index)
    factor = _log_space_factor(x, y, gamma, reduced_threshold, F.softplus(x), F.softplus(-x))
    return factor if valid is None else factor * valid


def _class_view(value: float | Tensor, shape: list[int], dtype: torch.dtype) -> float | Tensor:
    """A number as it is; a per-class (C,) tensor viewed to broadcast along dim 1, in the compute dtype."""
    return value.to(dtype).view(shape) if isinstance(value, Tensor) else value


def _binary_or_soft(logits: Tensor, targets: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor | None]:
    """Targets as floats of the logits' shape in the compute dtype, and the row-validity mask (index targets)."""
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    if targets.is_floating_point():
        return targets.to(compute_dtype), None
    y, valid = one_hot_targets(logits, targets, ignore_index)
    return y.to(compute_dtype), valid


def differentiable(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None,
                   alpha_neg: Tensor | None = None, pos_weight: Tensor | None = None, gamma: float | Tensor,
                   ignore_index: int | None, class_weight: Tensor | None = None, reduced_threshold: float = 0.0
                   ) -> Tensor:
    r"""Per-element sigmoid focal loss as a log-space composition that autograd differentiates to any order, with
    respect to the logits and to soft targets.

    .. math::

        u = p (1 - y) + (1 - p) y,\qquad
        \log u = \begin{cases} \log u & u > 10^{-30} \\
            -\mathrm{softplus}(x) \text{ if } y \ge 1/2,\ -\mathrm{softplus}(-x) \text{ otherwise} & \text{else}
            \end{cases},\qquad
        L = a_t\, e^{\gamma \log u}\, [\, w_+ y\, \mathrm{softplus}(-x) + (1 - y)\, \mathrm{softplus}(x)\,]

    (w_+ = ``pos_weight``). u is formed from p = sigmoid(x) and 1 - p = sigmoid(-x) without subtraction, so it is
    accurate wherever it is representable; only where it falls below 1e-30 (a hard target on the predicted side
    beyond |x| of about 69) is log u taken in closed form, where its derivative in y is below 1e-30 ** gamma. Every
    intermediate is finite for finite x, so first and second derivatives are finite at any logit and any
    gamma >= 0, and the loss is differentiable in y (linear in a_t and the cross-entropy, through u in the
    modulating factor).

    Returns:
        float32 (float64 for float64 logits) losses of the logits' shape, differentiable w.r.t. ``logits`` and, for
        float targets, ``targets``.

    Example:
        >>> x = torch.tensor([[30.0, -2.0]], dtype=torch.float64, requires_grad=True)
        >>> loss = differentiable(x, torch.tensor([[1.0, 0.0]], dtype=torch.float64), gamma=0.5, ignore_index=None)
        >>> h = torch.autograd.grad(torch.autograd.grad(loss.sum(), x, create_graph=True)[0].sum(), x)[0]
        >>> bool(torch.isfinite(h).all())
        True
    """
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    x = logits.to(compute_dtype)
    y, valid = _binary_or_soft(logits, targets, ignore_index)
    shape = class_shape(logits)
    softplus_pos = F.softplus(x)  # -log(1 - p)
    softplus_neg = F.softplus(-x)  # -log(p)
    positive = y * softplus_neg if pos_weight is None else pos_weight.view(shape) * y * softplus_neg
    factor = _log_space_factor(x, y, _class_view(gamma, shape, x.dtype), reduced_threshold, softplus_pos, softplus_neg)
    loss = factor * (positive + (1 - y) * softplus_pos)
    if class_weight is not None:
        loss = loss * _class_view(class_weight, shape, x.dtype)
    if alpha_pos is not None and alpha_neg is not None:
        loss = loss * (alpha_pos.view(shape) * y + alpha_neg.view(shape) * (1 - y))
    if valid is not None:
        loss = loss * valid
    return loss
