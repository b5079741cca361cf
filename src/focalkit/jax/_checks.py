"""Argument checks of the JAX front-end.

The meaning and the error text of the scalar hyper-parameters (``gamma``, ``alpha``, ``beta``, per-class alpha lists)
come from :mod:`focalkit.semantics`, shared with the PyTorch core, the adaptive losses and the Keras front-end. Only
what is specific to JAX lives here:

- a hyper-parameter must be a *static* Python number (a jax array, traced or not, cannot select the computation,
  so it is rejected with :class:`~focalkit.InvalidTypeError` naming the argument);
- conversion of logits / labels / per-class arrays to jax arrays, with focalkit's typed errors for what JAX cannot
  convert (strings, ragged lists) or what has the wrong dtype;
- shape checks, which read only static shapes and so always run, also under ``jit``;
- value checks (labels and probabilities in [0, 1], class indices in range, per-class alpha in [0, 1]). They run
  where the values can be read for free: Python / NumPy inputs and concrete jax arrays on the CPU, as the PyTorch
  core checks CPU tensors. Traced values (under ``jit``, ``vmap``, or ``grad`` with respect to that argument) and
  arrays on an accelerator (where reading a value back would force a host synchronisation) are not read: the
  converters then return a mask of the invalid entries, and the losses return NaN there (see :func:`mark_invalid`).
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from focalkit import semantics
from focalkit.errors import argument_error, type_error

__all__ = [
    "as_array",
    "check_alpha",
    "check_broadcast_to",
    "check_class_indices",
    "check_class_weight",
    "check_flag",
    "check_gamma",
    "check_ignore_index",
    "check_nonnegative",
    "check_static_number",
    "check_unit_number",
    "class_index_labels",
    "class_logits",
    "float_labels",
    "float_logits",
    "host_values",
    "mark_invalid",
    "unit_interval",
]

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


def _describe(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_array(name: str, value: Any, expected: str) -> jnp.ndarray:
    """``value`` as a jax array; what JAX cannot convert (strings, ragged or nested objects) raises
    :class:`~focalkit.InvalidTypeError` naming the argument instead of JAX's own error."""
    if isinstance(value, jax.Array):  # includes tracers
        return value
    try:
        # through NumPy first: JAX's own conversion of strings warns and raises untyped errors
        host = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (TypeError, ValueError):
        raise type_error(name, expected, _describe(value)) from None
    # kind "V": NumPy arrays of JAX's extra float types (bfloat16, float8 ...), which ml_dtypes defines
    if not (host.dtype.kind in "biuf" or (host.dtype.kind == "V" and jnp.issubdtype(host.dtype, jnp.floating))):
        raise type_error(name, expected, _describe(host if isinstance(value, np.ndarray) else value))
    return jnp.asarray(value)


