"""Measurements of Keras's own focal losses on one Keras back-end; run as a script with KERAS_BACKEND set.

Keras picks its back-end once, at first import, so tests/test_peer_claims.py runs this script in a subprocess per
back-end (``KERAS_BACKEND=torch|jax python tests/keras_peer_claims_check.py OUT.json``) and asserts on the JSON it
writes. The script only measures (``{name: {...}}``; a measurement that raises is recorded as ``{"error": text}``);
every claim about Keras that the README makes is asserted on the pytest side, next to the claims about the other
libraries. Keras 3's focal losses (``keras/src/losses/losses.py``):

- ``BinaryFocalCrossentropy``: p = sigmoid(x) when ``from_logits``; bce = Keras's binary cross-entropy (probabilities
  clipped to [1e-7, 1 - 1e-7]); ``(1 - p_t) ** gamma`` with p_t = y p + (1 - y)(1 - p) on the unclipped p; alpha_t
  only with ``apply_class_balancing=True``; the mean over the last axis, then the reduction over the batch.
- ``CategoricalFocalCrossentropy``: p = softmax(x) when ``from_logits``, clipped to [1e-7, 1 - 1e-7];
  ``sum_c alpha (1 - p_c) ** gamma (-q_c log p_c)``: alpha (default 0.25) multiplies every term.
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

BACKEND = keras.backend.backend()
RESULTS: dict[str, Any] = {}

# Logit magnitudes probed, from the body of the distribution to far beyond any float32 probability.
MAGNITUDES = [0.0, 1.0, 5.0, 10.0, 15.0, 16.0, 17.0, 20.0, 30.0, 50.0, 100.0, 1e3, 1e4]


def measure(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Run a measurement and record its result, or the traceback if it raised."""
    try:
        RESULTS[fn.__name__] = fn()
    except Exception:  # noqa: BLE001 - reported to the pytest side
        RESULTS[fn.__name__] = {"error": traceback.format_exc()[-3000:]}
    return fn


def value_and_grad(f: Callable[[Any], Any], x: np.ndarray) -> tuple[list, list]:
    """f(x) and d sum(f(x)) / dx with the back-end's own autodiff (x float32); nested lists, NaN kept."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def both(z: Any) -> tuple[Any, Any]:
            out, pullback = jax.vjp(f, z)
            return out, pullback(jnp.ones_like(out))[0]

        out, grad = jax.jit(both)(jnp.asarray(x, dtype=jnp.float32))
        return np.asarray(out, np.float64).tolist(), np.asarray(grad, np.float64).tolist()
    if BACKEND == "torch":
        import torch

        xt = torch.tensor(np.asarray(x, dtype=np.float32), requires_grad=True)
        out = f(xt)
        (grad,) = torch.autograd.grad(out.sum(), xt)
        return out.detach().double().numpy().tolist(), grad.double().numpy().tolist()
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(np.asarray(x, dtype=np.float32))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = f(xt)
            total = tf.reduce_sum(out)
        return np.asarray(out, np.float64).tolist(), np.asarray(tape.gradient(total, xt), np.float64).tolist()
    raise RuntimeError(f"unknown backend {BACKEND}")


def to_list(x: Any) -> list:
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64).tolist()


@measure
def categorical_from_logits_tails() -> dict:
    """Rows of 3 logits, target class 0: wrong rows (x_t = -s, others 0) and right rows (x_t = +s, others 0), for
    each s in MAGNITUDES; alpha = 1, so the loss is (1 - p_t)^gamma (-log p_t) with Keras's clipping."""
    out: dict[str, Any] = {"magnitudes": MAGNITUDES, "p_t_wrong": [1.0 / (1.0 + 2.0 * math.exp(min(s, 700.0)))
                                                                    for s in MAGNITUDES]}
    q = np.zeros((len(MAGNITUDES), 3), np.float32)
    q[:, 0] = 1.0
    for gamma in (0.5, 2.0):
        fn = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=gamma, from_logits=True, reduction="none")
        for side, sign in (("wrong", -1.0), ("right", 1.0)):
            x = np.zeros((len(MAGNITUDES), 3), np.float32)
            x[:, 0] = sign * np.asarray(MAGNITUDES, np.float32)
            loss, grad = value_and_grad(lambda z: fn(q, z), x)
            out[f"gamma={gamma},{side}"] = {"loss": loss, "grad": grad}
    return out


@measure
def categorical_from_probabilities_below_the_clip() -> dict:
    """Probability rows (p_t, 1 - p_t, 0) with p_t from 1e-3 down to 1e-30, target class 0, alpha = 1, gamma = 2."""
    p_t = [1e-3, 1e-5, 1e-6, 2e-7, 5e-8, 1e-9, 1e-12, 1e-20, 1e-30]
    p = np.array([[v, 1.0 - v, 0.0] for v in p_t], np.float32)
    q = np.zeros_like(p)
    q[:, 0] = 1.0
    fn = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=2.0, reduction="none")
    loss, grad = value_and_grad(lambda z: fn(q, z), p)
    return {"p_t": p_t, "loss": loss, "grad": grad}


