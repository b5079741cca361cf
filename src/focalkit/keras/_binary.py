"""Binary focal loss for Keras 3: ``binary_focal_loss`` and ``BinaryFocalLoss``."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from focalkit.keras._checks import (
    check_alpha,
    check_class_count,
    check_gamma,
    check_label_smoothing,
    check_shape_broadcasts_to,
    either,
    mark_invalid,
    match_rank,
    to_tensor,
    unit_interval,
)
from focalkit.keras._closed_form import GRADIENT_MODES, attach_gradient, sigmoid_loss_and_grad
from focalkit.keras._loss_object import FocalLossObject
from focalkit.keras._math import binary_terms_from_probs, sigmoid_terms
from focalkit.semantics import check_choice

__all__ = ["BinaryFocalLoss", "binary_focal_loss", "check_gradient_mode"]


def check_gradient_mode(gradient: Any) -> str:
    """``"closed_form"`` (the closed-form gradient attached to the logits) or ``"autodiff"`` (the back-end's autodiff
    through the log-space composition: label gradients and exact higher derivatives)."""
    return check_choice("gradient", gradient, GRADIENT_MODES)


def _tiny(dtype: Any) -> float:
    return float(np.finfo(keras.backend.standardize_dtype(dtype)).tiny)


def _compute_float(y_pred: Any) -> Any:
    y_pred = to_tensor("y_pred", y_pred)
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    if dtype in ("float16", "bfloat16"):
        return ops.cast(y_pred, "float32"), dtype
    if not dtype.startswith("float"):
        return ops.cast(y_pred, keras.backend.floatx()), keras.backend.floatx()
    return y_pred, dtype


@keras.saving.register_keras_serializable(package="focalkit")
def binary_focal_loss(
    y_true: Any,
    y_pred: Any,
    gamma: float = 2.0,
    alpha: float | list[float] | None = 0.25,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    gradient: str = "closed_form",
) -> Any:
    r"""Binary (sigmoid) focal loss, averaged over ``axis`` like ``keras.losses.binary_crossentropy``.

    .. math::
        p_t = p y + (1 - p)(1 - y),\quad
        \mathrm{FL} = \alpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(p, y),\quad \alpha_t = \alpha y + (1 - \alpha)(1 - y).

    With ``from_logits=True`` the loss and its gradient are computed in closed form from the logits (exact for all
    finite logits, gradient finite for every ``gamma >= 0``):

    .. math::
        \frac{\partial \mathrm{FL}}{\partial x} = \alpha_t (1 - p_t)^\gamma
        \big[(p - y) + \gamma (1 - 2y)\, \tfrac{p (1 - p)}{1 - p_t}\, \mathrm{BCE}\big].

    By default (``gradient="closed_form"``) that gradient is attached to the logits
    (``stop_gradient(FL) + (x - stop_gradient(x)) * stop_gradient(dFL/dx)``), so every back-end differentiates one
    multiply and keeps one logits-sized tensor for the backward pass (the speed of Keras's own focal losses). The
    attached form gives **no gradient to** ``y_true`` (zero) and a **zero second derivative**; pass
    ``gradient="autodiff"`` for label gradients or higher derivatives (Hessians, gradient penalties): the back-end's
    autodiff then differentiates the log-space composition (same values; slower, and it keeps about 20
    logits-sized tensors for the backward pass instead of 1).
    With probabilities no clipping is applied (Keras clips at 1e-7); only a
    probability that has underflowed to 0 or rounded to 1 is clamped at the dtype's smallest normal number inside the
    logarithm, exactly as ``focalkit.binary_focal_loss`` does. float16/bfloat16 inputs are computed in float32.

    Targets (and probabilities) outside ``[0, 1]`` raise :class:`~focalkit.InvalidArgumentError` where their values
    can be read (NumPy inputs, eager CPU tensors); inside compiled steps (``model.fit`` on TensorFlow / JAX,
    ``tf.function``, ``jax.jit``) and on accelerators they are not read, and the samples containing them give NaN.
    Shapes are always checked.

    Args:
        y_true: binary or soft targets in ``[0, 1]``, shape ``(batch, ..., d)`` or broadcastable to ``y_pred``'s
            shape (a rank differing by a trailing dimension of size 1 is matched as Keras does).
        y_pred: probabilities in ``[0, 1]`` or logits, shape ``(batch, ..., d)``.
        gamma: focusing parameter ``>= 0``.
        alpha: None (off; also a negative number), a number in ``[0, 1]`` weighting positives, or per-class values
            along the last axis (length ``d``).
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: squeezes targets towards 0.5: ``y (1 - s) + s / 2``, as Keras does.
        axis: the axis averaged over.
        gradient: ``"closed_form"`` (attached closed-form gradient w.r.t. the logits; none w.r.t. ``y_true``, zero
            second derivative) or ``"autodiff"`` (exact autodiff to any order, w.r.t. ``y_true`` too). Only
            ``from_logits=True`` is affected; probabilities always use the autodiff.

    Returns:
        Losses of shape ``(batch, ...)`` (``axis`` reduced by a mean).

    Example:
        >>> import numpy as np
        >>> from focalkit.keras import binary_focal_loss
        >>> loss = binary_focal_loss(np.array([[0.0, 1.0]]), np.array([[0.6, 0.4]]), gamma=2.0)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    gamma = check_gamma(gamma)
    alpha = check_alpha(alpha, negative_disables=True)
    label_smoothing = check_label_smoothing(label_smoothing)
    gradient = check_gradient_mode(gradient)
    raw_true, raw_pred = y_true, y_pred
    y_pred, in_dtype = _compute_float(y_pred)
    y_true = ops.cast(to_tensor("y_true", y_true), y_pred.dtype)
    y_true, y_pred = match_rank(y_true, y_pred)
    check_shape_broadcasts_to("y_true", y_true.shape, y_pred.shape, "y_pred's shape")
    # values: checked where readable (raise); else the invalid entries are replaced by valid ones and give NaN
    invalid = unit_interval("y_true", raw_true, y_true)
    if invalid is not None:
        y_true = ops.where(invalid, 0.0, y_true)
    if not from_logits:
        invalid_p = unit_interval("y_pred", raw_pred, y_pred)
        if invalid_p is not None:
            y_pred = ops.where(invalid_p, ops.full_like(y_pred, 0.5), y_pred)
        invalid = either(invalid, invalid_p)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    a = None
    if alpha is not None:
        if isinstance(alpha, list):
            check_class_count("y_pred", ops.shape(y_pred)[-1], alpha)
        a = ops.convert_to_tensor(alpha, dtype=y_pred.dtype)
    if from_logits and gradient == "closed_form":
        loss, grad = sigmoid_loss_and_grad(y_pred, y_true, gamma, a)
        loss = ops.mean(attach_gradient(loss, y_pred, grad), axis=axis)
        if invalid is None:
            return loss
        # NaN per sample (an any over the averaged axis: one pass over the mask instead of two over the losses)
        if tuple(invalid.shape) != tuple(y_pred.shape):
            invalid = ops.broadcast_to(invalid, ops.shape(y_pred))
        return mark_invalid(loss, ops.any(invalid, axis=axis))
    if from_logits:
        loss = sigmoid_terms(y_pred, y_true, gamma)
    else:
        loss = binary_terms_from_probs(y_pred, y_true, gamma, _tiny(in_dtype))
    if a is not None:
        loss = (a * y_true + (1.0 - a) * (1.0 - y_true)) * loss
    return ops.mean(mark_invalid(loss, invalid), axis=axis)


@keras.saving.register_keras_serializable(package="focalkit")
class BinaryFocalLoss(FocalLossObject):
    r"""Binary (sigmoid) focal loss as a ``keras.losses.Loss``; see :func:`binary_focal_loss` for the math.

    Per sample the loss is the mean over the last axis of
    :math:`\alpha_t (1 - p_t)^\gamma \mathrm{BCE}(p, y)`; Keras then applies ``reduction`` and ``sample_weight``.
    Unlike ``keras.losses.BinaryFocalCrossentropy`` it does not clip probabilities at 1e-7, computes logits in log
    space, applies ``alpha`` by default (0.25, as the paper and ``focalkit.sigmoid_focal_loss``), and accepts a
    per-class ``alpha``. From logits its gradient is attached in closed form (no gradient to ``y_true``, zero second
    derivative) unless ``gradient="autodiff"``.

    Args:
        gamma: focusing parameter ``>= 0``.
        alpha: None, a number in ``[0, 1]`` or per-class values along the last axis.
        from_logits: whether ``y_pred`` holds logits (recommended).
        label_smoothing: squeezes targets towards 0.5.
        axis: the axis averaged over.
        reduction: a Keras reduction (``"sum_over_batch_size"``, ``"sum"``, ``"mean"``, ``"none"``, ...).
        name: the loss name.
        dtype: the dtype of the computation (Keras policy default).
        gradient: ``"closed_form"`` (default) or ``"autodiff"`` (label gradients, higher derivatives); see
            :func:`binary_focal_loss`.

    Example:
        >>> from focalkit.keras import BinaryFocalLoss
        >>> loss_fn = BinaryFocalLoss(gamma=2.0, alpha=0.25, from_logits=True)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """

    loss_fn = staticmethod(binary_focal_loss)
    param_names = ("gamma", "alpha", "from_logits", "label_smoothing", "axis", "gradient")

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | list[float] | None = 0.25,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_focal_loss",
        dtype: Any = None,
        gradient: str = "closed_form",
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = check_gamma(gamma)
        self.alpha = check_alpha(alpha, negative_disables=True)
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = int(axis)
        self.gradient = check_gradient_mode(gradient)
