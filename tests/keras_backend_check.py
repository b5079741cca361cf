"""Checks of focalkit.keras on one Keras back-end; run as a script with KERAS_BACKEND set.

Keras picks its back-end once, at first import, so tests/test_frontend_keras.py runs this script in a subprocess per
back-end (``KERAS_BACKEND=tensorflow|jax|torch python tests/keras_backend_check.py OUT.json``) and asserts on the
JSON it writes: ``{check_name: {"ok": bool, "detail": str, ...}}``. A check that raises is recorded as failed with
its traceback, so one failure does not hide the others.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import ops  # noqa: E402

import focalkit.keras as fk  # noqa: E402

BACKEND = keras.backend.backend()
VECTORS = Path(__file__).with_name("vectors") / "focal_vectors.json"
RESULTS: dict[str, dict[str, Any]] = {}


def check(fn: Callable[[], dict[str, Any] | None]) -> Callable[[], dict[str, Any] | None]:
    """Register and run a check; record ok / detail (a check asserts; extra keys are measurements)."""
    start = time.perf_counter()
    try:
        extra = fn() or {}
        RESULTS[fn.__name__] = {"ok": True, "detail": "", **extra}
    except Exception:  # noqa: BLE001 - every failure is reported to the pytest side
        RESULTS[fn.__name__] = {"ok": False, "detail": traceback.format_exc()[-3000:]}
    RESULTS[fn.__name__]["seconds"] = round(time.perf_counter() - start, 2)
    return fn


# ---------- back-end helpers ----------


def to_np(x: Any) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def value_and_grad(f: Callable[[Any], Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x) (any shape) and d sum(f(x)) / dx with the back-end's own autodiff, x float32."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def both(z: Any) -> tuple[Any, Any]:
            out, pullback = jax.vjp(f, z)
            return out, pullback(jnp.ones_like(out))[0]

        # one XLA compilation per call instead of one per eager op (JAX compiles every new op signature)
        out, grad = jax.jit(both)(jnp.asarray(x, dtype=jnp.float32))
        return to_np(out), to_np(grad)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(np.asarray(x, dtype=np.float32))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = f(xt)
            total = tf.reduce_sum(out)
        return to_np(out), to_np(tape.gradient(total, xt))
    if BACKEND == "torch":
        import torch

        xt = torch.tensor(np.asarray(x, dtype=np.float32), requires_grad=True)
        out = f(xt)
        (grad,) = torch.autograd.grad(out.sum(), xt)
        return to_np(out.detach()), to_np(grad)
    raise RuntimeError(f"unknown backend {BACKEND}")


def compare(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> tuple[float, float]:
    """(worst |got - want| / (rtol |want| + atol), max relative error where |want| > atol)."""
    got, want = np.ravel(got), np.ravel(want)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != {want.shape}")
    if not np.all(np.isfinite(got)):
        raise AssertionError("non-finite values")
    excess = np.max(np.abs(got - want) / (rtol * np.abs(want) + atol))
    big = np.abs(want) > atol
    rel = float(np.max(np.abs(got - want)[big] / np.abs(want)[big])) if big.any() else 0.0
    return float(excess), rel


# ---------- shared test vectors ----------

DOC = json.loads(VECTORS.read_text())
TOL = DOC["tolerance"]


def vector_check(fn_name: str, run: Callable[[dict], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                 loss_tol: str = "loss") -> dict[str, Any]:
    """run(case) -> (loss, want_loss, grad, want_grad); asserts the JSON's tolerances over all cases of fn_name."""
    worst_loss = worst_grad = rel_loss = rel_grad = 0.0
    n = 0
    failures = []
    for case in DOC["cases"]:
        if case["fn"] != fn_name:
            continue
        loss, want, grad, want_grad = run(case)
        e, r = compare(loss, want, TOL[loss_tol]["rtol"], TOL[loss_tol]["atol"])
        eg, rg = compare(grad, want_grad, TOL["grad"]["rtol"], TOL["grad"]["atol"])
        worst_loss, rel_loss = max(worst_loss, e), max(rel_loss, r)
        worst_grad, rel_grad = max(worst_grad, eg), max(rel_grad, rg)
        if e > 1 or eg > 1:
            failures.append(f"{case['params']}: loss excess {e:.3g}, grad excess {eg:.3g}")
        n += 1
    assert n > 0, f"no vectors for {fn_name}"
    assert not failures, "; ".join(failures)
    return {"cases": n, "max_rel_loss": rel_loss, "max_rel_grad": rel_grad}


def _per_element_binary(case: dict, from_logits: bool) -> tuple:
    """Per-element values: shape (N*C, 1) so that the mean over the last axis is the element itself; a per-class
    alpha needs the class axis, so it is compared on per-row means of the reference values instead."""
    key = "logits" if from_logits else "probs"
    x = np.asarray(case[key], dtype=np.float32)
    y = np.asarray(case["labels"], dtype=np.float32)
    alpha, gamma = case["params"]["alpha"], case["params"]["gamma"]
    want, want_grad = np.asarray(case["loss"]), np.asarray(case["grad"])
    loss_fn = fk.BinaryFocalLoss(gamma=gamma, alpha=alpha, from_logits=from_logits, reduction="none")
    if isinstance(alpha, list):
        loss, grad = value_and_grad(lambda z: loss_fn(y, z), x)
        return loss, want.mean(axis=-1), grad, want_grad / x.shape[-1]
    xf, yf = x.reshape(-1, 1), y.reshape(-1, 1)
    loss, grad = value_and_grad(lambda z: loss_fn(yf, z), xf)
    return loss, want.reshape(-1), grad, want_grad.reshape(-1, 1)


@check
def vectors_binary_from_logits() -> dict:
    return vector_check("sigmoid_focal_loss", lambda c: _per_element_binary(c, True))


@check
def vectors_binary_from_probs() -> dict:
    return vector_check("binary_focal_loss", lambda c: _per_element_binary(c, False))


