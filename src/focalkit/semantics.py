"""The meaning of the scalar hyper-parameters shared by every focalkit loss, defined once.

The PyTorch core, the adaptive losses, the JAX front-end and the Keras front-end all validate ``gamma``, ``alpha``,
``reduction``, ``label_smoothing`` and other scalars through these functions, so the same bad argument gets the
same error, with the same text, whichever front-end receives it. Only the standard library is imported here:
``focalkit.jax`` and ``focalkit.keras`` use it without PyTorch.

=================  ===========================================================================================
argument           meaning
=================  ===========================================================================================
``gamma``          focusing parameter, a finite real >= 0 (> 0 for FL*, which divides by it)
``alpha``          sigmoid family: weight of positives in [0, 1], negatives get 1 - alpha; ``None`` or a
                   negative number disables it (torchvision's convention). Softmax: ``None`` or a number in
                   [0, 1] multiplying every term. Either may instead be a per-class sequence of values in [0, 1].
``reduction``      ``"none"`` | ``"mean"`` | ``"sum"``
``label_smoothing``  a number in [0, 1]
``beta``           detection family: the exponent of |y - p| (quality focal) or of 1 - y (Gaussian focal), a
                   finite real >= 0; ``alpha`` of the varifocal / Gaussian focal loss is a finite real >= 0
``from_logits``    a flag (a bool), as is ``iou_weighted``
=================  ===========================================================================================

Python numbers are accepted as they are; a front-end converts its own 0-d arrays (a 0-d ``torch.Tensor``) to a
Python number before calling these, or rejects them (JAX, where a traced value cannot be a static parameter).

Example:
    >>> check_gamma(2)
    2.0
    >>> check_sigmoid_alpha(-1.0) is None   # a negative alpha disables the weighting
    True
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from .errors import argument_error, type_error

__all__ = [
    "LOG_SPACE_BELOW",
    "REDUCTIONS",
    "check_bool",
    "check_choice",
    "check_gamma",
    "check_label_smoothing",
    "check_number",
    "check_per_class_values",
    "check_reduced_threshold",
    "check_reduction",
    "check_sigmoid_alpha",
    "check_softmax_alpha",
    "is_real_number",
]

REDUCTIONS = ("none", "mean", "sum")

# Below this, the front-ends form u^gamma (u = 1 - p_t) in log space as exp(gamma log u): pow(u, gamma) would lose its
# derivative there (u^(gamma - 1) overflows).
LOG_SPACE_BELOW = 1e-30

SIGMOID_ALPHA_EXPECTED = "a number in [0, 1], None or a negative number to disable it"
SOFTMAX_ALPHA_EXPECTED = "a number in [0, 1] or None"


_INFINITIES = (float("inf"), float("-inf"))


def _is_finite(number: float) -> bool:
    # comparisons only (no math.isfinite), so that torch.compile can trace a symbolic float through the check
    return number == number and number not in _INFINITIES


def is_real_number(value: object) -> bool:
    """A Python / NumPy real number, not a bool."""
    kind = type(value)
    if kind is float or kind is int:  # the usual case, without the abstract-class check (about 1 us)
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> float:
    """A finite real number, optionally >= ``minimum`` (> when ``strict``) and <= ``maximum``; returned as float.

    Example:
        >>> check_number("beta", 1)
        1.0
    """
    if not is_real_number(value):
        raise type_error(name, "a real number", repr(value))
    number = float(value)  # type: ignore[arg-type]
    if not _is_finite(number):
        raise argument_error(name, "a finite number", number)
    if maximum is not None:
        if (minimum is not None and number < minimum) or number > maximum:
            low = "-inf" if minimum is None else f"{minimum:g}"
            raise argument_error(name, f"a number in [{low}, {maximum:g}]", number)
    elif minimum is not None and (number <= minimum if strict else number < minimum):
        raise argument_error(name, f"a number {'>' if strict else '>='} {float(minimum)}", number)
    return number


def check_gamma(gamma: object, *, strict: bool = False) -> float:
    """The focusing parameter: a finite real >= 0, or > 0 when ``strict`` (FL* divides by it)."""
    return check_number("gamma", gamma, minimum=0.0, strict=strict)


def check_reduction(reduction: object, allowed: Sequence[str] = REDUCTIONS) -> str:
    """One of ``allowed`` (default ``("none", "mean", "sum")``)."""
    return check_choice("reduction", reduction, allowed)


def check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    """One of the strings in ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise argument_error(name, f"one of {tuple(allowed)}", repr(value))
    return value


