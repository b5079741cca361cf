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
    return fused_loss(
        sigmoid_focal_forward_torch, logits, targets, alpha_pos, alpha_neg, gamma, ignore_index, reduce_sum, pos_weight
    )
