"""focalkit.jax classification losses (Asymmetric Loss multi-label and single-label, Poly-1 cross-entropy and focal
loss): shared float64 vectors, finiteness of loss and gradient in the tails (|logit| up to 1e4), half precision,
identities with the focal losses, transformations and typed errors.

The vectors (tests/vectors/classification_vectors.json, from focalkit.reference in float64, checked against 50-digit
mpmath values by the generator) are checked against the PyTorch core in tests/test_shared_vectors_torch.py and on
every Keras back-end in tests/test_frontend_keras_classification.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")
jnp = pytest.importorskip("jax.numpy", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")

import focalkit.jax as fj  # noqa: E402
from focalkit import InvalidArgumentError, InvalidTypeError  # noqa: E402

DOC = json.loads((Path(__file__).parent / "vectors" / "classification_vectors.json").read_text())
TOL = DOC["tolerance"]
CASES = DOC["cases"]
FNS = ("asymmetric_loss", "asymmetric_loss_single_label", "poly1_cross_entropy", "poly1_cross_entropy_soft",
       "poly1_focal_loss")
PER_ROW = ("asymmetric_loss_single_label", "poly1_cross_entropy", "poly1_cross_entropy_soft")


def _ids(case: dict) -> str:
    return f"{case['fn']}-" + "-".join(f"{k}={v}" for k, v in case["params"].items())


def _assert_vector(got, want: list, tol: dict, what: str, extra_atol: list | None = None) -> None:
    """|got - want| <= rtol |want| + atol (+ the case's per-element allowance, see the generator)."""
    got = np.asarray(got, dtype=np.float64).ravel()
    want_np = np.asarray(want, dtype=np.float64).ravel()
    assert np.all(np.isfinite(got)), f"{what}: non-finite"
    err = np.abs(got - want_np)
    bound = tol["rtol"] * np.abs(want_np) + tol["atol"]
    if extra_atol is not None:
        bound = bound + np.ravel(extra_atol)
    i = int(np.argmax(err / bound))
    assert np.all(err <= bound), (
        f"{what}: |got - want| = {err[i]:.3g} > {bound[i]:.3g} (got {got[i]}, want {want_np[i]})"
    )


def _loss_fn(case: dict):
    """The front-end function of a case as a function of the logits, and the loss tolerance key."""
    fn, params = case["fn"], case["params"]
    if fn == "asymmetric_loss_single_label":
        t = jnp.asarray(case["labels"], jnp.int32)
        return (lambda z: fj.asymmetric_loss_single_label(z, t, **params)), "softmax_loss"
    if fn in ("poly1_cross_entropy", "poly1_cross_entropy_soft"):
        t = jnp.asarray(case["labels"], jnp.int32 if fn == "poly1_cross_entropy" else jnp.float32)
        return (lambda z: fj.poly1_cross_entropy(z, t, **params)), "softmax_loss"
    y = jnp.asarray(case["labels"], jnp.float32)
    return (lambda z: getattr(fj, fn)(z, y, **params)), "loss"


def test_vectors_cover_every_classification_function() -> None:
    assert {c["fn"] for c in CASES} == set(FNS)
    assert sum(len(np.ravel(c["loss"])) for c in CASES) >= 1000


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_shared_vectors(case: dict) -> None:
    f, kind = _loss_fn(case)
    x = jnp.asarray(case["logits"], jnp.float32)
    loss = f(x)
    grad = jax.grad(lambda z: jnp.sum(f(z)))(x)
    expected_shape = x.shape[:-1] if case["fn"] in PER_ROW else x.shape
    assert loss.shape == expected_shape and loss.dtype == jnp.float32
    _assert_vector(loss, case["loss"], TOL[kind], "loss", case.get("loss_atol"))
    _assert_vector(grad, case["grad"], TOL["grad"], "grad", case.get("grad_atol"))
    # the same under jit (XLA may fuse differently: checked against the vectors, not bit for bit)
    _assert_vector(jax.jit(f)(x), case["loss"], TOL[kind], "jit loss", case.get("loss_atol"))


# ---------- stability: loss and gradient finite at |logit| up to 1e4, every allowed parameter ----------

MARGIN_LOGIT = -2.944439  # logit(0.05): p at the default margin
EXTREME = (-1e4, -1e3, -100.0, -30.0, -3.0, MARGIN_LOGIT, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4)
LABELS = (0.0, 1.0, 0.3, 0.999, 1e-3, 1e-20, 1e-40)
ELEMENTWISE = [
    ("asymmetric_loss", {"gamma_pos": gp, "gamma_neg": gn, "clip": m, "detach_focal_weight": d})
    for gp, gn, m, d in [(0.0, 4.0, 0.05, False), (0.0, 4.0, 0.05, True), (0.5, 0.25, 0.05, False),
                         (0.01, 0.01, None, False), (9.0, 9.0, 0.2, False), (1.0, 0.5, 1.0, False),
                         (2.0, 0.0, 0.0, True)]
] + [
    ("poly1_focal_loss", {"epsilon": e, "alpha": a, "gamma": g})
    for e, a, g in [(1.0, 0.25, 2.0), (-1.0, 0.25, 2.0), (-1.0, None, 0.0), (2.0, None, 0.01), (0.5, 0.75, 0.5),
                    (-1.0, None, 9.0)]
]


@pytest.mark.parametrize("name,params", ELEMENTWISE, ids=[f"{n}-{p}" for n, p in ELEMENTWISE])
def test_elementwise_loss_and_gradient_finite_in_the_tails(name: str, params: dict) -> None:
    xs, ys = np.meshgrid(np.asarray(EXTREME, np.float32), np.asarray(LABELS, np.float32))
    xs, ys = jnp.asarray(xs.ravel()), jnp.asarray(ys.ravel())
    fn = getattr(fj, name)
    f = lambda z, y: fn(z, y, **params)  # noqa: E731
    loss, grad = jax.jit(lambda a, b: (f(a, b), jax.vmap(jax.grad(f))(a, b)))(xs, ys)
    assert bool(jnp.all(jnp.isfinite(loss))), loss
    assert bool(jnp.all(jnp.isfinite(grad))), grad
    if name == "asymmetric_loss" or params["epsilon"] >= 0:
        assert bool(jnp.all(loss >= 0))
    # the gradient of the sum equals the per-element gradient (elementwise loss); not compared at the margin
    # (p = m to float32 rounding), where the two compilations may round p_m to 0 or to 1e-9 differently
    away = np.asarray(xs) != np.float32(MARGIN_LOGIT)
    np.testing.assert_allclose(np.asarray(jax.grad(lambda z: jnp.sum(f(z, ys)))(xs))[away], np.asarray(grad)[away],
                               rtol=1e-5, atol=0)


ROWS = np.asarray([[1e4, -1e4, 0.0], [-1e4, 1e4, 30.0], [100.0, -100.0, 99.0], [0.0, 0.0, 0.0],
                   [-30.0, 30.0, -1e3], [1e3, 1e3 - 1.0, -1e3]], np.float32)
ROW_LABELS = np.asarray([0, 0, 2, 1, 1, 2])
SOFTMAX = [
    ("asymmetric_loss_single_label", {"gamma_pos": gp, "gamma_neg": gn, "label_smoothing": s})
    for gp, gn, s in [(0.0, 4.0, 0.0), (0.0, 4.0, 0.1), (0.5, 0.25, 0.3), (0.01, 0.01, 1.0), (9.0, 9.0, 0.1)]
] + [
    ("poly1_cross_entropy", {"epsilon": e, "label_smoothing": s, "weight": w})
    for e, s, w in [(1.0, 0.0, None), (-1.0, 0.0, None), (-1.0, 0.1, [1.0, 2.0, 0.5]), (2.0, 1.0, None)]
]


@pytest.mark.parametrize("name,params", SOFTMAX, ids=[f"{n}-{p}" for n, p in SOFTMAX])
def test_softmax_loss_and_gradient_finite_in_the_tails(name: str, params: dict) -> None:
    fn = getattr(fj, name)
    t = jnp.asarray(ROW_LABELS)
    f = lambda z: fn(z, t, **params)  # noqa: E731
    loss, grad = jax.jit(lambda z: (f(z), jax.grad(lambda w: jnp.sum(f(w)))(z)))(jnp.asarray(ROWS))
    assert bool(jnp.all(jnp.isfinite(loss))), loss
    assert bool(jnp.all(jnp.isfinite(grad))), grad
    assert bool(jnp.all(loss >= 0)), loss
    # softmax: every row's gradient sums to 0 (up to the rounding of its largest entries)
    np.testing.assert_allclose(np.asarray(grad).sum(axis=-1), 0.0, atol=1e-5 * float(jnp.max(jnp.abs(grad))))


def test_tail_values_are_exact() -> None:
    """At |x| = 1e4 the losses equal their closed forms: softplus(|x|) = |x| on the wrong side."""
    x = jnp.asarray([-1e4, 1e4], jnp.float32)
    # positive on the wrong side: -log p = 1e4 (gamma_pos = 0); negative on the wrong side: p_m = 1 - m, so the
    # loss is (1 - m)^gamma_neg (-log m), bounded by the margin
    np.testing.assert_allclose(fj.asymmetric_loss(x, jnp.asarray([1.0, 0.0]), clip=0.05),
                               [1e4, 0.95**4 * -np.log(0.05)], rtol=1e-6)
    np.testing.assert_allclose(fj.asymmetric_loss(x, jnp.asarray([1.0, 0.0]), clip=None, gamma_neg=2.0),
                               [1e4, 1e4], rtol=1e-7)
    np.testing.assert_allclose(fj.poly1_focal_loss(x, jnp.asarray([1.0, 0.0]), epsilon=1.0, alpha=None, gamma=0.0),
                               [1e4 + 1, 1e4 + 1], rtol=1e-7)
    rows = jnp.asarray([[1e4, -1e4, 0.0]])
    np.testing.assert_allclose(fj.poly1_cross_entropy(rows, jnp.asarray([1]), epsilon=1.0), [2e4 + 1], rtol=1e-7)
    np.testing.assert_allclose(fj.asymmetric_loss_single_label(rows, jnp.asarray([2])), [1e4], rtol=1e-7)
    # the right side: exactly zero loss and gradient is not required, but both must be tiny and finite
    g = jax.grad(lambda z: jnp.sum(fj.poly1_focal_loss(z, jnp.asarray([0.0, 1.0]), epsilon=-1.0)))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) < 1e-30


