"""Differentiable softmax focal loss: the single entry points through which the softmax losses reach a back-end.

``softmax_focal_differentiable`` (class-index targets) goes through the custom op of :mod:`focalkit.kernels.ops`,
which dispatches to a fused back-end and saves only the gradient computed in the forward pass.
``soft_softmax_focal_differentiable`` (probability targets, label smoothing) recomputes its log-space formula in the
backward pass through ``torch.utils.checkpoint``, so that only the logits and the targets are kept.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ._softmax_math import soft_softmax_focal_rows
from ._targets import one_hot_targets


def softmax_focal_differentiable(
    logits: Tensor,
    targets: Tensor,
    *,
    weight: Tensor | None,
    alpha: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduce_sum: bool,
) -> Tensor:
    """Per-row loss (or its sum) for class-index targets, differentiable w.r.t. ``logits``; inputs validated."""
    from .kernels.ops import softmax_focal  # the kernel contract: custom op over the back-end dispatch

    return softmax_focal(
        logits, targets, weight=weight, alpha=alpha, gamma=gamma, ignore_index=ignore_index, reduce_sum=reduce_sum
    )


def _smoothed_rows(
    logits: Tensor,
    targets: Tensor,
    class_weight: Tensor | None,
    gamma: float,
    label_smoothing: float,
    ignore_index: int,
) -> Tensor:
    num_classes = logits.shape[1]
    if targets.is_floating_point():
        q = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    else:
        one_hot, valid = one_hot_targets(logits, targets, ignore_index)
        one_hot = one_hot.to(torch.promote_types(logits.dtype, torch.float32))  # smoothing in the compute dtype
        q = (one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes) * valid
    return soft_softmax_focal_rows(logits, q, class_weight, gamma)


def soft_softmax_focal_differentiable(
    logits: Tensor,
    targets: Tensor,
    *,
    class_weight: Tensor | None,
    gamma: float,
    label_smoothing: float,
    ignore_index: int,
) -> Tensor:
    """Per-row loss for probability targets or label smoothing; saves only logits and targets (recomputes)."""
    if not logits.requires_grad:
        return _smoothed_rows(logits, targets, class_weight, gamma, label_smoothing, ignore_index)
    return checkpoint(
        _smoothed_rows, logits, targets, class_weight, gamma, label_smoothing, ignore_index, use_reentrant=False
    )