def host_values(value: Any) -> np.ndarray | None:
    """The values of an argument as a NumPy array where they can be read without tracing or a device round trip:
    Python / NumPy inputs and concrete jax arrays on the CPU. None for traced values and for arrays on an
    accelerator (their values are then not checked)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, jax.Array):
        if not value.is_fully_addressable or any(device.platform != "cpu" for device in value.devices()):
            return None
        return np.asarray(value)
    try:
        return np.asarray(value)
    except (TypeError, ValueError):  # pragma: no cover - as_array has already rejected it
        return None


def _shape_text(values: np.ndarray) -> str:
    return f"shape {tuple(values.shape)}, dtype {values.dtype}"


def unit_interval(name: str, value: Any, arr: jnp.ndarray) -> jnp.ndarray | None:
    """Values in [0, 1] (NaN is not): checked when readable (raises), else returns the mask of invalid entries."""
    host = host_values(value)
    if host is None:
        return ~((arr >= 0) & (arr <= 1))
    if host.size:
        low, high = np.min(host), np.max(host)  # NaN propagates into both
        if not (low >= 0 and high <= 1):
            raise argument_error(name, "values in [0, 1]", f"values in [{float(low):.6g}, {float(high):.6g}] "
                                 f"({_shape_text(host)})")
    return None


def check_class_indices(
    name: str,
    value: Any,
    labels: jnp.ndarray,
    num_classes: int,
    ignore_index: int | None,
    where: tuple[Any, jnp.ndarray] | None = None,
) -> jnp.ndarray | None:
    """Class indices in [0, num_classes) or equal to ``ignore_index``; entries where the optional ``where`` mask
    ``(given value, bool array)`` is False are exempt. Checked when readable (raises), else the mask of invalid
    entries is returned."""
    host = host_values(value)
    where_host = None if where is None else host_values(where[0])
    if host is None or (where is not None and where_host is None):
        bad = (labels < 0) | (labels >= num_classes)
        if ignore_index is not None:
            bad = bad & (labels != ignore_index)
        return bad if where is None else bad & where[1]
    bad = (host < 0) | (host >= num_classes)
    if ignore_index is not None:
        bad &= host != ignore_index
    if where_host is not None:
        bad &= where_host.astype(bool)
    if bad.any():
        allowed = f"class indices in [0, {num_classes - 1}]"
        if ignore_index is not None:
            allowed += f" or ignore_index={ignore_index}"
        raise argument_error(name, allowed, f"{int(host[bad].flat[0])} ({_shape_text(host)})")
    return None


def mark_invalid(loss: jnp.ndarray, *invalid: jnp.ndarray | None) -> jnp.ndarray:
    """NaN where any mask marks an invalid (unchecked, traced) entry; the loss as it is where none does."""
    masks = [m for m in invalid if m is not None]
    if not masks:
        return loss
    bad = masks[0]
    for mask in masks[1:]:
        bad = bad | mask
    return jnp.where(bad, jnp.nan, loss)


def check_broadcast_to(name: str, arr: jnp.ndarray, shape: tuple[int, ...], what: str) -> None:
    """``arr`` broadcasts to exactly ``shape`` (never beyond it): a static check, also under ``jit``."""
    try:
        ok = jnp.broadcast_shapes(arr.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise argument_error(name, f"a shape broadcastable to {what} {tuple(shape)}", tuple(arr.shape))


def _is_flat_number_sequence(values: Any) -> bool:
    """A list / tuple whose items are not themselves sequences or arrays (so: per-class values)."""
    return all(not isinstance(v, (list, tuple)) and not hasattr(v, "shape") for v in values)


def check_alpha(alpha: Any, *, family: str) -> tuple[Any, jnp.ndarray | None]:
    """Normalise ``alpha`` for the ``"sigmoid"`` or ``"softmax"`` family; returns ``(alpha, invalid)``.

    A scalar follows :func:`focalkit.semantics.check_sigmoid_alpha` (None or negative -> None, else in [0, 1]) or
    :func:`~focalkit.semantics.check_softmax_alpha` (None, or in [0, 1]) and is returned as a float. A flat list or
    tuple holds per-class values, checked by :func:`~focalkit.semantics.check_per_class_values` (finite, in [0, 1]).
    Arrays (NumPy, jax, nested lists; also 0-d, whose negative values do not disable the weighting, since a traced
    value cannot select the computation) must hold real values in [0, 1]: checked where readable (see
    :func:`host_values`), otherwise ``invalid`` is the mask of the entries outside [0, 1]. Sequences and arrays are
    returned as a jax array; the caller checks their shape against the logits.
    """
    if alpha is None:
        return None, None
    if isinstance(alpha, (list, tuple)) and _is_flat_number_sequence(alpha):
        return jnp.asarray(semantics.check_per_class_values("alpha", alpha, unit_range=True)), None
    if isinstance(alpha, (list, tuple, np.ndarray, jax.Array)):
        arr = as_array("alpha", alpha, "a number, None or real per-class values")
        if arr.dtype == bool:
            raise type_error("alpha", "a number, None or real per-class values", _describe(arr))
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            arr = arr.astype(jnp.float32)
        host = host_values(alpha)
        if host is None:
            return arr, ~((arr >= 0) & (arr <= 1))
        semantics.check_per_class_values("alpha", np.ravel(host).tolist(), unit_range=True)
        return arr, None
    if family == "sigmoid":
        return semantics.check_sigmoid_alpha(alpha), None
    return semantics.check_softmax_alpha(alpha), None


def float_logits(name: str, x: Any) -> jnp.ndarray:
    """Convert to a floating jax array, computing float16/bfloat16 in float32."""
    arr = as_array(name, x, "a floating-point array")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise type_error(name, "a floating-point array", arr.dtype)
    if arr.dtype in _HALF:
        arr = arr.astype(jnp.float32)
    return arr


def float_labels(name: str, y: Any, like: jnp.ndarray, what: str = "the logits' shape") -> tuple[jnp.ndarray,
                                                                                                  jnp.ndarray | None]:
    """Binary / soft labels in [0, 1] as an array of ``like``'s float dtype that broadcasts to ``like``'s shape.

    Returns ``(labels, invalid)``: ``invalid`` is None when the values were checked (see :func:`unit_interval`), else
    the mask of the entries outside [0, 1]; those entries are replaced by 0 in ``labels`` so that no NaN reaches the
    derivative of the valid ones.
    """
    arr = as_array(name, y, "a real or boolean array")
    check_broadcast_to(name, arr, like.shape, what)
    arr = arr.astype(like.dtype)
    invalid = unit_interval(name, y, arr)
    if invalid is not None:
        arr = jnp.where(invalid, 0.0, arr).astype(like.dtype)
    return arr, invalid


def check_nonnegative(name: str, value: Any) -> float:
    """Return a static finite real ``>= 0`` (the detection losses' ``alpha`` / ``beta``) as a Python float."""
    _reject_array(name, value)
    return semantics.check_number(name, value, minimum=0.0)


def check_flag(name: str, value: Any) -> bool:
    """A static Python (or NumPy) bool such as ``iou_weighted``; numbers and arrays raise InvalidTypeError."""
    return semantics.check_bool(name, value)


def check_unit_number(name: str, value: Any) -> float:
    """A static finite real in [0, 1] (``clip``, ``label_smoothing``) as a Python float."""
    _reject_array(name, value)
    return semantics.check_number(name, value, minimum=0.0, maximum=1.0)


def check_ignore_index(value: Any) -> int | None:
    """``ignore_index``: a Python integer or None (bools and floats raise InvalidTypeError)."""
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise type_error("ignore_index", "an integer or None", repr(value))
    return int(value)


def check_class_weight(weight: Any, num_classes: int) -> tuple[jnp.ndarray | None, jnp.ndarray | None]:
    """Per-class weights of shape ``(C,)``, finite and >= 0 (``F.cross_entropy``'s ``weight``); returns
    ``(weight, invalid)``. A list / tuple is checked by :func:`~focalkit.semantics.check_per_class_values`; an array
    where readable (see :func:`host_values`), otherwise ``invalid`` is the mask of its negative or non-finite
    entries (which are replaced by 0)."""
    if weight is None:
        return None, None
    if isinstance(weight, (list, tuple)) and _is_flat_number_sequence(weight):
        values = semantics.check_per_class_values("weight", weight, num_classes=num_classes, unit_range=False)
        return jnp.asarray(values), None
    arr = as_array("weight", weight, "None or real per-class weights")
    if arr.dtype == bool:
        raise type_error("weight", "None or real per-class weights", _describe(arr))
    if arr.shape != (num_classes,):
        raise argument_error("weight", f"per-class weights of shape ({num_classes},)", tuple(arr.shape))
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.float32)
    host = host_values(weight)
    if host is None:
        invalid = ~(jnp.isfinite(arr) & (arr >= 0))
        return jnp.where(invalid, 0.0, arr), invalid
    semantics.check_per_class_values("weight", np.ravel(host).tolist(), num_classes=num_classes, unit_range=False)
    return arr, None