def test_half_precision_is_computed_in_float32() -> None:
    x = jnp.asarray(np.linspace(-20, 20, 40).reshape(8, 5), jnp.float32)
    y = jnp.asarray((np.linspace(0, 1, 40) ** 2).reshape(8, 5), jnp.float32).at[::3].set(0.0).at[::4].set(1.0)
    t = jnp.asarray([0, 1, 2, 3, 4, 0, -100, 2])
    calls = [
        lambda z: fj.asymmetric_loss(z, y),
        lambda z: fj.poly1_focal_loss(z, y, epsilon=-1.0),
        lambda z: fj.asymmetric_loss_single_label(z, t, label_smoothing=0.1),
        lambda z: fj.poly1_cross_entropy(z, t, label_smoothing=0.1),
    ]
    for dtype in (jnp.float16, jnp.bfloat16):
        xh = x.astype(dtype)
        for f in calls:
            got = f(xh)
            assert got.dtype == jnp.float32
            np.testing.assert_allclose(got, f(xh.astype(jnp.float32)), rtol=1e-7)
            assert bool(jnp.all(jnp.isfinite(jax.grad(lambda z, f=f: jnp.sum(f(z)))(xh))))


# ---------- semantics ----------

X = jnp.asarray(np.linspace(-6.0, 6.0, 30).reshape(6, 5), jnp.float32)
T = jnp.asarray([0, 4, 2, 1, 3, 2])


