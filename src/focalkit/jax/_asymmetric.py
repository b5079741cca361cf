"""Asymmetric Loss for JAX (Ridnik, Ben-Baruch et al. 2021): multi-label on logits with a closed-form ``custom_jvp``,
and the authors' single-label (softmax) variant."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from focalkit.jax._checks import (
    check_flag,
    check_ignore_index,
    check_nonnegative,
    check_unit_number,
    class_index_labels,
    class_logits,
    float_labels,
    float_logits,
    mark_invalid,
)
from focalkit.jax._stable import log_softmax_parts, power
from focalkit.jax._stable import sigmoid as _sigmoid
from focalkit.jax._stable import softplus as _softplus

__all__ = ["asymmetric_loss", "asymmetric_loss_single_label"]


def _shift(p: jnp.ndarray, clip: float) -> jnp.ndarray:
    """p - clip with the margin split into its float32 value and the rest: p - float32(clip) is exact where p is
    within a factor 2 of the margin (where the difference is small), so only the rounding of p remains."""
    if p.dtype == jnp.float64:
        return p - clip
    high = float(np.float32(clip))
    return (p - high) - (clip - high)


def _terms(x: jnp.ndarray, y: jnp.ndarray, gamma_pos: float, gamma_neg: float, clip: float, detach: bool,
           with_grad: bool) -> tuple[jnp.ndarray, ...]:
    """Loss, and if asked d loss / dx and d loss / dy, in the closed forms of the PyTorch core.

    With s+ = softplus(x) = -log(1 - p), s- = softplus(-x) = -log p, q = 1 - p = sigmoid(-x):

        L = y (1 - p)^g+ s- + (1 - y) p_m^g- l,   l = -log(1 - p_m),  p_m = max(p - m, 0),  1 - p_m = q + m
        dL/dx = -y (1 - p)^g+ (g+ p s- + q) + (1 - y) p_m^g- p q (g- l / p_m + 1 / (q + m))     (m > 0)
        dL/dx = -y (1 - p)^g+ (g+ p s- + q) + (1 - y) p^g- (g- q s+ + p)                        (m = 0)
        dL/dy = (1 - p)^g+ s- - p_m^g- l

    l / p_m lies in [1, 1 / m] (limit 1 at p_m = 0), so no p_m^(g- - 1) appears. With ``detach`` the weights
    (1 - p)^g+ and p_m^g- are constants: dL/dx = -y (1 - p)^g+ q + (1 - y) p_m^g- p q / (q + m).
    """
    p, q = _sigmoid(x), _sigmoid(-x)
    s_pos, s_neg = _softplus(x), _softplus(-x)
    w_pos = power(q, -s_pos, gamma_pos)
    if clip > 0:
        shifted = _shift(p, clip)
        live = shifted > 0
        p_m = jnp.where(live, shifted, 0.0)
        q_m = q + clip
        below_half = p_m < 0.5
        neg_ce = jnp.where(below_half, -jnp.log1p(-jnp.where(below_half, p_m, 0.0)), -jnp.log(q_m))
        w_neg = jnp.where(live, jnp.where(live, p_m, 1.0) ** gamma_neg, 0.0)
    else:
        w_neg = power(p, -s_neg, gamma_neg)
        neg_ce = s_pos
    pos_term, neg_term = w_pos * s_neg, w_neg * neg_ce
    loss = y * pos_term + (1 - y) * neg_term
    if not with_grad:
        return (loss,)
    pq = p * q
    if detach:
        grad_pos = -w_pos * q
        grad_neg = w_neg * (pq / q_m if clip > 0 else p)
    else:
        grad_pos = -w_pos * (gamma_pos * p * s_neg + q)
        if clip > 0:
            positive = p_m > 0
            ratio = jnp.where(positive, neg_ce / jnp.where(positive, p_m, 1.0), 1.0)
            grad_neg = w_neg * pq * (gamma_neg * ratio + 1 / q_m)
        else:
            grad_neg = w_neg * (gamma_neg * q * s_pos + p)
    return loss, y * grad_pos + (1 - y) * grad_neg, pos_term - neg_term


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _asymmetric(x: jnp.ndarray, y: jnp.ndarray, gamma_pos: float, gamma_neg: float, clip: float,
                detach: bool) -> jnp.ndarray:
    return _terms(x, y, gamma_pos, gamma_neg, clip, detach, with_grad=False)[0]


def _asymmetric_jvp(gamma_pos: float, gamma_neg: float, clip: float, detach: bool, primals: tuple,
                    tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    x, y = primals
    x_dot, y_dot = tangents
    loss, dx, dy = _terms(x, y, gamma_pos, gamma_neg, clip, detach, with_grad=True)
    out = jnp.zeros_like(loss)
    if not isinstance(x_dot, SymbolicZero):
        out = out + dx * x_dot
    if not isinstance(y_dot, SymbolicZero):
        out = out + dy * y_dot
    return loss, out


_asymmetric.defjvp(_asymmetric_jvp, symbolic_zeros=True)


def asymmetric_loss(
    logits: Any,
    labels: Any,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float | None = 0.05,
    detach_focal_weight: bool = False,
) -> jnp.ndarray:
    r"""Asymmetric Loss (ASL) per element for multi-label classification on logits (Ridnik, Ben-Baruch et al. 2021).

    .. math::
        L = y\,(1 - p)^{\gamma_+}(-\log p) + (1 - y)\,p_m^{\gamma_-}(-\log(1 - p_m)),\qquad
        p = \sigma(x),\ p_m = \max(p - m, 0),

    with the probability margin m = ``clip`` (0 or None: no shift). Everything is taken from the logits in log space:
    :math:`-\log p = \mathrm{softplus}(-x)`, :math:`1 - p = \sigma(-x)`, :math:`1 - p_m = \sigma(-x) + m`, powers of
    probabilities with ``pow`` above 1e-30 and as :math:`e^{k \log p}` below; there is no clamp of p at 1e-8 as in
    the authors' code. The derivative is the closed form of the PyTorch core, supplied through
    :func:`jax.custom_jvp` (also with respect to soft labels, in which the loss is linear): loss and gradient are
    finite for all finite logits (|x| up to 1e4 and beyond) and every ``gamma >= 0``, including ``gamma < 1`` where
    :math:`p_m^{\gamma_- - 1}` alone would be unbounded. Second derivatives are autodiff of that closed form.
    float16 / bfloat16 logits are computed (and returned) in float32. Same semantics as
    ``focalkit.asymmetric_loss`` with ``reduction="none"``.

    Args:
        logits: floating array of any shape, typically ``(N, C)``.
        labels: multi-hot or soft targets in ``[0, 1]``, broadcastable to the logits' shape.
        gamma_pos: focusing exponent of the positive term, a static Python number ``>= 0`` (0 in the paper).
        gamma_neg: focusing exponent of the negative term, a static Python number ``>= 0`` (4 in the paper).
        clip: the probability margin m in ``[0, 1]`` (0.05 in the paper), or None / 0 for no shift.
        detach_focal_weight: treat the focusing weights :math:`(1 - p)^{\gamma_+}` and :math:`p_m^{\gamma_-}` as
            constants in the gradient (the authors' ``disable_torch_grad_focal_loss=True``); the loss is the same.

    Returns:
        Per-element losses of the logits' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import asymmetric_loss
        >>> asymmetric_loss(jnp.array([[2.0, -1.0, 0.5]]), jnp.array([[1.0, 0.0, 0.0]])).shape
        (1, 3)

    Reference:
        T. Ridnik, E. Ben-Baruch, N. Zamir, A. Noy, I. Friedman, M. Protter, L. Zelnik-Manor, "Asymmetric Loss For
        Multi-Label Classification", ICCV 2021, arXiv:2009.14119.
    """
    g_pos = check_nonnegative("gamma_pos", gamma_pos)
    g_neg = check_nonnegative("gamma_neg", gamma_neg)
    m = 0.0 if clip is None else check_unit_number("clip", clip)
    detach = check_flag("detach_focal_weight", detach_focal_weight)
    x = float_logits("logits", logits)
    y, invalid = float_labels("labels", labels, x)
    loss = _asymmetric(x, jnp.broadcast_to(y, x.shape), g_pos, g_neg, m, detach)
    return mark_invalid(loss, invalid)


def asymmetric_loss_single_label(
    logits: Any,
    labels: Any,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    label_smoothing: float = 0.0,
    axis: int = -1,
    ignore_index: int | None = -100,
) -> jnp.ndarray:
    r"""Single-label Asymmetric Loss per example over a softmax (the ASL authors' ``ASLSingleLabel``), integer labels.

    .. math::
        L = -\sum_c q_c\, w_c \log p_c,\qquad p = \mathrm{softmax}(x),\quad
        w_t = (1 - p_t)^{\gamma_+},\ w_c = p_c^{\gamma_-}\ (c \ne t),

    where t is the label and q the one-hot target smoothed as :math:`q (1 - \varepsilon) + \varepsilon / C`
    (:math:`\varepsilon` = ``label_smoothing``; the focusing weights use the unsmoothed target). Without smoothing it
    is the softmax focal loss with :math:`\gamma = \gamma_+`. :math:`\log p_c` and :math:`1 - p_c` come from
    log-space forms that stay accurate when one class dominates (:math:`1 - p` of the largest class is accumulated
    from the other classes), and the powers use ``pow`` above 1e-30 and :math:`e^{k \log p}` below, so plain
    autodiff gives finite gradients for all finite logits and every ``gamma >= 0``. float16 / bfloat16 logits are
    computed (and returned) in float32. Same semantics as ``focalkit.asymmetric_loss_single_label`` with
    ``reduction="none"`` (there the class axis is 1; here it is ``axis``, by default the last).

    Args:
        logits: floating array ``(..., C, ...)`` with the ``C >= 2`` classes along ``axis``.
        labels: integer array of the logits' shape without ``axis``: class indices in ``[0, C)``, or
            ``ignore_index`` (loss 0, gradient 0). Other values raise :class:`~focalkit.InvalidArgumentError` where
            they can be read; where they cannot (under ``jit``, ``vmap``, on an accelerator) their rows give NaN.
        gamma_pos: exponent of :math:`1 - p_t` on the target class, a static Python number ``>= 0``.
        gamma_neg: exponent of :math:`p_c` on the other classes, a static Python number ``>= 0`` (it has no effect
            without label smoothing).
        label_smoothing: a static number in ``[0, 1]`` (the authors' ``eps``, 0.1 in their code; 0 by default, as
            ``F.cross_entropy``).
        axis: the class axis.
        ignore_index: label value of rows to ignore (default -100, as the PyTorch core); None for none.

    Returns:
        Per-example losses of the labels' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import asymmetric_loss_single_label
        >>> x = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> asymmetric_loss_single_label(x, jnp.array([0, 2]), label_smoothing=0.1).shape
        (2,)

    Reference:
        T. Ridnik, E. Ben-Baruch et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021,
        arXiv:2009.14119; ``ASLSingleLabel`` in github.com/Alibaba-MIIL/ASL.
    """
    g_pos = check_nonnegative("gamma_pos", gamma_pos)
    g_neg = check_nonnegative("gamma_neg", gamma_neg)
    eps = check_unit_number("label_smoothing", label_smoothing)
    ignore = check_ignore_index(ignore_index)
    x = class_logits(logits, axis)
    t, valid, invalid = class_index_labels(labels, x, axis, ignore)
    num_classes = x.shape[-1]
    log_p, one_minus_p, log_one_minus_p = log_softmax_parts(x)
    is_target = jnp.arange(num_classes) == t[..., None]
    u = jnp.sum(jnp.where(is_target, one_minus_p, 0.0), axis=-1, keepdims=True)
    log_u = jnp.sum(jnp.where(is_target, log_one_minus_p, 0.0), axis=-1, keepdims=True)
    weight = jnp.where(is_target, power(u, log_u, g_pos), power(jnp.exp(log_p), log_p, g_neg))
    q = jnp.where(is_target, 1.0 - eps + eps / num_classes, eps / num_classes)
    rows = jnp.sum(q * weight * -log_p, axis=-1)
    return mark_invalid(jnp.where(valid, rows, 0.0), invalid)
