"""Asymmetric Loss for Keras 3 (Ridnik, Ben-Baruch et al. 2021), from logits: multi-label and single-label.

Functions ``asymmetric_loss`` (per-sample: the mean over ``axis``, as ``keras.losses.binary_crossentropy``) and
``asymmetric_loss_single_label`` (integer targets, per sample), and the ``keras.losses.Loss`` classes
``AsymmetricLoss`` and ``AsymmetricLossSingleLabel``. The math is the log-space form of ``focalkit.jax`` written with
stable ``keras.ops`` only, so every back-end's own autodiff stays finite at any finite logit. Targets are constants.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from focalkit import semantics
from focalkit.keras._checks import dense_targets_and_logits, mark_invalid
from focalkit.keras._loss_object import FocalLossObject
from focalkit.keras._math import TINY, _sigmoid_pair, log_softmax_parts, power
from focalkit.keras._sparse import check_ignore_class, class_last_logits, finish_sparse, sparse_targets

__all__ = ["AsymmetricLoss", "AsymmetricLossSingleLabel", "asymmetric_loss", "asymmetric_loss_single_label"]


def _nonnegative(name: str, value: Any) -> float:
    return semantics.check_number(name, value, minimum=0.0)


def _check_clip(clip: Any) -> float:
    """The probability margin: None (no shift) or a number in [0, 1]."""
    return 0.0 if clip is None else semantics.check_number("clip", clip, minimum=0.0, maximum=1.0)


def _shift(p: Any, clip: float) -> Any:
    """p - clip, the margin split into its float32 value and the rest (p - float32(clip) is exact near the margin)."""
    if keras.backend.standardize_dtype(p.dtype) == "float64":
        return p - clip
    high = float(np.float32(clip))
    return (p - high) - (clip - high)


def asymmetric_elements(x: Any, y: Any, gamma_pos: float, gamma_neg: float, clip: float, detach: bool) -> Any:
    """y (1 - p)^g+ (-log p) + (1 - y) p_m^g- (-log(1 - p_m)) per element (see
    :func:`focalkit.jax.asymmetric_loss`); p_m^g- is 0 below 1e-30, where the term is below that number."""
    p, q = _sigmoid_pair(x)
    s_pos, s_neg = ops.softplus(x), ops.softplus(0.0 - x)  # -log(1 - p), -log p
    w_pos = power(q, 0.0 - s_pos, gamma_pos)
    if clip > 0:
        shifted = _shift(p, clip)
        live = shifted > 0
        p_m = ops.where(live, shifted, ops.zeros_like(shifted))
        below_half = p_m < 0.5
        neg_ce = ops.where(below_half, 0.0 - ops.log1p(0.0 - ops.where(below_half, p_m, ops.zeros_like(p_m))),
                           0.0 - ops.log(q + clip))
        if gamma_neg == 0.0:
            w_neg = ops.cast(live, x.dtype)
        else:
            big = p_m > TINY
            w_neg = ops.where(big, ops.power(ops.where(big, p_m, ops.ones_like(p_m)), gamma_neg),
                              ops.zeros_like(p_m))
    else:
        w_neg = power(p, 0.0 - s_neg, gamma_neg)
        neg_ce = s_pos
    if detach:
        w_pos, w_neg = ops.stop_gradient(w_pos), ops.stop_gradient(w_neg)
    return y * w_pos * s_neg + (1.0 - y) * w_neg * neg_ce


@keras.saving.register_keras_serializable(package="focalkit")
def asymmetric_loss(
    y_true: Any,
    y_pred: Any,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float | None = 0.05,
    detach_focal_weight: bool = False,
    axis: int = -1,
) -> Any:
    r"""Asymmetric Loss (ASL) for multi-label classification from logits (Ridnik, Ben-Baruch et al. 2021), averaged
    over ``axis``.

    .. math::
        L = y\,(1 - p)^{\gamma_+}(-\log p) + (1 - y)\,p_m^{\gamma_-}(-\log(1 - p_m)),\qquad
        p = \sigma(x),\ p_m = \max(p - m, 0),

    with the probability margin m = ``clip``; same numbers as :func:`focalkit.jax.asymmetric_loss`. Targets outside
    ``[0, 1]`` raise :class:`~focalkit.InvalidArgumentError` where readable and give NaN when traced.

    Args:
        y_true: multi-hot or soft targets in ``[0, 1]``, broadcastable to ``y_pred``'s shape.
        y_pred: logits ``(batch, ..., C)``.
        gamma_pos: focusing exponent of the positive term, ``>= 0`` (0).
        gamma_neg: focusing exponent of the negative term, ``>= 0`` (4).
        clip: the probability margin in ``[0, 1]`` (0.05), or None / 0 for no shift.
        detach_focal_weight: treat the focusing weights as constants in the gradient (the authors'
            ``disable_torch_grad_focal_loss``); a bool.
        axis: the axis averaged over.

    Returns:
        Losses of shape ``(batch, ...)``.

    Example:
        >>> import numpy as np
        >>> from focalkit.keras import asymmetric_loss
        >>> loss = asymmetric_loss(np.array([[1.0, 0.0, 0.0]]), np.array([[2.0, -1.0, 0.5]]))

    Reference:
        T. Ridnik, E. Ben-Baruch et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021,
        arXiv:2009.14119.
    """
    gamma_pos = _nonnegative("gamma_pos", gamma_pos)
    gamma_neg = _nonnegative("gamma_neg", gamma_neg)
    clip = _check_clip(clip)
    detach = semantics.check_bool("detach_focal_weight", detach_focal_weight)
    y, x, invalid = dense_targets_and_logits(y_true, y_pred)
    elements = asymmetric_elements(x, y, gamma_pos, gamma_neg, clip, detach)
    return ops.mean(mark_invalid(elements, invalid), axis=axis)


@keras.saving.register_keras_serializable(package="focalkit")
def asymmetric_loss_single_label(
    y_true: Any,
    y_pred: Any,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    label_smoothing: float = 0.0,
    ignore_class: int | None = None,
    axis: int = -1,
) -> Any:
    r"""Single-label Asymmetric Loss over a softmax from logits (the ASL authors' ``ASLSingleLabel``), integer targets.

    .. math::
        L = -\sum_c q_c\, w_c \log p_c,\qquad w_t = (1 - p_t)^{\gamma_+},\ w_c = p_c^{\gamma_-}\ (c \ne t),

    q the one-hot target smoothed as :math:`q (1 - \varepsilon) + \varepsilon / C`; same numbers as
    :func:`focalkit.jax.asymmetric_loss_single_label`. ``ignore_class`` entries get loss 0 and gradient 0 and are
    left out of Keras's mean.

    Args:
        y_true: class indices in ``[0, C)`` or ``ignore_class`` (integer or whole-number floats), shape
            ``(batch, ...)`` (a trailing axis of size 1 is squeezed).
        y_pred: logits ``(batch, ..., C)``.
        gamma_pos: exponent of :math:`1 - p_t`, ``>= 0`` (0).
        gamma_neg: exponent of :math:`p_c` on the other classes, ``>= 0`` (4; no effect without smoothing).
        label_smoothing: a number in ``[0, 1]`` (the authors use 0.1).
        ignore_class: optional class index to leave out.
        axis: the class axis of ``y_pred``.

    Returns:
        Losses of shape ``(batch, ...)``.

    Example:
        >>> import numpy as np
        >>> from focalkit.keras import asymmetric_loss_single_label
        >>> loss = asymmetric_loss_single_label(np.array([0, 2]), np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]),
        ...                                     label_smoothing=0.1)

    Reference:
        T. Ridnik, E. Ben-Baruch et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021,
        arXiv:2009.14119; ``ASLSingleLabel`` in github.com/Alibaba-MIIL/ASL.
    """
    gamma_pos = _nonnegative("gamma_pos", gamma_pos)
    gamma_neg = _nonnegative("gamma_neg", gamma_neg)
    smoothing = semantics.check_label_smoothing(label_smoothing)
    ignore_class = check_ignore_class(ignore_class)
    x = class_last_logits(y_pred, axis)
    labels, valid, invalid = sparse_targets(y_true, x, ignore_class)
    num_classes = ops.shape(x)[-1]
    log_p, one_minus_p, log_one_minus_p = log_softmax_parts(x)
    is_target = ops.one_hot(labels, num_classes, dtype="bool")
    zeros = ops.zeros_like(x)
    u = ops.sum(ops.where(is_target, one_minus_p, zeros), axis=-1, keepdims=True)
    log_u = ops.sum(ops.where(is_target, log_one_minus_p, zeros), axis=-1, keepdims=True)
    weight = ops.where(is_target, power(u, log_u, gamma_pos), power(ops.exp(log_p), log_p, gamma_neg))
    c = ops.cast(num_classes, x.dtype)
    q = ops.where(is_target, 1.0 - smoothing + smoothing / c, zeros + smoothing / c)
    loss = ops.sum(q * weight * (0.0 - log_p), axis=-1)
    return finish_sparse(loss, valid, invalid)


@keras.saving.register_keras_serializable(package="focalkit")
class AsymmetricLoss(FocalLossObject):
    """Asymmetric Loss (multi-label, logits) as a ``keras.losses.Loss``; see :func:`asymmetric_loss`.

    Args:
        gamma_pos: focusing exponent of the positive term, ``>= 0``.
        gamma_neg: focusing exponent of the negative term, ``>= 0``.
        clip: the probability margin in ``[0, 1]``, or None.
        detach_focal_weight: treat the focusing weights as constants in the gradient.
        axis: the axis averaged over per sample.
        reduction: a Keras reduction (``"sum_over_batch_size"``, ``"sum"``, ``"mean"``, ``"none"``, ...).
        name: the loss name.
        dtype: the dtype of the computation (Keras policy default).

    Example:
        >>> from focalkit.keras import AsymmetricLoss
        >>> loss_fn = AsymmetricLoss(gamma_neg=4.0, clip=0.05)
    """

    loss_fn = staticmethod(asymmetric_loss)
    param_names = ("gamma_pos", "gamma_neg", "clip", "detach_focal_weight", "axis")

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float | None = 0.05,
        detach_focal_weight: bool = False,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "asymmetric_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma_pos = _nonnegative("gamma_pos", gamma_pos)
        self.gamma_neg = _nonnegative("gamma_neg", gamma_neg)
        self.clip = _check_clip(clip)
        self.detach_focal_weight = semantics.check_bool("detach_focal_weight", detach_focal_weight)
        self.axis = int(axis)


@keras.saving.register_keras_serializable(package="focalkit")
class AsymmetricLossSingleLabel(FocalLossObject):
    """Single-label Asymmetric Loss (softmax, logits, integer targets) as a ``keras.losses.Loss``; see
    :func:`asymmetric_loss_single_label`.

    Args:
        gamma_pos: exponent of 1 - p_t, ``>= 0``.
        gamma_neg: exponent of p_c on the other classes, ``>= 0``.
        label_smoothing: a number in ``[0, 1]``.
        ignore_class: optional class index to leave out (also out of the mean).
        axis: the class axis.
        reduction: a Keras reduction.
        name: the loss name.
        dtype: the dtype of the computation.

    Example:
        >>> from focalkit.keras import AsymmetricLossSingleLabel
        >>> loss_fn = AsymmetricLossSingleLabel(gamma_neg=4.0, label_smoothing=0.1)
    """

    loss_fn = staticmethod(asymmetric_loss_single_label)
    param_names = ("gamma_pos", "gamma_neg", "label_smoothing", "ignore_class", "axis")

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        label_smoothing: float = 0.0,
        ignore_class: int | None = None,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "asymmetric_loss_single_label",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma_pos = _nonnegative("gamma_pos", gamma_pos)
        self.gamma_neg = _nonnegative("gamma_neg", gamma_neg)
        self.label_smoothing = semantics.check_label_smoothing(label_smoothing)
        self.ignore_class = check_ignore_class(ignore_class)
        self.axis = int(axis)