def test_asymmetric_without_focusing_or_margin_is_the_bce() -> None:
    y = jnp.asarray(np.random.default_rng(0).uniform(size=(6, 5)), jnp.float32)
    bce = y * jax.nn.softplus(-X) + (1 - y) * jax.nn.softplus(X)
    np.testing.assert_allclose(fj.asymmetric_loss(X, y, gamma_neg=0.0, clip=None), bce, rtol=1e-6)
    # focal weights on each side: (1 - p)^g+ on positives, p^g- on negatives
    p = jax.nn.sigmoid(X)
    np.testing.assert_allclose(fj.asymmetric_loss(X, 1.0, gamma_pos=2.0), jax.nn.sigmoid(-X) ** 2 * jax.nn.softplus(-X),
                               rtol=1e-5)
    np.testing.assert_allclose(fj.asymmetric_loss(X, 0.0, gamma_neg=3.0, clip=None), p**3 * jax.nn.softplus(X),
                               rtol=1e-5)


def test_asymmetric_margin_discards_easy_negatives() -> None:
    """p <= m: the negative term and its gradient vanish; above, p is shifted by m."""
    x = jnp.asarray([-4.0, -3.0, -2.0, 0.0, 3.0])
    p = jax.nn.sigmoid(x)
    loss = fj.asymmetric_loss(x, 0.0, gamma_neg=1.0, clip=0.1)
    p_m = jnp.maximum(p - 0.1, 0.0)
    np.testing.assert_allclose(loss, p_m * -jnp.log1p(-p_m), rtol=1e-5)
    g = jax.grad(lambda z: jnp.sum(fj.asymmetric_loss(z, 0.0, gamma_neg=1.0, clip=0.1)))(x)
    assert float(loss[0]) == 0.0 and float(g[0]) == 0.0 and float(g[-1]) > 0


