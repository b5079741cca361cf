"""Softmax focal loss in PyTorch operations: fused loss + gradient, and the differentiable composition.

:func:`forward` (op ``softmax_focal``: class-index targets) and :func:`forward_soft` (op ``softmax_focal_soft``:
class probabilities, or class indices with label smoothing) are the portable back-end of the kernel contract
(:mod:`focalkit.backends.contract`). :func:`differentiable` / :func:`differentiable_soft` are the same losses as
log-space torch operations that autograd differentiates to any order (used for double backward).

Class-index targets, per row with target class t, m = max_k x_k,
S = sum_k exp(x_k - m) and S' = sum_{k != t} exp(x_k - m) accumulated directly (not as S - exp(x_t - m), which
cancels when t is the arg-max):

.. math::

    \\ell = x_t - m - \\log S = \\log p_t,\\quad u = 1 - p_t = S'/S,\\quad
    L = -w_t\\, u^\\gamma\\, \\ell,

    A = w_t\\, u^\\gamma (u - \\gamma p_t \\ell) \\ge 0,\\quad
    \\partial L / \\partial x_t = -A,\\quad \\partial L / \\partial x_j = A\\, e^{x_j - m} / S'\\ (j \\ne t),

with w_t = alpha[t] * weight[t]. No (1 - p_t)^(gamma - 1) factor appears, so the gradient is finite for every
gamma >= 0.

Soft targets q (class probabilities, or label smoothing q (1 - eps) + eps / C) weigh every class term:
L = sum_c q_c w_c (1 - p_c)^gamma (-log p_c), with log(1 - p_c) = log S'_c - log S and log S = log1p(S'_argmax),
so that both stay accurate when one class dominates. Its gradient, with u_c = 1 - p_c and l_c = log p_c,

.. math::

    B_c = q_c w_c u_c^\\gamma (1 - \\gamma p_c l_c / u_c) \\ge 0,\\qquad
    \\partial L / \\partial x_j = -B_j + p_j \\sum_c B_c,

has no u^(gamma - 1) factor either (l_c / u_c -> -1 as u_c -> 0).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..._targets import ncs, one_hot_targets
from ._reduced import reduced_factor

__all__ = ["IndexRows", "differentiable", "differentiable_soft", "forward", "forward_soft", "index_rows",
           "modulating_factor"]


def _rows_view(logits: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N, C, S) in the compute dtype (float32, or float64 for float64 logits)."""
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    return logits.to(compute_dtype).reshape(ncs(logits.shape))  # explicit sizes: empty tensors reshape too


class IndexRows(NamedTuple):
    """Per-row softmax quantities of class-index targets, shapes (N, C, S) or (N, 1, S): ``valid`` (not ignored),
    ``t_safe`` (the target, 0 on ignored rows), ``e`` = exp(x - max), ``s_total`` = S = sum e, ``s_others`` = S' =
    sum_{k != t} e (summed directly: S - e_t would cancel as p_t -> 1), ``log_p`` = log p_t (log S as log1p of the
    non-arg-max terms, accurate as p_t -> 1) and ``u`` = 1 - p_t = S' / S."""

    valid: Tensor
    t_safe: Tensor
    e: Tensor
    s_total: Tensor
    s_others: Tensor
    log_p: Tensor
    u: Tensor


def index_rows(x: Tensor, targets: Tensor, ignore_index: int | None) -> IndexRows:
    """:class:`IndexRows` of logits ``x`` (N, C, S) and class indices of N * S elements."""
    n, c, s = x.shape
    t = targets.reshape(n, 1, s)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t_safe = torch.where(valid, t, torch.zeros_like(t))
    m, top = x.max(dim=1, keepdim=True)
    e = torch.exp(x - m)
    others = torch.arange(c, device=x.device).view(1, c, 1) != t_safe
    s_total = e.sum(dim=1, keepdim=True)
    s_others = (e * others).sum(dim=1, keepdim=True)
    log_s = torch.log1p(e.scatter(1, top, torch.zeros_like(top, dtype=e.dtype)).sum(dim=1, keepdim=True))
    log_p = x.gather(1, t_safe) - m - log_s
    return IndexRows(valid, t_safe, e, s_total, s_others, log_p, s_others / s_total)


