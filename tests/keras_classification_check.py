"""Checks of focalkit.keras's classification losses (Asymmetric Loss, Poly-1) on one Keras back-end; run as a script
with KERAS_BACKEND set.

tests/test_frontend_keras_classification.py runs it in a subprocess per installed back-end
(``KERAS_BACKEND=tensorflow|jax|torch python tests/keras_classification_check.py OUT.json``) and asserts on the JSON it
writes: ``{"results": {check_name: {"ok": bool, "detail": str, ...}}}``. The back-end helpers (autodiff per back-end,
``compare``, the ``check`` registry) are those of tests/keras_backend_check.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import keras_backend_check as kbc  # noqa: E402  (runs the focal checks' registry too; only ours are reported)

import keras  # noqa: E402

import focalkit.keras as fk  # noqa: E402
from focalkit import InvalidArgumentError, InvalidTypeError  # noqa: E402

kbc.RESULTS.clear()
RESULTS = kbc.RESULTS
check, value_and_grad, compare, to_np = kbc.check, kbc.value_and_grad, kbc.compare, kbc.to_np

DOC = json.loads((Path(__file__).parent / "vectors" / "classification_vectors.json").read_text())
TOL = DOC["tolerance"]


def _run_case(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(loss, want, loss allowance, grad, grad allowance, tolerance key) of one vector case on this back-end."""
    fn, params = case["fn"], case["params"]
    x = np.asarray(case["logits"], np.float32)
    want = np.asarray(case["loss"], np.float64)
    loss_atol = np.asarray(case.get("loss_atol", np.zeros_like(want)), np.float64)
    if fn in ("asymmetric_loss_single_label", "poly1_cross_entropy", "poly1_cross_entropy_soft"):
        t = np.asarray(case["labels"], np.int32 if fn != "poly1_cross_entropy_soft" else np.float32)
        f = getattr(fk, "poly1_cross_entropy" if fn.startswith("poly1") else fn)
        loss, grad = value_and_grad(lambda z: f(t, z, ignore_class=-100, **params), x)
        return loss, want, loss_atol, grad, np.zeros_like(grad), "softmax_loss"
    y = np.asarray(case["labels"], np.float32)
    f = getattr(fk, fn)
    if isinstance(params.get("alpha"), list):
        # a per-class alpha needs the class axis: compare the per-row means (the last axis is averaged over)
        loss, grad = value_and_grad(lambda z: f(y, z, **params), x)
        c = x.shape[-1]
        return loss, want.mean(axis=-1), loss_atol.mean(axis=-1), grad * c, np.zeros_like(grad), "loss"
    # one element per row (a trailing axis of size 1 is averaged over): per-element losses and gradients
    yf, xf = y.reshape(-1, 1), x.reshape(-1, 1)
    loss, grad = value_and_grad(lambda z: f(yf, z, **params), xf)
    grad_atol = np.ravel(case.get("grad_atol", np.zeros(x.size)))
    return loss, np.ravel(want), np.ravel(loss_atol), grad, grad_atol, "loss"


def _vectors(fn_names: tuple[str, ...]) -> dict[str, Any]:
    rel_loss = rel_grad = 0.0
    failures = []
    for case in DOC["cases"]:
        if case["fn"] not in fn_names:
            continue
        loss, want, loss_atol, grad, grad_atol, kind = _run_case(case)
        e, _ = compare(loss, want, TOL[kind]["rtol"], TOL[kind]["atol"] + np.ravel(loss_atol))
        eg, rg = compare(grad, np.ravel(case["grad"]), TOL["grad"]["rtol"], TOL["grad"]["atol"] + np.ravel(grad_atol))
        nz = np.abs(np.ravel(want)) > TOL[kind]["atol"]
        r = float(np.max(np.abs(np.ravel(loss) - np.ravel(want))[nz] / np.abs(np.ravel(want)[nz])))
        rel_loss, rel_grad = max(rel_loss, r), max(rel_grad, rg)
        if e > 1 or eg > 1:
            failures.append(f"{case['fn']} {case['params']}: loss excess {e:.3g}, grad excess {eg:.3g}")
    assert not failures, failures
    return {"max_rel_loss": rel_loss, "max_rel_grad": rel_grad}