@check
def vectors_sparse_categorical() -> dict:
    def run(case: dict) -> tuple:
        x = np.asarray(case["logits"], dtype=np.float32)
        t = np.asarray(case["labels"], dtype=np.int64)
        p = case["params"]
        loss_fn = fk.SparseCategoricalFocalLoss(gamma=p["gamma"], alpha=p["alpha"], from_logits=True, reduction="none")
        loss, grad = value_and_grad(lambda z: loss_fn(t, z), x)
        return loss, np.asarray(case["loss"]), grad, np.asarray(case["grad"])

    return vector_check("softmax_focal_loss", run, loss_tol="softmax_loss")


@check
def vectors_categorical_soft_targets() -> dict:
    def run(case: dict) -> tuple:
        x = np.asarray(case["logits"], dtype=np.float32)
        q = np.asarray(case["labels"], dtype=np.float32)
        p = case["params"]
        loss_fn = fk.CategoricalFocalLoss(gamma=p["gamma"], alpha=p["alpha"], from_logits=True, reduction="none")
        loss, grad = value_and_grad(lambda z: loss_fn(q, z), x)
        return loss, np.asarray(case["loss"]), grad, np.asarray(case["grad"])

    return vector_check("softmax_focal_loss_soft", run, loss_tol="softmax_loss")


# ---------- stability ----------

EXTREME = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype=np.float32)
LABELS = np.array([0.0, 1.0, 0.3, 0.999], dtype=np.float32)


@check
def stability_binary_from_logits() -> dict:
    x = np.repeat(EXTREME, len(LABELS)).reshape(-1, 1)
    y = np.tile(LABELS, len(EXTREME)).reshape(-1, 1)
    for gamma in (0.0, 0.5, 2.0):
        loss, grad = value_and_grad(lambda z: fk.binary_focal_loss(y, z, gamma=gamma, from_logits=True), x)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), f"gamma={gamma}: {loss} {grad}"
        # a confidently wrong positive keeps the full gradient -alpha (no clipping): x = -100, y = 1
        i = int(np.where((x[:, 0] == -100) & (y[:, 0] == 1))[0][0])
        assert abs(grad[i, 0] + 0.25) < 1e-6 and abs(loss[i] - 25.0) < 1e-4, (gamma, loss[i], grad[i, 0])
    return None


@check
def stability_softmax() -> dict:
    rows = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [100.0, -100.0, 0.0], [-100.0, 100.0, 0.0], [0, 0, 0]],
                    dtype=np.float32)
    t = np.zeros(len(rows), dtype=np.int64)
    q = np.full(rows.shape, 0.1, dtype=np.float32)
    q[:, 0] = 0.8
    for gamma in (0.0, 0.5, 2.0):
        for name, f in [
            ("sparse", lambda z: fk.sparse_categorical_focal_loss(t, z, gamma=gamma, from_logits=True)),
            ("soft", lambda z: fk.categorical_focal_loss(q, z, gamma=gamma, from_logits=True)),
        ]:
            loss, grad = value_and_grad(f, rows)
            assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), f"{name} gamma={gamma}: {loss} {grad}"
    return None


@check
def stability_probabilities_at_0_and_1() -> dict:
    p = np.array([[0.0], [1.0], [0.0], [1.0], [1e-30], [1 - 2**-24]], dtype=np.float32)
    y = np.array([[0.0], [1.0], [1.0], [0.0], [0.0], [1.0]], dtype=np.float32)
    for gamma in (0.0, 0.5, 2.0):
        loss, grad = value_and_grad(lambda z: fk.binary_focal_loss(y, z, gamma=gamma), p)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), f"gamma={gamma}: {loss} {grad}"
        # an underflowed probability saturates at -log(FLT_MIN) = 87.34 (times alpha_t), as in the PyTorch core
        assert abs(loss[2] - 0.25 * -math.log(np.finfo(np.float32).tiny)) < 1e-4, loss[2]
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=np.float32)
    for gamma in (0.0, 0.5, 2.0):
        loss, grad = value_and_grad(lambda z: fk.sparse_categorical_focal_loss(np.array([0, 0]), z, gamma=gamma), probs)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), f"gamma={gamma}: {loss} {grad}"
    return None


@check
def half_precision_computed_in_float32() -> dict:
    x = np.array([[-20.0], [-9.0], [9.0], [20.0]], dtype=np.float16)
    y = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)
    for gamma in (0.5, 2.0):
        got = to_np(fk.binary_focal_loss(y, ops.convert_to_tensor(x), gamma=gamma, from_logits=True))
        want = to_np(fk.binary_focal_loss(y, x.astype(np.float32), gamma=gamma, from_logits=True))
        assert np.allclose(got, want, rtol=1e-6, atol=0), (got, want)
    return None


# ---------- Keras semantics ----------


@check
def reductions_and_sample_weight() -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (6, 4)).astype(np.float32)
    y = (rng.uniform(size=(6, 4)) < 0.3).astype(np.float32)
    w = rng.uniform(0.5, 2, 6).astype(np.float32)
    per_sample = to_np(fk.BinaryFocalLoss(from_logits=True, reduction="none")(y, x))
    assert per_sample.shape == (6,)
    for reduction, expected in [
        ("sum", (per_sample * w).sum()),
        ("sum_over_batch_size", (per_sample * w).sum() / 6),
        ("mean", (per_sample * w).sum() / 6),
        ("mean_with_sample_weight", (per_sample * w).sum() / w.sum()),
    ]:
        got = float(to_np(fk.BinaryFocalLoss(from_logits=True, reduction=reduction)(y, x, sample_weight=w)))
        assert abs(got - expected) <= 1e-6 * abs(expected), (reduction, got, expected)
    return None


@check
def ignore_class_left_out_of_the_mean() -> dict:
    x = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0], [0.5, -0.5, 0.0]], dtype=np.float32)
    t = np.array([0, 255, 2, 255])
    per = to_np(fk.SparseCategoricalFocalLoss(from_logits=True, ignore_class=255, reduction="none")(t, x))
    assert per[1] == 0 and per[3] == 0 and per[0] > 0 and per[2] > 0, per
    mean = float(to_np(fk.SparseCategoricalFocalLoss(from_logits=True, ignore_class=255)(t, x)))
    assert abs(mean - (per[0] + per[2]) / 2) < 1e-6, (mean, per)
    _, grad = value_and_grad(lambda z: fk.sparse_categorical_focal_loss(t, z, from_logits=True, ignore_class=255), x)
    assert np.all(grad[[1, 3]] == 0) and np.any(grad[0] != 0), grad
    return None


