"""Softmax focal losses for Keras 3: one-hot / soft targets and integer targets."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from focalkit.errors import argument_error, type_error
from focalkit.keras._binary import _compute_float, _tiny, check_gradient_mode
from focalkit.keras._checks import (
    check_alpha,
    check_class_count,
    check_gamma,
    check_label_smoothing,
    check_shape_broadcasts_to,
    either,
    mark_invalid,
    sparse_class_indices,
    to_tensor,
    unit_interval,
)
from focalkit.keras._closed_form import (
    attach_row_gradient,
    soft_softmax_loss_with_gradient,
    sparse_softmax_loss_and_grad,
)
from focalkit.keras._loss_object import FocalLossObject
from focalkit.keras._math import (
    categorical_terms_from_logits,
    categorical_terms_from_probs,
    sparse_terms_from_logits,
)

__all__ = [
    "CategoricalFocalLoss",
    "SparseCategoricalFocalLoss",
    "categorical_focal_loss",
    "sparse_categorical_focal_loss",
]

try:  # Keras marks ignored entries so that its reductions leave them out of the mean (as its own losses do).
    from keras.src.backend import set_keras_mask as _set_keras_mask
except ImportError:  # pragma: no cover - older or newer Keras layout
    _set_keras_mask = None


def _class_last(x: Any, axis: int) -> Any:
    return x if axis in (-1, len(x.shape) - 1) else ops.moveaxis(x, axis, -1)


@keras.saving.register_keras_serializable(package="focalkit")
def categorical_focal_loss(
    y_true: Any,
    y_pred: Any,
    gamma: float = 2.0,
    alpha: float | list[float] | None = None,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    gradient: str = "closed_form",
) -> Any:
    r"""Softmax focal loss with one-hot or soft targets, summed over the class ``axis``.

    .. math::
        \mathrm{FL} = -\sum_c y_c\, \alpha_c\, (1 - p_c)^\gamma \log p_c,\quad p = \mathrm{softmax}(x).

    From logits, :math:`\log p_c` is a log-softmax and :math:`1 - p_c` of the largest class is accumulated from the
    other classes (no cancellation), so values and gradients are exact and finite for all finite logits and
    ``gamma >= 0``. The gradient is, in closed form (:math:`u_c = 1 - p_c`, :math:`w_c = y_c \alpha_c`),

    .. math::
        B_c = w_c u_c^\gamma \big(1 - \gamma\, p_c \log p_c / u_c\big),\qquad
        \partial \mathrm{FL} / \partial x_j = -B_j + p_j \textstyle\sum_c B_c,

    and by default (``gradient="closed_form"``) it is attached to the logits
    (``stop_gradient(FL) + sum_c (x_c - stop_gradient(x_c)) * stop_gradient(B-form gradient)``): one multiply to
    differentiate, one logits-sized tensor kept. That form gives **no gradient to** ``y_true`` (zero) and a **zero
    second derivative**. On the PyTorch back-end the closed form is focalkit's own op instead (the fused CPU kernel
    for CPU tensors): nothing logits-sized is kept beyond the logits and targets, the backward pass recomputes the
    gradient, ``y_true`` still gets none, and the second derivative is exact. ``gradient="autodiff"``
    differentiates the log-space composition instead (label gradients, exact higher derivatives; slower, more
    memory). From probabilities, ``y_pred`` is first divided by its sum over ``axis`` (as Keras does) and is not
    clipped (Keras clips at 1e-7); only probabilities that underflowed to 0 are clamped at the dtype's smallest
    normal number inside the logarithm. Same semantics as ``focalkit.softmax_focal_loss`` with probability targets.

    Targets and probabilities outside ``[0, 1]`` raise where readable and give NaN samples where not (see
    :func:`~focalkit.keras.binary_focal_loss`).

    Args:
        y_true: one-hot or soft targets in ``[0, 1]``, shape ``(batch, ..., C)`` (or broadcastable to it).
        y_pred: logits or probabilities in ``[0, 1]``, shape ``(batch, ..., C)``.
        gamma: focusing parameter ``>= 0``.
        alpha: None (off), a number multiplying every term, or ``C`` per-class values.
        from_logits: whether ``y_pred`` holds logits (recommended).
        label_smoothing: ``y (1 - s) + s / C``, as Keras and ``F.cross_entropy`` do.
        axis: the class axis.
        gradient: ``"closed_form"`` (closed-form gradient w.r.t. the logits; none w.r.t. ``y_true``; zero
            second derivative, exact on the PyTorch back-end) or ``"autodiff"`` (exact autodiff to any order,
            w.r.t. ``y_true`` too). Only ``from_logits=True`` is affected.

    Returns:
        Losses of shape ``(batch, ...)``.

    Example:
        >>> import numpy as np
        >>> from focalkit.keras import categorical_focal_loss
        >>> loss = categorical_focal_loss(np.eye(3)[[0, 2]], np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]]),
        ...                               from_logits=True)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    gamma = check_gamma(gamma)
    alpha = check_alpha(alpha, negative_disables=False)
    label_smoothing = check_label_smoothing(label_smoothing)
    gradient = check_gradient_mode(gradient)
    raw_true, raw_pred = y_true, y_pred
    y_pred, in_dtype = _compute_float(y_pred)
    y_true = ops.cast(to_tensor("y_true", y_true), y_pred.dtype)
    check_shape_broadcasts_to("y_true", y_true.shape, y_pred.shape, "y_pred's shape")
    # values: checked where readable (raise); else the invalid entries are replaced by valid ones and give NaN
    invalid = unit_interval("y_true", raw_true, y_true)
    if invalid is not None:
        y_true = ops.where(invalid, ops.zeros_like(y_true), y_true)
    if not from_logits:
        invalid_p = unit_interval("y_pred", raw_pred, y_pred)
        if invalid_p is not None:
            y_pred = ops.where(invalid_p, ops.full_like(y_pred, 0.5), y_pred)
        invalid = either(invalid, invalid_p)
    if invalid is not None:
        invalid = ops.broadcast_to(invalid, ops.shape(y_pred))
    y_pred, y_true = _class_last(y_pred, axis), _class_last(ops.broadcast_to(y_true, ops.shape(y_pred)), axis)
    num_classes = y_pred.shape[-1]
    check_class_count("y_pred", num_classes, alpha, minimum=2 if from_logits else 1)
    if from_logits and gradient == "closed_form":
        loss = soft_softmax_loss_with_gradient(y_pred, y_true, gamma, alpha, label_smoothing)
        if invalid is not None:
            loss = mark_invalid(loss, ops.any(_class_last(invalid, axis), axis=-1))
        return loss
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / ops.cast(ops.shape(y_pred)[-1], y_pred.dtype)
    weights = y_true
    if alpha is not None:
        weights = weights * ops.convert_to_tensor(alpha, dtype=y_pred.dtype)
    if from_logits:
        terms = categorical_terms_from_logits(y_pred, gamma)
    else:
        y_pred = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        terms = categorical_terms_from_probs(y_pred, gamma, _tiny(in_dtype))
    terms = weights * terms
    if invalid is not None:
        terms = mark_invalid(terms, _class_last(invalid, axis))
    return ops.sum(terms, axis=-1)


