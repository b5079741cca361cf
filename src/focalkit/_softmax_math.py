"""Softmax focal loss and its gradient in one pass of PyTorch operations (the portable back-end).

Class-index targets (the kernel contract of ``docs/CONTRACT.md``), per row with target class t, m = max_k x_k,
S = sum_k exp(x_k - m) and S' = sum_{k != t} exp(x_k - m) accumulated directly (not as S - exp(x_t - m), which
cancels when t is the arg-max):

.. math::

    \\ell = x_t - m - \\log S = \\log p_t,\\quad u = 1 - p_t = S'/S,\\quad
    L = -w_t\\, u^\\gamma\\, \\ell,

    A = w_t\\, u^\\gamma (u - \\gamma p_t \\ell) \\ge 0,\\quad
    \\partial L / \\partial x_t = -A,\\quad \\partial L / \\partial x_j = A\\, e^{x_j - m} / S'\\ (j \\ne t),

with w_t = alpha[t] * weight[t]. No (1 - p_t)^(gamma - 1) factor appears, so the gradient is finite for every
gamma >= 0.

Soft targets (class probabilities or label smoothing) use :func:`soft_softmax_focal_rows`, a log-space formula
differentiated by autograd: sum_c q_c w_c (1 - p_c)^gamma (-log p_c), with log(1 - p_c) = log S'_c - log S and
log S = log1p(S'_argmax), so that both stay accurate when one class dominates.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _rows_view(logits: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N, C, S) in the compute dtype (float32, or float64 for float64 logits)."""
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    return logits.to(compute_dtype).reshape(logits.shape[0], logits.shape[1], -1)


def softmax_focal_forward_torch(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    alpha: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduce_sum: bool,
    *,
    compute_grad: bool,
) -> tuple[Tensor, Tensor | None]:
    """Per-row softmax focal loss for class-index targets and its gradient, following the kernel contract.

    Args:
        logits: (N, C) or (N, C, d1, ...) float tensor.
        targets: int64 class indices of shape (N,) or (N, d1, ...); ``ignore_index`` rows give 0.
        weight, alpha: float32 per-class vectors of shape (C,), or None.
        gamma: focusing parameter >= 0.
        ignore_index: target value of rows to ignore, or None.
        reduce_sum: return the sum over rows instead of per-row losses.
        compute_grad: also return d loss / d logits (logits' shape and dtype); otherwise None.

    Returns:
        ``(loss, grad)``: per-row losses of shape (N, d1, ...) (or a 0-d sum) in float32 (float64 for float64
        logits), and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, 0.0, -1.0]]); t = torch.tensor([0])
        >>> loss, grad = softmax_focal_forward_torch(x, t, weight=None, alpha=None, gamma=2.0,
        ...     ignore_index=-100, reduce_sum=False, compute_grad=True)
    """
    x = _rows_view(logits)
    n, c, s = x.shape
    t = targets.reshape(n, 1, s)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t_safe = torch.where(valid, t, torch.zeros_like(t))

    m, top = x.max(dim=1, keepdim=True)
    e = torch.exp(x - m)
    others = torch.arange(c, device=x.device).view(1, c, 1) != t_safe
    s_total = e.sum(dim=1, keepdim=True)
    s_others = (e * others).sum(dim=1, keepdim=True)  # S', accumulated directly
    # log S = log1p(sum of the terms other than the arg-max's exp(0) = 1): keeps -log p_t accurate when p_t -> 1
    log_s = torch.log1p(e.scatter(1, top, torch.zeros_like(top, dtype=e.dtype)).sum(dim=1, keepdim=True))
    log_p = x.gather(1, t_safe) - m - log_s
    p_t = torch.exp(log_p)
    u = s_others / s_total
    row_weight = u.pow(gamma) * valid
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


def soft_softmax_focal_rows(logits: Tensor, q: Tensor, class_weight: Tensor | None, gamma: float) -> Tensor:
    """Per-row soft-target softmax focal loss, differentiable by autograd with finite gradients.

    .. math:: L = \\sum_c q_c w_c (1 - p_c)^\\gamma (-\\log p_c)

    Args:
        logits: (N, C, d1, ...) float tensor.
        q: target weights per class of the logits' shape (probabilities, label-smoothed one-hot, 0 on ignored rows).
        class_weight: per-class (C,) multiplier (weight times alpha), or None.
        gamma: focusing parameter >= 0.

    Returns:
        (N, d1, ...) per-row losses in float32 (float64 for float64 logits).

    log(1 - p_c) = log S'_c - log S, where S'_c = S - exp(x_c - m) has no cancellation for c other than the arg-max
    (S'_c >= 1 there) and is summed directly for the arg-max; S'_c is clamped at the smallest normal number so that
    the log and its derivative stay finite (the clamped factor is below 1e-38 ** gamma).
    """
    x = _rows_view(logits)
    qv = q.to(x.dtype).reshape(x.shape)
    m = x.amax(dim=1, keepdim=True).detach()
    e = torch.exp(x - m)
    s_total = e.sum(dim=1, keepdim=True)
    top = x.argmax(dim=1, keepdim=True)
    s_others_top = e.scatter(1, top, torch.zeros_like(top, dtype=e.dtype)).sum(dim=1, keepdim=True)
    # log S = log1p(S'_top + (e_top - 1)): e_top - 1 is exactly 0 but carries the arg-max's derivative; log1p keeps
    # -log p accurate when the arg-max's p -> 1 (log_softmax's log S rounds to 0 there).
    log_s = torch.log1p(s_others_top + (e.gather(1, top) - 1))
    log_p = (x - m) - log_s
    s_others = (s_total - e).scatter(1, top, s_others_top)
    tiny = torch.finfo(x.dtype).tiny
    log_u = torch.log(s_others.clamp_min(tiny)) - log_s
    term = -torch.exp(gamma * log_u) * log_p
    if class_weight is not None:
        term = term * class_weight.to(x.dtype).view(1, -1, 1)
    rows = (qv * term).sum(dim=1)
    return rows.reshape((logits.shape[0], *logits.shape[2:]))
