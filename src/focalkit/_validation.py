"""Argument checks shared by every public loss.

All checks run before any computation and raise :class:`~focalkit.InvalidArgumentError` (a ``ValueError``) or
:class:`~focalkit.InvalidTypeError` (a ``TypeError``) naming the argument, what was expected and what was received.

Shape, dtype, device and hyper-parameter checks read only metadata and are always on. Checks that must read tensor
*values* (targets in [0, 1], class indices in range, probabilities in [0, 1], per-class alpha in [0, 1]) are governed
by :func:`set_value_checks`:

- ``"auto"`` (default): run them on CPU tensors, where they cost no device synchronisation, and skip them on
  accelerator tensors, where reading a value back would stall the stream on every call.
- ``"always"``: run them everywhere (one host synchronisation per check on a GPU). Use while debugging.
- ``"never"``: skip them.

They are also skipped while ``torch.compile`` traces, since a value check would break the graph. The environment
variable ``FOCALKIT_VALUE_CHECKS`` sets the initial mode.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from ._errors import argument_error, type_error

__all__ = ["get_value_checks", "set_value_checks"]

_VALUE_CHECK_MODES = ("auto", "always", "never")
_REDUCTIONS = ("none", "mean", "sum")


def _initial_mode() -> str:
    mode = os.environ.get("FOCALKIT_VALUE_CHECKS", "auto")
    if mode not in _VALUE_CHECK_MODES:
        raise argument_error("FOCALKIT_VALUE_CHECKS", f"one of {_VALUE_CHECK_MODES}", repr(mode))
    return mode


_value_check_mode = _initial_mode()


def set_value_checks(mode: str) -> None:
    """Choose when checks that read tensor values run: ``"auto"`` (CPU only), ``"always"`` or ``"never"``.

    Example:
        >>> import focalkit
        >>> focalkit.set_value_checks("always")
        >>> focalkit.set_value_checks("auto")
    """
    global _value_check_mode
    if mode not in _VALUE_CHECK_MODES:
        raise argument_error("mode", f"one of {_VALUE_CHECK_MODES}", repr(mode))
    _value_check_mode = mode


def get_value_checks() -> str:
    """Return the current value-check mode (see :func:`set_value_checks`)."""
    return _value_check_mode


def value_checks_enabled(tensor: Tensor) -> bool:
    """Whether value checks should run for a tensor on this device, in this mode, now."""
    if _value_check_mode == "never" or torch.compiler.is_compiling():
        return False
    return _value_check_mode == "always" or tensor.device.type == "cpu"


def describe(tensor: Tensor) -> str:
    """Short description used in messages: ``Tensor(shape=(2, 3), dtype=torch.float32, device=cpu)``."""
    return f"Tensor(shape={tuple(tensor.shape)}, dtype={tensor.dtype}, device={tensor.device})"


def check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise type_error(name, "a torch.Tensor", type(value).__name__)
    return value


def check_floating(name: str, value: object) -> Tensor:
    tensor = check_tensor(name, value)
    if not tensor.is_floating_point():
        raise type_error(name, "a floating-point tensor (float16, bfloat16, float32 or float64)", describe(tensor))
    return tensor


def check_same_device(name: str, tensor: Tensor, reference: Tensor, reference_name: str) -> None:
    if tensor.device != reference.device:
        raise argument_error(name, f"a tensor on {reference_name}'s device {reference.device}", describe(tensor))


def check_reduction(reduction: object, allowed: Sequence[str] = _REDUCTIONS) -> str:
    if reduction not in allowed:
        raise argument_error("reduction", f"one of {tuple(allowed)}", repr(reduction))
    return reduction  # type: ignore[return-value]


def _is_real_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name: str, value: object, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally >= minimum (> minimum when strict). 0-d tensors are accepted."""
    if isinstance(value, Tensor) and value.ndim == 0 and not torch.compiler.is_compiling():
        value = value.item()
    if not _is_real_number(value):
        raise type_error(name, "a real number", repr(value))
    number = float(value)  # type: ignore[arg-type]
    if number != number or number in (float("inf"), float("-inf")):
        raise argument_error(name, "a finite number", number)
    if minimum is not None and (number <= minimum if strict else number < minimum):
        raise argument_error(name, f"a number {'>' if strict else '>='} {minimum}", number)
    return number


def check_gamma(gamma: object, *, strict: bool = False) -> float:
    return check_number("gamma", gamma, minimum=0.0, strict=strict)


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
            if not _is_real_number(item):
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
