"""Argument checks of the Keras front-end.

The meaning and the error text of ``gamma``, ``alpha`` (scalar or per-class), ``label_smoothing`` and ``reduction``
come from :mod:`focalkit.semantics`, shared with the PyTorch core, the adaptive losses and the JAX front-end. Only
what is specific to Keras lives here: Keras's own set of reductions, per-class values given as arrays / tensors, the
class count along the class ``axis`` (known only once ``y_pred`` is seen), the static shape checks of ``y_true``
against ``y_pred`` (they read only shapes, so they run in graphs too; unknown dimensions are not compared), and the
value checks of ``y_true`` / probabilities.

Value checks run where the values can be read for free: NumPy / Python inputs and eager tensors on the CPU, as the
PyTorch core checks CPU tensors. Symbolic or traced tensors (``model.fit`` compiles the loss into a
``tf.function`` on TensorFlow and a ``jax.jit`` on JAX; ``torch.compile``) and tensors on an accelerator (reading
them would force a host synchronisation) are not read: the checks then return a mask of the invalid entries, and the
losses return NaN for the samples that contain one.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from focalkit import semantics
from focalkit.errors import argument_error, type_error

__all__ = ["KERAS_REDUCTIONS", "check_alpha", "check_class_count", "check_gamma", "check_keras_reduction",
           "check_label_smoothing", "check_shape_broadcasts_to", "dense_targets_and_logits", "either", "host_values",
           "mark_invalid", "match_rank", "sparse_class_indices", "to_tensor", "unit_interval"]

# what keras.losses.Loss accepts (besides None)
KERAS_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none")


def check_alpha(alpha: Any, *, negative_disables: bool) -> float | list[float] | None:
    """None, a scalar or a list of per-class values in [0, 1].

    A scalar follows :func:`focalkit.semantics.check_sigmoid_alpha` when ``negative_disables`` (sigmoid family:
    negative -> None) and :func:`~focalkit.semantics.check_softmax_alpha` otherwise. A list, tuple or array of
    rank >= 1 is checked by :func:`~focalkit.semantics.check_per_class_values` and returned as a list of floats (so it
    serialises with ``get_config``).
    """
    if alpha is None:
        return None
    if isinstance(alpha, (list, tuple)):
        return semantics.check_per_class_values("alpha", alpha, unit_range=True)
    if not semantics.is_real_number(alpha) and len(getattr(alpha, "shape", ())) >= 1:  # NumPy array or tensor
        return semantics.check_per_class_values("alpha", np.asarray(alpha).tolist(), unit_range=True)
    if negative_disables:
        return semantics.check_sigmoid_alpha(alpha)
    return semantics.check_softmax_alpha(alpha)


def check_gamma(gamma: Any) -> float:
    return semantics.check_gamma(gamma)


def check_label_smoothing(value: Any) -> float:
    return semantics.check_label_smoothing(value)


def check_keras_reduction(reduction: Any) -> str | None:
    """None or one of Keras's reductions (:data:`KERAS_REDUCTIONS`)."""
    if reduction is None:
        return None
    return semantics.check_choice("reduction", reduction, KERAS_REDUCTIONS)


def check_class_count(name: str, num_classes: Any, alpha: Any, *, minimum: int = 1) -> None:
    """Static checks once the class count is known: the per-class alpha length and the minimum class count."""
    if num_classes is None:
        return
    if num_classes < minimum:
        raise argument_error(name, f"at least {minimum} classes on the class axis", num_classes)
    if isinstance(alpha, list) and len(alpha) != num_classes:
        raise argument_error("alpha", f"{num_classes} per-class values (one per class)", len(alpha))