@keras.saving.register_keras_serializable(package="focalkit")
def sparse_categorical_focal_loss(
    y_true: Any,
    y_pred: Any,
    gamma: float = 2.0,
    alpha: float | list[float] | None = None,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
    gradient: str = "closed_form",
) -> Any:
    r"""Softmax focal loss with integer targets: :math:`-\alpha_t (1 - p_t)^\gamma \log p_t` per sample.

    From logits, :math:`1 - p_t = S'/S` with :math:`S' = \sum_{j \ne t} e^{x_j}` accumulated directly, so the loss,
    its gradient and its tail are exact for all finite logits and every ``gamma >= 0``. The gradient, in closed
    form with :math:`A = \alpha_t u^\gamma (u - \gamma p_t \log p_t)`, is :math:`-A` for the target and
    :math:`A\, e^{x_j} / \sum_{k \ne t} e^{x_k}` for every other class; by default (``gradient="closed_form"``) it
    is attached to the logits (one multiply to differentiate, one logits-sized tensor kept; no gradient to anything
    else, zero second derivative), and ``gradient="autodiff"`` differentiates the log-space composition instead
    (exact higher derivatives; slower, more memory). From probabilities, see
    :func:`categorical_focal_loss`. ``ignore_class`` entries get loss 0 and gradient 0 and are marked so that
    Keras's ``"sum_over_batch_size"`` / ``"mean"`` reductions average over the remaining entries only (as
    ``keras.losses.SparseCategoricalCrossentropy`` does). Same semantics as ``focalkit.softmax_focal_loss``
    (``alpha`` per class is indexed by the target; ``ignore_class`` plays the role of ``ignore_index``).

    Args:
        y_true: class indices in ``[0, C)`` or ``ignore_class``, integer or whole-number floats, shape
            ``(batch, ...)`` (a trailing axis of size 1 is squeezed). Other values (also -1 or 255 without
            ``ignore_class``) raise :class:`~focalkit.InvalidArgumentError` where readable (NumPy inputs, eager CPU
            tensors); in compiled steps (``model.fit`` on TensorFlow / JAX) and on accelerators their samples give
            NaN.
        y_pred: logits or probabilities, shape ``(batch, ..., C)``.
        gamma: focusing parameter ``>= 0``.
        alpha: None (off), a number multiplying every term, or ``C`` per-class values indexed by the target.
        from_logits: whether ``y_pred`` holds logits (recommended).
        ignore_class: optional class index to leave out.
        axis: the class axis of ``y_pred``.
        gradient: ``"closed_form"`` (attached closed-form gradient, zero second derivative) or ``"autodiff"``
            (exact autodiff to any order). Only ``from_logits=True`` is affected.

    Returns:
        Losses of shape ``(batch, ...)``.

    Example:
        >>> import numpy as np
        >>> from focalkit.keras import sparse_categorical_focal_loss
        >>> loss = sparse_categorical_focal_loss(np.array([0, 2]), np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]]),
        ...                                      from_logits=True)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    gamma = check_gamma(gamma)
    alpha = check_alpha(alpha, negative_disables=False)
    if ignore_class is not None and (not isinstance(ignore_class, numbers.Integral) or isinstance(ignore_class, bool)):
        raise type_error("ignore_class", "an integer or None", repr(ignore_class))
    gradient = check_gradient_mode(gradient)
    raw_true, raw_pred = y_true, y_pred
    y_pred, in_dtype = _compute_float(y_pred)
    y_pred = _class_last(y_pred, axis)
    num_classes = y_pred.shape[-1]
    check_class_count("y_pred", num_classes, alpha, minimum=2 if from_logits else 1)
    y_true = to_tensor("y_true", y_true)
    if keras.backend.standardize_dtype(y_true.dtype) == "bool":
        y_true = ops.cast(y_true, "int32")
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) != len(y_pred.shape) - 1 or any(
        t is not None and p is not None and t != p for t, p in zip(y_true.shape, y_pred.shape[:-1], strict=False)
    ):
        raise argument_error(
            "y_true", f"class indices of shape {tuple(y_pred.shape[:-1])} (y_pred's shape without the class axis)",
            tuple(y_true.shape),
        )
    # values: checked where readable (raise); else invalid labels give NaN (and index class 0 meanwhile)
    invalid = None
    if num_classes is not None:
        invalid = sparse_class_indices("y_true", raw_true, y_true, num_classes, ignore_class)
    if not from_logits:
        invalid_p = unit_interval("y_pred", raw_pred, y_pred)
        if invalid_p is not None:
            y_pred = ops.where(invalid_p, ops.full_like(y_pred, 0.5), y_pred)
            invalid = either(invalid, ops.any(invalid_p, axis=-1))
    valid = None
    if ignore_class is not None:
        valid = ops.not_equal(y_true, ops.cast(ignore_class, y_true.dtype))
    y_true = ops.cast(y_true, "int32")
    usable = valid
    if invalid is not None:
        usable = ops.logical_not(invalid) if usable is None else ops.logical_and(usable, ops.logical_not(invalid))
    if usable is not None:
        y_true = ops.where(usable, y_true, ops.zeros_like(y_true))
    onehot = ops.one_hot(y_true, ops.shape(y_pred)[-1], dtype="bool")
    if from_logits and gradient == "closed_form":
        row_weight = None  # per-class alpha and ignored rows in the gradient; a scalar alpha multiplies below
        if isinstance(alpha, list):
            row_weight = ops.take(ops.convert_to_tensor(alpha, dtype=y_pred.dtype), y_true)
        if valid is not None:
            valid_weight = ops.cast(valid, y_pred.dtype)
            row_weight = valid_weight if row_weight is None else row_weight * valid_weight
        loss, grad = sparse_softmax_loss_and_grad(y_pred, y_true, onehot, gamma, row_weight)
        loss = attach_row_gradient(loss, y_pred, grad)
        if isinstance(alpha, list):
            alpha = None  # already in the row weight
    elif from_logits:
        loss = sparse_terms_from_logits(y_pred, onehot, gamma)
    else:
        y_pred = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        terms = categorical_terms_from_probs(y_pred, gamma, _tiny(in_dtype))
        loss = ops.sum(ops.where(onehot, terms, ops.zeros_like(terms)), axis=-1)
    if alpha is not None:
        if isinstance(alpha, list):
            a = ops.take(ops.convert_to_tensor(alpha, dtype=y_pred.dtype), y_true)
        else:
            a = alpha
        loss = a * loss
    if valid is not None:
        loss = ops.where(valid, loss, ops.zeros_like(loss))
    loss = mark_invalid(loss, invalid)
    if valid is not None and _set_keras_mask is not None:
        _set_keras_mask(loss, mask=valid)
    return loss


@keras.saving.register_keras_serializable(package="focalkit")
class CategoricalFocalLoss(FocalLossObject):
    r"""Softmax focal loss with one-hot / soft targets as a ``keras.losses.Loss``; see :func:`categorical_focal_loss`.

    Per sample :math:`-\sum_c y_c \alpha_c (1 - p_c)^\gamma \log p_c`; Keras then applies ``reduction`` and
    ``sample_weight``. Differences from ``keras.losses.CategoricalFocalCrossentropy``: ``alpha`` defaults to None (Keras
    multiplies every term by 0.25 by default), may be per class, no 1e-7 clipping, log-space from logits.

    Args:
        gamma: focusing parameter ``>= 0``.
        alpha: None, a number multiplying every term, or ``C`` per-class values.
        from_logits: whether ``y_pred`` holds logits (recommended).
        label_smoothing: ``y (1 - s) + s / C``.
        axis: the class axis.
        reduction: a Keras reduction.
        name: the loss name.
        dtype: the dtype of the computation (Keras policy default).
        gradient: ``"closed_form"`` (default: attached closed-form gradient, none to ``y_true``, zero second
            derivative) or ``"autodiff"`` (label gradients, higher derivatives).

    Example:
        >>> from focalkit.keras import CategoricalFocalLoss
        >>> loss_fn = CategoricalFocalLoss(gamma=2.0, from_logits=True)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """

    loss_fn = staticmethod(categorical_focal_loss)
    param_names = ("gamma", "alpha", "from_logits", "label_smoothing", "axis", "gradient")

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_focal_loss",
        dtype: Any = None,
        gradient: str = "closed_form",
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = check_gamma(gamma)
        self.alpha = check_alpha(alpha, negative_disables=False)
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = int(axis)
        self.gradient = check_gradient_mode(gradient)


@keras.saving.register_keras_serializable(package="focalkit")
class SparseCategoricalFocalLoss(FocalLossObject):
    r"""Softmax focal loss with integer targets as a ``keras.losses.Loss``; see :func:`sparse_categorical_focal_loss`.

    Per sample :math:`-\alpha_t (1 - p_t)^\gamma \log p_t`; ``ignore_class`` entries are left out of the mean.

    Args:
        gamma: focusing parameter ``>= 0``.
        alpha: None, a number multiplying every term, or ``C`` per-class values indexed by the target.
        from_logits: whether ``y_pred`` holds logits (recommended).
        ignore_class: optional class index to leave out (e.g. a "void" label in segmentation).
        axis: the class axis of ``y_pred``.
        reduction: a Keras reduction.
        name: the loss name.
        dtype: the dtype of the computation (Keras policy default).
        gradient: ``"closed_form"`` (default: attached closed-form gradient, none to ``y_true``, zero second
            derivative) or ``"autodiff"`` (label gradients, higher derivatives).

    Example:
        >>> from focalkit.keras import SparseCategoricalFocalLoss
        >>> loss_fn = SparseCategoricalFocalLoss(gamma=2.0, from_logits=True, ignore_class=255)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """

    loss_fn = staticmethod(sparse_categorical_focal_loss)
    param_names = ("gamma", "alpha", "from_logits", "ignore_class", "axis", "gradient")

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
        from_logits: bool = False,
        ignore_class: int | None = None,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "sparse_categorical_focal_loss",
        dtype: Any = None,
        gradient: str = "closed_form",
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = check_gamma(gamma)
        self.alpha = check_alpha(alpha, negative_disables=False)
        self.from_logits = bool(from_logits)
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.axis = int(axis)
        self.gradient = check_gradient_mode(gradient)