@check
def label_smoothing_matches_smoothed_targets() -> dict:
    x = np.array([[3.0, -2.0, 0.5]], dtype=np.float32)
    y = np.array([[1.0, 0.0, 1.0]], dtype=np.float32)
    s = 0.2
    got = to_np(fk.binary_focal_loss(y, x, from_logits=True, label_smoothing=s))
    want = to_np(fk.binary_focal_loss(y * (1 - s) + 0.5 * s, x, from_logits=True))
    assert np.allclose(got, want, rtol=1e-6), (got, want)
    q = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    got = to_np(fk.categorical_focal_loss(q, x, from_logits=True, label_smoothing=s))
    want = to_np(fk.categorical_focal_loss(q * (1 - s) + s / 3, x, from_logits=True))
    assert np.allclose(got, want, rtol=1e-6), (got, want)
    return None


@check
def binary_focal_loss_probability_usage() -> dict:
    """focal_loss(y_true, y_pred, gamma=2.0) with alpha 0.25 = mean over the last axis of alpha_t (1 - p_t)^g BCE."""
    y = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    p = np.array([[0.1, 0.8, 0.35], [0.99, 0.6, 1e-5]], dtype=np.float32)
    got = to_np(fk.binary_focal_loss(y, p, gamma=2.0))
    p64, y64 = p.astype(np.float64), y.astype(np.float64)
    p_t = y64 * p64 + (1 - y64) * (1 - p64)
    bce = -(y64 * np.log(p64) + (1 - y64) * np.log(1 - p64))
    want = ((0.25 * y64 + 0.75 * (1 - y64)) * (1 - p_t) ** 2 * bce).mean(axis=-1)
    assert np.allclose(got, want, rtol=1e-6, atol=0), (got, want)
    return None


@check
def serialisation_round_trip() -> dict:
    losses = [
        fk.BinaryFocalLoss(gamma=0.5, alpha=[0.1, 0.9], from_logits=True, label_smoothing=0.1, reduction="sum"),
        fk.CategoricalFocalLoss(gamma=1.0, alpha=0.5, from_logits=True, label_smoothing=0.05),
        fk.SparseCategoricalFocalLoss(gamma=3.0, alpha=[0.2, 0.3, 0.5], from_logits=True, ignore_class=-1),
    ]
    for loss in losses:
        again = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(again) is type(loss), type(again)
        assert again.get_config() == loss.get_config(), (again.get_config(), loss.get_config())
    fn = keras.losses.get(keras.saving.serialize_keras_object(fk.binary_focal_loss))
    assert fn is fk.binary_focal_loss, fn
    return None


@check
def compile_fit_save_load() -> dict:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(64, 5)).astype(np.float32)
    ys = (xs[:, :1] + 0.3 * rng.normal(size=(64, 1)) > 0.8).astype(np.float32)
    ts = rng.integers(0, 3, 64)
    results = {}
    for name, loss, target, units in [
        ("binary", fk.BinaryFocalLoss(gamma=2.0, alpha=0.25, from_logits=True), ys, 1),
        ("sparse", fk.SparseCategoricalFocalLoss(gamma=2.0, from_logits=True), ts, 3),
    ]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(units)])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        hist = model.fit(xs, target, epochs=3, batch_size=64, verbose=0).history["loss"]
        assert all(math.isfinite(v) for v in hist) and hist[-1] < hist[0], hist
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{name}.keras")
            model.save(path)
            loaded = keras.models.load_model(path)
        assert type(loaded.loss) is type(loss) and loaded.loss.get_config() == loss.get_config()
        a = model.evaluate(xs, target, verbose=0)
        b = loaded.evaluate(xs, target, verbose=0)
        assert abs(a - b) <= 1e-6 * abs(a), (a, b)
        results[f"{name}_loss_history"] = hist
    return results


@check
def bad_arguments_raise_typed_errors() -> dict:
    from focalkit import InvalidArgumentError, InvalidTypeError

    cases = [
        (lambda: fk.BinaryFocalLoss(gamma=-1.0), InvalidArgumentError, "gamma"),
        (lambda: fk.BinaryFocalLoss(alpha=1.5), InvalidArgumentError, "alpha"),
        (lambda: fk.BinaryFocalLoss(label_smoothing=2.0), InvalidArgumentError, "label_smoothing"),
        (lambda: fk.CategoricalFocalLoss(alpha=-0.5), InvalidArgumentError, "alpha"),
        (lambda: fk.SparseCategoricalFocalLoss(gamma="2"), InvalidTypeError, "gamma"),
        (lambda: fk.BinaryFocalLoss(gradient="exact"), InvalidArgumentError, "gradient"),
        (lambda: fk.categorical_focal_loss(np.eye(3, dtype=np.float32)[:1], np.zeros((1, 3), np.float32),
                                           from_logits=True, gradient=None), InvalidArgumentError, "gradient"),
        (lambda: fk.sparse_categorical_focal_loss(np.array([0]), np.zeros((1, 3), np.float32), alpha=[0.5, 0.5],
                                                  from_logits=True), InvalidArgumentError, "alpha"),
    ]
    for make, err, name in cases:
        try:
            make()
        except err as e:
            assert str(e).startswith(f"{name}:"), str(e)
        else:
            raise AssertionError(f"no {err.__name__} for {name}")
    return None


# ---------- bad values and shapes: typed errors where readable, NaN where traced ----------

X3 = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]], dtype=np.float32)


