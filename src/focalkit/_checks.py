"""Checks of tensor arguments shared by every public PyTorch loss.

All checks run before any computation and raise :class:`~focalkit.InvalidArgumentError` (a ``ValueError``) or
:class:`~focalkit.InvalidTypeError` (a ``TypeError``) naming the argument, what was expected and what was received.
Scalar hyper-parameters go through :mod:`focalkit.semantics` (shared with the JAX and Keras front-ends); checks that
read tensor values follow :mod:`focalkit.value_checks`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from . import semantics
from .errors import argument_error, type_error
from .value_checks import value_checks_enabled

__all__ = [
    "FLOAT_DTYPES",
    "check_class_indices",
    "check_ignore_index",
    "check_gamma",
    "check_floating",
    "check_number",
    "check_same_device",
    "check_tensor",
    "check_unit_interval_values",
    "class_vector",
    "describe",
    "per_class_buffer",
    "scalar_value",
]


def describe(tensor: Tensor) -> str:
    """Short description used in messages: ``Tensor(shape=(2, 3), dtype=torch.float32, device=cpu)``."""
    return f"Tensor(shape={tuple(tensor.shape)}, dtype={tensor.dtype}, device={tensor.device})"


def check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise type_error(name, "a torch.Tensor", type(value).__name__)
    return value


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_floating(name: str, value: object) -> Tensor:
    """A tensor of dtype float16, bfloat16, float32 or float64 (float8 and other dtypes are refused)."""
    tensor = check_tensor(name, value)
    if tensor.dtype not in FLOAT_DTYPES:
        raise type_error(name, "a floating-point tensor (float16, bfloat16, float32 or float64)", describe(tensor))
    return tensor


def check_ignore_index(value: object) -> int:
    """An integer class index (``ignore_index``); bools, floats and None are refused."""
    if type(value) is int:  # the usual case, without the abstract-class check
        return value
    if isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point() and value.dtype != torch.bool:
        value = int(value)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise type_error("ignore_index", "an integer class index", repr(value))
    return int(value)


def per_class_buffer(name: str, value: object, *, unit_range: bool) -> Tensor:
    """A 1-d float32 tensor of per-class values from a sequence or tensor (for module buffers), checked like the
    functions check them: real numbers, finite, in [0, 1] when ``unit_range`` else >= 0."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool or value.ndim != 1:
            raise type_error(name, "a 1-d real tensor of per-class values", describe(value))
        values = value.detach().to(torch.float32).cpu().tolist()
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
    else:
        raise type_error(name, "a sequence or 1-d tensor of per-class values", type(value).__name__)
    floats = semantics.check_per_class_values(name, values, unit_range=unit_range)
    device = value.device if isinstance(value, Tensor) else None
    return torch.tensor(floats, dtype=torch.float32, device=device)


def check_same_device(name: str, tensor: Tensor, reference: Tensor, reference_name: str) -> None:
    if tensor.device != reference.device:
        raise argument_error(name, f"a tensor on {reference_name}'s device {reference.device}", describe(tensor))


def check_number(name: str, value: object, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number (see :func:`focalkit.semantics.check_number`); a 0-d tensor is read as its value."""
    return semantics.check_number(name, scalar_value(value), minimum=minimum, strict=strict)


def class_vector(name: str, value: object, logits: Tensor, *, check_unit_range: bool) -> Tensor:
    """A per-class vector of length C = logits.shape[1] on the logits' device, in float32 (float64 for float64 logits).

    Sequences are converted; tensors must already be on the logits' device.
    """
    if logits.ndim < 2:
        raise argument_error(name, "a scalar when the logits have no class dimension (ndim < 2)", "a sequence")
    num_classes = logits.shape[1]
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    if isinstance(value, Tensor):
        check_same_device(name, value, logits, "input")
        if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise type_error(name, "a floating-point tensor of per-class values", describe(value))
        vector = value.detach().to(compute_dtype)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if not semantics.is_real_number(item):
                raise type_error(name, "a sequence of real numbers", repr(value))
        vector = torch.tensor([float(v) for v in value], dtype=compute_dtype, device=logits.device)
    else:
        raise type_error(name, "a number, a sequence of numbers or a tensor", type(value).__name__)
    if vector.ndim != 1 or vector.numel() != num_classes:
        raise argument_error(name, f"{num_classes} per-class values (C = input.shape[1])", f"shape {tuple(vector.shape)}")
    if value_checks_enabled(vector):
        if not bool(torch.isfinite(vector).all()):
            raise argument_error(name, "finite values", vector.tolist())
        if check_unit_range and bool(((vector < 0) | (vector > 1)).any()):
            raise argument_error(name, "per-class values in [0, 1]", vector.tolist())
        if not check_unit_range and bool((vector < 0).any()):
            raise argument_error(name, "non-negative per-class values", vector.tolist())
    return vector


def check_unit_interval_values(name: str, tensor: Tensor) -> None:
    """Values in [0, 1] (when value checks run for this tensor)."""
    if value_checks_enabled(tensor) and tensor.numel() > 0:
        low, high = torch.aminmax(tensor.detach())  # one pass; NaN propagates into low and high
        if not (bool(low >= 0) and bool(high <= 1)):
            raise argument_error(
                name, "values in [0, 1]", f"values in [{float(low):.6g}, {float(high):.6g}] ({describe(tensor)})"
            )


def check_class_indices(name: str, target: Tensor, low: int, high: int, ignore_index: int | None) -> None:
    """Class indices in [low, high] or equal to ignore_index (when value checks run for this tensor)."""
    if not value_checks_enabled(target) or target.numel() == 0:
        return
    smallest, largest = torch.aminmax(target)  # one pass; the detailed search below runs only on failure
    if bool(smallest >= low) and bool(largest <= high):
        return
    bad = (target < low) | (target > high)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bool(bad.any()):
        first = int(target[bad].flatten()[0])
        allowed = f"class indices in [{low}, {high}]" + (f" or ignore_index={ignore_index}" if ignore_index is not None else "")
        raise argument_error(name, allowed, f"{first} ({describe(target)})")


def scalar_value(value: object) -> object:
    """A 0-d tensor read as its Python value (outside ``torch.compile``); anything else unchanged."""
    if isinstance(value, Tensor) and value.ndim == 0 and not torch.compiler.is_compiling():
        return value.item()
    return value


def check_gamma(gamma: object, *, strict: bool = False) -> float:
    """The focusing parameter (:func:`focalkit.semantics.check_gamma`); a 0-d tensor is read as its value."""
    return semantics.check_gamma(scalar_value(gamma), strict=strict)
