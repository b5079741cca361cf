"""Argument checks for the Keras front-end (pure Python; run once, when a loss is built or called)."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from focalkit._errors import argument_error, type_error


def check_number(name: str, value: Any, *, lo: float | None = None, hi: float | None = None) -> float:
    """A finite Python real in [lo, hi], returned as float."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise type_error(name, "a Python real number", type(value).__name__)
    v = float(value)
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise argument_error(name, f"a finite number in [{lo_s}, {hi_s}]", value)
    return v


def check_alpha(alpha: Any, *, negative_disables: bool) -> float | list[float] | None:
    """None, a number in [0, 1] (a negative number -> None for the sigmoid family), or a list of per-class values."""
    if alpha is None:
        return None
    if isinstance(alpha, Real) and not isinstance(alpha, bool):
        a = float(alpha)
        if negative_disables and a < 0:
            return None
        if math.isnan(a) or not 0 <= a <= 1:
            expected = "None, a negative number (disabled) or a number in [0, 1]" if negative_disables else (
                "None or a number in [0, 1]"
            )
            raise argument_error("alpha", expected, alpha)
        return a
    try:
        values = [float(v) for v in (alpha.tolist() if hasattr(alpha, "tolist") else alpha)]
    except TypeError:
        raise type_error("alpha", "None, a number or a sequence of per-class numbers", type(alpha).__name__) from None
    if not values or any(not (0 <= v <= 1) for v in values):
        raise argument_error("alpha", "a non-empty sequence of per-class numbers in [0, 1]", list(alpha))
    return values


def check_gamma(gamma: Any) -> float:
    return check_number("gamma", gamma, lo=0.0)


def check_label_smoothing(value: Any) -> float:
    return check_number("label_smoothing", value, lo=0.0, hi=1.0)


def check_class_count(name: str, num_classes: Any, alpha: Any, *, minimum: int = 1) -> None:
    """Static checks once the class count is known: the per-class alpha length and the minimum class count."""
    if num_classes is None:
        return
    if num_classes < minimum:
        raise argument_error(name, f"at least {minimum} classes on the class axis", num_classes)
    if isinstance(alpha, list) and len(alpha) != num_classes:
        raise argument_error("alpha", f"{num_classes} per-class values (one per class)", len(alpha))
