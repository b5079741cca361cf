"""Integer class targets of focalkit's Keras softmax losses from logits (single-label ASL, Poly-1 cross-entropy):
shape checks, value checks with ``ignore_class``, and the mask that leaves ignored entries out of Keras's mean."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from focalkit.errors import argument_error, type_error
from focalkit.keras._binary import _compute_float
from focalkit.keras._checks import sparse_class_indices, to_tensor

__all__ = ["check_ignore_class", "class_last_logits", "finish_sparse", "sparse_targets"]

try:  # Keras marks ignored entries so that its reductions leave them out of the mean (as its own losses do).
    from keras.src.backend import set_keras_mask as _set_keras_mask
except ImportError:  # pragma: no cover - older or newer Keras layout
    _set_keras_mask = None


def check_ignore_class(ignore_class: Any) -> int | None:
    """None or an integer class index (Keras's ``ignore_class``)."""
    if ignore_class is None:
        return None
    if not isinstance(ignore_class, numbers.Integral) or isinstance(ignore_class, bool):
        raise type_error("ignore_class", "an integer or None", repr(ignore_class))
    return int(ignore_class)


def class_last_logits(y_pred: Any, axis: int) -> Any:
    """Floating logits (float16 / bfloat16 computed in float32) with the class axis last, at least 2 classes."""
    x, _ = _compute_float(y_pred)
    if len(x.shape) < 1:
        raise argument_error("y_pred", "logits with a class axis", "a 0-d tensor")
    if axis not in (-1, len(x.shape) - 1):
        x = ops.moveaxis(x, axis, -1)
    if x.shape[-1] is not None and x.shape[-1] < 2:
        raise argument_error("y_pred", "at least 2 classes on the class axis", x.shape[-1])
    return x


def sparse_targets(raw_true: Any, x: Any, ignore_class: int | None) -> tuple[Any, Any, Any]:
    """Class indices for class-last logits ``x``: ``(labels, valid, invalid)``.

    ``labels`` are int32 with ignored / invalid entries replaced by 0; ``valid`` (None without ``ignore_class``) marks
    the entries that count; ``invalid`` is None when the values were checked (raises where readable) or the mask of
    unchecked bad entries (out of range other than ``ignore_class``, or not whole numbers), whose losses are NaN.
    """
    y_true = to_tensor("y_true", raw_true)
    if keras.backend.standardize_dtype(y_true.dtype) == "bool":
        y_true = ops.cast(y_true, "int32")
    if len(y_true.shape) == len(x.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) != len(x.shape) - 1 or any(
        t is not None and p is not None and t != p for t, p in zip(y_true.shape, x.shape[:-1], strict=False)
    ):
        raise argument_error(
            "y_true", f"class indices of shape {tuple(x.shape[:-1])} (y_pred's shape without the class axis)",
            tuple(y_true.shape),
        )
    num_classes = x.shape[-1]
    invalid = None if num_classes is None else sparse_class_indices("y_true", raw_true, y_true, num_classes,
                                                                     ignore_class)
    valid = None
    if ignore_class is not None:
        valid = ops.not_equal(y_true, ops.cast(ignore_class, y_true.dtype))
    usable = valid
    if invalid is not None:
        usable = ops.logical_not(invalid) if usable is None else ops.logical_and(usable, ops.logical_not(invalid))
    labels = ops.cast(y_true, "int32")
    if usable is not None:
        labels = ops.where(usable, labels, ops.zeros_like(labels))
    return labels, valid, invalid


def finish_sparse(loss: Any, valid: Any, invalid: Any) -> Any:
    """Loss 0 on ignored entries, NaN on unchecked invalid ones, and Keras's mask so that the mean leaves the ignored
    entries out (as ``keras.losses.SparseCategoricalCrossentropy`` does)."""
    if valid is not None:
        loss = ops.where(valid, loss, ops.zeros_like(loss))
    if invalid is not None:
        loss = ops.where(invalid, ops.full_like(loss, float("nan")), loss)
    if valid is not None and _set_keras_mask is not None:
        _set_keras_mask(loss, mask=valid)
    return loss