def _bad_value_cases(to_input: Callable[[np.ndarray], Any]) -> list:
    """(call, error type, message prefix) for each class of bad value; inputs go through ``to_input``."""
    from focalkit import InvalidArgumentError, InvalidTypeError

    t = to_input
    return [
        (lambda: fk.sparse_categorical_focal_loss(t(np.array([0, 3])), t(X3), from_logits=True),
         InvalidArgumentError, "y_true: expected class indices in [0, 2], got 3"),
        (lambda: fk.sparse_categorical_focal_loss(t(np.array([0, -1])), t(X3), from_logits=True),
         InvalidArgumentError, "y_true: expected class indices in [0, 2], got -1"),
        (lambda: fk.sparse_categorical_focal_loss(t(np.array([255, 0])), t(X3), from_logits=True,
                                                  alpha=[0.2, 0.3, 0.5]),
         InvalidArgumentError, "y_true: expected class indices in [0, 2], got 255"),
        (lambda: fk.sparse_categorical_focal_loss(t(np.array([0, 7])), t(X3), from_logits=True, ignore_class=255),
         InvalidArgumentError, "y_true: expected class indices in [0, 2] or ignore_class=255, got 7"),
        (lambda: fk.sparse_categorical_focal_loss(t(np.array([0.0, 1.5], np.float32)), t(X3), from_logits=True),
         InvalidArgumentError, "y_true: expected integer class indices, got 1.5"),
        (lambda: fk.SparseCategoricalFocalLoss(from_logits=True)(t(np.array([0, 3])), t(X3)),
         InvalidArgumentError, "y_true: expected class indices in [0, 2], got 3"),
        (lambda: fk.binary_focal_loss(t(np.array([[1.0, 0.0]], np.float32)), t(np.array([[1.5, -0.1]], np.float32))),
         InvalidArgumentError, "y_pred: expected values in [0, 1], got values in [-0.1, 1.5]"),
        (lambda: fk.binary_focal_loss(t(np.array([[1.5, 0.0]], np.float32)), t(np.array([[2.0, 1.0]], np.float32)),
                                      from_logits=True),
         InvalidArgumentError, "y_true: expected values in [0, 1], got values in [0, 1.5]"),
        (lambda: fk.BinaryFocalLoss()(t(np.array([[1.0, 0.0]], np.float32)), t(np.array([[0.3, 1.5]], np.float32))),
         InvalidArgumentError, "y_pred: expected values in [0, 1]"),
        (lambda: fk.categorical_focal_loss(t(np.eye(3, dtype=np.float32)[:2]), t(np.array([[1.5, -0.5, 0.0]] * 2,
                                                                                            np.float32))),
         InvalidArgumentError, "y_pred: expected values in [0, 1]"),
        (lambda: fk.categorical_focal_loss(t(np.array([[2.0, 0.0, 0.0]] * 2, np.float32)), t(X3), from_logits=True),
         InvalidArgumentError, "y_true: expected values in [0, 1]"),
        (lambda: fk.binary_focal_loss(t(np.ones((1, 3), np.float32)), t(np.full((1, 2), 0.5, np.float32))),
         InvalidArgumentError, "y_true: expected a shape broadcastable to y_pred's shape (1, 2), got (1, 3)"),
        (lambda: fk.sparse_categorical_focal_loss(t(np.array([0, 1, 2])), t(X3), from_logits=True),
         InvalidArgumentError, "y_true: expected class indices of shape (2,)"),
        (lambda: fk.categorical_focal_loss(np.array([["a", "b", "c"]] * 2), t(X3), from_logits=True),
         InvalidTypeError, "y_true: expected a real-valued array"),
        (lambda: fk.sparse_categorical_focal_loss(t(np.array([0, 1])), t(X3), ignore_class=1.5, from_logits=True),
         InvalidTypeError, "ignore_class: expected an integer or None, got 1.5"),
    ]


def _expect_errors(cases: list) -> int:
    for call, err, prefix in cases:
        try:
            call()
        except err as e:
            assert str(e).startswith(prefix), (prefix, str(e))
        else:
            raise AssertionError(f"no {err.__name__} for {prefix!r}")
    return len(cases)


@check
def invalid_values_raise_typed_errors() -> dict:
    """Values that can be read (NumPy inputs; eager tensors of the back-end on the CPU) are checked: out-of-range
    class indices (also -1 and 255 without ignore_class, also with a per-class alpha), probabilities and targets
    outside [0, 1], non-integer class indices, wrong shapes and types raise focalkit's typed errors."""
    n = _expect_errors(_bad_value_cases(lambda a: a))
    n += _expect_errors(_bad_value_cases(lambda a: ops.convert_to_tensor(a)))
    # valid special values: ignore_class (inside or outside [0, C)), y_true of rank one less (Keras's convention)
    per = to_np(fk.sparse_categorical_focal_loss(np.array([0, 255]), X3, from_logits=True, ignore_class=255))
    assert per[1] == 0 and per[0] > 0, per
    per = to_np(fk.sparse_categorical_focal_loss(np.array([0, 1]), X3, from_logits=True, ignore_class=1))
    assert per[1] == 0 and per[0] > 0, per
    got = to_np(fk.binary_focal_loss(np.array([1.0, 0.0], np.float32), np.array([[2.0], [-1.0]], np.float32),
                                     from_logits=True))
    want = to_np(fk.binary_focal_loss(np.array([[1.0], [0.0]], np.float32), np.array([[2.0], [-1.0]], np.float32),
                                      from_logits=True))
    assert got.shape == (2,) and np.allclose(got, want, rtol=1e-7), (got, want)
    return {"cases": n}


def _traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled the way model.fit compiles a loss on this back-end (None where Keras runs eagerly)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        graph = tf.function(fn, autograph=False)  # as Keras compiles its train step
        return lambda *a: graph(*[tf.constant(v) for v in a])
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return None