def test_detach_focal_weight_keeps_the_value_and_changes_the_gradient() -> None:
    y = jnp.asarray([1.0, 0.0, 0.0, 1.0, 0.5])
    x = jnp.asarray([-1.0, 1.0, 3.0, 0.5, 2.0])
    kw = {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.05}
    np.testing.assert_array_equal(fj.asymmetric_loss(x, y, **kw), fj.asymmetric_loss(x, y, **kw,
                                                                                     detach_focal_weight=True))
    g = jax.grad(lambda z: jnp.sum(fj.asymmetric_loss(z, y, **kw, detach_focal_weight=True)))(x)
    # the gradient of the detached weights, by autodiff of the plain formula with stop_gradient weights
    def detached(z: jnp.ndarray) -> jnp.ndarray:
        pz = jax.nn.sigmoid(z)
        p_m = jnp.maximum(pz - 0.05, 0.0)
        w_pos, w_neg = jax.lax.stop_gradient((1 - pz) ** 1.0), jax.lax.stop_gradient(p_m**2.0)
        return jnp.sum(y * w_pos * -jnp.log(pz) + (1 - y) * w_neg * -jnp.log1p(-p_m))

    np.testing.assert_allclose(g, jax.grad(detached)(x), rtol=1e-5, atol=1e-7)
    assert not np.allclose(g, jax.grad(lambda z: jnp.sum(fj.asymmetric_loss(z, y, **kw)))(x), rtol=1e-3)


def test_asymmetric_gradient_in_the_labels_is_the_difference_of_the_terms() -> None:
    y = jnp.asarray(np.random.default_rng(1).uniform(size=(6, 5)), jnp.float32)
    gy = jax.grad(lambda t: jnp.sum(fj.asymmetric_loss(X, t, gamma_pos=1.0)))(y)
    np.testing.assert_allclose(gy, fj.asymmetric_loss(X, 1.0, gamma_pos=1.0) - fj.asymmetric_loss(X, 0.0,
                                                                                                   gamma_pos=1.0),
                               rtol=1e-5, atol=1e-7)


def test_single_label_without_smoothing_is_the_softmax_focal_loss() -> None:
    for gamma in (0.0, 0.5, 2.0):
        np.testing.assert_allclose(fj.asymmetric_loss_single_label(X, T, gamma_pos=gamma, gamma_neg=4.0),
                                   fj.softmax_focal_loss(X, T, gamma=gamma), rtol=2e-6)


