"""Focal loss from probabilities in PyTorch operations (op ``binary_focal``; the only back-end of this op).

:func:`forward` returns the per-element loss and d loss / d p in one pass; :func:`differentiable` is the same loss
as a composition autograd differentiates to any order (used for double backward).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._targets import class_shape

__all__ = ["differentiable", "forward"]


def forward(probs: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None,
            gamma: float, ignore_index: int | None = None, reduce_sum: bool, compute_grad: bool
) -> tuple[Tensor, Tensor | None]:
    r"""Per-element focal loss from probabilities and its derivative d loss / d p.

    .. math::

        u = 1 - p_t = p (1 - y) + (1 - p) y,\quad
        \mathrm{BCE} = -y \log \hat p - (1 - y) \log (1 - \hat p),\quad L = a_t u^\gamma \mathrm{BCE},

        \frac{\partial L}{\partial p} = a_t \left[\gamma (1 - 2y)\, u^\gamma \frac{\mathrm{BCE}}{u}
            + u^\gamma \left(\frac{1 - y}{1 - \hat p} - \frac{y}{\hat p}\right)\right],

    where p̂ and 1 - p̂ are clamped at the smallest normal number of the input dtype (``finfo.tiny``) and BCE / u is
    taken as its limit 1 where u = 0 (only hard targets reach u = 0, where log(1 - u) / u -> -1). The clamp only
    acts where a probability has underflowed: there the loss saturates at -log(tiny) (87.3 in fp32, 9.7 in fp16)
    instead of +inf and the gradient stays finite and non-zero. Pass logits to ``sigmoid_focal_loss`` for the exact
    value in that regime.
    """
    compute_dtype = torch.promote_types(probs.dtype, torch.float32)
    tiny = torch.finfo(probs.dtype).tiny
    p = probs.to(compute_dtype)
    y = targets.to(compute_dtype)
    one_minus_p = 1 - p
    p_hat = p.clamp_min(tiny)
    q_hat = one_minus_p.clamp_min(tiny)
    # log(1 - p) as log1p(-p): exact for small p, where log of the rounded 1 - p is off by up to 1e-2 relative
    log_q = torch.where(one_minus_p >= tiny, torch.log1p(-p.clamp_max(1 - tiny)), torch.log(q_hat))
    bce = -(y * torch.log(p_hat) + (1 - y) * log_q)
    u = p * (1 - y) + one_minus_p * y
    weight = u.pow(gamma)
    if alpha_pos is not None and alpha_neg is not None:
        shape = class_shape(probs)
        weight = weight * (alpha_pos.view(shape) * y + alpha_neg.view(shape) * (1 - y))
    loss = weight * bce
    grad = None
    if compute_grad:
        bce_over_u = torch.where(u > 0, bce / torch.where(u > 0, u, torch.ones_like(u)), torch.ones_like(u))
        d_bce = (1 - y) / q_hat - y / p_hat
        grad = (weight * (gamma * (1 - 2 * y) * bce_over_u + d_bce)).to(probs.dtype)
    return (loss.sum() if reduce_sum else loss), grad


def differentiable(probs: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None,
                   alpha_neg: Tensor | None = None, gamma: float, ignore_index: int | None = None) -> Tensor:
    """Per-element focal loss from probabilities, differentiable to any order.

    u^gamma is exp(gamma log u) with u clamped at the dtype's smallest normal number, and p, 1 - p are clamped as in
    :func:`forward`, so every derivative is finite (zero where a clamp is active).

    Example:
        >>> p = torch.tensor([0.2, 0.8], dtype=torch.float64, requires_grad=True)
        >>> differentiable(p, torch.ones(2, dtype=torch.float64), gamma=2.0).shape
        torch.Size([2])
    """
    compute_dtype = torch.promote_types(probs.dtype, torch.float32)
    tiny = torch.finfo(probs.dtype).tiny
    p = probs.to(compute_dtype)
    y = targets.to(compute_dtype)
    bce = -(y * torch.log(p.clamp_min(tiny)) + (1 - y) * torch.log1p(-p.clamp_max(1 - tiny)))
    u = p * (1 - y) + (1 - p) * y
    loss = torch.exp(gamma * torch.log(u.clamp_min(tiny))) * bce
    if alpha_pos is not None and alpha_neg is not None:
        shape = class_shape(probs)
        loss = loss * (alpha_pos.view(shape) * y + alpha_neg.view(shape) * (1 - y))
    return loss