def _nan_cases() -> list:
    """(function of the inputs, inputs, expected NaN pattern of the per-sample losses)."""
    yb = np.array([[1.0, 0.0], [1.0, 0.0], [0.3, 1.0]], np.float32)
    pb = np.array([[0.6, 0.2], [0.6, 1.5], [0.5, 0.5]], np.float32)
    return [
        (lambda t, x: fk.sparse_categorical_focal_loss(t, x, from_logits=True),
         (np.array([0, 3, -1, 2]), np.concatenate([X3, X3])), [False, True, True, False]),
        (lambda t, x: fk.sparse_categorical_focal_loss(t, x, from_logits=True, alpha=[0.2, 0.3, 0.5],
                                                       ignore_class=255),
         (np.array([0, 3, 255, 2]), np.concatenate([X3, X3])), [False, True, False, False]),
        (lambda t, x: fk.sparse_categorical_focal_loss(t, x, from_logits=True),
         (np.array([0.0, 1.5, 1.0, 2.0], np.float32), np.concatenate([X3, X3])), [False, True, False, False]),
        (lambda y, p: fk.binary_focal_loss(y, p), (yb, pb), [False, True, False]),
        (lambda y, x: fk.binary_focal_loss(y, x, from_logits=True),
         (np.array([[1.0, 0.0], [1.5, 0.0], [0.3, -0.2]], np.float32), pb), [False, True, True]),
        (lambda q, p: fk.categorical_focal_loss(q, p),
         (np.eye(3, dtype=np.float32)[[0, 1]], np.array([[0.5, 0.3, 0.2], [0.5, -0.1, 0.6]], np.float32)),
         [False, True]),
        (lambda t, p: fk.sparse_categorical_focal_loss(t, p),
         (np.array([0, 1]), np.array([[0.5, 0.3, 0.2], [0.5, -0.1, 0.6]], np.float32)), [False, True]),
    ]


def _assert_nan_pattern(got: np.ndarray, pattern: list, what: str) -> None:
    assert np.isnan(got).tolist() == pattern, (what, got)
    assert np.all(np.isfinite(got[~np.array(pattern)])), (what, got)


@check
def invalid_values_give_nan_when_traced() -> dict:
    """Where values cannot be read (the loss compiled as model.fit compiles it: tf.function on TensorFlow, jax.jit
    on JAX), the samples with bad values give NaN and the others their loss; shape checks still raise. On every
    back-end the same path is also run eagerly with value reading switched off (as for tensors on an accelerator).
    model.fit with a bad label: NaN loss where Keras compiles the step, the typed error where it runs eagerly
    (PyTorch back-end)."""
    from focalkit import InvalidArgumentError
    from focalkit.keras import _checks

    ran = []
    traced_any = False
    for fn, inputs, pattern in _nan_cases():
        traced = _traced(fn)
        if traced is not None:
            _assert_nan_pattern(to_np(traced(*inputs)), pattern, "traced")
            traced_any = True
        real = _checks.host_values
        _checks.host_values = lambda value: None
        try:
            _assert_nan_pattern(to_np(fn(*inputs)), pattern, "unread")
        finally:
            _checks.host_values = real
        ran.append(len(pattern))
    traced = _traced(lambda t, x: fk.sparse_categorical_focal_loss(t, x, from_logits=True))
    if traced is not None:
        try:
            traced(np.array([0, 1, 2]), X3)
        except InvalidArgumentError as e:
            assert str(e).startswith("y_true: expected class indices of shape (2,)"), str(e)
        else:
            raise AssertionError("no shape error under tracing")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=fk.SparseCategoricalFocalLoss(from_logits=True))
    try:
        history = model.fit(X3, np.array([0, 3]), epochs=1, verbose=0).history["loss"]
        fit = "nan"
        assert BACKEND != "torch" and math.isnan(history[0]), (BACKEND, history)
    except InvalidArgumentError as e:
        fit = "raised"
        assert BACKEND == "torch" and str(e).startswith("y_true: expected class indices in [0, 2], got 3"), str(e)
    return {"cases": len(ran), "traced": traced_any, "fit_with_bad_label": fit}


# ---------- Keras's own focal losses: where they agree and where they differ ----------


@check
def keras_binary_focal_agrees_in_the_body() -> dict:
    """Probabilities in [1e-4, 1 - 1e-4] (Keras's 1e-7 clip inactive): same values as BinaryFocalCrossentropy."""
    rng = np.random.default_rng(1)
    p = rng.uniform(1e-4, 1 - 1e-4, (50, 4)).astype(np.float32)
    y = np.where(rng.uniform(size=(50, 4)) < 0.5, rng.integers(0, 2, (50, 4)), rng.uniform(size=(50, 4)))
    y = y.astype(np.float32)
    worst = 0.0
    for gamma in (0.0, 0.5, 2.0):
        theirs = to_np(keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=gamma,
                                                            reduction="none")(y, p))
        ours = to_np(fk.BinaryFocalLoss(alpha=0.25, gamma=gamma, reduction="none")(y, p))
        rel = float(np.max(np.abs(theirs - ours) / np.abs(ours)))
        worst = max(worst, rel)
        assert rel < 1e-5, (gamma, rel)
    return {"max_rel_diff": worst}


@check
def keras_categorical_focal_agrees_in_the_body() -> dict:
    rng = np.random.default_rng(2)
    raw = rng.uniform(0.05, 1, (40, 5)).astype(np.float32)
    p = raw / raw.sum(axis=1, keepdims=True)
    q = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 40)]
    worst = 0.0
    for gamma in (0.0, 0.5, 2.0):
        theirs = to_np(keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=gamma, reduction="none")(q, p))
        ours = to_np(fk.CategoricalFocalLoss(alpha=0.25, gamma=gamma, reduction="none")(q, p))
        rel = float(np.max(np.abs(theirs - ours) / np.abs(ours)))
        worst = max(worst, rel)
        assert rel < 1e-5, (gamma, rel)
    # Keras's default alpha 0.25 multiplies every term; focalkit's default is None (no weighting)
    default_ratio = to_np(keras.losses.CategoricalFocalCrossentropy(reduction="none")(q, p)) / to_np(
        fk.CategoricalFocalLoss(reduction="none")(q, p)
    )
    assert np.allclose(default_ratio, 0.25, rtol=1e-5), default_ratio
    return {"max_rel_diff": worst}