@check
def vectors_asymmetric_loss() -> dict:
    return _vectors(("asymmetric_loss",))


@check
def vectors_asymmetric_loss_single_label() -> dict:
    return _vectors(("asymmetric_loss_single_label",))


@check
def vectors_poly1_cross_entropy() -> dict:
    return _vectors(("poly1_cross_entropy", "poly1_cross_entropy_soft"))


@check
def vectors_poly1_focal_loss() -> dict:
    return _vectors(("poly1_focal_loss",))


EXTREME = np.asarray([-1e4, -1e3, -100.0, -30.0, -2.944439, 0.0, 30.0, 100.0, 1e3, 1e4], np.float32)
LABELS = np.asarray([0.0, 1.0, 0.3, 0.999, 1e-3, 1e-20], np.float32)
ELEMENTWISE = [
    (fk.asymmetric_loss, {"gamma_pos": gp, "gamma_neg": gn, "clip": m, "detach_focal_weight": d})
    for gp, gn, m, d in [(0.0, 4.0, 0.05, False), (0.0, 4.0, 0.05, True), (0.5, 0.25, 0.05, False),
                         (0.01, 0.01, None, False), (9.0, 9.0, 0.2, False)]
] + [
    (fk.poly1_focal_loss, {"epsilon": e, "alpha": a, "gamma": g})
    for e, a, g in [(1.0, 0.25, 2.0), (-1.0, 0.25, 2.0), (-1.0, None, 0.0), (2.0, None, 0.01), (-1.0, None, 9.0)]
]
ROWS = np.asarray([[1e4, -1e4, 0.0], [-1e4, 1e4, 30.0], [100.0, -100.0, 99.0], [0.0, 0.0, 0.0],
                   [-30.0, 30.0, -1e3], [1e3, 1e3 - 1.0, -1e3]], np.float32)
ROW_LABELS = np.asarray([0, 0, 2, 1, 1, 2], np.int32)
SOFTMAX = [
    (fk.asymmetric_loss_single_label, {"gamma_pos": gp, "gamma_neg": gn, "label_smoothing": s})
    for gp, gn, s in [(0.0, 4.0, 0.0), (0.0, 4.0, 0.1), (0.5, 0.25, 0.3), (9.0, 9.0, 0.1)]
] + [
    (fk.poly1_cross_entropy, {"epsilon": e, "label_smoothing": s, "weight": w})
    for e, s, w in [(1.0, 0.0, None), (-1.0, 0.0, None), (-1.0, 0.1, [1.0, 2.0, 0.5]), (2.0, 1.0, None)]
]


@check
def stability_at_1e4() -> dict:
    x = np.repeat(EXTREME, len(LABELS)).reshape(-1, 1)
    y = np.tile(LABELS, len(EXTREME)).reshape(-1, 1)
    for fn, params in ELEMENTWISE:
        loss, grad = value_and_grad(lambda z, fn=fn, params=params: fn(y, z, **params), x)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (fn.__name__, params, loss, grad)
        if fn is fk.asymmetric_loss or params["epsilon"] >= 0:
            assert np.all(loss >= 0), (fn.__name__, params, loss)
    for fn, params in SOFTMAX:
        loss, grad = value_and_grad(lambda z, fn=fn, params=params: fn(ROW_LABELS, z, **params), ROWS)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (fn.__name__, params, loss, grad)
        assert np.all(loss >= 0), (fn.__name__, params, loss)
    return None


@check
def half_precision_computed_in_float32() -> dict:
    x = np.linspace(-20, 20, 24).astype(np.float32).reshape(6, 4)
    y = np.round(np.linspace(0, 1, 24) ** 2, 2).astype(np.float32).reshape(6, 4)
    t = np.asarray([0, 1, 2, 3, 0, 1], np.int32)
    calls = [
        lambda z: fk.asymmetric_loss(y, z),
        lambda z: fk.poly1_focal_loss(y, z, epsilon=-1.0),
        lambda z: fk.asymmetric_loss_single_label(t, z, label_smoothing=0.1),
        lambda z: fk.poly1_cross_entropy(t, z, label_smoothing=0.1),
    ]
    for f in calls:
        for dtype in ("float16", "bfloat16"):
            xh = keras.ops.cast(x, dtype)
            got = f(xh)
            assert keras.backend.standardize_dtype(got.dtype) == "float32", got.dtype
            want = to_np(f(keras.ops.cast(xh, "float32")))
            assert np.allclose(to_np(got), want, rtol=1e-6, atol=0), dtype
    return None


