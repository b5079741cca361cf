"""Binary focal loss from probabilities for JAX, with a closed-form ``custom_jvp``."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from focalkit.jax._checks import as_array, check_gamma, mark_invalid, unit_interval
from focalkit.jax._sigmoid import alpha_weight, prepare

__all__ = ["binary_focal_loss"]


def _terms(p: jnp.ndarray, y: jnp.ndarray, gamma: float, tiny: float, order: int) -> dict[str, jnp.ndarray]:
    """L = u^g BCE(p, y), u = p (1 - y) + (1 - p) y, and up to ``order`` its partial derivatives in p and y.

    p and 1 - p are clamped at ``tiny`` (the input dtype's smallest normal number) inside the logarithms only, as in
    the PyTorch core: that acts only where a probability has underflowed to 0 or rounded to 1. log(1 - p) is
    evaluated as log1p(-p). With s = du/dp = 1 - 2y, w = du/dy = 1 - 2p, B1 = dBCE/dp = (1 - y)/(1 - p) - y/p,
    B2 = d2BCE/dp2 = (1 - y)/(1 - p)^2 + y/p^2, By = dBCE/dy = log(1 - p) - log p, Bpy = -1/(1 - p) - 1/p:

        L_p  = u^g (g s BCE/u + B1)                L_y = u^g (g w BCE/u + By)
        L_pp = u^(g-1) (g (g - 1) s^2 BCE/u + 2 g s B1) + u^g B2
        L_py = u^(g-1) (-2 g BCE + g (g - 1) s w BCE/u + g s By + g w B1) + u^g Bpy
        L_yy = u^(g-1) (g (g - 1) w^2 BCE/u + 2 g w By)

    BCE/u is taken as its limit 1 where u = 0 (p = y in {0, 1}). There u^(g - 1) is infinite for 0 < g < 1 (so is
    the true L_pp); it is evaluated at u = tiny, so the second derivatives stay finite. Where a clamp is active the
    clamped logarithm's own derivatives of second order are 0 (B2, Bpy, and B1 inside second derivatives), as in
    the PyTorch core's double backward: the first derivative there is the core's closed form (1 / tiny).
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
    g = gamma
    u_g = jnp.ones_like(u) if g == 0.0 else u**g
    out = {"loss": u_g * bce}
    if order < 1:
        return out
    b1 = (1 - y) / q_hat - y / p_hat
    b_y = log_q - log_p
    nz = u > 0
    # BCE / u -> 1 where u = 0 (only p = y in {0, 1}); there u^g BCE/u -> 0 for gamma > 0 anyway.
    bce_u = jnp.where(nz, bce / jnp.where(nz, u, 1.0), 1.0)
    s, w = 1 - 2 * y, q - p
    if g == 0.0:
        out["dx"], out["dy"] = b1, b_y
    else:
        out["dx"] = u_g * (g * s * bce_u + b1)
        out["dy"] = u_g * (g * w * bce_u + b_y)
    if order < 2:
        return out
    # second-order derivatives of the clamped logarithms: 0 where the clamp is active
    p_in, q_in = p >= tiny, q >= tiny
    inv_p = jnp.where(p_in, 1.0 / p_hat, 0.0)
    inv_q = jnp.where(q_in, 1.0 / q_hat, 0.0)
    b1_flat = (1 - y) * inv_q - y * inv_p
    b_py = -inv_q - inv_p

    def weighted_b2(weight: jnp.ndarray) -> jnp.ndarray:
        # weight * B2, multiplied in an order that does not overflow where the product is representable
        return ((weight * (1 - y)) * inv_q) * inv_q + ((weight * y) * inv_p) * inv_p

    if g == 0.0:
        out["dxx"], out["dxy"], out["dyy"] = weighted_b2(jnp.ones_like(u)), b_py, jnp.zeros_like(u)
        return out
    u_gm1 = jnp.maximum(u, tiny) ** (g - 1)
    out["dxx"] = u_gm1 * (g * (g - 1) * s * s * bce_u) + (u_gm1 * (2 * g * s)) * b1_flat + weighted_b2(u_g)
    out["dxy"] = u_gm1 * (-2 * g * bce + g * (g - 1) * s * w * bce_u + g * s * b_y + g * w * b1_flat) + u_g * b_py
    out["dyy"] = u_gm1 * (g * (g - 1) * w * w * bce_u + 2 * g * w * b_y)
    return out


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _with_grads(
    p: jnp.ndarray, y: jnp.ndarray, gamma: float, tiny: float
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(L, dL/dp, dL/dy) from one evaluation; its derivative is made of the closed-form second derivatives."""
    t = _terms(p, y, gamma, tiny, order=1)
    return t["loss"], t["dx"], t["dy"]


def _with_grads_jvp(gamma: float, tiny: float, primals: tuple, tangents: tuple) -> tuple[tuple, tuple]:
    p, y = primals
    p_dot, y_dot = tangents
    t = _terms(p, y, gamma, tiny, order=2)
    zero = jnp.zeros_like(t["loss"])
    loss_dot, dx_dot, dy_dot = zero, zero, zero
    if not isinstance(p_dot, SymbolicZero):
        loss_dot = loss_dot + t["dx"] * p_dot
        dx_dot, dy_dot = dx_dot + t["dxx"] * p_dot, dy_dot + t["dxy"] * p_dot
    if not isinstance(y_dot, SymbolicZero):
        loss_dot = loss_dot + t["dy"] * y_dot
        dx_dot, dy_dot = dx_dot + t["dxy"] * y_dot, dy_dot + t["dyy"] * y_dot
    return (t["loss"], t["dx"], t["dy"]), (loss_dot, dx_dot, dy_dot)


_with_grads.defjvp(_with_grads_jvp, symbolic_zeros=True)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _focal(p: jnp.ndarray, y: jnp.ndarray, gamma: float, tiny: float) -> jnp.ndarray:
    return _terms(p, y, gamma, tiny, order=0)["loss"]


def _focal_jvp(gamma: float, tiny: float, primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    p, y = primals
    p_dot, y_dot = tangents
    loss, dx, dy = _with_grads(p, y, gamma, tiny)
    out = jnp.zeros_like(loss)
    if not isinstance(p_dot, SymbolicZero):
        out = out + dx * p_dot
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
    :math:`u = 1 - p_t`, and the second derivatives are closed forms supplied through :func:`jax.custom_jvp`; the
    Hessian is finite at ``p`` = 0 and 1 (at ``p = y`` its limit, evaluated at ``1 - p_t = tiny`` where the limit is
    infinite, i.e. for 0 < gamma < 1) and overflows only where the true value exceeds the dtype's range. Same semantics as ``focalkit.binary_focal_loss`` with ``reduction="none"``; probabilities, labels
    and alpha values outside ``[0, 1]`` raise where readable and give NaN where traced (see
    :func:`sigmoid_focal_loss`).

    Args:
        probs: probabilities in ``[0, 1]``, floating array of any shape.
        labels: binary or soft targets in ``[0, 1]``, broadcastable to the shape of ``probs``.
        alpha: None (no weighting; also a negative number), a number in ``[0, 1]``, or an array of values in
            ``[0, 1]`` broadcastable to the shape of ``probs`` (e.g. per-class weights of shape ``(C,)``).
        gamma: focusing parameter, a static Python number ``>= 0``.

    Returns:
        Per-element losses of the shape of ``probs``.

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
    p_in = as_array("probs", probs, "a floating-point array")
    p, y, a, invalid = prepare("probs", p_in, labels, alpha)
    tiny = float(jnp.finfo(p_in.dtype).tiny)  # of the input dtype: float16 probabilities underflow at 6e-5
    p_invalid = unit_interval("probs", probs, p)
    if p_invalid is not None:
        p = jnp.where(p_invalid, 0.5, p).astype(p.dtype)
        invalid = p_invalid if invalid is None else invalid | p_invalid
    loss = _focal(p, y, g, tiny)
    w = alpha_weight(a, y)
    return mark_invalid(loss if w is None else w * loss, invalid)
