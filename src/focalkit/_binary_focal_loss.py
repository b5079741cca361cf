"""``binary_focal_loss``: focal loss from probabilities, as seeds 000 and 002 write it."""

from __future__ import annotations

import torch
from torch import Tensor

from ._alpha import AlphaArg, sigmoid_alpha
from ._fused_function import fused_loss
from ._reduction import finish_reduction
from ._sigmoid_focal_loss import check_sigmoid_targets
from ._targets import class_shape, count_elements
from ._errors import type_error
from ._validation import check_floating, check_gamma, check_reduction, check_tensor, check_unit_interval_values, describe

__all__ = ["binary_focal_loss", "binary_focal_forward_torch"]


def binary_focal_forward_torch(
    probs: Tensor, y: Tensor, alpha_pos: Tensor | None, alpha_neg: Tensor | None, gamma: float, *, compute_grad: bool
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
    y = y.to(compute_dtype)
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
    return loss, grad


def binary_focal_loss(
    probs: Tensor,
    targets: Tensor,
    alpha: AlphaArg = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Focal loss from probabilities: FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t) (seeds 000 and 002).

    .. math:: \mathrm{FL} = -\alpha_t (1 - p_t)^\gamma \log p_t,\quad p_t = p y + (1 - p)(1 - y)

    Prefer :func:`sigmoid_focal_loss` on logits when you have them: probabilities that have rounded to 0 or 1 carry
    no information about how wrong the prediction is, so the loss here saturates at -log(finfo(dtype).tiny)
    (87.3 in fp32) where a probability has underflowed (see :func:`binary_focal_forward_torch`).

    Args:
        probs: probabilities in [0, 1], any shape.
        targets: float targets in [0, 1] of the same shape (binary, multi-label or soft).
        alpha: weight of positives (negatives get 1 - alpha); None or negative disables; per-class sequence allowed.
        gamma: focusing parameter >= 0.
        reduction: ``"none"`` | ``"mean"`` (over all elements) | ``"sum"``.

    Returns:
        Per-element losses of the probabilities' shape and dtype (``"none"``) or a scalar.

    Example (seed 000's worked numbers, gamma = 2, alpha_t = 0.25, a positive sample):
        >>> p = torch.tensor([0.2, 0.8]); y = torch.ones(2)
        >>> binary_focal_loss(p, y, alpha=0.25, gamma=2.0, reduction="none")
        tensor([0.2575, 0.0022])

    Reference:
        T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, eq. (5).
    """
    probs = check_floating("probs", probs)
    reduction = check_reduction(reduction)
    gamma = check_gamma(gamma)
    check_unit_interval_values("probs", probs)
    targets = check_tensor("targets", targets)
    if not targets.is_floating_point():
        raise type_error("targets", "float targets in [0, 1] of the probabilities' shape", describe(targets))
    check_sigmoid_targets(probs, targets, ignore_index=-100)
    alpha_pos, alpha_neg = sigmoid_alpha(alpha, probs)
    loss = fused_loss(binary_focal_forward_torch, probs, targets, alpha_pos, alpha_neg, gamma)
    if reduction == "none":
        return loss.to(probs.dtype)
    return finish_reduction(
        loss.sum(), reduction, lambda: count_elements(probs, targets, None), None, False, probs.dtype
    )