@check
def keras_clip_biases_tails_and_zeroes_gradients() -> dict:
    """Keras clips probabilities at 1e-7: a confidently wrong prediction is capped at -log(1e-7) = 16.1 and gets
    no gradient; a confidently right one reads about 1e-7 instead of its true value."""
    x = np.array([[-30.0], [-20.0]], dtype=np.float32)
    y = np.array([[1.0], [0.0]], dtype=np.float32)  # confidently wrong, confidently right
    p = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    true = np.array([0.25 * 30.0, 0.75 * math.log1p(math.exp(-20.0))])
    theirs_fn = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=0.0,
                                                     reduction="none")
    ours_fn = fk.BinaryFocalLoss(alpha=0.25, gamma=0.0, reduction="none")
    # probabilities (float32 sigmoid of the logits): 9.4e-14 and 2.1e-9
    theirs, theirs_grad = value_and_grad(lambda z: theirs_fn(y, z), p.astype(np.float32))
    ours, ours_grad = value_and_grad(lambda z: ours_fn(y, z), p.astype(np.float32))
    assert np.allclose(ours, true, rtol=1e-5), (ours, true)
    assert abs(theirs[0] - 0.25 * -math.log(1e-7)) < 1e-3 * theirs[0], theirs
    assert theirs_grad[0, 0] == 0.0 and ours_grad[0, 0] < -1e12, (theirs_grad, ours_grad)  # d/dp = -alpha / p
    assert theirs[1] / true[1] > 10, (theirs[1], true[1])
    # from logits: ours exact; Keras (JAX / PyTorch back-ends) takes sigmoid, then clips the same way. Its
    # TensorFlow back-end recovers the logits from the sigmoid op and is exact here.
    theirs_l, theirs_l_grad = value_and_grad(
        lambda z: keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=0.0,
                                                       from_logits=True, reduction="none")(y, z), x)
    ours_l, ours_l_grad = value_and_grad(
        lambda z: fk.BinaryFocalLoss(alpha=0.25, gamma=0.0, from_logits=True, reduction="none")(y, z), x)
    assert np.allclose(ours_l, true, rtol=1e-6) and abs(ours_l_grad[0, 0] + 0.25) < 1e-6, (ours_l, ours_l_grad)
    if BACKEND == "tensorflow":
        assert np.allclose(theirs_l, true, rtol=1e-5), theirs_l
    else:
        assert abs(theirs_l[0] - 0.25 * -math.log(1e-7)) < 1e-3 and theirs_l_grad[0, 0] == 0.0, (theirs_l, theirs_l_grad)
    return {"probs_keras": theirs.tolist(), "probs_focalkit": ours.tolist(), "true": true.tolist(),
            "probs_keras_grad": theirs_grad.ravel().tolist(),
            "logits_keras": theirs_l.tolist(), "logits_keras_grad": theirs_l_grad.ravel().tolist(),
            "logits_focalkit": ours_l.tolist(), "logits_focalkit_grad": ours_l_grad.ravel().tolist()}


@check
def keras_pow_on_probabilities_nan_gradient_gamma_below_1() -> dict:
    """(1 - p_t)**gamma on probabilities: at p_t == 1 the derivative is inf * 0 for gamma < 1."""
    x = np.array([[30.0]], dtype=np.float32)
    y = np.array([[1.0]], dtype=np.float32)
    theirs_fn = keras.losses.BinaryFocalCrossentropy(gamma=0.5, from_logits=True, reduction="none")
    ours_fn = fk.BinaryFocalLoss(gamma=0.5, alpha=None, from_logits=True, reduction="none")
    _, theirs_grad = value_and_grad(lambda z: theirs_fn(y, z), x)
    _, ours_grad = value_and_grad(lambda z: ours_fn(y, z), x)
    assert np.all(np.isfinite(ours_grad)), ours_grad
    assert not np.all(np.isfinite(theirs_grad)), theirs_grad
    return {"keras_grad": theirs_grad.ravel().tolist(), "focalkit_grad": ours_grad.ravel().tolist(),
            "keras_grad_finite": bool(np.all(np.isfinite(theirs_grad)))}


# ---------- the closed-form gradient attached to the logits (gradient="closed_form", the default) ----------