def test_poly1_reduces_to_the_focal_losses_at_epsilon_zero() -> None:
    np.testing.assert_allclose(fj.poly1_cross_entropy(X, T, epsilon=0.0), fj.softmax_focal_loss(X, T, gamma=0.0),
                               rtol=2e-6)
    y = jnp.asarray(np.random.default_rng(2).uniform(size=(6, 5)), jnp.float32)
    for alpha, gamma in [(0.25, 2.0), (None, 0.5)]:
        np.testing.assert_allclose(fj.poly1_focal_loss(X, y, epsilon=0.0, alpha=alpha, gamma=gamma),
                                   fj.sigmoid_focal_loss(X, y, alpha=alpha, gamma=gamma), rtol=2e-6)
    # the poly term: epsilon (1 - p_t) and epsilon (1 - p_t)^(gamma + 1), not alpha-weighted
    p = jax.nn.softmax(X, axis=-1)
    p_t = jnp.take_along_axis(p, T[:, None], axis=-1)[:, 0]
    np.testing.assert_allclose(fj.poly1_cross_entropy(X, T, epsilon=2.0) - fj.poly1_cross_entropy(X, T, epsilon=0.0),
                               2.0 * (1 - p_t), rtol=1e-5, atol=1e-6)
    u = jax.nn.sigmoid(X) * (1 - y) + jax.nn.sigmoid(-X) * y
    np.testing.assert_allclose(fj.poly1_focal_loss(X, y, epsilon=1.5, gamma=2.0)
                               - fj.poly1_focal_loss(X, y, epsilon=0.0, gamma=2.0), 1.5 * u**3, rtol=1e-4, atol=1e-6)


def test_poly1_cross_entropy_probability_labels_and_smoothing() -> None:
    onehot = jax.nn.one_hot(T, 5)
    np.testing.assert_allclose(fj.poly1_cross_entropy(X, onehot, label_smoothing=0.2),
                               fj.poly1_cross_entropy(X, T, label_smoothing=0.2), rtol=1e-6)
    np.testing.assert_allclose(fj.poly1_cross_entropy(X, onehot * 0.8 + 0.04),
                               fj.poly1_cross_entropy(X, T, label_smoothing=0.2), rtol=1e-6)
    w = jnp.asarray([1.0, 2.0, 0.5, 3.0, 0.0])
    np.testing.assert_allclose(fj.poly1_cross_entropy(X, T, weight=w),
                               w[T] * fj.poly1_cross_entropy(X, T), rtol=1e-6)


def test_class_axis_and_ignore_index() -> None:
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 5, 3)), jnp.float32)  # (N, C, d) with axis=1
    t = jnp.asarray(np.random.default_rng(4).integers(0, 5, (4, 3))).at[0, 1].set(-100)
    for fn in (fj.asymmetric_loss_single_label, fj.poly1_cross_entropy):
        got = fn(x, t, axis=1)
        assert got.shape == (4, 3)
        np.testing.assert_allclose(got, fn(jnp.moveaxis(x, 1, -1), t), rtol=1e-6)
        assert float(got[0, 1]) == 0.0
        g = jax.grad(lambda z, fn=fn: jnp.sum(fn(z, t, axis=1)))(x)
        assert float(jnp.max(jnp.abs(g[0, :, 1]))) == 0.0
        # ignore_index=None: -100 is then an invalid label
        with pytest.raises(InvalidArgumentError, match="^labels: expected"):
            fn(x, t, axis=1, ignore_index=None)


def test_traced_invalid_labels_give_nan() -> None:
    out = jax.jit(lambda z, y: fj.asymmetric_loss(z, y))(jnp.zeros(3), jnp.asarray([0.5, 1.5, -0.1]))
    assert bool(jnp.isfinite(out[0])) and bool(jnp.all(jnp.isnan(out[1:])))
    out = jax.jit(lambda z, t: fj.poly1_cross_entropy(z, t))(X[:3], jnp.asarray([0, 7, -100]))
    assert bool(jnp.isfinite(out[0])) and bool(jnp.isnan(out[1])) and float(out[2]) == 0.0
    out = jax.jit(lambda z, t: fj.asymmetric_loss_single_label(z, t))(X[:2], jnp.asarray([-1, 1]))
    assert bool(jnp.isnan(out[0])) and bool(jnp.isfinite(out[1]))


# ---------- errors ----------

_X = jnp.ones(3)
_R = jnp.ones((2, 3))
_T = jnp.asarray([0, 2])


