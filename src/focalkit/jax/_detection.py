"""Dense-detection losses for JAX: Quality Focal Loss, Varifocal Loss and the Gaussian focal loss.

All three are sigmoid losses on logits, per element, in log space. They are written with stable ``jnp`` operations
(``softplus`` whose derivative is a sigmoid, powers of the probabilities taken as ``exp(k log p)`` where ``p``
underflows) and differentiated by plain autodiff, which stays finite for all finite logits (``|x|`` up to 1e4 and
beyond) and every allowed hyper-parameter. Labels are targets: they are treated as constants (``stop_gradient``), as
the PyTorch core, mmdetection and the papers do, so derivatives are with respect to the logits only.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from focalkit.jax._checks import check_flag, check_nonnegative, float_labels, float_logits, mark_invalid
from focalkit.jax._stable import TINY as _TINY
from focalkit.jax._stable import power as _power
from focalkit.jax._stable import sigmoid as _sigmoid
from focalkit.jax._stable import softplus as _softplus

__all__ = ["gaussian_focal_loss", "quality_focal_loss", "varifocal_loss"]


def _prepare(logits: Any, labels: Any) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray | None]:
    """Checked float logits (half -> float32) and labels in [0, 1] of the logits' shape, as constants."""
    x = float_logits("logits", logits)
    y, invalid = float_labels("labels", labels, x)
    return x, jax.lax.stop_gradient(jnp.broadcast_to(y, x.shape)), invalid


