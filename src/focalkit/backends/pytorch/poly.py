r"""Poly-1 losses in PyTorch operations (ops ``poly1_cross_entropy`` and ``poly1_focal``; the only back-end of these
ops).

Leng et al. 2022 ("PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions") add epsilon times
the leading polynomial term to a loss: CE + epsilon (1 - p_t) over a softmax, FL + epsilon (1 - p_t)^(gamma + 1) over
a sigmoid. :func:`forward_ce` / :func:`forward_focal` return the loss and d loss / d x in one pass;
:func:`differentiable_ce` / :func:`differentiable_focal` are the same losses as log-space compositions that autograd
differentiates to any order (also with respect to soft targets).

Cross-entropy form, per row, softmax probabilities p_c, s_c = -log p_c, targets q (one-hot, class probabilities, or
either label-smoothed as F.cross_entropy smooths them) and class weights w_c:

.. math::

    L = \sum_c w_c q_c \left[s_c + \epsilon (1 - p_c)\right],\qquad
    \frac{\partial L}{\partial x_j} = \sum_c G_c (p_j - [c = j]),\quad G_c = w_c q_c (1 + \epsilon p_c).

For w = 1 and q summing to 1 the poly term is epsilon (1 - sum_c q_c p_c): the paper's 1 - p_t with the smoothed
p_t = sum_c q_c p_c of its code. For epsilon < 0 (the paper allows epsilon >= -1) s + epsilon (1 - p) cancels as
p -> 1; it is evaluated as (1 + epsilon) s + (-epsilon) g(s) with g(s) = s - (1 - e^{-s}) >= 0 (a Taylor series
below s = 0.1), a sum of non-negative terms, and 1 + epsilon p as (1 + epsilon) + (-epsilon) (1 - p).

Sigmoid focal form, per element, p = sigmoid(x), target y in [0, 1], u = 1 - p_t = p (1 - y) + (1 - p) y,
s+ = softplus(x), s- = softplus(-x), a_t the alpha weight (1 when disabled; the poly term is not alpha-weighted, as
in the paper's code):

.. math::

    L = u^\gamma V,\quad V = a_t\, \mathrm{CE} + \epsilon u
      = y (a_t s_- + \epsilon (1 - p)) + (1 - y)(a_t s_+ + \epsilon p),

    \frac{\partial L}{\partial x} = u^\gamma \left[\gamma (1 - 2y)\, r\, V - y (1 - p)(a_t + \epsilon p)
      + (1 - y)\, p\, (a_t + \epsilon (1 - p))\right],\qquad r = p (1 - p) / u \in [0, 1],

with the same split of a_t s + epsilon (1 - e^{-s}) for epsilon < 0. No u^(gamma - 1) factor appears: finite for every
gamma >= 0 at any logit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..._targets import class_shape
from ...semantics import LOG_SPACE_BELOW
from ._logistic import compute_dtype, logistic_parts
from .asymmetric import _softmax_chain
from .softmax import _log_p_and_log_u, _rows_view, _soft_targets, index_rows

__all__ = ["differentiable_ce", "differentiable_focal", "excess", "forward_ce", "forward_focal"]

# (-1)^k / k! for k = 2 .. 11: g(s) = s^2 sum_k c_k s^(k - 2), truncation below 1e-18 relative for s < 0.1
_SERIES = [(-1.0) ** k / math.factorial(k) for k in range(2, 12)]
_SERIES_BELOW = 0.1


def excess(s: Tensor) -> Tensor:
    """g(s) = s - (1 - exp(-s)) >= 0 for s >= 0, accurate to the last bit also for small s (differentiable).

    Example:
        >>> excess(torch.tensor([1e-4, 1.0], dtype=torch.float64))
        tensor([4.9998e-09, 3.6788e-01], dtype=torch.float64)
    """
    small = s < _SERIES_BELOW
    t = torch.where(small, s, torch.zeros_like(s))  # finite placeholders for the branch not taken
    acc = torch.full_like(t, _SERIES[-1])
    for coefficient in reversed(_SERIES[:-1]):
        acc = acc * t + coefficient
    big = torch.where(small, torch.ones_like(s), s)
    return torch.where(small, t * t * acc, big + torch.expm1(-big))


def _term(a: Tensor | float, s: Tensor, one_minus_exp: Tensor, epsilon: float) -> Tensor:
    """a s + epsilon (1 - e^{-s}), as a sum of non-negative terms when -a <= epsilon < 0."""
    if epsilon >= 0:
        return a * s + epsilon * one_minus_exp
    return (a + epsilon) * s + (-epsilon) * excess(s)


# ------------------------------------------------------------------------------------------------- cross-entropy
def _class_weight(class_weight: Tensor | None, x: Tensor) -> Tensor | float:
    return 1.0 if class_weight is None else class_weight.to(x.dtype).view(1, -1, 1)


def _row_shape(logits: Tensor) -> tuple[int, ...]:
    return (logits.shape[0], *logits.shape[2:])


def forward_ce(logits: Tensor, targets: Tensor, *, class_weight: Tensor | None = None, epsilon: float,
               label_smoothing: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
               ) -> tuple[Tensor, Tensor | None]:
    """Per-row Poly-1 cross-entropy and its gradient (op ``poly1_cross_entropy``).

    Args:
        logits: (N, C) or (N, C, d1, ...) float tensor.
        targets: int64 class indices (N, d1, ...) (``ignore_index`` rows give 0) or class probabilities of the
            logits' shape; either smoothed as q (1 - label_smoothing) + label_smoothing / C.
        class_weight: per-class weights (C,) as ``F.cross_entropy``'s ``weight``, or None.
        epsilon: the Poly-1 coefficient, >= -1.
        reduce_sum: return the 0-d sum; compute_grad: also return d loss / d logits (logits' shape and dtype).

    Returns:
        ``(loss, grad)``: per-row float32 (float64 for float64 logits) losses (N, d1, ...) or their sum, and the
        gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]])
        >>> loss, grad = forward_ce(x, torch.tensor([0]), epsilon=1.0, label_smoothing=0.0, ignore_index=-100,
        ...                         reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([0.4557])
    """
    with torch.no_grad():
        x = _rows_view(logits)
        if x.shape[1] == 0:  # no class: zero loss, zero (empty) gradient
            rows = x.sum(dim=1)
            loss = rows.sum() if reduce_sum else rows.reshape(_row_shape(logits))
            return loss, (torch.zeros_like(logits) if compute_grad else None)
        if not targets.is_floating_point() and label_smoothing == 0:
            return _forward_ce_index(logits, x, targets, class_weight, epsilon, ignore_index, reduce_sum, compute_grad)
        weighted_q = _soft_targets(logits, targets, label_smoothing, ignore_index).reshape(x.shape)
        weighted_q = weighted_q * _class_weight(class_weight, x)
        log_p, log_u = _log_p_and_log_u(x)
        u = torch.exp(log_u)
        rows = (weighted_q * _term(1.0, -log_p, u, epsilon)).sum(dim=1)
        loss = rows.sum() if reduce_sum else rows.reshape(_row_shape(logits))
        grad = None
        if compute_grad:
            p = torch.exp(log_p)
            coefficient = 1 + epsilon * p if epsilon >= 0 else (1 + epsilon) + (-epsilon) * u
            grad = _softmax_chain(x, p, u, weighted_q * coefficient).reshape(logits.shape).to(logits.dtype)
    return loss, grad


def _forward_ce_index(logits: Tensor, x: Tensor, targets: Tensor, class_weight: Tensor | None, epsilon: float,
                      ignore_index: int | None, reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """:func:`forward_ce` for class indices without smoothing: only the target's column enters the loss, so no dense
    one-hot is built. With s = -log p_t (log1p of the non-arg-max terms, accurate as p_t -> 1), u = 1 - p_t = S'/S
    (summed directly) and G = w_t (1 + epsilon p_t): L = w_t [s + epsilon u], dL/dx_j = G p_j (j != t), -G u (j = t)."""
    r = index_rows(x, targets, ignore_index)
    valid, t_safe, e, s_total, log_p, u = r.valid, r.t_safe, r.e, r.s_total, r.log_p, r.u
    w = valid.to(x.dtype)
    if class_weight is not None:
        w = w * class_weight.to(x.dtype)[t_safe]
    rows = (w * _term(1.0, -log_p, u, epsilon)).reshape(_row_shape(logits))
    loss = rows.sum() if reduce_sum else rows
    grad = None
    if compute_grad:
        coefficient = 1 + epsilon * torch.exp(log_p) if epsilon >= 0 else (1 + epsilon) + (-epsilon) * u
        big_g = w * coefficient
        grad = (e * (big_g / s_total)).scatter(1, t_safe, -big_g * u).reshape(logits.shape).to(logits.dtype)
    return loss, grad


def differentiable_ce(logits: Tensor, targets: Tensor, *, class_weight: Tensor | None = None, epsilon: float,
                      label_smoothing: float, ignore_index: int | None) -> Tensor:
    """Per-row Poly-1 cross-entropy as a log-space composition differentiable to any order (with respect to the
    logits and to class-probability targets).

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]])
        >>> differentiable_ce(x, torch.tensor([[0.8, 0.2, 0.0]]), epsilon=1.0, label_smoothing=0.0,
        ...                   ignore_index=None)
        tensor([0.8778])
    """
    x = _rows_view(logits)
    if x.shape[1] == 0:
        return x.sum(dim=1).reshape(_row_shape(logits))
    weighted_q = _soft_targets(logits, targets, label_smoothing, ignore_index).reshape(x.shape)
    weighted_q = weighted_q * _class_weight(class_weight, x)
    log_p, log_u = _log_p_and_log_u(x)
    rows = (weighted_q * _term(1.0, -log_p, torch.exp(log_u), epsilon)).sum(dim=1)
    return rows.reshape(_row_shape(logits))


# ------------------------------------------------------------------------------------------------- sigmoid focal
def _alpha_t(alpha_pos: Tensor | None, alpha_neg: Tensor | None, y: Tensor, logits: Tensor) -> Tensor | float:
    if alpha_pos is None or alpha_neg is None:
        return 1.0
    shape = class_shape(logits)
    return alpha_pos.to(y.dtype).view(shape) * y + alpha_neg.to(y.dtype).view(shape) * (1 - y)


def forward_focal(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None,
                  alpha_neg: Tensor | None = None, gamma: float, epsilon: float, ignore_index: int | None,
                  reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-element Poly-1 focal loss and its derivative (op ``poly1_focal``).

    Args:
        logits: float tensor of any shape ((N, C, ...) with per-class alpha).
        targets: float targets in [0, 1] of the logits' shape.
        alpha_pos, alpha_neg: per-class weights (C,) of the focal term's positive / negative parts, or None (1).
        gamma: focusing parameter >= 0; epsilon: the Poly-1 coefficient, >= -1.
        ignore_index: unused (float targets only).
        reduce_sum: return the 0-d sum; compute_grad: also return d loss / d logits (logits' dtype).

    Returns:
        ``(loss, grad)``: float32 (float64 for float64 logits) losses and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[1.0, 0.0]])
        >>> loss, grad = forward_focal(x, y, gamma=2.0, epsilon=1.0, ignore_index=None, reduce_sum=False,
        ...                            compute_grad=True)
        >>> loss
        tensor([[0.0035, 0.0421]])
    """
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    p, q, softplus_pos, softplus_neg = logistic_parts(x)
    a_t = _alpha_t(alpha_pos, alpha_neg, y, logits)
    u = p * (1 - y) + q * y
    modulating = u.pow(gamma)
    value = y * _term(a_t, softplus_neg, q, epsilon) + (1 - y) * _term(a_t, softplus_pos, p, epsilon)
    loss = modulating * value

    grad = None
    if compute_grad:
        r = torch.where(u > 0, p * q / torch.where(u > 0, u, torch.ones_like(u)), torch.zeros_like(u))
        if epsilon >= 0:
            slope_pos, slope_neg = a_t + epsilon * p, a_t + epsilon * q
        else:
            slope_pos, slope_neg = (a_t + epsilon) + (-epsilon) * q, (a_t + epsilon) + (-epsilon) * p
        d_value = (1 - y) * p * slope_neg - y * q * slope_pos
        grad = (modulating * (gamma * (1 - 2 * y) * r * value + d_value)).to(logits.dtype)
    if reduce_sum:
        loss = loss.sum()
    return loss, grad


