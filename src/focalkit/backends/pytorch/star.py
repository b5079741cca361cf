"""FL* (the paper's Appendix A) in PyTorch operations (op ``sigmoid_focal_star``; the only back-end of this op).

:func:`forward` returns the per-element loss and its derivative in one pass; :func:`differentiable` is the same loss
as softplus compositions that autograd differentiates to any order (used for double backward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..._targets import class_shape, one_hot_targets

__all__ = ["differentiable", "forward"]


def _softplus(z: Tensor) -> Tensor:
    return z.clamp_min(0) + torch.log1p(torch.exp(-z.abs()))


def _weights(logits: Tensor, targets: Tensor, alpha_pos, alpha_neg, ignore_index) -> tuple[Tensor, Tensor, Tensor]:
    """(x, weight of the positive term, weight of the negative term) in the compute dtype."""
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    x = logits.to(compute_dtype)
    if targets.is_floating_point():
        y, valid = targets.to(compute_dtype), None
    else:
        y, valid = one_hot_targets(logits, targets, ignore_index)
        y = y.to(compute_dtype)
    w_pos, w_neg = y, 1 - y
    if alpha_pos is not None and alpha_neg is not None:
        shape = class_shape(logits)
        w_pos, w_neg = w_pos * alpha_pos.view(shape), w_neg * alpha_neg.view(shape)
    if valid is not None:
        w_pos, w_neg = w_pos * valid, w_neg * valid
    return x, w_pos, w_neg


def forward(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None,
            gamma: float, beta: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
) -> tuple[Tensor, Tensor | None]:
    r"""Per-element FL* and its derivative.

    .. math::

        L = y\, a^+ \frac{\mathrm{softplus}(-(\gamma x + \beta))}{\gamma}
          + (1 - y)\, a^- \frac{\mathrm{softplus}(\gamma x - \beta)}{\gamma},\qquad
        \frac{\partial L}{\partial x} = -y\, a^+ \sigma(-(\gamma x + \beta)) + (1 - y)\, a^- \sigma(\gamma x - \beta).

    Example:
        >>> loss, grad = forward(torch.tensor([2.0]), torch.tensor([1.0]), gamma=2.0, beta=1.0, ignore_index=None,
        ...     reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([0.0034])
    """
    x, w_pos, w_neg = _weights(logits, targets, alpha_pos, alpha_neg, ignore_index)
    z_pos = gamma * x + beta  # the positive's scaled margin gamma x_t + beta with x_t = x
    z_neg = beta - gamma * x  # the negative's, x_t = -x
    loss = (w_pos * _softplus(-z_pos) + w_neg * _softplus(-z_neg)) / gamma
    grad = None
    if compute_grad:
        grad = (w_neg * torch.sigmoid(-z_neg) - w_pos * torch.sigmoid(-z_pos)).to(logits.dtype)
    return (loss.sum() if reduce_sum else loss), grad


def differentiable(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None,
                   alpha_neg: Tensor | None = None, gamma: float, beta: float, ignore_index: int | None) -> Tensor:
    """Per-element FL*, (w+ softplus(-(gamma x + beta)) + w- softplus(gamma x - beta)) / gamma, differentiable to
    any order.

    Example:
        >>> differentiable(torch.tensor([2.0]), torch.tensor([1.0]), gamma=2.0, beta=1.0, ignore_index=None)
        tensor([0.0034])
    """
    x, w_pos, w_neg = _weights(logits, targets, alpha_pos, alpha_neg, ignore_index)
    return (w_pos * F.softplus(-(gamma * x + beta)) + w_neg * F.softplus(gamma * x - beta)) / gamma
