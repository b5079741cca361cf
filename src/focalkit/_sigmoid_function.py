"""Differentiable sigmoid focal loss: the autograd Function over the back-end and the single entry point.

``sigmoid_focal_differentiable`` is the one call site through which every public sigmoid loss reaches a back-end.
The Function saves only the gradient computed in the forward pass (see :mod:`focalkit._fused_function`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._fused_function import remember_logits, scale_saved_grad
from ._sigmoid_math import sigmoid_focal_forward_torch


class SigmoidFocalFunction(torch.autograd.Function):
    """Sigmoid focal loss with the closed-form gradient computed in the forward pass."""

    @staticmethod
    def forward(ctx, logits, targets, alpha_pos, alpha_neg, pos_weight, gamma, ignore_index, reduce_sum):  # type: ignore[override]
        loss, grad = sigmoid_focal_forward_torch(
            logits,
            targets,
            alpha_pos=alpha_pos,
            alpha_neg=alpha_neg,
            gamma=gamma,
            ignore_index=ignore_index,
            reduce_sum=reduce_sum,
            compute_grad=ctx.needs_input_grad[0],
            pos_weight=pos_weight,
        )
        if grad is not None:
            ctx.save_for_backward(grad)
            remember_logits(ctx, logits)
        return loss

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return scale_saved_grad(grad, grad_output, per_row=False, ctx=ctx), None, None, None, None, None, None, None


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
    return SigmoidFocalFunction.apply(logits, targets, alpha_pos, alpha_neg, pos_weight, gamma, ignore_index, reduce_sum)
