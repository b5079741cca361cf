"""The PyTorch back-end: every op of the contract in ordinary torch operations, on any device and dtype.

It is the reference implementation of the kernel contract and the fallback of the dispatcher: it runs every op
(float64, ``pos_weight``, probability targets, FL*, losses from probabilities) and declares nothing unsupported.
Each op's module also holds its *differentiable composition* (``differentiable``), the same loss written as log-space
torch operations that autograd differentiates to any order; the autograd layer uses it for double backward.

Example:
    >>> import focalkit.backends.contract
    >>> from focalkit.backends import pytorch
    >>> sorted(pytorch.IMPLEMENTS) == sorted(focalkit.backends.contract.OPS)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor

from .._imports import import_submodule
from ..contract import OPS

NAME = "torch"

# op -> (module, forward function, differentiable composition); every optional tensor argument of each op
_OPS = {
    "sigmoid_focal": ("sigmoid", "forward", "differentiable"),
    "softmax_focal": ("softmax", "forward", "differentiable"),
    "softmax_focal_soft": ("softmax", "forward_soft", "differentiable_soft"),
    "binary_focal": ("binary", "forward", "differentiable"),
    "sigmoid_focal_star": ("star", "forward", "differentiable"),
    "quality_focal": ("quality", "forward", "differentiable"),
    "varifocal": ("varifocal", "forward", "differentiable"),
    "gaussian_focal": ("gaussian", "forward", "differentiable"),
    "gaussian_focal_probs": ("gaussian", "forward_probs", "differentiable_probs"),
    "distribution_focal": ("distribution", "forward", "differentiable"),
    "equalized_focal": ("equalized", "forward", "differentiable"),
    "asymmetric": ("asymmetric", "forward", "differentiable"),
    "asymmetric_single_label": ("asymmetric", "forward_single_label", "differentiable_single_label"),
    "poly1_cross_entropy": ("poly", "forward_ce", "differentiable_ce"),
    "poly1_focal": ("poly", "forward_focal", "differentiable_focal"),
}


IMPLEMENTS = {op: (module, OPS[op].tensor_args + OPS[op].optional_scalars) for op, (module, *_) in _OPS.items()}


def unsupported(op: str, logits: Tensor, targets: Tensor, tensors: Mapping[str, Tensor | None], *, forced: bool) -> list[str]:
    """Reasons this back-end cannot run the call: none, on any device and dtype."""
    return []


def _attr(op: str, which: int) -> Callable:
    module, *names = _OPS[op]
    return getattr(import_submodule(f"{__name__}.{module}"), names[which])


def forward(op: str) -> Callable:
    """The contract function of ``op``: ``(logits, targets, **args) -> (loss, grad | None)``."""
    return _attr(op, 0)


def differentiable(op: str) -> Callable:
    """The differentiable composition of ``op``: ``(logits, targets, **args) -> unreduced loss``."""
    return _attr(op, 1)
