"""Poly-1 losses for Keras 3 (Leng et al. 2022, PolyLoss), from logits: the Poly-1 cross-entropy over a softmax
(integer or probability targets) and the Poly-1 focal loss over a sigmoid.

Functions ``poly1_cross_entropy`` (per sample) and ``poly1_focal_loss`` (per sample: the mean over ``axis``) and the
``keras.losses.Loss`` classes ``Poly1CrossEntropy`` and ``Poly1FocalLoss``. Same log-space math as ``focalkit.jax``
written with stable ``keras.ops`` only (every back-end's autodiff stays finite at any finite logit).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from focalkit import semantics
from focalkit.errors import argument_error
from focalkit.keras._checks import (
    check_alpha,
    check_class_count,
    dense_targets_and_logits,
    mark_invalid,
    to_tensor,
    unit_interval,
)
from focalkit.keras._loss_object import FocalLossObject
from focalkit.keras._math import _sigmoid_pair, excess, log_softmax_parts, power
from focalkit.keras._sparse import check_ignore_class, class_last_logits, finish_sparse, sparse_targets

__all__ = ["Poly1CrossEntropy", "Poly1FocalLoss", "poly1_cross_entropy", "poly1_focal_loss"]


def _check_epsilon(epsilon: Any) -> float:
    """The Poly-1 coefficient: a finite number >= -1 (the paper's domain)."""
    return semantics.check_number("epsilon", epsilon, minimum=-1.0)


def _check_weight(weight: Any) -> list[float] | None:
    """None or per-class weights, finite and >= 0, as a list (serialisable with ``get_config``)."""
    if weight is None:
        return None
    values = weight if isinstance(weight, (list, tuple)) else getattr(weight, "tolist", lambda: weight)()
    if not isinstance(values, list):
        raise argument_error("weight", "None or a sequence of per-class weights", repr(weight))
    return semantics.check_per_class_values("weight", values, unit_range=False)


def _term(a: Any, s: Any, one_minus_exp: Any, epsilon: float) -> Any:
    """a s + epsilon (1 - e^-s); for epsilon < 0 as (a + epsilon) s + (-epsilon)(s - (1 - e^-s)) (no cancellation)."""
    if epsilon >= 0:
        return a * s + epsilon * one_minus_exp
    return (a + epsilon) * s + (0.0 - epsilon) * excess(s)


@keras.saving.register_keras_serializable(package="focalkit")
def poly1_cross_entropy(
    y_true: Any,
    y_pred: Any,
    epsilon: float = 1.0,
    weight: list[float] | None = None,
    label_smoothing: float = 0.0,
    ignore_class: int | None = None,
    axis: int = -1,
) -> Any:
    r"""Poly-1 cross-entropy from logits (Leng et al. 2022, PolyLoss), per sample.

    .. math::
        L = \sum_c w_c\, q_c \left[-\log p_c + \epsilon\,(1 - p_c)\right],\qquad p = \mathrm{softmax}(x),

    q the one-hot target (integer ``y_true``) or the given class probabilities (``y_true`` of ``y_pred``'s shape),
    either smoothed as :math:`q (1 - \varepsilon) + \varepsilon / C`, and w the per-class ``weight``; same numbers as
    :func:`focalkit.jax.poly1_cross_entropy`. With integer targets, ``ignore_class`` entries get loss 0 and are left
    out of Keras's mean. Keras's reductions divide by the number of samples, not by the sum of the weights of the
    targets as ``F.cross_entropy``'s "mean" does.

    Args:
        y_true: class indices ``(batch, ...)`` (integer or whole-number floats; a trailing axis of size 1 is
            squeezed), or class probabilities in ``[0, 1]`` of ``y_pred``'s shape.
        y_pred: logits ``(batch, ..., C)``.
        epsilon: the Poly-1 coefficient, ``>= -1`` (1; 0 gives the cross-entropy).
        weight: None or ``C`` per-class weights ``>= 0``.
        label_smoothing: a number in ``[0, 1]``.
        ignore_class: optional class index to leave out (integer targets).
        axis: the class axis of ``y_pred``.

    Returns:
        Losses of shape ``(batch, ...)``.

    Example:
        >>> import numpy as np
        >>> from focalkit.keras import poly1_cross_entropy
        >>> loss = poly1_cross_entropy(np.array([0, 2]), np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]))

    Reference:
        Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov, "PolyLoss: A Polynomial Expansion
        Perspective of Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
    """
    epsilon = _check_epsilon(epsilon)
    weight = _check_weight(weight)
    smoothing = semantics.check_label_smoothing(label_smoothing)
    ignore_class = check_ignore_class(ignore_class)
    x = class_last_logits(y_pred, axis)
    num_classes = x.shape[-1]
    check_class_count("y_pred", num_classes, None, minimum=2)
    if weight is not None and num_classes is not None and len(weight) != num_classes:
        raise argument_error("weight", f"{num_classes} per-class values (one per class)", len(weight))
    true_tensor = to_tensor("y_true", y_true)
    rank = len(x.shape)
    probabilities = len(true_tensor.shape) == rank and true_tensor.shape[axis] == num_classes and num_classes != 1
    valid = None
    if probabilities:
        q = ops.cast(true_tensor, x.dtype)
        if axis not in (-1, rank - 1):
            q = ops.moveaxis(q, axis, -1)
        if any(t is not None and p is not None and t != p for t, p in zip(q.shape, x.shape, strict=False)):
            raise argument_error("y_true", f"class probabilities of y_pred's shape {tuple(x.shape)}", tuple(q.shape))
        invalid = unit_interval("y_true", y_true, q)
        if invalid is not None:
            q = ops.where(invalid, ops.zeros_like(q), q)
            invalid = ops.any(invalid, axis=-1)
    else:
        labels, valid, invalid = sparse_targets(y_true, x, ignore_class)
        q = ops.one_hot(labels, ops.shape(x)[-1], dtype=x.dtype)
    q = ops.stop_gradient(q)
    if smoothing:
        q = q * (1.0 - smoothing) + smoothing / ops.cast(ops.shape(x)[-1], x.dtype)
    if weight is not None:
        q = q * ops.convert_to_tensor(weight, dtype=x.dtype)
    log_p, one_minus_p, _ = log_softmax_parts(x)
    loss = ops.sum(q * _term(1.0, 0.0 - log_p, one_minus_p, epsilon), axis=-1)
    if probabilities:
        return mark_invalid(loss, invalid)
    return finish_sparse(loss, valid, invalid)


def poly1_focal_elements(x: Any, y: Any, a_t: Any, gamma: float, epsilon: float) -> Any:
    """(1 - p_t)^gamma [a_t BCE + epsilon (1 - p_t)] per element, the bracket split for epsilon < 0."""
    p, q = _sigmoid_pair(x)
    s_pos, s_neg = ops.softplus(x), ops.softplus(0.0 - x)
    value = y * _term(a_t, s_neg, q, epsilon) + (1.0 - y) * _term(a_t, s_pos, p, epsilon)
    if gamma == 0.0:
        return value
    u = p * (1.0 - y) + q * y
    pos, neg = y > 0, y < 1
    neg_inf = ops.full_like(y, -float("inf"))
    log_y = ops.where(pos, ops.log(ops.where(pos, y, ops.ones_like(y))), neg_inf)
    log_1my = ops.where(neg, ops.log1p(0.0 - ops.where(neg, y, ops.zeros_like(y))), neg_inf)
    log_u = ops.logaddexp(log_1my - s_neg, log_y - s_pos)
    return power(u, log_u, gamma) * value


@keras.saving.register_keras_serializable(package="focalkit")
def poly1_focal_loss(
    y_true: Any,
    y_pred: Any,
    epsilon: float = 1.0,
    alpha: float | list[float] | None = 0.25,
    gamma: float = 2.0,
    axis: int = -1,
) -> Any:
    r"""Poly-1 focal loss from logits (Leng et al. 2022, PolyLoss), averaged over ``axis``.

    .. math::
        L = \alpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(p, y) + \epsilon\, (1 - p_t)^{\gamma + 1},\qquad p = \sigma(x),

    the poly term not alpha-weighted (the paper's code); same numbers as :func:`focalkit.jax.poly1_focal_loss`.
    Targets outside ``[0, 1]`` raise :class:`~focalkit.InvalidArgumentError` where readable and give NaN when traced.

    Args:
        y_true: binary or soft targets in ``[0, 1]``, broadcastable to ``y_pred``'s shape.
        y_pred: logits ``(batch, ..., C)``.
        epsilon: the Poly-1 coefficient, ``>= -1`` (1).
        alpha: weight of positives in ``[0, 1]`` in the focal term (0.25), None or negative to disable it, or ``C``
            per-class values along the last axis.
        gamma: focusing parameter ``>= 0`` (2).
        axis: the axis averaged over.

    Returns:
        Losses of shape ``(batch, ...)``.

    Example:
        >>> import numpy as np
        >>> from focalkit.keras import poly1_focal_loss
        >>> loss = poly1_focal_loss(np.array([[1.0, 0.0, 1.0]]), np.array([[2.0, -1.0, 0.5]]), epsilon=1.0)

    Reference:
        Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions", ICLR 2022,
        arXiv:2204.12511.
    """
    epsilon = _check_epsilon(epsilon)
    gamma = semantics.check_gamma(gamma)
    alpha = check_alpha(alpha, negative_disables=True)
    y, x, invalid = dense_targets_and_logits(y_true, y_pred)
    if isinstance(alpha, list):
        check_class_count("y_pred", x.shape[-1], alpha)
    if alpha is None:
        a_t = 1.0
    else:
        a = ops.convert_to_tensor(alpha, dtype=x.dtype)
        a_t = a * y + (1.0 - a) * (1.0 - y)
    return ops.mean(mark_invalid(poly1_focal_elements(x, y, a_t, gamma, epsilon), invalid), axis=axis)


@keras.saving.register_keras_serializable(package="focalkit")
class Poly1CrossEntropy(FocalLossObject):
    """Poly-1 cross-entropy (softmax, logits; integer or probability targets) as a ``keras.losses.Loss``; see
    :func:`poly1_cross_entropy`.

    Args:
        epsilon: the Poly-1 coefficient, ``>= -1``.
        weight: None or per-class weights ``>= 0``.
        label_smoothing: a number in ``[0, 1]``.
        ignore_class: optional class index to leave out (integer targets; also out of the mean).
        axis: the class axis.
        reduction: a Keras reduction.
        name: the loss name.
        dtype: the dtype of the computation.

    Example:
        >>> from focalkit.keras import Poly1CrossEntropy
        >>> loss_fn = Poly1CrossEntropy(epsilon=1.0, label_smoothing=0.1)
    """

    loss_fn = staticmethod(poly1_cross_entropy)
    param_names = ("epsilon", "weight", "label_smoothing", "ignore_class", "axis")

    def __init__(
        self,
        epsilon: float = 1.0,
        weight: list[float] | None = None,
        label_smoothing: float = 0.0,
        ignore_class: int | None = None,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poly1_cross_entropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = _check_epsilon(epsilon)
        self.weight = _check_weight(weight)
        self.label_smoothing = semantics.check_label_smoothing(label_smoothing)
        self.ignore_class = check_ignore_class(ignore_class)
        self.axis = int(axis)


@keras.saving.register_keras_serializable(package="focalkit")
class Poly1FocalLoss(FocalLossObject):
    """Poly-1 focal loss (sigmoid, logits) as a ``keras.losses.Loss``; see :func:`poly1_focal_loss`.

    Args:
        epsilon: the Poly-1 coefficient, ``>= -1``.
        alpha: weight of positives in the focal term, None, or per-class values.
        gamma: focusing parameter ``>= 0``.
        axis: the axis averaged over per sample.
        reduction: a Keras reduction.
        name: the loss name.
        dtype: the dtype of the computation.

    Example:
        >>> from focalkit.keras import Poly1FocalLoss
        >>> loss_fn = Poly1FocalLoss(epsilon=1.0, alpha=0.25, gamma=2.0)
    """

    loss_fn = staticmethod(poly1_focal_loss)
    param_names = ("epsilon", "alpha", "gamma", "axis")

    def __init__(
        self,
        epsilon: float = 1.0,
        alpha: float | list[float] | None = 0.25,
        gamma: float = 2.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poly1_focal_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = _check_epsilon(epsilon)
        self.alpha = check_alpha(alpha, negative_disables=True)
        self.gamma = semantics.check_gamma(gamma)
        self.axis = int(axis)
