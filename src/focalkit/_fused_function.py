"""The autograd glue shared by every focalkit loss: the gradient is computed in the forward pass and saved.

Each back-end returns the loss together with d loss_i / d x_i while the data is in registers. The autograd Function
saves only that gradient (one tensor of the logits' size and dtype, no intermediates) and its backward multiplies it
by the incoming gradient. This keeps the tensors saved for backward at the size of the logits, against about eight
logits-sized tensors for the torchvision formula.

Double backward is not supported: the backward is marked ``once_differentiable`` and a second differentiation raises
a ``RuntimeError`` saying so. Use :mod:`focalkit.reference` when higher derivatives are needed.
"""

from __future__ import annotations

from torch import Tensor


def scale_saved_grad(saved_grad: Tensor, grad_output: Tensor, per_row: bool) -> Tensor:
    """Chain rule for a loss whose Jacobian is diagonal (per element) or per row (softmax over dim 1).

    Args:
        saved_grad: d loss / d logits saved by the forward pass, shape (N, C, d1, ...).
        grad_output: gradient flowing into the loss: 0-d for a reduced loss, else the loss' shape.
        per_row: the loss has the class dim 1 reduced away (softmax), so grad_output is unsqueezed at dim 1.
    """
    if grad_output.ndim != 0 and per_row:
        grad_output = grad_output.unsqueeze(1)
    return saved_grad * grad_output.to(saved_grad.dtype)
