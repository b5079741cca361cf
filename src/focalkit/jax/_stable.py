"""Numerically careful primitives shared by the JAX losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from focalkit.semantics import LOG_SPACE_BELOW as TINY

__all__ = ["TINY", "sigmoid"]


@jax.custom_jvp
def sigmoid(x: jnp.ndarray) -> jnp.ndarray:
    """sigmoid(x) with derivative sigmoid(x) sigmoid(-x); jax.nn.sigmoid's t (1 - t) loses it where t rounds to 1."""
    return jax.nn.sigmoid(x)


@sigmoid.defjvp
def _sigmoid_jvp(primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    (x,), (x_dot,) = primals, tangents
    p = sigmoid(x)
    return p, p * sigmoid(-x) * x_dot
