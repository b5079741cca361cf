r"""The segmentation losses' per-(image, class) statistics as one differentiable operation (fused CPU kernel).

The Dice and Tversky terms depend on the logits only through a few sums per image n and class c (and the focal
term through one sum per image), so :func:`segmentation_statistics` computes those sums in one pass of the fused
kernel (:mod:`focalkit.backends.cpu.segmentation`) and its backward recomputes the probabilities and writes dL/dx
in one more pass; the formulas of the losses then run in PyTorch on the small (N, C, 3) tensors, where autograd
handles them. Nothing logits-sized is kept between the passes (the logits and targets are saved, not copied).

With p the softmax over C or the sigmoid, g the one-hot or float target and v the pixel's validity:

.. math::

    \text{dice:}\ \big(\textstyle\sum_s v (p (1 - g) + (1 - p) g),\ \sum_s v p,\ \sum_s g\big) \quad
    \text{dice\_squared:}\ \big(\sum_s v (p - g)^2,\ \sum_s v p^2,\ \sum_s g^2\big) \quad
    \text{tversky:}\ (\mathrm{TP}, \mathrm{FN}, \mathrm{FP})

Under ``create_graph=True`` the backward differentiates :func:`torch_statistics`, the same sums written in
PyTorch, so higher derivatives exist (computed in float32).

Example:
    >>> x = torch.randn(2, 3, 4, 4, requires_grad=True); t = torch.randint(0, 3, (2, 4, 4))
    >>> stats, focal, counts, extreme = segmentation_statistics(x, t, softmax=True, mode="dice", ignore_index=-100,
    ...                                                          focal=None, gamma=2.0)
    >>> stats.sum().backward(); x.grad.shape
    torch.Size([2, 3, 4, 4])
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_class_indices
from ..backends import requested_backend
from ..backends.cpu import segmentation as kernel
from ._segmentation import class_probabilities, one_hot
from .sigmoid import sigmoid_focal_loss
from .softmax import softmax_focal_loss

__all__ = ["kernel_supported", "segmentation_statistics", "torch_statistics"]

# d L / d statistic above this magnitude would leave float32 in the kernel's per-pixel arithmetic
_GRADIENT_LIMIT = 1e30


def kernel_supported(input: Tensor) -> bool:
    """Whether :func:`segmentation_statistics` runs the fused kernel: CPU float32 / float16 / bfloat16 logits, the
    library built, outside ``torch.compile`` (which traces the PyTorch formulation instead), and no other back-end
    requested through ``$FOCALKIT_BACKEND`` (``torch`` selects the PyTorch formulation)."""
    return (not torch.compiler.is_compiling() and requested_backend() in ("auto", "cpu")
            and kernel.supported(input))


def torch_statistics(input: Tensor, target: Tensor, *, softmax: bool, mode: str, ignore_index: int,
                     focal: tuple[Tensor, Tensor | None] | None, gamma: float) -> tuple[Tensor, Tensor]:
    """The statistics (N, C, 3) and focal sums (N,) of :func:`segmentation_statistics`, written in PyTorch (float32),
    differentiable to any order."""
    n, c = input.shape[:2]
    x = input.to(torch.float32).reshape(n, c, -1)
    p, q = class_probabilities(x, softmax)
    if target.is_floating_point():
        g = target.to(torch.float32).reshape(n, c, -1)
        v = torch.ones_like(g[:, :1])
    else:
        index = target.reshape(n, -1)
        g = one_hot(index, c, torch.float32)
        v = (index != ignore_index).unsqueeze(1).to(torch.float32)
    negative = (1.0 - g) * v
    if mode == "dice":
        parts = (p * negative + q * g, p * v, g.expand_as(p))
    elif mode == "dice_squared":
        difference = p * negative - q * g
        parts = (difference * difference, p * p * v, (g * g).expand_as(p))
    else:
        parts = (p * g, q * g, p * negative)
    stats = torch.stack([part.sum(2) for part in parts], -1).to(torch.float64)
    focal_sums = torch.zeros(n, dtype=torch.float64, device=input.device) + x.sum() * 0.0
    if focal is not None:
        positive, negative_weight = focal
        if softmax:
            loss = softmax_focal_loss(x, index, positive, ignore_index, "none", gamma=gamma)
        else:
            element = v * (positive.view(1, c, 1) * g + negative_weight.view(1, c, 1) * (1.0 - g))
            loss = sigmoid_focal_loss(x, g, None, gamma, "none", weight=element)
        focal_sums = loss.reshape(n, -1).sum(1).to(torch.float64)
    return stats, focal_sums


class _Statistics(torch.autograd.Function):
    """Fused forward (statistics, focal sums, valid counts) and backward (dL/dx from their gradients)."""

    @staticmethod
    def forward(ctx, input: Tensor, target: Tensor, options: dict) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = kernel.statistics(input, target, **options)
        ctx.save_for_backward(input, target)
        ctx.options = options
        flags = torch.tensor([out.extreme, out.invalid])
        ctx.mark_non_differentiable(out.counts, flags)
        return out.stats, out.focal, out.counts, flags

    @staticmethod
    def backward(ctx, grad_stats: Tensor, grad_focal: Tensor, *_unused: Tensor) -> tuple[Tensor | None, None, None]:
        input, target = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        too_large = bool((grad_stats.abs().amax() > _GRADIENT_LIMIT) | (grad_focal.abs().amax() > _GRADIENT_LIMIT)) \
            if grad_stats.numel() else False
        create_graph = torch.is_grad_enabled()  # True inside a backward called with create_graph=True
        if create_graph or too_large:  # differentiate the PyTorch formulation of the same sums
            with torch.enable_grad():
                leaf = input if create_graph else input.detach().requires_grad_(True)
                stats, focal_sums = torch_statistics(leaf, target, **ctx.options)
                (grad,) = torch.autograd.grad((stats, focal_sums), leaf, (grad_stats, grad_focal),
                                              create_graph=create_graph, allow_unused=True)
            if grad is None:
                grad = torch.zeros_like(input)
            return grad, None, None
        focal = ctx.options["focal"]
        grad = kernel.gradient(input, target, grad_stats, grad_focal if focal is not None else None, **ctx.options)
        return grad, None, None


def segmentation_statistics(input: Tensor, target: Tensor, *, softmax: bool, mode: str, ignore_index: int,
                            focal: tuple[Tensor, Tensor | None] | None, gamma: float
                            ) -> tuple[Tensor, Tensor, Tensor, int]:
    """Per-(image, class) statistics and per-image focal sums of logits (N, C, *spatial), differentiable in the
    logits.

    Args:
        input: logits (N, C, *spatial) on which :func:`kernel_supported` holds.
        target: class indices (N, *spatial) (``ignore_index`` pixels left out) or float targets of the input's shape.
        softmax, mode, ignore_index, focal, gamma: see :func:`focalkit.backends.cpu.segmentation.statistics`.

    Returns:
        ``(stats, focal, counts, extreme)``: (N, C, 3) float64, (N,) float64, the valid pixels per image (N,)
        float64 (not differentiable), and the number of valid pixels whose logits spread beyond 50.

    Raises:
        InvalidArgumentError: class indices outside [0, C) that are not ``ignore_index`` (counted in the kernel's
        pass, where value checks run for the target; the message is that of the library's index check).
    """
    options = dict(softmax=softmax, mode=mode, ignore_index=ignore_index, focal=focal, gamma=gamma)
    stats, focal_sums, counts, flags = _Statistics.apply(input, target, options)
    extreme, invalid = (int(v) for v in flags)
    if invalid:
        check_class_indices("target", target, 0, input.shape[1] - 1, ignore_index)
    return stats, focal_sums, counts, extreme
