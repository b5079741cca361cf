"""Dense-detection losses for Keras 3 (from logits): Quality Focal, Varifocal and Gaussian focal loss.

Functions ``quality_focal_loss``, ``varifocal_loss``, ``gaussian_focal_loss`` (per-sample losses, the mean over
``axis`` as ``keras.losses.binary_crossentropy``) and the ``keras.losses.Loss`` classes ``QualityFocalLoss``,
``VarifocalLoss``, ``GaussianFocalLoss`` (Keras's ``reduction`` and ``sample_weight``). ``y_pred`` are logits; the
math is the same log-space form as ``focalkit.jax`` (stable ``keras.ops`` only, so every back-end's autodiff stays
finite at any finite logit). Targets are constants (``stop_gradient``).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from focalkit import semantics
from focalkit.keras._checks import dense_targets_and_logits, mark_invalid
from focalkit.keras._loss_object import FocalLossObject
from focalkit.keras._math import TINY, _sigmoid_pair
from focalkit.keras._math import power as _power

__all__ = [
    "GaussianFocalLoss",
    "QualityFocalLoss",
    "VarifocalLoss",
    "gaussian_focal_loss",
    "quality_focal_loss",
    "varifocal_loss",
]


def _nonnegative(name: str, value: Any) -> float:
    return semantics.check_number(name, value, minimum=0.0)


def _bce(x: Any, y: Any) -> Any:
    """BCE(sigmoid(x), y) = y softplus(-x) + (1 - y) softplus(x): non-negative terms, no cancellation."""
    return y * ops.softplus(-x) + (1.0 - y) * ops.softplus(x)


def quality_elements(x: Any, y: Any, beta: float) -> Any:
    """|y - p|^beta BCE(p, y) per element (see :func:`focalkit.jax.quality_focal_loss`)."""
    bce = _bce(x, y)
    if beta == 0.0:
        return bce
    p, q = _sigmoid_pair(x)
    d = ops.abs(y * q - (1.0 - y) * p)
    big = d >= TINY
    soft = ops.where(big, ops.power(ops.where(big, d, ops.ones_like(d)), beta), ops.stop_gradient(ops.power(d, beta)))
    hard0 = _power(p, 0.0 - ops.softplus(-x), beta)
    hard1 = _power(q, 0.0 - ops.softplus(x), beta)
    return ops.where(y == 0, hard0, ops.where(y == 1, hard1, soft)) * bce


def varifocal_elements(x: Any, y: Any, alpha: float, gamma: float, iou_weighted: bool) -> Any:
    """w BCE(p, q), w = q (or 1) where q > 0 else alpha p^gamma."""
    p, _ = _sigmoid_pair(x)
    negative = alpha * _power(p, 0.0 - ops.softplus(-x), gamma)
    weight = ops.where(y > 0, y if iou_weighted else ops.ones_like(y), negative)
    return weight * _bce(x, y)


def gaussian_elements(x: Any, y: Any, alpha: float, beta: float) -> Any:
    """(1 - p)^alpha (-log p) at peaks (y == 1), (1 - y)^beta p^alpha (-log(1 - p)) elsewhere."""
    p, q = _sigmoid_pair(x)
    positive = _power(q, 0.0 - ops.softplus(x), alpha) * ops.softplus(-x)
    negative = ops.power(1.0 - y, beta) * _power(p, 0.0 - ops.softplus(-x), alpha) * ops.softplus(x)
    return ops.where(y == 1, positive, negative)


@keras.saving.register_keras_serializable(package="focalkit")
def quality_focal_loss(y_true: Any, y_pred: Any, beta: float = 2.0, axis: int = -1) -> Any:
    r"""Quality Focal Loss from logits (Li et al. 2020, GFL), averaged over ``axis``.

    Per element :math:`|y - p|^\beta\,\mathrm{BCE}(p, y)`, :math:`p = \sigma(x)`, with dense quality targets
    ``y_true`` in ``[0, 1]`` (0 = negative); same numbers as :func:`focalkit.jax.quality_focal_loss`. Targets outside
    ``[0, 1]`` raise :class:`~focalkit.InvalidArgumentError` where readable and give NaN when traced.

    Args:
        y_true: quality targets in ``[0, 1]``, broadcastable to ``y_pred``'s shape.
        y_pred: logits ``(batch, ..., d)``.
        beta: exponent of :math:`|y - p|`, ``>= 0`` (2).
        axis: the axis averaged over.

    Returns:
        Losses of shape ``(batch, ...)``.
    """
    beta = _nonnegative("beta", beta)
    y, x, invalid = dense_targets_and_logits(y_true, y_pred)
    return ops.mean(mark_invalid(quality_elements(x, y, beta), invalid), axis=axis)


@keras.saving.register_keras_serializable(package="focalkit")
def varifocal_loss(
    y_true: Any, y_pred: Any, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True, axis: int = -1
) -> Any:
    r"""Varifocal Loss from logits (Zhang et al. 2021), averaged over ``axis``.

    Per element :math:`q\,\mathrm{BCE}(p, q)` where :math:`q > 0` (weight 1 without ``iou_weighted``) and
    :math:`\alpha p^\gamma\,\mathrm{BCE}(p, 0)` where :math:`q = 0`; same numbers as
    :func:`focalkit.jax.varifocal_loss`.

    Args:
        y_true: target scores q in ``[0, 1]``, broadcastable to ``y_pred``'s shape.
        y_pred: logits ``(batch, ..., d)``.
        alpha: weight of the negatives, ``>= 0`` (0.75).
        gamma: exponent of p on negatives, ``>= 0`` (2).
        iou_weighted: weigh positives by q (True) or by 1; a bool.
        axis: the axis averaged over.

    Returns:
        Losses of shape ``(batch, ...)``.
    """
    alpha = _nonnegative("alpha", alpha)
    gamma = semantics.check_gamma(gamma)
    iou_weighted = semantics.check_bool("iou_weighted", iou_weighted)
    y, x, invalid = dense_targets_and_logits(y_true, y_pred)
    return ops.mean(mark_invalid(varifocal_elements(x, y, alpha, gamma, iou_weighted), invalid), axis=axis)


@keras.saving.register_keras_serializable(package="focalkit")
def gaussian_focal_loss(y_true: Any, y_pred: Any, alpha: float = 2.0, beta: float = 4.0, axis: int = -1) -> Any:
    r"""Gaussian focal loss from logits (CornerNet / CenterNet heatmaps), averaged over ``axis``.

    Per element :math:`(1 - p)^\alpha(-\log p)` at peaks (``y_true == 1``) and
    :math:`(1 - y)^\beta p^\alpha(-\log(1 - p))` elsewhere; same numbers as
    :func:`focalkit.jax.gaussian_focal_loss`. The CornerNet normalisation by the number of peaks is not applied
    (pass ``sample_weight`` or scale the loss).

    Args:
        y_true: heatmap targets in ``[0, 1]``, 1 at the peaks, broadcastable to ``y_pred``'s shape.
        y_pred: logits ``(batch, ..., d)``.
        alpha: exponent of (1 - p) on peaks and of p elsewhere, ``>= 0`` (2).
        beta: exponent of (1 - y) elsewhere, ``>= 0`` (4).
        axis: the axis averaged over.

    Returns:
        Losses of shape ``(batch, ...)``.
    """
    alpha = _nonnegative("alpha", alpha)
    beta = _nonnegative("beta", beta)
    y, x, invalid = dense_targets_and_logits(y_true, y_pred)
    return ops.mean(mark_invalid(gaussian_elements(x, y, alpha, beta), invalid), axis=axis)


@keras.saving.register_keras_serializable(package="focalkit")
class QualityFocalLoss(FocalLossObject):
    """Quality Focal Loss (logits) as a ``keras.losses.Loss``; see :func:`quality_focal_loss`.

    Args:
        beta: exponent of |y - p|, ``>= 0``.
        axis: the axis averaged over per sample.
        reduction: a Keras reduction (``"sum_over_batch_size"``, ``"sum"``, ``"mean"``, ``"none"``, ...).
        name: the loss name.
        dtype: the dtype of the computation (Keras policy default).

    Example:
        >>> from focalkit.keras import QualityFocalLoss
        >>> loss_fn = QualityFocalLoss(beta=2.0)
    """

    loss_fn = staticmethod(quality_focal_loss)
    param_names = ("beta", "axis")

    def __init__(
        self,
        beta: float = 2.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "quality_focal_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta = _nonnegative("beta", beta)
        self.axis = int(axis)


@keras.saving.register_keras_serializable(package="focalkit")
class VarifocalLoss(FocalLossObject):
    """Varifocal Loss (logits) as a ``keras.losses.Loss``; see :func:`varifocal_loss`.

    Args:
        alpha: weight of the negatives, ``>= 0``.
        gamma: exponent of p on negatives, ``>= 0``.
        iou_weighted: weigh positives by q (True) or by 1.
        axis: the axis averaged over per sample.
        reduction: a Keras reduction.
        name: the loss name.
        dtype: the dtype of the computation.

    Example:
        >>> from focalkit.keras import VarifocalLoss
        >>> loss_fn = VarifocalLoss(alpha=0.75, gamma=2.0)
    """

    loss_fn = staticmethod(varifocal_loss)
    param_names = ("alpha", "gamma", "iou_weighted", "axis")

    def __init__(
        self,
        alpha: float = 0.75,
        gamma: float = 2.0,
        iou_weighted: bool = True,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "varifocal_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = _nonnegative("alpha", alpha)
        self.gamma = semantics.check_gamma(gamma)
        self.iou_weighted = semantics.check_bool("iou_weighted", iou_weighted)
        self.axis = int(axis)


@keras.saving.register_keras_serializable(package="focalkit")
class GaussianFocalLoss(FocalLossObject):
    """Gaussian focal loss (logits) as a ``keras.losses.Loss``; see :func:`gaussian_focal_loss`.

    Args:
        alpha: exponent of (1 - p) on peaks and of p elsewhere, ``>= 0``.
        beta: exponent of (1 - y) elsewhere, ``>= 0``.
        axis: the axis averaged over per sample.
        reduction: a Keras reduction.
        name: the loss name.
        dtype: the dtype of the computation.

    Example:
        >>> from focalkit.keras import GaussianFocalLoss
        >>> loss_fn = GaussianFocalLoss(alpha=2.0, beta=4.0)
    """

    loss_fn = staticmethod(gaussian_focal_loss)
    param_names = ("alpha", "beta", "axis")

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 4.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "gaussian_focal_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = _nonnegative("alpha", alpha)
        self.beta = _nonnegative("beta", beta)
        self.axis = int(axis)
