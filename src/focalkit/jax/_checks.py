"""Argument checks of the JAX front-end (pure Python: nothing here traces or touches traced values).

The meaning and the error text of the scalar hyper-parameters (``gamma``, ``alpha``, ``beta``, per-class alpha lists)
come from :mod:`focalkit.semantics`, shared with the PyTorch core, the adaptive losses and the Keras front-end. Only
what is specific to JAX lives here: a hyper-parameter must be a *static* Python number (a jax array, traced or not,
cannot select the computation, so it is rejected with :class:`~focalkit.InvalidTypeError` naming the argument), and
the conversion of logits / labels to jax arrays of the right dtype and shape.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from focalkit import semantics
from focalkit.errors import argument_error, type_error

__all__ = ["check_alpha", "check_gamma", "check_static_number", "float_labels", "float_logits"]

_HALF = (jnp.float16, jnp.bfloat16)


def _reject_array(name: str, value: Any) -> None:
    """JAX's rule: hyper-parameters are static Python numbers, never (possibly traced) arrays."""
    if semantics.is_real_number(value):  # Python and NumPy scalars
        return
    if isinstance(value, (jax.Array, np.ndarray)) or (hasattr(value, "dtype") and hasattr(value, "shape")):
        got = f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
        raise type_error(name, "a static Python number (not a jax array or traced value)", got)


def check_gamma(gamma: Any, *, strict: bool = False) -> float:
    """Return ``gamma`` as a Python float: a static finite real >= 0 (> 0 when ``strict``, for FL*)."""
    _reject_array("gamma", gamma)
    return semantics.check_gamma(gamma, strict=strict)


def check_static_number(name: str, value: Any) -> float:
    """Return a static finite real (e.g. FL*'s ``beta``) as a Python float."""
    _reject_array(name, value)
    return semantics.check_number(name, value)


def _is_flat_number_sequence(values: Any) -> bool:
    """A list / tuple whose items are not themselves sequences or arrays (so: per-class values)."""
    return all(not isinstance(v, (list, tuple)) and not hasattr(v, "shape") for v in values)


def check_alpha(alpha: Any, *, family: str) -> Any:
    """Normalise ``alpha`` for the ``"sigmoid"`` or ``"softmax"`` family.

    A scalar follows :func:`focalkit.semantics.check_sigmoid_alpha` (None or negative -> None, else in [0, 1]) or
    :func:`~focalkit.semantics.check_softmax_alpha` (None, or in [0, 1]) and is returned as a float. A static 1-D
    list, tuple or NumPy array holds per-class values, checked by :func:`~focalkit.semantics.check_per_class_values`
    (finite, in [0, 1]). Those, nested sequences and jax arrays (whose values may be traced and are not read) are
    returned as a jax array.
    """
    if alpha is None:
        return None
    if isinstance(alpha, (list, tuple)) and _is_flat_number_sequence(alpha):
        return jnp.asarray(semantics.check_per_class_values("alpha", alpha, unit_range=True))
    if isinstance(alpha, np.ndarray) and alpha.ndim == 1 and alpha.dtype.kind in "iuf":
        return jnp.asarray(semantics.check_per_class_values("alpha", alpha.tolist(), unit_range=True))
    if isinstance(alpha, (list, tuple, np.ndarray, jax.Array)):
        arr = jnp.asarray(alpha)
        if not jnp.issubdtype(arr.dtype, jnp.floating) and not jnp.issubdtype(arr.dtype, jnp.integer):
            raise type_error("alpha", "a real-valued array", arr.dtype)
        return arr
    if family == "sigmoid":
        return semantics.check_sigmoid_alpha(alpha)
    return semantics.check_softmax_alpha(alpha)


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
