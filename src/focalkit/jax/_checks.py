"""Argument checks shared by the JAX front-end (pure Python: nothing here traces or touches array values)."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import jax.numpy as jnp
import numpy as np

from focalkit._errors import argument_error, type_error

_HALF = (jnp.float16, jnp.bfloat16)


def check_gamma(gamma: Any, *, strictly_positive: bool = False) -> float:
    """Return ``gamma`` as a Python float; it must be a static finite real >= 0 (> 0 for FL*)."""
    if isinstance(gamma, bool) or not isinstance(gamma, Real):
        raise type_error("gamma", "a Python real number (static, not a traced array)", type(gamma).__name__)
    g = float(gamma)
    if not math.isfinite(g) or g < 0 or (strictly_positive and g == 0):
        raise argument_error("gamma", "a finite number > 0" if strictly_positive else "a finite number >= 0", gamma)
    return g


def check_scalar(name: str, value: Any) -> float:
    """Return a static finite real as a Python float."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise type_error(name, "a Python real number", type(value).__name__)
    v = float(value)
    if not math.isfinite(v):
        raise argument_error(name, "a finite number", value)
    return v


def check_alpha(alpha: Any, *, negative_disables: bool = True) -> Any:
    """Normalise ``alpha``: None (or, for the sigmoid family, a negative number: the core's "disabled") -> None;
    a number in [0, 1] -> float; anything else is taken as an array (per-class weights) and returned as a jax array.
    """
    if alpha is None:
        return None
    if isinstance(alpha, bool):
        raise type_error("alpha", "None, a number in [0, 1] or an array of per-class weights", "bool")
    if isinstance(alpha, Real):
        a = float(alpha)
        if math.isnan(a) or a > 1 or (a < 0 and not negative_disables):
            expected = "None, a negative number (disabled) or a number in [0, 1]" if negative_disables else (
                "None or a number in [0, 1]"
            )
            raise argument_error("alpha", expected, alpha)
        return None if a < 0 else a
    if isinstance(alpha, (list, tuple, np.ndarray)) or hasattr(alpha, "dtype"):
        arr = jnp.asarray(alpha)
        if not jnp.issubdtype(arr.dtype, jnp.floating) and not jnp.issubdtype(arr.dtype, jnp.integer):
            raise type_error("alpha", "a real-valued array", arr.dtype)
        return arr
    raise type_error("alpha", "None, a number in [0, 1] or an array of per-class weights", type(alpha).__name__)


def float_logits(name: str, x: Any) -> jnp.ndarray:
    """Convert to a floating jax array, computing float16/bfloat16 in float32."""
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise type_error(name, "a floating-point array", arr.dtype)
    if arr.dtype in _HALF:
        arr = arr.astype(jnp.float32)
    return arr


def float_labels(name: str, y: Any, like: jnp.ndarray) -> jnp.ndarray:
    """Binary / soft labels as an array of ``like``'s float dtype, broadcast-compatible with ``like``."""
    arr = jnp.asarray(y)
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == bool):
        raise type_error(name, "a real or boolean array", arr.dtype)
    try:
        jnp.broadcast_shapes(arr.shape, like.shape)
    except ValueError:
        raise argument_error(name, f"a shape broadcastable to {tuple(like.shape)}", tuple(arr.shape)) from None
    return arr.astype(like.dtype)
