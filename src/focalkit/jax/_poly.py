"""Poly-1 losses for JAX (Leng et al. 2022, PolyLoss): the Poly-1 cross-entropy over a softmax and the Poly-1 focal
loss over a sigmoid, on logits."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from focalkit import semantics
from focalkit.errors import argument_error
from focalkit.jax._checks import (
    as_array,
    check_class_weight,
    check_gamma,
    check_ignore_index,
    check_static_number,
    check_unit_number,
    class_index_labels,
    class_logits,
    mark_invalid,
    unit_interval,
)
from focalkit.jax._sigmoid import _log_u, alpha_weight, prepare
from focalkit.jax._stable import TINY as _TINY
from focalkit.jax._stable import excess, log_softmax_parts, power
from focalkit.jax._stable import sigmoid as _sigmoid
from focalkit.jax._stable import softplus as _softplus

__all__ = ["poly1_cross_entropy", "poly1_focal_loss"]


def _check_epsilon(epsilon: Any) -> float:
    """The Poly-1 coefficient: a static finite number >= -1 (the paper's domain)."""
    value = check_static_number("epsilon", epsilon)
    return semantics.check_number("epsilon", value, minimum=-1.0)


def _term(a: Any, s: jnp.ndarray, one_minus_exp: jnp.ndarray, epsilon: float) -> jnp.ndarray:
    """a s + epsilon (1 - e^-s); for epsilon < 0 as (a + epsilon) s + (-epsilon) g(s), g(s) = s - (1 - e^-s) >= 0,
    so that the cancellation of s against 1 - e^-s as s -> 0 never happens (for a = 1: a sum of non-negative terms)."""
    if epsilon >= 0:
        return a * s + epsilon * one_minus_exp
    return (a + epsilon) * s + (-epsilon) * excess(s)


def poly1_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    epsilon: float = 1.0,
    weight: Any | None = None,
    label_smoothing: float = 0.0,
    axis: int = -1,
    ignore_index: int | None = -100,
) -> jnp.ndarray:
    r"""Poly-1 cross-entropy per example (Leng et al. 2022, PolyLoss), with the conventions of ``F.cross_entropy``.

    .. math::
        L = \sum_c w_c\, q_c \left[-\log p_c + \epsilon\,(1 - p_c)\right],\qquad p = \mathrm{softmax}(x),

    where q is the one-hot target (integer labels) or the given class probabilities, either smoothed as
    :math:`q (1 - \varepsilon) + \varepsilon / C`, and w the per-class ``weight``. Without ``weight`` and for targets
    summing to 1 this is the paper's :math:`\mathrm{CE} + \epsilon (1 - p_t)` with :math:`p_t = \sum_c q_c p_c`.
    :math:`\log p_c` and :math:`1 - p_c` come from log-space forms that stay accurate when one class dominates; for
    ``epsilon < 0`` each term is :math:`(1 + \epsilon) s + (-\epsilon)(s - (1 - e^{-s}))`, :math:`s = -\log p_c`, a
    sum of non-negative terms (accurate where :math:`-\log p_t` and :math:`\epsilon(1 - p_t)` nearly cancel).
    Differentiated by plain autodiff, finite for all finite logits. ``epsilon = 0`` gives the cross-entropy
    (``optax.softmax_cross_entropy_with_integer_labels``). float16 / bfloat16 logits are computed (and returned) in
    float32. Same semantics as ``focalkit.poly1_cross_entropy`` with ``reduction="none"`` (class axis ``axis``, by
    default the last); its ``"mean"`` divides by the sum of ``weight[label]`` over the rows that are not ignored.

    Args:
        logits: floating array ``(..., C, ...)`` with the ``C >= 2`` classes along ``axis``.
        labels: integer class indices of the logits' shape without ``axis`` (in ``[0, C)`` or ``ignore_index``:
            loss 0, gradient 0), or floating class probabilities in ``[0, 1]`` of the logits' shape. Values that
            cannot be read (under ``jit``, ``vmap``, on an accelerator) are not checked: bad rows give NaN.
        epsilon: the Poly-1 coefficient, a static number ``>= -1`` (1 by default; 0 gives the cross-entropy).
        weight: None or per-class weights ``(C,)``, finite and ``>= 0`` (``F.cross_entropy``'s ``weight``).
        label_smoothing: a static number in ``[0, 1]``, as ``F.cross_entropy``.
        axis: the class axis.
        ignore_index: label value of rows to ignore with integer labels (default -100); None for none.

    Returns:
        Per-example losses of the logits' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import poly1_cross_entropy
        >>> x = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> poly1_cross_entropy(x, jnp.array([0, 2]), epsilon=1.0).shape
        (2,)

    Reference:
        Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov, "PolyLoss: A Polynomial Expansion
        Perspective of Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
    """
    eps = _check_epsilon(epsilon)
    smoothing = check_unit_number("label_smoothing", label_smoothing)
    ignore = check_ignore_index(ignore_index)
    x = class_logits(logits, axis)
    num_classes = x.shape[-1]
    w, w_invalid = check_class_weight(weight, num_classes)
    raw = as_array("labels", labels, "integer class indices or floating class probabilities")
    valid = None
    if jnp.issubdtype(raw.dtype, jnp.floating):
        logits_shape = list(x.shape[:-1])
        logits_shape.insert(axis % x.ndim, num_classes)
        if tuple(raw.shape) != tuple(logits_shape):
            raise argument_error("labels", f"class probabilities of the logits' shape {tuple(logits_shape)}",
                                 tuple(raw.shape))
        q = jnp.moveaxis(raw, axis, -1).astype(x.dtype)
        invalid = unit_interval("labels", labels, q)
        if invalid is not None:
            q = jnp.where(invalid, 0.0, q)
            invalid = jnp.any(invalid, axis=-1)
    else:
        t, valid, invalid = class_index_labels(labels, x, axis, ignore)
        q = (jnp.arange(num_classes) == t[..., None]).astype(x.dtype)
    if smoothing:
        q = q * (1 - smoothing) + smoothing / num_classes
    if w is not None:
        q = q * w.astype(x.dtype)
    log_p, one_minus_p, _ = log_softmax_parts(x)
    rows = jnp.sum(q * _term(1.0, -log_p, one_minus_p, eps), axis=-1)
    if valid is not None:
        rows = jnp.where(valid, rows, 0.0)
    if w_invalid is not None:
        bad_weight = jnp.any(w_invalid)
        invalid = bad_weight if invalid is None else invalid | bad_weight
    return mark_invalid(rows, invalid)