def check_bool(name: str, value: object) -> bool:
    """A flag (``iou_weighted``, ``from_logits``): a Python bool (NumPy's ``bool_`` too); numbers are refused.

    Example:
        >>> check_bool("from_logits", True)
        True
    """
    if type(value).__name__ not in ("bool", "bool_"):
        raise type_error(name, "a bool", repr(value))
    return bool(value)


def check_reduced_threshold(value: object) -> float:
    """The reduced focal loss' threshold: None (off, returned as 0.0) or a number in (0, 1].

    Example:
        >>> check_reduced_threshold(0.5), check_reduced_threshold(None)
        (0.5, 0.0)
    """
    if value is None:
        return 0.0
    number = check_number("reduced_threshold", value)
    if not 0 < number <= 1:
        raise argument_error("reduced_threshold", "None or a number in (0, 1]", number)
    return number


def check_label_smoothing(value: object) -> float:
    """Amount of label smoothing, a number in [0, 1]."""
    return check_number("label_smoothing", value, minimum=0.0, maximum=1.0)


def _scalar_alpha(alpha: object) -> float | None:
    if alpha is None:
        return None
    if not is_real_number(alpha):
        raise type_error("alpha", "a real number, None or per-class values", repr(alpha))
    return float(alpha)  # type: ignore[arg-type]


def check_sigmoid_alpha(alpha: object) -> float | None:
    """A scalar alpha of the sigmoid family: ``None`` or negative -> None (disabled); else a number in [0, 1]."""
    value = _scalar_alpha(alpha)
    if value is not None and (value != value or value > 1):
        raise argument_error("alpha", SIGMOID_ALPHA_EXPECTED, value)
    return None if value is None or value < 0 else value


def check_softmax_alpha(alpha: object) -> float | None:
    """A scalar alpha of the softmax family: ``None``, or a number in [0, 1] multiplying every term."""
    value = _scalar_alpha(alpha)
    if value is not None and not 0 <= value <= 1:
        raise argument_error("alpha", SOFTMAX_ALPHA_EXPECTED, value)
    return value


def check_per_class_values(
    name: str, values: Sequence[float], *, num_classes: int | None = None, unit_range: bool
) -> list[float]:
    """A list of per-class values: finite, in [0, 1] when ``unit_range`` else >= 0, and ``num_classes`` of them.

    Example:
        >>> check_per_class_values("alpha", [0.25, 0.75], num_classes=2, unit_range=True)
        [0.25, 0.75]
    """
    items = list(values)
    for item in items:
        if not is_real_number(item):
            raise type_error(name, "a sequence of real numbers", repr(values))
    floats = [float(v) for v in items]
    if num_classes is not None and len(floats) != num_classes:
        raise argument_error(name, f"{num_classes} per-class values (C = input.shape[1])", f"shape ({len(floats)},)")
    if not floats:
        raise argument_error(name, "at least one per-class value", "an empty sequence")
    if not all(_is_finite(v) for v in floats):
        raise argument_error(name, "finite values", floats)
    if unit_range and any(v < 0 or v > 1 for v in floats):
        raise argument_error(name, "per-class values in [0, 1]", floats)
    if not unit_range and any(v < 0 for v in floats):
        raise argument_error(name, "non-negative per-class values", floats)
    return floats