def forward(logits: Tensor, targets: Tensor, *, weight: Tensor | None = None, alpha: Tensor | None = None,
            gamma: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool, reduced_threshold: float = 0.0
) -> tuple[Tensor, Tensor | None]:
    """Per-row softmax focal loss for class-index targets and its gradient, following the kernel contract.

    Args:
        logits: (N, C) or (N, C, d1, ...) float tensor.
        targets: int64 class indices of shape (N,) or (N, d1, ...); ``ignore_index`` rows give 0.
        weight, alpha: float32 per-class vectors of shape (C,), or None.
        gamma: focusing parameter >= 0.
        ignore_index: target value of rows to ignore, or None.
        reduced_threshold: th in (0, 1] for the reduced focal loss (factor ((1 - p_t) / th)^gamma where p_t >= th,
            1 below), or 0 (off).
        reduce_sum: return the sum over rows instead of per-row losses.
        compute_grad: also return d loss / d logits (logits' shape and dtype); otherwise None.

    Returns:
        ``(loss, grad)``: per-row losses of shape (N, d1, ...) (or a 0-d sum) in float32 (float64 for float64
        logits), and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, 0.0, -1.0]]); t = torch.tensor([0])
        >>> loss, grad = forward(x, t, gamma=2.0, ignore_index=-100, reduce_sum=False, compute_grad=True)
        >>> grad.shape
        torch.Size([1, 3])
    """
    x = _rows_view(logits)
    rows = index_rows(x, targets, ignore_index)
    valid, t_safe, e, s_others, log_p, u = rows.valid, rows.t_safe, rows.e, rows.s_others, rows.log_p, rows.u
    p_t = torch.exp(log_p)
    row_weight = u.pow(gamma)
    if reduced_threshold:
        row_weight, gamma = reduced_factor(u, gamma, reduced_threshold)
    row_weight = row_weight * valid
    if weight is not None:
        row_weight = row_weight * weight[t_safe]
    if alpha is not None:
        row_weight = row_weight * alpha[t_safe]
    loss = (-row_weight * log_p).reshape(targets.shape)

    grad = None
    if compute_grad:
        a = row_weight * (u - gamma * p_t * log_p)
        q = e / torch.where(s_others > 0, s_others, torch.ones_like(s_others))
        grad = (a * q).scatter(1, t_safe, -a).reshape(logits.shape).to(logits.dtype)
    if reduce_sum:
        loss = loss.sum()
    return loss, grad


def _soft_targets(logits: Tensor, targets: Tensor, label_smoothing: float, ignore_index: int | None) -> Tensor:
    """q of the logits' shape in the compute dtype: probabilities or one-hot, smoothed; 0 on ignored rows."""
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    num_classes = logits.shape[1]
    if targets.is_floating_point():
        return targets.to(compute_dtype) * (1.0 - label_smoothing) + label_smoothing / num_classes
    one_hot, valid = one_hot_targets(logits, targets, ignore_index)
    q = one_hot.to(compute_dtype) * (1.0 - label_smoothing) + label_smoothing / num_classes
    return q if valid is None else q * valid


def _log_p_and_log_u(x: Tensor) -> tuple[Tensor, Tensor]:
    """log p_c and log(1 - p_c) of (N, C, S) logits, accurate when one class dominates.

    log(1 - p_c) = log S'_c - log S, where S'_c = S - exp(x_c - m) has no cancellation for c other than the arg-max
    (S'_c >= 1 there) and is summed directly for the arg-max; S'_c is clamped at the smallest normal number so that
    the log and its derivative stay finite (the clamped factor is below 1e-38 ** gamma).
    """
    m, top = x.detach().max(dim=1, keepdim=True)  # one pass (argmax over dim 1 of (N, C, S) is ~10x slower)
    e = torch.exp(x - m)
    s_total = e.sum(dim=1, keepdim=True)
    s_others_top = e.scatter(1, top, torch.zeros_like(top, dtype=e.dtype)).sum(dim=1, keepdim=True)
    # log S = log1p(S'_top + (e_top - 1)): e_top - 1 is exactly 0 but carries the arg-max's derivative; log1p keeps
    # -log p accurate when the arg-max's p -> 1 (log_softmax's log S rounds to 0 there).
    log_s = torch.log1p(s_others_top + (e.gather(1, top) - 1))
    log_p = (x - m) - log_s
    s_others = (s_total - e).scatter(1, top, s_others_top)
    log_u = torch.log(s_others.clamp_min(torch.finfo(x.dtype).tiny)) - log_s
    return log_p, log_u


def _log_space_factor(log_u: Tensor, gamma: float, reduced_threshold: float) -> Tensor:
    """(1 - p_c)^gamma from log(1 - p_c), or the reduced focal loss' ((1 - p_c) / th)^gamma where p_c >= th and a
    constant 1 below; differentiable to any order."""
    if not reduced_threshold:
        return torch.exp(gamma * log_u)
    bound = math.log1p(-reduced_threshold) if reduced_threshold < 1 else -math.inf  # log(1 - th)
    reduced = (log_u <= bound).detach()
    return torch.where(reduced, torch.exp(gamma * (log_u - math.log(reduced_threshold))), torch.ones_like(log_u))


def modulating_factor(logits: Tensor, targets: Tensor, *, gamma: float, ignore_index: int | None,
                      label_smoothing: float = 0.0, reduced_threshold: float = 0.0) -> Tensor:
    """Per-row sum_c q_c m(p_c) of the modulating factor m(p) = (1 - p)^gamma (or the reduced focal loss'), which is
    m(p_t) for class-index targets and 0 on ignored rows; differentiable: the normalized focal loss' denominator.

    Example:
        >>> modulating_factor(torch.tensor([[2.0, 0.0]]), torch.tensor([0]), gamma=2.0, ignore_index=-100)
        tensor([0.0142])
    """
    x = _rows_view(logits)
    q = _soft_targets(logits, targets, label_smoothing, ignore_index).reshape(x.shape)
    _, log_u = _log_p_and_log_u(x)
    rows = (q * _log_space_factor(log_u, gamma, reduced_threshold)).sum(dim=1)
    return rows.reshape((logits.shape[0], *logits.shape[2:]))


