"""Argument checks shared by the detection-family losses (quality focal, varifocal, Gaussian focal, distribution focal).

Every check names the argument and raises :class:`~focalkit.InvalidArgumentError` or
:class:`~focalkit.InvalidTypeError` before any compute; value checks follow :mod:`focalkit.value_checks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .._checks import FLOAT_DTYPES, check_same_device, check_tensor, check_unit_interval_values, describe
from ..backends import counts_invalid_targets
from ..errors import argument_error, type_error
from ..value_checks import value_checks_enabled

__all__ = ["check_dense_targets", "check_dense_target_values", "check_loss_weight"]


def check_dense_targets(name: str, targets: object, inputs: Tensor, what: str, *, scan_values: bool = True) -> Tensor:
    """Float targets of the inputs' shape with values in [0, 1] (``what`` describes them in messages).

    ``scan_values=False`` leaves the value scan to :func:`check_dense_target_values` (called once the back-end's
    tensors are known)."""
    targets = check_tensor(name, targets)
    check_same_device(name, targets, inputs, "inputs")
    if targets.dtype not in FLOAT_DTYPES:
        raise type_error(name, f"{what} (float16, bfloat16, float32 or float64)", describe(targets))
    if targets.shape != inputs.shape:
        raise argument_error(name, f"{what} of the inputs' shape {tuple(inputs.shape)}", describe(targets))
    if scan_values:
        check_unit_interval_values(name, targets)
    return targets


def check_dense_target_values(op: str, name: str, inputs: Tensor, targets: Tensor,
                              tensors: dict[str, Tensor | None] | None = None) -> None:
    """Scan that the targets lie in [0, 1], unless the back-end that will run ``op`` counts invalid targets in its own
    pass (it then raises the same error, without a separate scan over the targets). Targets that require a gradient
    are always scanned here."""
    if not value_checks_enabled(targets):
        return
    if (targets.requires_grad and torch.is_grad_enabled()) or not counts_invalid_targets(op, inputs, targets, tensors):
        check_unit_interval_values(name, targets)


def check_loss_weight(weight: object, inputs: Tensor, shapes: Sequence[tuple[int, ...]]) -> Tensor | None:
    """None, or a real tensor on the inputs' device broadcastable to one of ``shapes`` without enlarging it.

    Returns the weight as given (it may require grad: the loss is then differentiable with respect to it).
    """
    if weight is None:
        return None
    weight = check_tensor("weight", weight)
    check_same_device("weight", weight, inputs, "inputs")
    expected = " or ".join(str(tuple(shape)) for shape in shapes)
    if weight.dtype == torch.bool or weight.is_complex():
        raise type_error("weight", f"a real tensor broadcastable to {expected}", describe(weight))
    for shape in shapes:
        try:
            if torch.broadcast_shapes(weight.shape, shape) == torch.Size(shape):
                return weight
        except RuntimeError:
            pass
    raise argument_error("weight", f"a tensor broadcastable to {expected}", describe(weight))