def _bce(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """BCE(sigmoid(x), y) = y softplus(-x) + (1 - y) softplus(x): a sum of non-negative terms, no cancellation."""
    return y * _softplus(-x) + (1 - y) * _softplus(x)


def quality_focal_loss(logits: Any, labels: Any, *, beta: float = 2.0) -> jnp.ndarray:
    r"""Quality Focal Loss per element (Li et al. 2020, Generalized Focal Loss, eq. 5), dense quality targets.

    .. math::
        \mathrm{QFL}(x, y) = |y - p|^\beta\, \mathrm{BCE}(p, y),\qquad p = \sigma(x),\ y \in [0, 1]

    (mmdetection's positives and negatives alike: a negative is y = 0, where the factor is :math:`p^\beta`).
    :math:`y - p` is evaluated as :math:`y(1 - p) - (1 - y)p` with :math:`1 - p = \sigma(-x)`; for hard targets
    (y = 0 or 1) the factor is :math:`p^\beta` / :math:`(1 - p)^\beta`, taken in log space where p underflows. Loss
    and gradient are finite for all finite logits and every ``beta >= 0``. For ``beta < 1`` the true derivative is
    unbounded as p -> y (a cusp at the minimum); the gradient is 0 where :math:`|y - p|` is 0 or below 1e-30 (soft
    targets only). Near p = y the float32 value of :math:`y - p` carries an absolute error of a few ulps of y, so
    the loss there is accurate in absolute, not relative, terms (see docs/frontends.md). float16 / bfloat16 logits
    are computed (and returned) in float32. Same semantics as ``focalkit.quality_focal_loss`` with dense targets
    and ``reduction="none"``.

    Args:
        logits: floating array of any shape.
        labels: quality targets in ``[0, 1]`` (the IoU of a positive's class, 0 elsewhere), broadcastable to the
            logits' shape; constants (no gradient flows into them).
        beta: exponent of :math:`|y - p|`, a static Python number ``>= 0`` (2 in the paper; 0 gives the BCE).

    Returns:
        Per-element losses of the logits' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import quality_focal_loss
        >>> quality_focal_loss(jnp.array([2.0, -1.0]), jnp.array([0.9, 0.0])).shape
        (2,)

    Reference:
        X. Li et al., "Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes for Dense Object
        Detection", NeurIPS 2020, arXiv:2006.04388.
    """
    b = check_nonnegative("beta", beta)
    x, y, invalid = _prepare(logits, labels)
    bce = _bce(x, y)
    if b == 0.0:
        return mark_invalid(bce, invalid)
    p, q = _sigmoid(x), _sigmoid(-x)
    log_p, log_q = -_softplus(-x), -_softplus(x)
    d = jnp.abs(y * q - (1 - y) * p)
    big = d >= _TINY
    # below 1e-30 (p == y to within rounding, soft targets only) the factor is a constant: beta < 1 would overflow
    soft = jnp.where(big, jnp.where(big, d, 1.0) ** b, jax.lax.stop_gradient(d**b))
    factor = jnp.where(y == 0, _power(p, log_p, b), jnp.where(y == 1, _power(q, log_q, b), soft))
    return mark_invalid(factor * bce, invalid)


def varifocal_loss(
    logits: Any, labels: Any, *, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True
) -> jnp.ndarray:
    r"""Varifocal Loss per element (Zhang et al. 2021, VarifocalNet, eq. 2), IoU-aware classification targets.

    .. math::
        \mathrm{VFL}(x, q) = \begin{cases} q\, \mathrm{BCE}(p, q) & q > 0 \\
            \alpha\, p^\gamma\, \mathrm{BCE}(p, 0) & q = 0 \end{cases},\qquad p = \sigma(x),

    with weight 1 instead of q on positives when ``iou_weighted=False``. :math:`p^\gamma` is taken in log space
    where p underflows, so loss and gradient are finite for all finite logits and every ``gamma >= 0``. float16 /
    bfloat16 logits are computed (and returned) in float32. Same semantics as ``focalkit.varifocal_loss`` with
    ``reduction="none"`` (without its YOLO-style ``labels`` argument).

    Args:
        logits: floating array of any shape.
        labels: target scores q in ``[0, 1]`` (the IoU for a positive's class, 0 for negatives), broadcastable to
            the logits' shape; constants (no gradient flows into them).
        alpha: weight of the negatives' term, a static Python number ``>= 0`` (0.75 in the paper).
        gamma: exponent of p on negatives, a static Python number ``>= 0`` (2 in the paper).
        iou_weighted: weigh positives by q (True, the paper) or by 1; a Python bool.

    Returns:
        Per-element losses of the logits' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import varifocal_loss
        >>> varifocal_loss(jnp.array([2.0, -1.0]), jnp.array([0.8, 0.0])).shape
        (2,)

    Reference:
        H. Zhang, Y. Wang, F. Dayoub, N. Sunderhauf. "VarifocalNet: An IoU-aware Dense Object Detector", CVPR 2021,
        arXiv:2008.13367.
    """
    a = check_nonnegative("alpha", alpha)
    g = check_nonnegative("gamma", gamma)
    iou = check_flag("iou_weighted", iou_weighted)
    x, y, invalid = _prepare(logits, labels)
    negative = a * _power(_sigmoid(x), -_softplus(-x), g)
    weight = jnp.where(y > 0, y if iou else jnp.ones_like(y), negative)
    return mark_invalid(weight * _bce(x, y), invalid)


def gaussian_focal_loss(logits: Any, labels: Any, *, alpha: float = 2.0, beta: float = 4.0) -> jnp.ndarray:
    r"""Gaussian focal loss per element from logits (CornerNet / CenterNet heatmaps).

    .. math::
        L = \begin{cases} -(1 - p)^\alpha \log p & y = 1 \\
            -(1 - y)^\beta\, p^\alpha \log(1 - p) & y < 1 \end{cases},\qquad p = \sigma(x),

    with :math:`-\log p = \mathrm{softplus}(-x)`, :math:`-\log(1 - p) = \mathrm{softplus}(x)` and the powers of p,
    1 - p in log space where they underflow: loss and gradient are finite for all finite logits and every
    ``alpha, beta >= 0``. Only y == 1 exactly is a peak (CenterNet's ``gt.eq(1)``). The per-element losses are
    not divided by the number of peaks (do that when reducing). float16 / bfloat16 logits are computed (and
    returned) in float32. Same semantics as ``focalkit.gaussian_focal_loss`` with ``reduction="none"``.

    Args:
        logits: floating array of any shape (a heatmap's logits).
        labels: Gaussian heatmap targets in ``[0, 1]``, 1 at the peaks, broadcastable to the logits' shape;
            constants (no gradient flows into them).
        alpha: exponent of (1 - p) on peaks and of p elsewhere, a static Python number ``>= 0`` (2).
        beta: exponent of (1 - y) on non-peaks, a static Python number ``>= 0`` (4).

    Returns:
        Per-element losses of the logits' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import gaussian_focal_loss
        >>> gaussian_focal_loss(jnp.array([2.0, -1.0]), jnp.array([1.0, 0.3])).shape
        (2,)

    References:
        H. Law, J. Deng. "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018, arXiv:1808.01244;
        X. Zhou, D. Wang, P. Krahenbuhl. "Objects as Points", arXiv:1904.07850.
    """
    a = check_nonnegative("alpha", alpha)
    b = check_nonnegative("beta", beta)
    x, y, invalid = _prepare(logits, labels)
    positive = _power(_sigmoid(-x), -_softplus(x), a) * _softplus(-x)
    negative = (1 - y) ** b * _power(_sigmoid(x), -_softplus(-x), a) * _softplus(x)
    return mark_invalid(jnp.where(y == 1, positive, negative), invalid)