def class_logits(logits: Any, axis: int) -> jnp.ndarray:
    """Floating logits with the class axis moved last; at least 2 classes along ``axis``."""
    x = float_logits("logits", logits)
    if x.ndim < 1:
        raise argument_error("logits", "an array with a class axis", "a 0-d array")
    x = jnp.moveaxis(x, axis, -1)
    if x.shape[-1] < 2:
        raise argument_error("logits", "at least 2 classes along axis", x.shape[-1])
    return x


def class_index_labels(
    labels: Any, x: jnp.ndarray, axis: int, ignore_index: int | None
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray | None]:
    """Integer class indices for class-last logits ``x``: returns ``(safe, valid, invalid)``.

    ``safe`` holds the labels with every ignored or invalid entry replaced by class 0, ``valid`` marks the entries
    that count (in range and not ``ignore_index``), ``invalid`` is None when the values were checked (see
    :func:`check_class_indices`) or the mask of unchecked out-of-range entries.
    """
    t = as_array("labels", labels, "an integer array of class indices")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise type_error("labels", "an integer array of class indices", t.dtype)
    if t.shape != x.shape[:-1]:
        raise argument_error("labels", f"shape {tuple(x.shape[:-1])} (logits without axis {axis})", tuple(t.shape))
    num_classes = x.shape[-1]
    invalid = check_class_indices("labels", labels, t, num_classes, ignore_index)
    valid = (t >= 0) & (t < num_classes)
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        valid = valid & (t != ignore_index)
    return jnp.where(valid, t, 0), valid, invalid