def derivatives(f: Callable[[Any], Any], x: np.ndarray, dtype: str = "float32", second: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """f(x), g = d sum(f(x)) / dx and (``second``) the Hessian times a fixed direction v, d/dx sum(v g), with x of
    ``dtype`` and the back-end's own autodiff (nested for the second derivative)."""
    v = np.asarray(np.random.default_rng(3).uniform(-1, 1, np.shape(x)), np.float32)
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        total = lambda z: jnp.sum(f(z).astype(jnp.float32))  # noqa: E731
        first = jax.grad(total)

        def all_of(z: Any) -> tuple:
            directional = lambda w: jnp.sum(first(w).astype(jnp.float32) * v)  # noqa: E731
            return f(z), first(z), (jax.grad(directional)(z) if second else None)

        out, grad, hess = jax.jit(all_of)(jnp.asarray(x, dtype=dtype))
        return to_np(out), to_np(grad), None if hess is None else to_np(hess)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(np.asarray(x, dtype=np.float32), dtype=tf.float32)
        xt = tf.cast(xt, dtype)
        with tf.GradientTape() as outer:
            outer.watch(xt)
            with tf.GradientTape() as inner:
                inner.watch(xt)
                out = f(xt)
                total = tf.reduce_sum(tf.cast(out, tf.float32))
            grad = inner.gradient(total, xt)
            grad = tf.zeros_like(xt) if grad is None else grad  # None: no path from x to the output
            grad_total = tf.reduce_sum(tf.cast(grad, tf.float32) * v)
        hess = outer.gradient(grad_total, xt) if second else None
        hess = tf.zeros_like(xt) if second and hess is None else hess
        return to_np(out), to_np(grad), None if hess is None else to_np(hess)
    import torch

    xt = torch.tensor(np.asarray(x, dtype=np.float32)).to(getattr(torch, dtype)).requires_grad_(True)
    out = f(xt)
    grad = None
    if out.requires_grad:  # otherwise no path from x to the output
        (grad,) = torch.autograd.grad(out.float().sum(), xt, create_graph=second, allow_unused=True)
    grad = torch.zeros_like(xt) if grad is None else grad
    hess = None
    if second:
        if grad.requires_grad:
            (hess,) = torch.autograd.grad((grad.float() * torch.from_numpy(v)).sum(), xt, allow_unused=True)
        hess = torch.zeros_like(xt) if hess is None else hess
    return to_np(out.detach()), to_np(grad.detach()), None if hess is None else to_np(hess)


def _gradient_cases() -> list:
    """(name, loss(gradient mode) -> function of the logits, logits) over targets, alphas, gammas and logits up
    to |x| = 1e4 (each row holds the extremes once)."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 4, (24, 6)).astype(np.float32)
    x[0] = [1e4, -1e4, 0.0, 30.0, -30.0, 100.0]
    x[1] = [-100.0, 17.0, -17.0, 1e4, 1e4, 0.0]  # tied maxima
    x[2] = [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    y = (rng.uniform(size=x.shape) < 0.4).astype(np.float32)
    y[3] = [0.3, 0.999, 0.5, 1e-3, 0.0, 1.0]
    t = rng.integers(0, 6, 24)
    t[:3] = [0, 3, 5]
    t_ignored = np.where(np.arange(24) % 5 == 0, 255, t)
    soft = rng.dirichlet(np.ones(6), 24).astype(np.float32)
    per_class = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    cases = []
    for gamma in (0.0, 0.5, 2.0, 3.3):
        for alpha in (None, 0.25, per_class):
            cases += [
                (f"binary gamma={gamma} alpha={alpha}", lambda g, gamma=gamma, alpha=alpha: (
                    lambda z: fk.binary_focal_loss(y, z, gamma=gamma, alpha=alpha, from_logits=True, gradient=g)), x),
                (f"sparse gamma={gamma} alpha={alpha}", lambda g, gamma=gamma, alpha=alpha: (
                    lambda z: fk.sparse_categorical_focal_loss(t_ignored, z, gamma=gamma, alpha=alpha,
                                                               from_logits=True, ignore_class=255, gradient=g)), x),
                (f"categorical gamma={gamma} alpha={alpha}", lambda g, gamma=gamma, alpha=alpha: (
                    lambda z: fk.categorical_focal_loss(soft, z, gamma=gamma, alpha=alpha, from_logits=True,
                                                        label_smoothing=0.1, gradient=g)), x),
            ]
    cases.append(("binary label_smoothing", lambda g: (
        lambda z: fk.BinaryFocalLoss(from_logits=True, label_smoothing=0.2, gradient=g, reduction="none")(y, z)), x))
    return cases


def _assert_grads_agree(got: np.ndarray, want: np.ndarray, rtol: float, scale_tol: float, what: str) -> float:
    """|got - want| <= rtol |want| + scale_tol max|want| everywhere; returns the worst ratio to that bound."""
    assert np.all(np.isfinite(got)), (what, "non-finite closed-form values")
    bound = rtol * np.abs(want) + scale_tol * np.max(np.abs(want)) + 1e-30
    ratio = float(np.max(np.abs(got - want) / bound))
    assert ratio <= 1.0, (what, ratio, np.unravel_index(np.argmax(np.abs(got - want) / bound), got.shape))
    return ratio


@check
def closed_form_gradient_matches_autodiff() -> dict:
    """The attached closed-form gradient equals the autodiff gradient of the log-space composition, and the attached
    value equals the composition's value, within float32 rounding, for binary / sparse (ignore_class) / soft targets,
    every alpha form, gamma in {0, 0.5, 2, 3.3} and logits up to |x| = 1e4."""
    worst_loss = worst_grad = 0.0
    cases = _gradient_cases()
    for name, make, x in cases:
        loss, grad, _ = derivatives(make("closed_form"), x)
        want_loss, want_grad, _ = derivatives(make("autodiff"), x)
        worst_loss = max(worst_loss, _assert_grads_agree(loss, want_loss, 4e-6, 1e-7, f"{name}: loss"))
        worst_grad = max(worst_grad, _assert_grads_agree(grad, want_grad, 3e-5, 1e-6, f"{name}: grad"))
    return {"cases": len(cases), "worst_loss_over_bound": worst_loss, "worst_grad_over_bound": worst_grad}


@check
def closed_form_gradient_half_precision() -> dict:
    """float16 / bfloat16 logits (computed in float32): the closed-form gradient in the input dtype equals the
    autodiff one to one rounding of that dtype, at logits up to |x| = 1e4."""
    worst = {}
    for dtype, eps in (("float16", 2.0**-10), ("bfloat16", 2.0**-7)):
        worst[dtype] = 0.0
        for name, make, x in _gradient_cases():
            if "gamma=0.0" in name or "gamma=3.3" in name or "alpha=0.25" in name:
                continue  # a subset: each case compiles twice per dtype on JAX
            loss, grad, _ = derivatives(make("closed_form"), x, dtype)
            want_loss, want_grad, _ = derivatives(make("autodiff"), x, dtype)
            _assert_grads_agree(loss, want_loss, 4e-6, 1e-7, f"{dtype} {name}: loss")
            # half-precision gradients can underflow differently near the dtype's smallest numbers
            worst[dtype] = max(worst[dtype], _assert_grads_agree(grad, want_grad, 2 * eps, 2 * eps,
                                                                 f"{dtype} {name}: grad"))
    return {"worst_grad_over_bound": worst}


@check
def closed_form_gives_no_label_gradient() -> dict:
    """Documented: with gradient="closed_form" the labels get a zero gradient; gradient="autodiff" gives the exact
    label gradient (checked against a central difference)."""
    x = np.array([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]], np.float32)
    y = np.array([[0.7, 0.2, 0.5], [0.1, 0.9, 0.4]], np.float32)
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]], np.float32)
    found = {}
    for name, fn, target in [
        ("binary", lambda mode: (lambda w: fk.binary_focal_loss(w, x, from_logits=True, gradient=mode)), y),
        ("categorical", lambda mode: (lambda w: fk.categorical_focal_loss(w, x, from_logits=True, gradient=mode)), q),
    ]:
        _, closed, _ = derivatives(fn("closed_form"), target)
        _, exact, _ = derivatives(fn("autodiff"), target)
        assert np.all(closed == 0.0), (name, closed)
        h = 1e-3
        numeric = np.zeros_like(target, dtype=np.float64)
        for i in np.ndindex(target.shape):
            up, down = target.copy(), target.copy()
            up[i] += h
            down[i] -= h
            numeric[i] = (to_np(fn("autodiff")(up)).sum() - to_np(fn("autodiff")(down)).sum()) / (2 * h)
        assert np.allclose(exact, numeric, rtol=2e-2, atol=2e-3), (name, exact, numeric)
        found[name] = float(np.max(np.abs(exact)))
    return {"max_abs_autodiff_label_grad": found}


@check
def second_derivative_zero_closed_form_exact_autodiff() -> dict:
    """Documented: the attached form has a zero second derivative (its gradient is a constant to the autodiff);
    gradient="autodiff" gives the exact one, finite at hard labels (a Hessian-vector product checked against central
    differences of the closed-form gradient)."""
    x = np.array([[2.0, -1.0, 0.5, 3.0], [-3.0, 0.0, 4.0, 1.0]], np.float32)
    y = np.array([[1.0, 0.0, 0.3, 1.0], [0.0, 1.0, 1.0, 0.0]], np.float32)
    t = np.array([0, 2])
    found = {}
    for name, fn in [
        ("binary", lambda mode: (lambda z: fk.binary_focal_loss(y, z, gamma=2.0, from_logits=True, gradient=mode))),
        ("sparse", lambda mode: (lambda z: fk.sparse_categorical_focal_loss(t, z, gamma=2.0, from_logits=True,
                                                                            gradient=mode))),
    ]:
        _, _, closed = derivatives(fn("closed_form"), x, second=True)
        _, _, exact = derivatives(fn("autodiff"), x, second=True)
        assert np.all(closed == 0.0), (name, closed)
        h = 1e-2  # d/dx_i sum_j v_j g_j(x): central difference along each coordinate
        v = np.random.default_rng(3).uniform(-1, 1, x.shape).astype(np.float32)
        numeric = np.zeros_like(x, dtype=np.float64)
        for i in np.ndindex(x.shape):
            up, down = x.copy(), x.copy()
            up[i] += h
            down[i] -= h
            numeric[i] = ((derivatives(fn("closed_form"), up)[1] * v).sum()
                          - (derivatives(fn("closed_form"), down)[1] * v).sum()) / (2 * h)
        assert np.allclose(exact, numeric, rtol=2e-2, atol=2e-3), (name, exact, numeric)
        found[name] = float(np.max(np.abs(exact)))
    return {"max_abs_autodiff_second_derivative": found}


@check
def categorical_closed_form_second_derivative() -> dict:
    """Documented: the categorical loss's closed form has an exact second derivative on the PyTorch back-end (its
    custom op differentiates the log-space composition twice) and 0 on the others (the attached form)."""
    x = np.array([[2.0, -1.0, 0.5, 3.0], [-3.0, 0.0, 4.0, 1.0]], np.float32)
    q = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 1.0, 0.0]], np.float32)
    fn = lambda mode: (lambda z: fk.categorical_focal_loss(q, z, gamma=2.0, alpha=0.5, from_logits=True,  # noqa: E731
                                                           label_smoothing=0.1, gradient=mode))
    _, _, closed = derivatives(fn("closed_form"), x, second=True)
    _, _, exact = derivatives(fn("autodiff"), x, second=True)
    assert float(np.max(np.abs(exact))) > 1e-3
    if BACKEND == "torch":
        assert np.allclose(closed, exact, rtol=1e-4, atol=1e-6), (closed, exact)
    else:
        assert np.all(closed == 0.0), closed
    return {"max_abs_closed_form_second_derivative": float(np.max(np.abs(closed)))}


@check
def closed_form_saves_one_logits_sized_tensor() -> dict:
    """On the PyTorch back-end, the closed form keeps at most one logits-sized tensor for the backward pass beyond
    the logits and labels the caller holds (the attached gradient; none for the categorical loss, whose backward
    recomputes it from the logits); the autodiff form keeps many more (unique storages, in logits' sizes)."""
    if BACKEND != "torch":
        return {"measured": False}
    import torch

    def saved(fn: Callable[[Any], Any], x: Any, labels: Any) -> float:
        storages = {}
        held = {x.untyped_storage().data_ptr(), labels.untyped_storage().data_ptr()}

        def pack(tensor: Any) -> Any:
            if tensor.untyped_storage().data_ptr() not in held:
                storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            fn(x)
        return sum(storages.values()) / (x.numel() * x.element_size())

    # more than focalkit.gradient_mode.SMALL_INPUT_ELEMENTS logits: a smaller input keeps its gradient by design
    x = torch.randn(8192, 16, requires_grad=True)
    y = (torch.rand(8192, 16) < 0.3).float()
    t = torch.randint(0, 16, (8192,))
    q = torch.nn.functional.one_hot(t, 16).float()
    found = {}
    for name, make, labels in [
        ("binary", lambda mode: fk.BinaryFocalLoss(from_logits=True, gradient=mode)(y, x), y),
        ("sparse", lambda mode: fk.SparseCategoricalFocalLoss(from_logits=True, gradient=mode)(t, x), t),
        ("categorical", lambda mode: fk.CategoricalFocalLoss(from_logits=True, gradient=mode, alpha=0.25,
                                                             label_smoothing=0.1)(q, x), q),
    ]:
        closed = saved(lambda _: make("closed_form"), x, labels)
        exact = saved(lambda _: make("autodiff"), x, labels)
        assert closed <= 1.05 and exact > 2 * max(closed, 0.5), (name, closed, exact)
        if name == "categorical":  # only the C class weights and the scalars
            assert closed < 1e-3, closed
        found[name] = {"closed_form": closed, "autodiff": exact}
    return {"measured": True, "saved_in_logits_sizes": found}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    payload = {"backend": BACKEND, "keras": keras.__version__, "results": RESULTS}
    text = json.dumps(payload, indent=1, default=float)
    if out is None:
        print(text)
    else:
        out.write_text(text)


if __name__ == "__main__":
    main()