def _focal_terms(x: jnp.ndarray, y: jnp.ndarray, a_t: jnp.ndarray, gamma: float, epsilon: float,
                 with_grad: bool) -> tuple[jnp.ndarray, ...]:
    """Loss and, if asked, d loss / dx in the closed forms of the PyTorch core.

    With u = 1 - p_t = p (1 - y) + (1 - p) y, s+ = softplus(x), s- = softplus(-x), q = 1 - p:

        L = u^g V,   V = a_t CE + eps u = y (a_t s- + eps q) + (1 - y)(a_t s+ + eps p)
        dL/dx = u^g [g (1 - 2y) r V - y q (a_t + eps p) + (1 - y) p (a_t + eps q)],   r = p q / u in [0, 1]

    (a_t + eps p written as (a_t + eps) + (-eps) q for eps < 0, and likewise). No u^(g - 1) appears; u^g and r are
    taken from log space where u falls below 1e-30.
    """
    p, q = _sigmoid(x), _sigmoid(-x)
    s_pos, s_neg = _softplus(x), _softplus(-x)
    log_u = _log_u(-s_neg, -s_pos, y)
    u = p * (1 - y) + q * y
    u_g = power(u, log_u, gamma)
    value = y * _term(a_t, s_neg, q, epsilon) + (1 - y) * _term(a_t, s_pos, p, epsilon)
    loss = u_g * value
    if not with_grad:
        return (loss,)
    big = u > _TINY
    r = jnp.where(big, p * q / jnp.where(big, u, 1.0), jnp.exp(-s_neg - s_pos - log_u))
    if epsilon >= 0:
        slope_pos, slope_neg = a_t + epsilon * p, a_t + epsilon * q
    else:
        slope_pos, slope_neg = (a_t + epsilon) + (-epsilon) * q, (a_t + epsilon) + (-epsilon) * p
    d_value = (1 - y) * p * slope_neg - y * q * slope_pos
    return loss, u_g * (gamma * (1 - 2 * y) * r * value + d_value)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _poly1_focal(x: jnp.ndarray, y: jnp.ndarray, a_t: jnp.ndarray, gamma: float, epsilon: float) -> jnp.ndarray:
    return _focal_terms(x, y, a_t, gamma, epsilon, with_grad=False)[0]


