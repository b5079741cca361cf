"""Numerically careful primitives shared by the JAX losses."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from focalkit.semantics import LOG_SPACE_BELOW as TINY

__all__ = ["TINY", "excess", "log_softmax_parts", "power", "sigmoid", "softplus"]


@jax.custom_jvp
def sigmoid(x: jnp.ndarray) -> jnp.ndarray:
    """sigmoid(x) with derivative sigmoid(x) sigmoid(-x); jax.nn.sigmoid's t (1 - t) loses it where t rounds to 1."""
    return jax.nn.sigmoid(x)


@sigmoid.defjvp
def _sigmoid_jvp(primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    (x,), (x_dot,) = primals, tangents
    p = sigmoid(x)
    return p, p * sigmoid(-x) * x_dot


@jax.custom_jvp
def softplus(z: jnp.ndarray) -> jnp.ndarray:
    """log(1 + exp(z)) with derivative :func:`sigmoid` (so every higher derivative is a product of sigmoids).

    jax.nn.softplus's own derivative is exp(z - softplus(z)); its second derivative is then 1 - sigmoid(z) computed
    by cancellation: 0 once sigmoid(z) rounds to 1 (z > 17 in float32) and ~15 % off already at z = 16.
    """
    return jax.nn.softplus(z)


@softplus.defjvp
def _softplus_jvp(primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    (z,), (z_dot,) = primals, tangents
    return softplus(z), sigmoid(z) * z_dot


def power(prob: jnp.ndarray, log_prob: jnp.ndarray, k: float) -> jnp.ndarray:
    """prob^k for a probability: pow where prob > 1e-30 (accurate: error k ulps of prob, not k |log prob| ulps as
    exp(k log prob) would have), exp(k log prob) below, where pow's derivative k prob^(k - 1) would overflow."""
    if k == 0.0:
        return jnp.ones_like(prob)
    big = prob > TINY
    return jnp.where(big, jnp.where(big, prob, 1.0) ** k, jnp.exp(k * log_prob))


# (-1)^k / k! for k = 2 .. 13: s - (1 - e^-s) = s^2 sum_k c_k s^(k - 2), truncation below 1e-9 relative for s < 1
_EXCESS_SERIES = [(-1.0) ** k / math.factorial(k) for k in range(2, 14)]
_EXCESS_SERIES_BELOW = 1.0


def excess(s: jnp.ndarray) -> jnp.ndarray:
    """g(s) = s - (1 - exp(-s)) >= 0 for s >= 0, without cancellation: a Taylor series below s = 1 (where
    s + expm1(-s) would lose up to all its digits), s + expm1(-s) above (at most a factor 2.7 of cancellation).

    It is the part of -log p - (1 - p) (s = -log p) that remains when the Poly-1 term with epsilon < 0 is split
    into non-negative terms. Both branches see finite placeholders, so autodiff is finite everywhere.
    """
    small = s < _EXCESS_SERIES_BELOW
    t = jnp.where(small, s, 0.0)
    acc = jnp.full_like(t, _EXCESS_SERIES[-1])
    for coefficient in reversed(_EXCESS_SERIES[:-1]):
        acc = acc * t + coefficient
    big = jnp.where(small, 1.0, s)
    return jnp.where(small, t * t * acc, big + jnp.expm1(-big))


def log_softmax_parts(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(log p, 1 - p, log(1 - p)) per class of p = softmax(x) over the last axis (at least 2 classes).

    For the row's largest logit a (the class whose p may round to 1), everything comes from
    d = log sum_{j != a} e^{x_j} - x_a accumulated directly (not as S - e^{x_a}): log p_a = -softplus(d),
    1 - p_a = sigmoid(d), log(1 - p_a) = -softplus(-d), so neither 1 - p_a nor log p_a cancels. Every other class
    has p_c <= 1/2: log p_c = (x_c - m) - log sum_j e^{x_j - m}, 1 - p_c = -expm1(log p_c),
    log(1 - p_c) = log1p(-p_c), all without cancellation. The branch not taken is fed a finite placeholder, so
    autodiff is finite for all finite logits.
    """
    num_classes = x.shape[-1]
    is_max = jnp.arange(num_classes) == jnp.argmax(x, axis=-1)[..., None]
    x_max = jnp.sum(jnp.where(is_max, x, 0.0), axis=-1, keepdims=True)
    x_other = jnp.where(is_max, -jnp.inf, x)
    m_other = jax.lax.stop_gradient(jnp.max(x_other, axis=-1, keepdims=True))
    d = (m_other - x_max) + jnp.log(jnp.sum(jnp.exp(x_other - m_other), axis=-1, keepdims=True))
    shift = jax.lax.stop_gradient(x_max)
    log_sum = jnp.log(jnp.sum(jnp.exp(x - shift), axis=-1, keepdims=True))
    log_p = jnp.where(is_max, -softplus(d), (x - shift) - log_sum)
    p_small = jnp.where(is_max, 0.0, jnp.exp(jnp.where(is_max, 0.0, log_p)))  # <= 1/2
    one_minus_p = jnp.where(is_max, sigmoid(d), 1.0 - p_small)
    log_one_minus_p = jnp.where(is_max, -softplus(-d), jnp.log1p(-p_small))
    return log_p, one_minus_p, log_one_minus_p
