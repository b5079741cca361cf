"""Binary focal loss from probabilities for JAX, with a closed-form ``custom_jvp``."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from focalkit.jax._checks import check_alpha, check_gamma, float_labels, float_logits
from focalkit.jax._sigmoid import alpha_weight

__all__ = ["binary_focal_loss"]


def _terms(p: jnp.ndarray, y: jnp.ndarray, gamma: float, tiny: float, with_grads: bool) -> tuple[Any, ...]:
    """u^g BCE(p, y) with u = p (1 - y) + (1 - p) y, and its partial derivatives in p and y.

    p and 1 - p are clamped at ``tiny`` (the input dtype's smallest normal number) inside the logarithms only, as in
    the PyTorch core: that acts only where a probability has underflowed to 0 or rounded to 1. log(1 - p) is
    evaluated as log1p(-p).
    """
    q = 1.0 - p
    p_hat = jnp.maximum(p, tiny)
    q_hat = jnp.maximum(q, tiny)
    one = p >= 1.0
    # log(1 - p) as log1p(-p): log(1 - p) of a rounded 1 - p is off by ~6e-8 / p relative for small p
    log_p = jnp.log(p_hat)
    log_q = jnp.where(one, jnp.log(tiny), jnp.log1p(-jnp.where(one, 0.0, p)))
    bce = 0.0 - (y * log_p + (1 - y) * log_q)  # 0.0 - ...: +0 rather than -0 where the loss vanishes
    u = p * (1 - y) + q * y
    u_g = jnp.ones_like(u) if gamma == 0.0 else u**gamma
    loss = u_g * bce
    if not with_grads:
        return (loss,)
    dbce_dp = (1 - y) / q_hat - y / p_hat
    dbce_dy = log_q - log_p
    if gamma == 0.0:
        return loss, dbce_dp, dbce_dy
    nz = u > 0
    # BCE / u -> 1 where u = 0 (only p = y in {0, 1}); there u^g BCE/u -> 0 for gamma > 0 anyway.
    bce_over_u = jnp.where(nz, bce / jnp.where(nz, u, 1.0), 1.0)
    dp = u_g * (gamma * (1 - 2 * y) * bce_over_u + dbce_dp)
    dy = u_g * (gamma * (q - p) * bce_over_u + dbce_dy)
    return loss, dp, dy


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _focal(p: jnp.ndarray, y: jnp.ndarray, gamma: float, tiny: float) -> jnp.ndarray:
    return _terms(p, y, gamma, tiny, with_grads=False)[0]


def _focal_jvp(gamma: float, tiny: float, primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    p, y = primals
    p_dot, y_dot = tangents
    loss, dp, dy = _terms(p, y, gamma, tiny, with_grads=True)
    out = jnp.zeros_like(loss)
    if not isinstance(p_dot, SymbolicZero):
        out = out + dp * p_dot
    if not isinstance(y_dot, SymbolicZero):
        out = out + dy * y_dot
    return loss, out


_focal.defjvp(_focal_jvp, symbolic_zeros=True)


def binary_focal_loss(
    probs: Any,
    labels: Any,
    *,
    alpha: float | Any | None = 0.25,
    gamma: float = 2.0,
) -> jnp.ndarray:
    r"""Binary focal loss per element from probabilities (Lin et al. 2017, eq. 5).

    .. math::
        p_t = p y + (1 - p)(1 - y),\quad
        \mathrm{FL} = -\alpha_t (1 - p_t)^\gamma \left[y \log p + (1 - y) \log(1 - p)\right].

    No clipping of ordinary probabilities (Keras clips at 1e-7): inside the logarithms only, ``p`` and ``1 - p`` are
    clamped at the smallest normal number of the input dtype (``finfo.tiny``), which acts only where a probability
    has underflowed to 0 or rounded to 1: there the loss saturates at ``-log(tiny)`` (87.3 in float32) instead of
    ``+inf``, as in the PyTorch core. ``p = y`` in ``{0, 1}`` gives loss 0 with a finite gradient for every
    ``gamma >= 0`` (the closed form below has no ``(1 - p_t)^{\gamma - 1}`` factor). Prefer
    :func:`sigmoid_focal_loss` on logits: probabilities cannot resolve logits beyond about +-17 (float32).
    The derivative :math:`\alpha_t u^\gamma[\gamma(1 - 2y)\mathrm{BCE}/u + (1 - y)/(1 - p) - y/p]`,
    :math:`u = 1 - p_t`, is supplied through :func:`jax.custom_jvp`. Same semantics as ``focalkit.binary_focal_loss``
    with ``reduction="none"``.

    Args:
        probs: probabilities in ``[0, 1]``, floating array of any shape.
        labels: binary or soft targets in ``[0, 1]``, broadcastable to ``probs``.
        alpha: None (no weighting; also a negative number), a number in ``[0, 1]``, or an array broadcastable to
            ``probs`` (e.g. per-class weights of shape ``(C,)`` along the last axis).
        gamma: focusing parameter, a static Python number ``>= 0``.

    Returns:
        Per-element losses of the broadcast shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import binary_focal_loss
        >>> binary_focal_loss(jnp.array([0.9, 0.2]), jnp.array([1.0, 0.0]), alpha=0.25).shape
        (2,)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    g = check_gamma(gamma)
    a = check_alpha(alpha, family="sigmoid")
    p_in = jnp.asarray(probs)
    p = float_logits("probs", p_in)
    tiny = float(jnp.finfo(p_in.dtype).tiny)
    y = float_labels("labels", labels, p)
    shape = jnp.broadcast_shapes(p.shape, y.shape)
    p, y = jnp.broadcast_to(p, shape), jnp.broadcast_to(y, shape)
    loss = _focal(p, y, g, tiny)
    w = alpha_weight(a, y)
    return loss if w is None else w * loss