@measure
def reductions() -> dict:
    """The default reduction ("sum_over_batch_size") against the unreduced values, on (4, 5) inputs."""
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, (4, 5)).astype(np.float32)
    y = (rng.uniform(size=(4, 5)) < 0.3).astype(np.float32)
    binary = keras.losses.BinaryFocalCrossentropy(gamma=2.0)
    # one element per row: the per-sample mean over the last axis is the element itself
    elements = keras.losses.BinaryFocalCrossentropy(gamma=2.0, reduction="none")(y.reshape(-1, 1), p.reshape(-1, 1))
    probs = p / p.sum(axis=1, keepdims=True)
    onehot = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 4)]
    categorical = keras.losses.CategoricalFocalCrossentropy(gamma=2.0)
    rows = keras.losses.CategoricalFocalCrossentropy(gamma=2.0, reduction="none")(onehot, probs)
    return {"binary_mean": float(to_list(binary(y, p))), "binary_elements": to_list(elements),
            "categorical_mean": float(to_list(categorical(onehot, probs))), "categorical_rows": to_list(rows)}


@measure
def binary_alpha_defaults() -> dict:
    """alpha without apply_class_balancing, and the categorical default alpha, on the same inputs."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, (6, 3)).astype(np.float32)
    y = (rng.uniform(size=(6, 3)) < 0.5).astype(np.float32)
    kw = dict(gamma=2.0, reduction="none")
    bfc = keras.losses.BinaryFocalCrossentropy
    probs = p / p.sum(axis=1, keepdims=True)
    onehot = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    cfc = keras.losses.CategoricalFocalCrossentropy
    return {
        "labels": y.tolist(),
        "alpha_0.9_unbalanced": to_list(bfc(alpha=0.9, **kw)(y, p)),
        "alpha_0.1_unbalanced": to_list(bfc(alpha=0.1, **kw)(y, p)),
        "per_element_unbalanced": to_list(bfc(**kw)(y.reshape(-1, 1), p.reshape(-1, 1))),
        "per_element_balanced_0.9": to_list(bfc(apply_class_balancing=True, alpha=0.9, **kw)(y.reshape(-1, 1),
                                                                                            p.reshape(-1, 1))),
        "categorical_default": to_list(cfc(**kw)(onehot, probs)),
        "categorical_alpha_1": to_list(cfc(alpha=1.0, **kw)(onehot, probs)),
    }


@measure
def binary_from_logits_extremes() -> dict:
    """BinaryFocalCrossentropy from logits, alpha 0.25 balanced, at a confidently wrong positive (x = -30, y = 1) for
    gamma 0, and at confidently right elements (x = +-30 with y = 1 / 0) for gamma 0.5."""
    out = {}
    wrong = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=0.0, from_logits=True,
                                                 reduction="none")
    loss, grad = value_and_grad(lambda z: wrong(np.array([[1.0]], np.float32), z), np.array([[-30.0]], np.float32))
    out["wrong_positive_gamma_0"] = {"loss": loss, "grad": grad}
    right = keras.losses.BinaryFocalCrossentropy(gamma=0.5, from_logits=True, reduction="none")
    y = np.array([[1.0], [0.0]], np.float32)
    loss, grad = value_and_grad(lambda z: right(y, z), np.array([[30.0], [-30.0]], np.float32))
    out["right_gamma_0.5"] = {"loss": loss, "grad": grad}
    return out


@measure
def binary_right_negative_probability() -> dict:
    """BinaryFocalCrossentropy on the probability of a confidently right negative: p = 2.1e-9 (the float32 sigmoid
    of -20), y = 0, alpha 0.25 balanced, gamma 0; the true loss is 0.75 softplus(-20) = 1.5e-9."""
    fn = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=0.0, reduction="none")
    p = np.array([[1.0 / (1.0 + math.exp(20.0))]], np.float32)
    loss, grad = value_and_grad(lambda z: fn(np.zeros((1, 1), np.float32), z), p)
    return {"p": float(p[0, 0]), "loss": loss, "grad": grad}


@measure
def binary_nan_gradient_onset() -> dict:
    """Smallest |x| on a 1/64 grid of [8, 30] where the gradient of BinaryFocalCrossentropy(gamma=0.5, from_logits)
    is not finite, on the confidently right side (x > 0 with y = 1; x < 0 with y = 0), and whether it stays so."""
    grid = np.arange(8.0, 30.0, 1.0 / 64.0).astype(np.float32)
    fn = keras.losses.BinaryFocalCrossentropy(gamma=0.5, from_logits=True, reduction="none")
    out = {}
    for side, sign, label in (("y=1", 1.0, 1.0), ("y=0", -1.0, 0.0)):
        x = (sign * grid).reshape(-1, 1)
        y = np.full_like(x, label)
        _, grad = value_and_grad(lambda z: fn(y, z), x)
        bad = ~np.isfinite(np.asarray(grad, np.float64).ravel())
        first = int(np.argmax(bad)) if bad.any() else None
        out[side] = {"first_non_finite": None if first is None else float(grid[first]),
                     "all_non_finite_after": bool(bad[first:].all()) if first is not None else None}
    return out


@measure
def half_precision_inputs() -> dict:
    """float16 inputs to a loss of the default dtype give the float32 value of the same (rounded) numbers."""
    rng = np.random.default_rng(2)
    x16 = (rng.normal(0, 4, (8, 3))).astype(np.float16)
    y = (rng.uniform(size=(8, 3)) < 0.5).astype(np.float32)
    fn = keras.losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=True, reduction="none")
    half = fn(y, keras.ops.convert_to_tensor(x16))
    return {"dtype": str(keras.backend.standardize_dtype(half.dtype)), "from_half": to_list(half),
            "from_float32": to_list(fn(y, x16.astype(np.float32)))}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    text = json.dumps({"backend": BACKEND, "keras": keras.__version__, "results": RESULTS}, indent=1)
    if out is None:
        print(text)
    else:
        out.write_text(text)


if __name__ == "__main__":
    main()
