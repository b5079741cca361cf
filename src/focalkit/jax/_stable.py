"""Numerically careful primitives shared by the JAX losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from focalkit.semantics import LOG_SPACE_BELOW as TINY

__all__ = ["TINY", "sigmoid", "softplus"]


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
