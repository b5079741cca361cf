"""Checks of focalkit.keras's detection losses on one Keras back-end; run as a script with KERAS_BACKEND set.

tests/test_frontend_keras_detection.py runs it in a subprocess per installed back-end
(``KERAS_BACKEND=tensorflow|jax|torch python tests/keras_detection_check.py OUT.json``) and asserts on the JSON it
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

DOC = json.loads((Path(__file__).parent / "vectors" / "detection_vectors.json").read_text())
TOL = DOC["tolerance"]
FNS = {"quality_focal_loss": fk.quality_focal_loss, "varifocal_loss": fk.varifocal_loss,
       "gaussian_focal_loss": fk.gaussian_focal_loss}


def _vectors(fn_name: str) -> dict[str, Any]:
    fn = FNS[fn_name]
    rel_loss = rel_grad = 0.0
    failures = []
    for case in DOC["cases"]:
        if case["fn"] != fn_name:
            continue
        # one element per row (a trailing axis of size 1 is averaged over): per-element losses and gradients
        x = np.asarray(case["logits"], np.float32).reshape(-1, 1)
        y = np.asarray(case["labels"], np.float32).reshape(-1, 1)
        loss, grad = value_and_grad(lambda z, y=y, p=case["params"]: fn(y, z, **p), x)
        want = np.ravel(case["loss"])
        # QFL: the per-element allowance for the float32 error of y - p near p = y (see the generator)
        atol = TOL["loss"]["atol"] + np.ravel(case.get("loss_atol", 0.0))
        e, _ = compare(loss, want, TOL["loss"]["rtol"], atol)
        nz = np.abs(want) > TOL["loss"]["atol"]
        r = float(np.max(np.abs(np.ravel(loss) - want)[nz] / np.abs(want[nz])))  # plain max relative error
        eg, rg = compare(grad, np.ravel(case["grad"]), TOL["grad"]["rtol"], TOL["grad"]["atol"])
        rel_loss, rel_grad = max(rel_loss, r), max(rel_grad, rg)
        if e > 1 or eg > 1:
            failures.append(f"{case['params']}: loss excess {e:.3g}, grad excess {eg:.3g}")
    assert not failures, failures
    return {"max_rel_loss": rel_loss, "max_rel_grad": rel_grad}


@check
def vectors_quality_focal_loss() -> dict:
    return _vectors("quality_focal_loss")


@check
def vectors_varifocal_loss() -> dict:
    return _vectors("varifocal_loss")


@check
def vectors_gaussian_focal_loss() -> dict:
    return _vectors("gaussian_focal_loss")


EXTREME = np.asarray([-1e4, -1e3, -100.0, -30.0, 0.0, 30.0, 100.0, 1e3, 1e4], np.float32)
LABELS = np.asarray([0.0, 1.0, 0.3, 0.999, 1e-3, 1e-20], np.float32)
SETTINGS = [
    (fk.quality_focal_loss, {"beta": b}) for b in (0.0, 0.01, 0.5, 2.0, 7.5)
] + [
    (fk.varifocal_loss, {"alpha": a, "gamma": g, "iou_weighted": i})
    for a, g, i in [(0.75, 2.0, True), (0.75, 0.0, False), (2.0, 0.01, True), (1.0, 9.0, False)]
] + [
    (fk.gaussian_focal_loss, {"alpha": a, "beta": b}) for a, b in [(2.0, 4.0), (0.0, 0.0), (0.01, 0.5), (7.0, 9.0)]
]


@check
def stability_at_1e4() -> dict:
    x = np.repeat(EXTREME, len(LABELS)).reshape(-1, 1)
    y = np.tile(LABELS, len(EXTREME)).reshape(-1, 1)
    for fn, params in SETTINGS:
        loss, grad = value_and_grad(lambda z, fn=fn, params=params: fn(y, z, **params), x)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (fn.__name__, params, loss, grad)
        assert np.all(loss >= 0), (fn.__name__, params, loss)
    return None


@check
def half_precision_computed_in_float32() -> dict:
    x = np.linspace(-20, 20, 24).astype(np.float32).reshape(6, 4)
    y = np.round(np.linspace(0, 1, 24) ** 2, 2).astype(np.float32).reshape(6, 4)
    for fn, _ in SETTINGS[:1] + SETTINGS[5:6] + SETTINGS[9:10]:
        for dtype in ("float16", "bfloat16"):
            xh = keras.ops.cast(x, dtype)
            got = fn(y, xh)
            assert keras.backend.standardize_dtype(got.dtype) == "float32", got.dtype
            want = to_np(fn(y, keras.ops.cast(xh, "float32")))
            assert np.allclose(to_np(got), want, rtol=1e-6, atol=0), (fn.__name__, dtype)
    return None


@check
def reductions_and_sample_weight() -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (6, 4)).astype(np.float32)
    y = np.where(rng.uniform(size=(6, 4)) < 0.5, 0.0, rng.uniform(size=(6, 4))).astype(np.float32)
    y[0, 0] = 1.0
    w = rng.uniform(0.5, 2, 6).astype(np.float32)
    for cls in (fk.QualityFocalLoss, fk.VarifocalLoss, fk.GaussianFocalLoss):
        per_sample = to_np(cls(reduction="none")(y, x))
        assert per_sample.shape == (6,), per_sample.shape
        assert np.allclose(per_sample, to_np(cls.loss_fn(y, x)), rtol=1e-6), cls.__name__
        for reduction, expected in [
            ("sum", (per_sample * w).sum()),
            ("sum_over_batch_size", (per_sample * w).sum() / 6),
            ("mean_with_sample_weight", (per_sample * w).sum() / w.sum()),
        ]:
            got = float(to_np(cls(reduction=reduction)(y, x, sample_weight=w)))
            assert abs(got - expected) <= 1e-6 * abs(expected), (cls.__name__, reduction, got, expected)
    return None


@check
def serialisation_round_trip() -> dict:
    for loss in (fk.QualityFocalLoss(beta=1.5, reduction="sum"), fk.VarifocalLoss(alpha=0.5, gamma=1.0,
                 iou_weighted=False), fk.GaussianFocalLoss(alpha=3.0, beta=2.0, axis=-1)):
        again = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(again) is type(loss), type(again)
        assert again.get_config() == loss.get_config(), (again.get_config(), loss.get_config())
    for fn in FNS.values():
        assert keras.losses.get(keras.saving.serialize_keras_object(fn)) is fn
    return None


@check
def compile_fit() -> dict:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(64, 5)).astype(np.float32)
    ys = np.clip(xs[:, :2] * 0.3 + 0.3, 0, 1).astype(np.float32)
    ys[ys < 0.2] = 0.0
    for loss in (fk.QualityFocalLoss(), fk.VarifocalLoss(), fk.GaussianFocalLoss()):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        hist = model.fit(xs, ys, epochs=3, batch_size=64, verbose=0).history["loss"]
        assert all(np.isfinite(hist)) and hist[-1] < hist[0], (loss.name, hist)
    return None


@check
def bad_arguments_raise_typed_errors() -> dict:
    ones = np.ones((2, 3), np.float32)
    cases = [
        (lambda: fk.QualityFocalLoss(beta=-1.0), InvalidArgumentError, "beta"),
        (lambda: fk.quality_focal_loss(ones, ones, beta=float("nan")), InvalidArgumentError, "beta"),
        (lambda: fk.VarifocalLoss(alpha=-0.1), InvalidArgumentError, "alpha"),
        (lambda: fk.VarifocalLoss(gamma=-2.0), InvalidArgumentError, "gamma"),
        (lambda: fk.VarifocalLoss(iou_weighted=1), InvalidTypeError, "iou_weighted"),
        (lambda: fk.GaussianFocalLoss(alpha=float("inf")), InvalidArgumentError, "alpha"),
        (lambda: fk.GaussianFocalLoss(beta="4"), InvalidTypeError, "beta"),
        (lambda: fk.GaussianFocalLoss(reduction="avg"), InvalidArgumentError, "reduction"),
        (lambda: fk.quality_focal_loss(ones * 1.5, ones), InvalidArgumentError, "y_true"),
        (lambda: fk.varifocal_loss(np.ones((2, 4), np.float32), ones), InvalidArgumentError, "y_true"),
        (lambda: fk.gaussian_focal_loss(ones, "logits"), InvalidTypeError, "y_pred"),
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
