"""The autograd glue shared by every focalkit loss: the gradient is computed in the forward pass and saved.

Each back-end returns the loss together with d loss_i / d x_i while the data is in registers. The autograd Function
saves only that gradient (one tensor of the logits' size and dtype, no intermediates) and its backward multiplies it
by the incoming gradient. This keeps the tensors saved for backward at the size of the logits, against about eight
logits-sized tensors for the torchvision formula.

Double backward is not supported. With ``create_graph=True`` the returned gradient carries a node that raises a
``RuntimeError`` naming the problem if anything differentiates through it, so a second-order term is never silently
dropped. :mod:`focalkit.reference` is differentiable any number of times.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

DOUBLE_BACKWARD_MESSAGE = (
    "focalkit: double backward (differentiating the gradient of a focal loss) is not supported; the loss saves only "
    "its first derivative. Use focalkit.reference for higher derivatives."
)


class _RaiseOnDoubleBackward(torch.autograd.Function):
    """Identity on the gradient whose own backward raises: marks a first derivative as not differentiable."""

    @staticmethod
    def forward(ctx, grad: Tensor, anchor: Tensor) -> Tensor:  # type: ignore[override]
        return grad.clone()

    @staticmethod
    def backward(ctx, *unused):  # type: ignore[override]
        raise RuntimeError(DOUBLE_BACKWARD_MESSAGE)


class FusedLossFunction(torch.autograd.Function):
    """Loss whose back-end returns (loss, d loss / d logits) in one pass; saves only that gradient.

    ``forward_fn(logits, *args, compute_grad=bool) -> (loss, grad | None)`` is any back-end function of the kernel
    contract (``docs/CONTRACT.md``), called with positional arguments. ``per_row`` says the loss reduced the class
    dim 1 (softmax), which the chain rule needs to broadcast the incoming gradient.
    """

    @staticmethod
    def forward(ctx, forward_fn, per_row, logits, *args):  # type: ignore[override]
        loss, grad = forward_fn(logits, *args, compute_grad=ctx.needs_input_grad[2])
        if grad is not None:
            ctx.save_for_backward(grad)
            remember_logits(ctx, logits)
        ctx.per_row = per_row
        ctx.num_args = len(args)
        return loss

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (None, None, scale_saved_grad(grad, grad_output, ctx.per_row, ctx), *([None] * ctx.num_args))


def fused_loss(forward_fn, logits: Tensor, *args, per_row: bool = False) -> Tensor:
    """Apply :class:`FusedLossFunction`: the loss of ``forward_fn(logits, *args)``, differentiable w.r.t. logits."""
    return FusedLossFunction.apply(forward_fn, per_row, logits, *args)


def remember_logits(ctx, logits: Tensor) -> None:
    """Keep a weak reference to the logits (no memory cost) to attach the double-backward error to them."""
    if not torch.compiler.is_compiling():
        ctx.logits_ref = weakref.ref(logits)


def scale_saved_grad(saved_grad: Tensor, grad_output: Tensor, per_row: bool, ctx=None) -> Tensor:
    """Chain rule for a loss whose Jacobian is diagonal (per element) or per row (softmax over dim 1).

    Args:
        saved_grad: d loss / d logits saved by the forward pass, shape (N, C, d1, ...).
        grad_output: gradient flowing into the loss: 0-d for a reduced loss, else the loss' shape.
        per_row: the loss has the class dim 1 reduced away (softmax), so grad_output is unsqueezed at dim 1.
        ctx: the Function's context, whose remembered logits anchor the double-backward error.
    """
    with torch.no_grad():
        if grad_output.ndim != 0 and per_row:
            grad_output = grad_output.unsqueeze(1)
        result = saved_grad * grad_output.to(saved_grad.dtype)
    if torch.is_grad_enabled():  # backward(create_graph=True): make a second differentiation fail loudly
        logits = getattr(ctx, "logits_ref", lambda: None)()
        anchor = logits if logits is not None else torch.zeros((), device=result.device, requires_grad=True)
        result = _RaiseOnDoubleBackward.apply(result, anchor)
    return result