@check
def reductions_sample_weight_and_ignore_class() -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (6, 4)).astype(np.float32)
    y = np.where(rng.uniform(size=(6, 4)) < 0.5, 0.0, rng.uniform(size=(6, 4))).astype(np.float32)
    t = np.asarray([0, 3, 2, 1, 1, 2], np.int32)
    w = rng.uniform(0.5, 2, 6).astype(np.float32)
    for cls, target in ((fk.AsymmetricLoss, y), (fk.Poly1FocalLoss, y), (fk.AsymmetricLossSingleLabel, t),
                        (fk.Poly1CrossEntropy, t)):
        per_sample = to_np(cls(reduction="none")(target, x))
        assert per_sample.shape == (6,), per_sample.shape
        assert np.allclose(per_sample, to_np(cls.loss_fn(target, x)), rtol=1e-6), cls.__name__
        for reduction, expected in [
            ("sum", (per_sample * w).sum()),
            ("sum_over_batch_size", (per_sample * w).sum() / 6),
            ("mean_with_sample_weight", (per_sample * w).sum() / w.sum()),
        ]:
            got = float(to_np(cls(reduction=reduction)(target, x, sample_weight=w)))
            assert abs(got - expected) <= 1e-6 * abs(expected), (cls.__name__, reduction, got, expected)
    # ignore_class: loss 0 there, and the mean is over the other samples only
    t_ignored = np.asarray([0, 255, 2, 1, 255, 2], np.int32)
    for cls in (fk.AsymmetricLossSingleLabel, fk.Poly1CrossEntropy):
        per_sample = to_np(cls(ignore_class=255, reduction="none")(t_ignored, x))
        assert per_sample[1] == 0.0 and per_sample[4] == 0.0, per_sample
        mean = float(to_np(cls(ignore_class=255)(t_ignored, x)))
        expected = per_sample.sum() / 4
        assert abs(mean - expected) <= 1e-6 * expected, (cls.__name__, mean, expected)
    return None