@pytest.mark.parametrize(
    "call,error,name",
    [
        (lambda: fj.asymmetric_loss(_X, _X, gamma_pos=-1.0), InvalidArgumentError, "gamma_pos"),
        (lambda: fj.asymmetric_loss(_X, _X, gamma_neg=float("nan")), InvalidArgumentError, "gamma_neg"),
        (lambda: fj.asymmetric_loss(_X, _X, gamma_neg=jnp.float32(4)), InvalidTypeError, "gamma_neg"),
        (lambda: fj.asymmetric_loss(_X, _X, clip=1.5), InvalidArgumentError, "clip"),
        (lambda: fj.asymmetric_loss(_X, _X, clip="0.05"), InvalidTypeError, "clip"),
        (lambda: fj.asymmetric_loss(_X, _X, detach_focal_weight=1), InvalidTypeError, "detach_focal_weight"),
        (lambda: fj.asymmetric_loss(_X, 2 * _X), InvalidArgumentError, "labels"),
        (lambda: fj.asymmetric_loss(_X, jnp.ones(4)), InvalidArgumentError, "labels"),
        (lambda: fj.asymmetric_loss(jnp.ones(3, jnp.int32), _X), InvalidTypeError, "logits"),
        (lambda: fj.asymmetric_loss_single_label(_R, _T, gamma_pos=-0.5), InvalidArgumentError, "gamma_pos"),
        (lambda: fj.asymmetric_loss_single_label(_R, _T, label_smoothing=1.5), InvalidArgumentError,
         "label_smoothing"),
        (lambda: fj.asymmetric_loss_single_label(_R, _T * 1.0), InvalidTypeError, "labels"),
        (lambda: fj.asymmetric_loss_single_label(_R, jnp.asarray([0, 3])), InvalidArgumentError, "labels"),
        (lambda: fj.asymmetric_loss_single_label(_R, jnp.asarray([0, 1, 2])), InvalidArgumentError, "labels"),
        (lambda: fj.asymmetric_loss_single_label(jnp.ones((2, 1)), _T[:2] * 0), InvalidArgumentError, "logits"),
        (lambda: fj.asymmetric_loss_single_label(_R, _T, ignore_index=1.5), InvalidTypeError, "ignore_index"),
        (lambda: fj.poly1_cross_entropy(_R, _T, epsilon=-1.5), InvalidArgumentError, "epsilon"),
        (lambda: fj.poly1_cross_entropy(_R, _T, epsilon=jnp.float32(1)), InvalidTypeError, "epsilon"),
        (lambda: fj.poly1_cross_entropy(_R, _T, weight=[1.0, -1.0, 1.0]), InvalidArgumentError, "weight"),
        (lambda: fj.poly1_cross_entropy(_R, _T, weight=[1.0, 1.0]), InvalidArgumentError, "weight"),
        (lambda: fj.poly1_cross_entropy(_R, _T, weight=np.ones(4)), InvalidArgumentError, "weight"),
        (lambda: fj.poly1_cross_entropy(_R, jnp.ones((2, 4))), InvalidArgumentError, "labels"),
        (lambda: fj.poly1_cross_entropy(_R, 1.5 * _R), InvalidArgumentError, "labels"),
        (lambda: fj.poly1_cross_entropy(_R, "labels"), InvalidTypeError, "labels"),
        (lambda: fj.poly1_focal_loss(_X, _X, epsilon=-2.0), InvalidArgumentError, "epsilon"),
        (lambda: fj.poly1_focal_loss(_X, _X, alpha=1.5), InvalidArgumentError, "alpha"),
        (lambda: fj.poly1_focal_loss(_X, _X, gamma=-1.0), InvalidArgumentError, "gamma"),
        (lambda: fj.poly1_focal_loss(_X, -_X), InvalidArgumentError, "labels"),
    ],
)
def test_bad_arguments_raise_typed_errors(call, error, name: str) -> None:
    with pytest.raises(error, match=f"^{name}: expected"):
        call()


def test_hyper_parameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        fj.asymmetric_loss(_X, _X, 0.0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        fj.poly1_cross_entropy(_R, _T, 1.0)  # type: ignore[misc]
