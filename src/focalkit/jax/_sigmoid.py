"""Sigmoid focal loss for JAX: per-element, log-space, with a closed-form ``custom_jvp``."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from focalkit.jax._checks import check_alpha, check_gamma, float_labels, float_logits
from focalkit.jax._stable import TINY as _TINY
from focalkit.jax._stable import sigmoid as _sigmoid

__all__ = ["sigmoid_focal_loss"]



def _log_u(log_p: jnp.ndarray, log_q: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """log(1 - p_t) = log(p (1 - y) + (1 - p) y) in log space; finite wherever 1 - p_t > 0 mathematically."""
    pos, neg = y > 0, y < 1
    log_y = jnp.where(pos, jnp.log(jnp.where(pos, y, 1.0)), -jnp.inf)
    log_1my = jnp.where(neg, jnp.log1p(-jnp.where(neg, y, 0.0)), -jnp.inf)
    return jnp.logaddexp(log_1my + log_p, log_y + log_q)


def _terms(x: jnp.ndarray, y: jnp.ndarray, gamma: float, with_grads: bool) -> tuple[Any, ...]:
    """Unweighted focal loss u^g CE and, if asked, its partial derivatives in x and in y (stable closed forms)."""
    p = _sigmoid(x)
    q = _sigmoid(-x)  # 1 - p without cancellation
    # max(x, 0) - x y + log1p(exp(-|x|)), written per sign so that autodiff of it (the Hessian) is exact at x = 0.
    ce = jnp.where(x >= 0, x * (1 - y) + jax.nn.softplus(-x), jax.nn.softplus(x) - x * y)
    if gamma == 0.0:
        loss = ce
        if not with_grads:
            return (loss,)
        return loss, p * (1 - y) - y * q, -x
    u = p * (1 - y) + q * y
    big = u > _TINY
    u_safe = jnp.where(big, u, 1.0)
    log_p, log_q = jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    log_u = _log_u(log_p, log_q, y)
    u_g = jnp.where(big, u_safe**gamma, jnp.exp(gamma * log_u))
    loss = u_g * ce
    if not with_grads:
        return (loss,)
    # r = p (1 - p) / u in [0, 1]
    r = jnp.where(big, p * q / u_safe, jnp.exp(log_p + log_q - log_u))
    dx = u_g * ((p * (1 - y) - y * q) + gamma * (1 - 2 * y) * r * ce)
    ce_pos = ce > 0
    ce_over_u = jnp.where(
        big, ce / u_safe, jnp.exp(jnp.where(ce_pos, jnp.log(jnp.where(ce_pos, ce, 1.0)), -jnp.inf) - log_u)
    )
    dy = u_g * (gamma * (q - p) * ce_over_u - x)
    return loss, dx, dy


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _focal(x: jnp.ndarray, y: jnp.ndarray, gamma: float) -> jnp.ndarray:
    return _terms(x, y, gamma, with_grads=False)[0]


def _focal_jvp(gamma: float, primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    x, y = primals
    x_dot, y_dot = tangents
    loss, dx, dy = _terms(x, y, gamma, with_grads=True)
    out = jnp.zeros_like(loss)
    if not isinstance(x_dot, SymbolicZero):
        out = out + dx * x_dot
    if not isinstance(y_dot, SymbolicZero):
        out = out + dy * y_dot
    return loss, out


_focal.defjvp(_focal_jvp, symbolic_zeros=True)


def alpha_weight(alpha: Any, y: jnp.ndarray) -> Any:
    """alpha_t = alpha y + (1 - alpha)(1 - y), or None when alpha is None."""
    if alpha is None:
        return None
    return alpha * y + (1 - alpha) * (1 - y)


def sigmoid_focal_loss(
    logits: Any,
    labels: Any,
    *,
    alpha: float | Any | None = None,
    gamma: float = 2.0,
) -> jnp.ndarray:
    r"""Sigmoid focal loss per element, computed in log space (Lin et al. 2017, eq. 5).

    .. math::
        p = \sigma(x),\quad u = 1 - p_t = p(1 - y) + (1 - p)y,\quad
        \mathrm{CE} = \max(x, 0) - xy + \log(1 + e^{-|x|}),\quad
        \mathrm{FL} = \alpha_t\, u^\gamma\, \mathrm{CE},\quad \alpha_t = \alpha y + (1 - \alpha)(1 - y).

    The derivative is the closed form
    :math:`\partial\mathrm{FL}/\partial x = \alpha_t u^\gamma[(p - y) + \gamma(1 - 2y)\,r\,\mathrm{CE}]`,
    :math:`r = p(1 - p)/u`, supplied through :func:`jax.custom_jvp`, so ``jax.grad``, ``jax.jacfwd``,
    ``jax.hessian``, ``jit`` and ``vmap`` all work. Loss, gradient and Hessian stay finite for every
    ``gamma >= 0`` and all finite logits (including +-1e4), with binary or soft labels. float16/bfloat16 logits are
    computed in float32 and the loss is returned in float32. Semantics equal ``focalkit.sigmoid_focal_loss`` with
    ``reduction="none"``.

    Args:
        logits: floating array of any shape ``(...)``.
        labels: binary or soft targets in ``[0, 1]``, broadcastable to ``logits`` (cast to the logits' dtype).
        alpha: None (no weighting; also a negative number), a number in ``[0, 1]`` weighting positives, or an array
            broadcastable to the logits (e.g. per-class weights of shape ``(C,)`` along the last axis).
        gamma: focusing parameter, a static Python number ``>= 0``; 0 gives the (alpha-balanced) cross-entropy.

    Returns:
        Per-element losses of the broadcast shape of ``logits`` and ``labels``.

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import sigmoid_focal_loss
        >>> loss = sigmoid_focal_loss(jnp.array([2.0, -1.0]), jnp.array([1.0, 0.0]), alpha=0.25)
        >>> loss.shape
        (2,)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    g = check_gamma(gamma)
    a = check_alpha(alpha, family="sigmoid")
    x = float_logits("logits", logits)
    y = float_labels("labels", labels, x)
    shape = jnp.broadcast_shapes(x.shape, y.shape)
    x, y = jnp.broadcast_to(x, shape), jnp.broadcast_to(y, shape)
    loss = _focal(x, y, g)
    w = alpha_weight(a, y)
    return loss if w is None else w * loss