@check
def semantics_match_the_focal_losses() -> dict:
    """ASL single-label without smoothing is the softmax focal loss (gamma = gamma_pos); Poly-1 at epsilon 0 is the
    cross-entropy / sigmoid focal loss; one-hot probability targets equal integer targets."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 3, (6, 5)).astype(np.float32)
    t = rng.integers(0, 5, 6).astype(np.int32)
    y = rng.uniform(size=(6, 5)).astype(np.float32)
    focal = to_np(fk.sparse_categorical_focal_loss(t, x, gamma=2.0, from_logits=True))
    assert np.allclose(to_np(fk.asymmetric_loss_single_label(t, x, gamma_pos=2.0)), focal, rtol=2e-6)
    ce = to_np(fk.sparse_categorical_focal_loss(t, x, gamma=0.0, from_logits=True))
    assert np.allclose(to_np(fk.poly1_cross_entropy(t, x, epsilon=0.0)), ce, rtol=2e-6)
    onehot = np.eye(5, dtype=np.float32)[t]
    assert np.allclose(to_np(fk.poly1_cross_entropy(onehot, x, label_smoothing=0.1)),
                       to_np(fk.poly1_cross_entropy(t, x, label_smoothing=0.1)), rtol=1e-6)
    binary = to_np(fk.binary_focal_loss(y, x, gamma=2.0, alpha=0.25, from_logits=True))
    assert np.allclose(to_np(fk.poly1_focal_loss(y, x, epsilon=0.0)), binary, rtol=2e-6)
    bce = to_np(fk.binary_focal_loss(y, x, gamma=0.0, alpha=None, from_logits=True))
    assert np.allclose(to_np(fk.asymmetric_loss(y, x, gamma_neg=0.0, clip=None)), bce, rtol=2e-6)
    return None


@check
def serialisation_round_trip() -> dict:
    for loss in (fk.AsymmetricLoss(gamma_pos=1.0, clip=None, detach_focal_weight=True, reduction="sum"),
                 fk.AsymmetricLossSingleLabel(gamma_neg=2.0, label_smoothing=0.1, ignore_class=255),
                 fk.Poly1CrossEntropy(epsilon=-1.0, weight=[1.0, 2.0], label_smoothing=0.2),
                 fk.Poly1FocalLoss(epsilon=2.0, alpha=[0.25, 0.75], gamma=0.5, axis=-1)):
        again = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(again) is type(loss), type(again)
        assert again.get_config() == loss.get_config(), (again.get_config(), loss.get_config())
    for fn in (fk.asymmetric_loss, fk.asymmetric_loss_single_label, fk.poly1_cross_entropy, fk.poly1_focal_loss):
        assert keras.losses.get(keras.saving.serialize_keras_object(fn)) is fn
    return None


@check
def compile_fit() -> dict:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(64, 5)).astype(np.float32)
    multi_hot = (xs[:, :3] > 0).astype(np.float32)
    classes = np.argmax(xs[:, :3], axis=1).astype(np.int32)
    for loss, ys in ((fk.AsymmetricLoss(), multi_hot), (fk.Poly1FocalLoss(), multi_hot),
                     (fk.AsymmetricLossSingleLabel(label_smoothing=0.1), classes), (fk.Poly1CrossEntropy(), classes)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        hist = model.fit(xs, ys, epochs=3, batch_size=64, verbose=0).history["loss"]
        assert all(np.isfinite(hist)) and hist[-1] < hist[0], (loss.name, hist)
    return None


@check
def bad_arguments_raise_typed_errors() -> dict:
    ones = np.ones((2, 3), np.float32)
    labels = np.asarray([0, 2], np.int32)
    cases = [
        (lambda: fk.AsymmetricLoss(gamma_pos=-1.0), InvalidArgumentError, "gamma_pos"),
        (lambda: fk.asymmetric_loss(ones, ones, gamma_neg=float("nan")), InvalidArgumentError, "gamma_neg"),
        (lambda: fk.AsymmetricLoss(clip=2.0), InvalidArgumentError, "clip"),
        (lambda: fk.AsymmetricLoss(detach_focal_weight=1), InvalidTypeError, "detach_focal_weight"),
        (lambda: fk.asymmetric_loss(ones * 1.5, ones), InvalidArgumentError, "y_true"),
        (lambda: fk.AsymmetricLossSingleLabel(label_smoothing=-0.1), InvalidArgumentError, "label_smoothing"),
        (lambda: fk.AsymmetricLossSingleLabel(ignore_class=1.5), InvalidTypeError, "ignore_class"),
        (lambda: fk.asymmetric_loss_single_label(np.asarray([0, 3]), ones), InvalidArgumentError, "y_true"),
        (lambda: fk.asymmetric_loss_single_label(np.asarray([0, 1, 2]), ones), InvalidArgumentError, "y_true"),
        (lambda: fk.Poly1CrossEntropy(epsilon=-2.0), InvalidArgumentError, "epsilon"),
        (lambda: fk.Poly1CrossEntropy(weight=[1.0, -1.0]), InvalidArgumentError, "weight"),
        (lambda: fk.poly1_cross_entropy(labels, ones, weight=[1.0, 1.0]), InvalidArgumentError, "weight"),
        (lambda: fk.poly1_cross_entropy(ones * 1.5, ones), InvalidArgumentError, "y_true"),
        (lambda: fk.poly1_cross_entropy(labels, np.ones((2, 1), np.float32)), InvalidArgumentError, "y_pred"),
        (lambda: fk.Poly1FocalLoss(alpha=1.5), InvalidArgumentError, "alpha"),
        (lambda: fk.Poly1FocalLoss(gamma="2"), InvalidTypeError, "gamma"),
        (lambda: fk.Poly1FocalLoss(reduction="avg"), InvalidArgumentError, "reduction"),
        (lambda: fk.poly1_focal_loss(ones, "logits"), InvalidTypeError, "y_pred"),
    ]
    for call, error, name in cases:
        try:
            call()
        except error as exc:
            assert str(exc).startswith(f"{name}: expected"), str(exc)
        else:
            raise AssertionError(f"no {error.__name__} for {name}")
    return None


if __name__ == "__main__":
    kbc.main()
