"""``binary_focal_loss``: focal loss from probabilities, FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t."""

from __future__ import annotations

import torch
from torch import Tensor

from .._autograd import focal_loss_op
from .._checks import check_floating, check_gamma, check_tensor, check_unit_interval_values, describe
from ..errors import type_error
from ..semantics import check_reduction
from ._alpha import AlphaArg, sigmoid_alpha
from ._reduction import reduce_elementwise
from .sigmoid import check_sigmoid_targets

__all__ = ["binary_focal_loss"]


def binary_focal_loss(
    probs: Tensor,
    targets: Tensor,
    alpha: AlphaArg = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Focal loss from probabilities: FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t).

    .. math:: \mathrm{FL} = -\alpha_t (1 - p_t)^\gamma \log p_t,\quad p_t = p y + (1 - p)(1 - y)

    Prefer :func:`sigmoid_focal_loss` on logits when you have them: probabilities that have rounded to 0 or 1 carry
    no information about how wrong the prediction is, so the loss here saturates at -log(finfo(dtype).tiny)
    (87.3 in fp32) where a probability has underflowed, with a finite, non-zero gradient.

    Args:
        probs: probabilities in [0, 1], any shape.
        targets: float targets in [0, 1] of the same shape (binary, multi-label or soft).
        alpha: weight of positives (negatives get 1 - alpha); None or negative disables; per-class sequence allowed.
        gamma: focusing parameter >= 0.
        reduction: ``"none"`` | ``"mean"`` (over all elements) | ``"sum"``.

    Returns:
        Per-element losses of the probabilities' shape and dtype (``"none"``) or a scalar.

    Example (a positive sample, gamma = 2, alpha_t = 0.25: hard at p = 0.2, easy at p = 0.8):
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
    loss = focal_loss_op(
        "binary_focal", probs, targets, tensors={"alpha_pos": alpha_pos, "alpha_neg": alpha_neg},
        scalars={"gamma": gamma}, reduce_sum=reduction != "none",
    )
    return reduce_elementwise(loss, reduction, probs, targets, None)