def _describe(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def to_tensor(name: str, value: Any) -> Any:
    """``value`` as a back-end tensor of a real (or boolean) dtype; anything else raises
    :class:`~focalkit.InvalidTypeError` naming the argument instead of the back-end's own error."""
    expected = "a real-valued array or tensor (or boolean)"
    try:
        tensor = ops.convert_to_tensor(value)
        dtype = keras.backend.standardize_dtype(tensor.dtype)
    except (TypeError, ValueError):
        raise type_error(name, expected, _describe(value)) from None
    if not (dtype.startswith(("float", "int", "uint", "bfloat")) or dtype == "bool"):
        raise type_error(name, expected, _describe(value))
    return tensor


def host_values(value: Any) -> np.ndarray | None:
    """The values of ``value`` as NumPy where they can be read without tracing or a device round trip (NumPy /
    Python inputs, eager CPU tensors of the active back-end); None otherwise (symbolic, traced, on an accelerator)."""
    if isinstance(value, (np.ndarray, np.generic, list, tuple, int, float, bool)):
        try:
            return np.asarray(value)
        except (TypeError, ValueError):  # pragma: no cover - ragged; to_tensor rejects it
            return None
    if keras.backend.is_keras_tensor(value):
        return None
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly() or not isinstance(value, tf.Tensor) or not hasattr(value, "numpy"):
            return None
        return value.numpy() if "CPU" in value.device.upper() else None
    if backend == "jax":
        import jax

        if isinstance(value, jax.core.Tracer) or not isinstance(value, jax.Array) or not value.is_fully_addressable:
            return None
        return np.asarray(value) if all(d.platform == "cpu" for d in value.devices()) else None
    if backend == "torch":
        import torch

        if not isinstance(value, torch.Tensor) or torch.compiler.is_compiling() or value.device.type != "cpu":
            return None
        return value.detach().numpy()
    return None


def _shape_text(values: np.ndarray) -> str:
    return f"shape {tuple(values.shape)}, dtype {values.dtype}"


def unit_interval(name: str, value: Any, tensor: Any) -> Any:
    """Values in [0, 1] (NaN is not): checked when readable (raises), else returns the mask of invalid entries of
    ``tensor`` (the converted ``value``)."""
    host = host_values(value)
    if host is None:
        return ops.logical_not(ops.logical_and(tensor >= 0, tensor <= 1))
    if host.size:
        low, high = np.min(host), np.max(host)  # NaN propagates into both
        if not (low >= 0 and high <= 1):
            raise argument_error(name, "values in [0, 1]", f"values in [{float(low):.6g}, {float(high):.6g}] "
                                 f"({_shape_text(host)})")
    return None


def sparse_class_indices(name: str, value: Any, labels: Any, num_classes: int, ignore_class: int | None) -> Any:
    """Integer class indices in [0, num_classes) or equal to ``ignore_class`` (float labels must hold whole
    numbers, as Keras casts them). Checked when readable (raises), else returns the mask of invalid entries of
    ``labels`` (the converted ``value``, before any cast)."""
    host = host_values(value)
    if host is None:
        bad = ops.logical_or(labels < 0, labels >= num_classes)
        if not keras.backend.standardize_dtype(labels.dtype).startswith(("int", "uint")):
            bad = ops.logical_or(bad, ops.logical_not(ops.equal(labels, ops.floor(labels))))
        if ignore_class is not None:
            bad = ops.logical_and(bad, ops.not_equal(labels, ignore_class))
        return bad
    if host.dtype.kind == "f" and not np.all(host == np.floor(host)):
        first = host[host != np.floor(host)].flat[0]
        raise argument_error(name, "integer class indices", f"{float(first):g} ({_shape_text(host)})")
    bad = (host < 0) | (host >= num_classes)
    if ignore_class is not None:
        bad &= host != ignore_class
    if bad.any():
        allowed = f"class indices in [0, {num_classes - 1}]"
        if ignore_class is not None:
            allowed += f" or ignore_class={ignore_class}"
        first = host[bad].flat[0]
        raise argument_error(name, allowed, f"{first:g} ({_shape_text(host)})")
    return None


def mark_invalid(loss: Any, invalid: Any) -> Any:
    """NaN where ``invalid`` (a mask broadcastable to ``loss``, or None) marks an unchecked invalid entry."""
    if invalid is None:
        return loss
    return ops.where(invalid, float("nan"), loss)


def either(first: Any, second: Any) -> Any:
    """The union of two optional masks."""
    if first is None:
        return second
    return first if second is None else ops.logical_or(first, second)


def match_rank(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Keras's convention (``LossFunctionWrapper``): where the ranks differ by one and the longer one ends in a
    dimension of size 1, expand a rank-1 partner or squeeze that dimension."""
    rank_t, rank_p = len(y_true.shape), len(y_pred.shape)
    if rank_t == rank_p + 1 and y_true.shape[-1] == 1:
        if rank_p == 1:
            y_pred = ops.expand_dims(y_pred, -1)
        else:
            y_true = ops.squeeze(y_true, -1)
    elif rank_p == rank_t + 1 and y_pred.shape[-1] == 1:
        if rank_t == 1:
            y_true = ops.expand_dims(y_true, -1)
        else:
            y_pred = ops.squeeze(y_pred, -1)
    return y_true, y_pred


def check_shape_broadcasts_to(name: str, shape: Any, target: Any, what: str) -> None:
    """A static shape check: ``shape`` broadcasts to ``target`` without growing it (unknown dimensions, None, are
    not compared)."""
    shape, target = tuple(shape), tuple(target)
    ok = len(shape) <= len(target)
    if ok:
        for dim, goal in zip(reversed(shape), reversed(target), strict=False):
            if dim is None or goal is None or dim == 1 or dim == goal:
                continue
            ok = False
            break
    if not ok:
        raise argument_error(name, f"a shape broadcastable to {what} {target}", shape)


def dense_targets_and_logits(y_true: Any, y_pred: Any) -> tuple[Any, Any, Any]:
    """(targets, logits, invalid) of the losses on logits with dense targets (detection, ASL, Poly-1 focal): logits
    floating (float16 / bfloat16 computed in float32), targets in [0, 1] cast to them, rank-matched as Keras does,
    broadcast to their shape and constant (``stop_gradient``). ``invalid`` is None when the values were checked, else
    the mask of unchecked targets outside [0, 1] (replaced by 0)."""
    raw_true = y_true
    x = to_tensor("y_pred", y_pred)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in ("float16", "bfloat16") or not dtype.startswith("float"):
        x = ops.cast(x, "float32" if dtype in ("float16", "bfloat16") else keras.backend.floatx())
    y = ops.cast(to_tensor("y_true", y_true), x.dtype)
    y, x = match_rank(y, x)
    check_shape_broadcasts_to("y_true", y.shape, x.shape, "y_pred's shape")
    invalid = unit_interval("y_true", raw_true, y)
    if invalid is not None:
        y = ops.where(invalid, ops.zeros_like(y), y)
    y = ops.stop_gradient(ops.broadcast_to(y, ops.shape(x)))
    return y, x, invalid