def differentiable_focal(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None,
                         alpha_neg: Tensor | None = None, gamma: float, epsilon: float,
                         ignore_index: int | None) -> Tensor:
    """Per-element Poly-1 focal loss as a log-space composition differentiable to any order, with respect to the
    logits and to soft targets: u^gamma = exp(gamma log u) with log u in closed form (-softplus(+-x)) where u falls
    below 1e-30, as :func:`focalkit.backends.pytorch.sigmoid.differentiable` does.

    Example:
        >>> x = torch.tensor([[30.0, -2.0]], dtype=torch.float64, requires_grad=True)
        >>> y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> loss = differentiable_focal(x, y, gamma=0.5, epsilon=-1.0, ignore_index=None)
        >>> h = torch.autograd.grad(torch.autograd.grad(loss.sum(), x, create_graph=True)[0].sum(), x)[0]
        >>> bool(torch.isfinite(h).all())
        True
    """
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    softplus_pos = F.softplus(x)  # -log(1 - p)
    softplus_neg = F.softplus(-x)  # -log p
    p, q = torch.sigmoid(x), torch.sigmoid(-x)
    u = p * (1 - y) + q * y
    representable = u > LOG_SPACE_BELOW
    log_u_closed = torch.where(y >= 0.5, -softplus_pos, -softplus_neg)
    log_u = torch.where(representable, torch.log(torch.where(representable, u, torch.ones_like(u))), log_u_closed)
    a_t = _alpha_t(alpha_pos, alpha_neg, y, logits)
    value = y * _term(a_t, softplus_neg, q, epsilon) + (1 - y) * _term(a_t, softplus_pos, p, epsilon)
    return torch.exp(gamma * log_u) * value