def _class_weight_view(class_weight: Tensor | None, x: Tensor) -> Tensor | float:
    return 1.0 if class_weight is None else class_weight.to(x.dtype).view(1, -1, 1)


def differentiable_soft(logits: Tensor, targets: Tensor, *, class_weight: Tensor | None = None, gamma: float,
                        label_smoothing: float = 0.0, ignore_index: int | None, reduced_threshold: float = 0.0
                        ) -> Tensor:
    """Per-row soft-target softmax focal loss, a log-space composition differentiable to any order.

    .. math:: L = \\sum_c q_c w_c (1 - p_c)^\\gamma (-\\log p_c)

    Args:
        logits: (N, C, d1, ...) float tensor.
        targets: class probabilities of the logits' shape, or class indices (N, d1, ...) (``ignore_index`` rows
            give 0); either smoothed as q (1 - label_smoothing) + label_smoothing / C.
        class_weight: per-class (C,) multiplier (weight times alpha), or None.
        gamma: focusing parameter >= 0.

    Returns:
        (N, d1, ...) per-row losses in float32 (float64 for float64 logits).

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]])
        >>> differentiable_soft(x, torch.tensor([[0.8, 0.2, 0.0]]), gamma=2.0, ignore_index=None).shape
        torch.Size([1])
    """
    x = _rows_view(logits)
    if x.shape[1] == 0:  # no class: every row sums an empty set of terms
        return x.sum(dim=1).reshape((logits.shape[0], *logits.shape[2:]))
    q = _soft_targets(logits, targets, label_smoothing, ignore_index).reshape(x.shape)
    log_p, log_u = _log_p_and_log_u(x)
    term = -_log_space_factor(log_u, gamma, reduced_threshold) * log_p * _class_weight_view(class_weight, x)
    rows = (q * term).sum(dim=1)
    return rows.reshape((logits.shape[0], *logits.shape[2:]))


def forward_soft(logits: Tensor, targets: Tensor, *, class_weight: Tensor | None = None, gamma: float,
                 label_smoothing: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool,
                 reduced_threshold: float = 0.0) -> tuple[Tensor, Tensor | None]:
    """Soft-target softmax focal loss per row and its closed-form gradient (op ``softmax_focal_soft``).

    Args and the loss are those of :func:`differentiable_soft`; ``reduce_sum`` returns the 0-d sum and
    ``compute_grad`` also returns d sum(L) / d logits (logits' shape and dtype), from the module's formula for B_c.

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]])
        >>> loss, grad = forward_soft(x, torch.tensor([0]), gamma=2.0, label_smoothing=0.1, ignore_index=-100,
        ...     reduce_sum=True, compute_grad=True)
        >>> grad.shape
        torch.Size([1, 3])
    """
    with torch.no_grad():
        x = _rows_view(logits)
        if x.shape[1] == 0:  # no class: zero loss, zero (empty) gradient
            rows = x.sum(dim=1)
            loss = rows.sum() if reduce_sum else rows.reshape((logits.shape[0], *logits.shape[2:]))
            return loss, (torch.zeros_like(logits) if compute_grad else None)
        q = _soft_targets(logits, targets, label_smoothing, ignore_index).reshape(x.shape)
        log_p, log_u = _log_p_and_log_u(x)
        u_gamma = torch.exp(gamma * log_u)
        if reduced_threshold:
            u_gamma, gamma = reduced_factor(torch.exp(log_u), gamma, reduced_threshold)
        weighted_q = q * _class_weight_view(class_weight, x)
        rows = (weighted_q * u_gamma * -log_p).sum(dim=1)
        loss = rows.sum() if reduce_sum else rows.reshape((logits.shape[0], *logits.shape[2:]))
        grad = None
        if compute_grad:
            p, u = torch.exp(log_p), torch.exp(log_u)
            log_p_over_u = torch.where(u > 0, log_p / torch.where(u > 0, u, torch.ones_like(u)), -torch.ones_like(u))
            b = weighted_q * u_gamma * (1 - gamma * p * log_p_over_u)
            grad = (p * b.sum(dim=1, keepdim=True) - b).reshape(logits.shape).to(logits.dtype)
    return loss, grad


def differentiable(logits: Tensor, targets: Tensor, *, weight: Tensor | None = None, alpha: Tensor | None = None,
                   gamma: float, ignore_index: int | None, reduced_threshold: float = 0.0) -> Tensor:
    """Per-row class-index softmax focal loss as a composition differentiable to any order (see
    :func:`differentiable_soft`; the class weight is ``weight * alpha``)."""
    class_weight = weight
    if alpha is not None:
        class_weight = alpha if class_weight is None else class_weight * alpha
    return differentiable_soft(logits, targets, class_weight=class_weight, gamma=gamma, ignore_index=ignore_index,
                               reduced_threshold=reduced_threshold)
