"""Differentiable sigmoid focal loss: the single entry point through which every sigmoid loss reaches a back-end."""

from __future__ import annotations

from torch import Tensor

from ._fused_function import fused_loss
from ._sigmoid_math import sigmoid_focal_forward_torch


def sigmoid_focal_differentiable(
    logits: Tensor,
    targets: Tensor,
    *,
    alpha_pos: Tensor | None,
    alpha_neg: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduce_sum: bool,
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Loss (per element, or its float32 sum) differentiable with respect to ``logits``; inputs already validated."""
    if pos_weight is None:  # the kernel contract: custom op over the back-end dispatch (focalkit.kernels.ops)
        from .kernels.ops import sigmoid_focal

        return sigmoid_focal(
            logits, targets, alpha_pos=alpha_pos, alpha_neg=alpha_neg, gamma=gamma, ignore_index=ignore_index,
            reduce_sum=reduce_sum,
        )
    return fused_loss(
        sigmoid_focal_forward_torch, logits, targets, alpha_pos, alpha_neg, gamma, ignore_index, reduce_sum, pos_weight
    )
