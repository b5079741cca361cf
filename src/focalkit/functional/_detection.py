"""Argument checks shared by the detection-family losses (quality focal, varifocal, Gaussian focal, distribution focal).

Every check names the argument and raises :class:`~focalkit.InvalidArgumentError` or
:class:`~focalkit.InvalidTypeError` before any compute; value checks follow :mod:`focalkit.value_checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .._checks import FLOAT_DTYPES, check_same_device, check_tensor, check_unit_interval_values, describe
from ..errors import argument_error, type_error

__all__ = ["check_dense_targets", "dense_target_scan", "check_loss_weight"]


def check_dense_targets(name: str, targets: object, inputs: Tensor, what: str, *, scan_values: bool = True) -> Tensor:
    """Float targets of the inputs' shape with values in [0, 1] (``what`` describes them in messages).

    ``scan_values=False`` leaves the value scan to the loss op (:func:`dense_target_scan`, run unless the back-end
    chosen counts invalid targets in its own pass)."""
    targets = check_tensor(name, targets)
    check_same_device(name, targets, inputs, "inputs")
    if targets.dtype not in FLOAT_DTYPES:
        raise type_error(name, f"{what} (float16, bfloat16, float32 or float64)", describe(targets))
    if targets.shape != inputs.shape:
        raise argument_error(name, f"{what} of the inputs' shape {tuple(inputs.shape)}", describe(targets))
    if scan_values:
        check_unit_interval_values(name, targets)
    return targets


def dense_target_scan(name: str, targets: Tensor) -> Callable[[], None]:
    """The scan that the targets lie in [0, 1], for ``focal_loss_op``'s ``scan_targets`` (which skips it when the
    back-end chosen counts invalid targets in its own pass and raises the same error)."""
    return lambda: check_unit_interval_values(name, targets)


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