def _poly1_focal_jvp(gamma: float, epsilon: float, primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    x, y, a_t = primals
    x_dot = tangents[0]
    loss, dx = _focal_terms(x, y, a_t, gamma, epsilon, with_grad=True)
    if isinstance(x_dot, SymbolicZero):
        return loss, jnp.zeros_like(loss)
    return loss, dx * x_dot


_poly1_focal.defjvp(_poly1_focal_jvp, symbolic_zeros=True)


def poly1_focal_loss(
    logits: Any,
    labels: Any,
    *,
    epsilon: float = 1.0,
    alpha: float | Any | None = 0.25,
    gamma: float = 2.0,
) -> jnp.ndarray:
    r"""Poly-1 focal loss per element (Leng et al. 2022, PolyLoss), with the conventions of
    ``torchvision.ops.sigmoid_focal_loss``.

    .. math::
        L = lpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(p, y) + \epsilon\, (1 - p_t)^{\gamma + 1},\qquad
        p = \sigma(x),\ 1 - p_t = p (1 - y) + (1 - p) y,

    the focal loss of :func:`sigmoid_focal_loss` plus epsilon times the leading polynomial term, which is not
    alpha-weighted (as in the paper's code). Computed in log space, with the sum regrouped as
    :math:`(1 - p_t)^\gamma [lpha_t\,\mathrm{BCE} + \epsilon (1 - p_t)]` and, for ``epsilon < 0``, the bracket split
    so that BCE and :math:`\epsilon(1 - p_t)` never cancel. The derivative in the logits is the closed form of the
    PyTorch core (no :math:`(1 - p_t)^{\gamma - 1}` factor), supplied through :func:`jax.custom_jvp`: loss and
    gradient are finite for all finite logits and every ``gamma >= 0``. Labels and alpha are constants (no gradient
    flows into them); second derivatives are autodiff of the closed form. With ``epsilon < 0`` the loss can be
    negative (the paper uses epsilon = -1 for detection). float16 / bfloat16 logits are computed (and returned) in
    float32. Same semantics as ``focalkit.poly1_focal_loss`` with ``reduction="none"``.

    Args:
        logits: floating array of any shape.
        labels: binary or soft targets in ``[0, 1]``, broadcastable to the logits' shape.
        epsilon: the Poly-1 coefficient, a static number ``>= -1``; 0 gives the focal loss.
        alpha: weight of positives in ``[0, 1]`` in the focal term (negatives get ``1 - alpha``); None or a negative
            number disables it; an array of values in ``[0, 1]`` broadcastable to the logits' shape (e.g. per-class
            ``(C,)`` along the last axis).
        gamma: focusing parameter, a static Python number ``>= 0``.

    Returns:
        Per-element losses of the logits' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import poly1_focal_loss
        >>> poly1_focal_loss(jnp.array([[2.0, -1.0, 0.5]]), jnp.array([[1.0, 0.0, 1.0]]), epsilon=1.0).shape
        (1, 3)

    Reference:
        Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions", ICLR 2022,
        arXiv:2204.12511 (Poly-1 focal loss and its code).
    """
    eps = _check_epsilon(epsilon)
    g = check_gamma(gamma)
    x, y, a, invalid = prepare("logits", logits, labels, alpha)
    a_t = alpha_weight(a, y)
    a_t = jnp.ones_like(x) if a_t is None else jnp.broadcast_to(a_t, x.shape).astype(x.dtype)
    y, a_t = jax.lax.stop_gradient(y), jax.lax.stop_gradient(a_t)
    return mark_invalid(_poly1_focal(x, y, a_t, g, eps), invalid)
