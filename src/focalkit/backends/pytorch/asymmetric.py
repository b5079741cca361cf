r"""Asymmetric Loss in PyTorch operations (ops ``asymmetric`` and ``asymmetric_single_label``; the only back-end of
these ops).

:func:`forward` / :func:`forward_single_label` return the loss and d loss / d x in one pass; :func:`differentiable` /
:func:`differentiable_single_label` are the same losses as log-space compositions that autograd differentiates to
any order (used for double backward and, for the multi-label loss, for gradients with respect to soft targets).

Multi-label (Ridnik, Ben-Baruch et al. 2021, "Asymmetric Loss For Multi-Label Classification"), p = sigmoid(x),
target y in [0, 1], probability margin m >= 0 and shifted probability p_m = max(p - m, 0):

.. math::

    L = y\, (1 - p)^{\gamma_+} (-\log p) + (1 - y)\, p_m^{\gamma_-} (-\log(1 - p_m)).

Stable forms, with s+ = softplus(x) = -log(1 - p) and s- = softplus(-x) = -log p (sums of non-negative terms):

- positive term: (1 - p)^g+ = exp(-g+ s+), so L+ = exp(-g+ s+) s- and
  dL+/dx = -exp(-g+ s+) (g+ p s- + (1 - p)): no (1 - p)^(g+ - 1) factor, finite for every g+ >= 0;
- m = 0: p^g- = exp(-g- s-), L- = exp(-g- s-) s+, dL-/dx = exp(-g- s-) (g- (1 - p) s+ + p);
- m > 0: where p > m, 1 - p_m = (1 - p) + m (no cancellation; >= m, so -log(1 - p_m) <= -log m),
  l = -log(1 - p_m) is -log1p(-p_m) for p_m < 1/2 (accurate for small p_m) and -log((1 - p) + m) otherwise, and

  .. math::

      \frac{dL_-}{dx} = p_m^{\gamma_-}\, p (1 - p) \left[\gamma_-\, \frac{l}{p_m} + \frac{1}{(1 - p) + m}\right],

  with l / p_m in [1, 1 / m] (its limit 1 at p_m = 0): finite for every g- >= 0, including g- < 1 where
  p_m^(g- - 1) alone would be unbounded; 0 where p <= m (the clipped region, as the authors' ``clamp(max=1)``).

``detach_focal_weight`` (the authors' ``disable_torch_grad_focal_loss``) treats the focusing weights (1 - p)^g+ and
p_m^g- as constants in the gradient: dL+/dx = -exp(-g+ s+) (1 - p) and dL-/dx = p_m^g- p (1 - p) / ((1 - p) + m)
(m = 0: exp(-g- s-) p); the loss is the same.

Single-label (the authors' ``ASLSingleLabel``), per row with target class t, softmax probabilities p_c, log p_c =
l_c and label-smoothed one-hot q (q_t = 1 - eps + eps / C, q_c = eps / C):

.. math::

    L = -\sum_c q_c\, w_c \log p_c,\qquad w_t = (1 - p_t)^{\gamma_+},\quad w_c = p_c^{\gamma_-}\ (c \ne t),

with log(1 - p_t) and log p_c from :func:`focalkit.backends.pytorch.softmax._log_p_and_log_u` (accurate when one class
dominates). Its gradient is dL/dx_j = p_j sum_{c != j} E_c - E_j (1 - p_j) with
E_t = q_t w_t (1 - g+ p_t l_t / (1 - p_t)) >= 0 (l_t / (1 - p_t) taken as its limit -1 where 1 - p_t = 0) and
E_c = q_c p_c^g- (1 + g- l_c); the sum over c != j is accumulated directly for the row's arg-max (not as a total minus
a dominant term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...semantics import LOG_SPACE_BELOW
from ._logistic import compute_dtype, logistic_parts
from .softmax import _log_p_and_log_u, _rows_view, _soft_targets

__all__ = ["differentiable", "differentiable_single_label", "forward", "forward_single_label"]


# ------------------------------------------------------------------------------------------------------ multi-label
def forward(logits: Tensor, targets: Tensor, *, gamma_pos: float, gamma_neg: float, clip: float,
            detach_focal_weight: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[Tensor, Tensor | None]:
    """Per-element asymmetric loss and its derivative, following the kernel contract.

    Args:
        logits: float tensor of any shape.
        targets: float targets in [0, 1] of the logits' shape (multi-hot or soft).
        gamma_pos, gamma_neg: focusing exponents of the positive and negative terms, >= 0.
        clip: the probability margin m in [0, 1] (0: no shift).
        detach_focal_weight: 1.0 to treat the focusing weights as constants in the gradient, 0.0 for the exact one.
        ignore_index: unused (float targets only); part of the contract's signature.
        reduce_sum: return the 0-d sum instead of per-element losses.
        compute_grad: also return d loss / d logits (logits' dtype); otherwise None.

    Returns:
        ``(loss, grad)``: float32 (float64 for float64 logits) losses and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]]); y = torch.tensor([[1.0, 0.0, 0.0]])
        >>> loss, grad = forward(x, y, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, detach_focal_weight=0.0,
        ...                      ignore_index=None, reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([[0.1269, 0.0006, 0.0913]])
    """
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    p, q, softplus_pos, softplus_neg = logistic_parts(x)
    detach = detach_focal_weight != 0

    weight_pos = torch.exp(-gamma_pos * softplus_pos)  # (1 - p)^gamma_pos
    loss_pos = weight_pos * softplus_neg
    if clip > 0:
        shifted = p - clip
        live = shifted > 0
        p_m = torch.where(live, shifted, torch.zeros_like(shifted))
        q_m = q + clip  # 1 - p_m where p > m
        neg_ce = torch.where(p_m < 0.5, -torch.log1p(-p_m), -torch.log(q_m))
        weight_neg = torch.where(live, p_m.pow(gamma_neg), torch.zeros_like(p_m))
    else:
        weight_neg = torch.exp(-gamma_neg * softplus_neg)  # p^gamma_neg
        neg_ce = softplus_pos
    loss = y * loss_pos + (1 - y) * weight_neg * neg_ce

    grad = None
    if compute_grad:
        pq = p * q
        if detach:
            grad_pos = -weight_pos * q
            grad_neg = weight_neg * (pq / q_m if clip > 0 else p)
        else:
            grad_pos = -weight_pos * (gamma_pos * p * softplus_neg + q)
            if clip > 0:
                ratio = torch.where(p_m > 0, neg_ce / torch.where(p_m > 0, p_m, torch.ones_like(p_m)),
                                    torch.ones_like(p_m))  # -log(1 - p_m) / p_m, limit 1 at p_m = 0
                grad_neg = weight_neg * pq * (gamma_neg * ratio + 1 / q_m)
            else:
                grad_neg = weight_neg * (gamma_neg * q * softplus_pos + p)
        grad = (y * grad_pos + (1 - y) * grad_neg).to(logits.dtype)
    if reduce_sum:
        loss = loss.sum()
    return loss, grad


def _log_space_floor(dtype: torch.dtype) -> float:
    """Below this p_m, p_m^gamma is taken as 0 in the composition: sqrt(tiny) keeps 1 / p_m^2 (second derivatives of
    log p_m) finite, and 1e-30 is the core's log-space floor."""
    return max(LOG_SPACE_BELOW, torch.finfo(dtype).tiny ** 0.5)


def differentiable(logits: Tensor, targets: Tensor, *, gamma_pos: float, gamma_neg: float, clip: float,
                   detach_focal_weight: float, ignore_index: int | None) -> Tensor:
    """Per-element asymmetric loss as a log-space composition differentiable to any order, with respect to the
    logits and to float targets.

    (1 - p)^g+ = exp(-g+ softplus(x)); without a margin p^g- = exp(-g- softplus(-x)); with a margin m,
    p_m^g- = exp(g- log p_m) where p_m exceeds max(1e-30, sqrt(tiny)) (0 below: the term is then below that
    number to the power g- + 1) and -log(1 - p_m) as in :func:`forward`. Every branch that is not selected is fed a
    finite placeholder, so first and second derivatives are finite at any logit. With ``detach_focal_weight`` the
    weights are detached: autograd then differentiates the weights as constants at every order, as the authors'
    code does under ``torch.set_grad_enabled(False)``.

    Example:
        >>> x = torch.tensor([[40.0, -3.0]], dtype=torch.float64, requires_grad=True)
        >>> y = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
        >>> loss = differentiable(x, y, gamma_pos=0.5, gamma_neg=0.5, clip=0.05, detach_focal_weight=0.0,
        ...                       ignore_index=None)
        >>> h = torch.autograd.grad(torch.autograd.grad(loss.sum(), x, create_graph=True)[0].sum(), x)[0]
        >>> bool(torch.isfinite(h).all())
        True
    """
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    detach = detach_focal_weight != 0
    softplus_pos = F.softplus(x)  # -log(1 - p)
    softplus_neg = F.softplus(-x)  # -log p
    weight_pos = torch.exp(-gamma_pos * softplus_pos)
    if clip > 0:
        shifted = torch.sigmoid(x) - clip
        live = shifted > 0
        p_m = torch.where(live, shifted, torch.zeros_like(shifted))
        q_m = torch.sigmoid(-x) + clip
        neg_ce = torch.where(p_m < 0.5, -torch.log1p(-p_m), -torch.log(q_m))
        if gamma_neg == 0:
            weight_neg = live.to(x.dtype)
        else:
            usable = shifted > _log_space_floor(x.dtype)
            log_p_m = torch.log(torch.where(usable, shifted, torch.ones_like(shifted)))
            weight_neg = torch.where(usable, torch.exp(gamma_neg * log_p_m), torch.zeros_like(shifted))
    else:
        neg_ce = softplus_pos
        weight_neg = torch.exp(-gamma_neg * softplus_neg)
    if detach:
        weight_pos, weight_neg = weight_pos.detach(), weight_neg.detach()
    return y * weight_pos * softplus_neg + (1 - y) * weight_neg * neg_ce


# ----------------------------------------------------------------------------------------------------- single-label
def _single_label_parts(logits: Tensor, targets: Tensor, gamma_pos: float, gamma_neg: float, label_smoothing: float,
                        ignore_index: int | None):
    """(x, q, is_target, log p, log(1 - p), focusing weights) of (N, C, S) rows; q is 0 on ignored rows."""
    x = _rows_view(logits)
    q = _soft_targets(logits, targets, label_smoothing, ignore_index).reshape(x.shape)
    n, c, s = x.shape
    t = targets.reshape(n, 1, s)
    is_target = torch.arange(c, device=x.device).view(1, c, 1) == t
    log_p, log_u = _log_p_and_log_u(x)
    weight = torch.where(is_target, torch.exp(gamma_pos * log_u), torch.exp(gamma_neg * log_p))
    return x, q, is_target, log_p, log_u, weight


def _row_shape(logits: Tensor) -> tuple[int, ...]:
    return (logits.shape[0], *logits.shape[2:])


def forward_single_label(logits: Tensor, targets: Tensor, *, gamma_pos: float, gamma_neg: float,
                         label_smoothing: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
                         ) -> tuple[Tensor, Tensor | None]:
    """Per-row single-label asymmetric loss and its gradient (op ``asymmetric_single_label``).

    Args:
        logits: (N, C) or (N, C, d1, ...) float tensor, C >= 1.
        targets: int64 class indices (N, d1, ...); ``ignore_index`` rows give 0 loss and 0 gradient.
        gamma_pos: exponent of (1 - p_t) on the target class; gamma_neg: exponent of p_c on the other classes.
        label_smoothing: eps in [0, 1]: q = one-hot (1 - eps) + eps / C.
        reduce_sum: return the 0-d sum; compute_grad: also return d loss / d logits (logits' shape and dtype).

    Returns:
        ``(loss, grad)``: per-row float32 (float64 for float64 logits) losses (N, d1, ...) or their sum, and the
        gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]])
        >>> loss, grad = forward_single_label(x, torch.tensor([0]), gamma_pos=0.0, gamma_neg=4.0,
        ...     label_smoothing=0.1, ignore_index=-100, reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([0.2253])
    """
    with torch.no_grad():
        x, q, is_target, log_p, log_u, weight = _single_label_parts(
            logits, targets, gamma_pos, gamma_neg, label_smoothing, ignore_index)
        weighted = q * weight
        rows = (weighted * -log_p).sum(dim=1)
        loss = rows.sum() if reduce_sum else rows.reshape(_row_shape(logits))
        grad = None
        if compute_grad:
            p, u = torch.exp(log_p), torch.exp(log_u)
            log_p_over_u = torch.where(u > 0, log_p / torch.where(u > 0, u, torch.ones_like(u)), -torch.ones_like(u))
            e = weighted * torch.where(is_target, 1 - gamma_pos * p * log_p_over_u, 1 + gamma_neg * log_p)
            grad = _softmax_chain(x, p, u, e).reshape(logits.shape).to(logits.dtype)
    return loss, grad


def _softmax_chain(x: Tensor, p: Tensor, u: Tensor, e: Tensor) -> Tensor:
    """sum_c E_c (p_j - [c = j]) = p_j sum_{c != j} E_c - E_j (1 - p_j) over (N, C, S) rows.

    The sum over c != j is the total minus E_j, except for the row's arg-max, where it is accumulated directly: there
    p_j may round to 1 and E_j dominate, and the total minus E_j would cancel.
    """
    total = e.sum(dim=1, keepdim=True)
    top = x.detach().max(dim=1, keepdim=True).indices  # argmax over dim 1 of (N, C, S) is ~10x slower
    others_top = e.scatter(1, top, torch.zeros_like(top, dtype=e.dtype)).sum(dim=1, keepdim=True)
    others = (total - e).scatter(1, top, others_top)
    return p * others - e * u


def differentiable_single_label(logits: Tensor, targets: Tensor, *, gamma_pos: float, gamma_neg: float,
                                label_smoothing: float, ignore_index: int | None) -> Tensor:
    """Per-row single-label asymmetric loss as a log-space composition differentiable to any order.

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]], dtype=torch.float64, requires_grad=True)
        >>> loss = differentiable_single_label(x, torch.tensor([1]), gamma_pos=0.5, gamma_neg=4.0,
        ...                                    label_smoothing=0.1, ignore_index=-100)
        >>> loss.shape
        torch.Size([1])
    """
    _, q, _, log_p, _, weight = _single_label_parts(logits, targets, gamma_pos, gamma_neg, label_smoothing, ignore_index)
    return (q * weight * -log_p).sum(dim=1).reshape(_row_shape(logits))
