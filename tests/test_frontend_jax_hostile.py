"""focalkit.jax under hostile inputs: dense logit grids for loss / gradient / Hessian, FL* accuracy, bad values.

Three classes of defect, one block of tests each:

1. Second derivatives of the sigmoid family: finite and accurate on every integer and half-integer logit in
   [-120, 120] and at +-1e4, for gamma in {0, 0.5, 1, 2, 5}, hard and soft labels (the Hessian used to be NaN for
   44 < |x| < 69 on the confidently right side); ``binary_focal_loss`` at probabilities 0 and 1.
2. FL*'s derivatives (its Hessian used to be 0 at gamma 2, x = 9 and 15 % off at gamma 0.5, x = 30).
3. Bad values and shapes: typed focalkit errors where values can be read, NaN where they are traced; shape checks
   also under ``jit``.

Reference values are 50-digit mpmath evaluations at the float32 inputs. Where the terms of a closed form cancel (near
a sign change of the gradient or the Hessian), no float32 evaluation can have a small relative error; there the
error is bounded by a multiple of the float32 rounding of the terms' magnitudes (``scale`` below).
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")
jnp = pytest.importorskip("jax.numpy", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")
mp = pytest.importorskip("mpmath", reason="50-digit reference values need mpmath")

import focalkit.jax as fj  # noqa: E402
from focalkit import InvalidArgumentError, InvalidTypeError  # noqa: E402

mp.mp.dps = 50
EPS = 2.0**-24  # float32 unit roundoff
FLT_MIN = float(np.finfo(np.float32).tiny)
FLT_MAX = float(np.finfo(np.float32).max)
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
GRID = np.concatenate([np.arange(-120.0, 120.5, 0.5), [-1e4, 1e4]]).astype(np.float32)
LABELS = (0.0, 1.0, 0.25, 0.75, float(np.float32(0.999)), float(np.float32(1e-3)))
# bounds (measured maxima in the comments, from the runs that introduced these tests)
REL = 1e-6  # relative error where the terms do not cancel (measured <= 6.7e-7)
SCALE_ULPS = 24.0  # error / (EPS * sum of |terms|) everywhere (measured <= 11.3 for sigmoid, 10.3 for binary)
# Accuracy is asserted for values above FLOOR: XLA flushes float32 subnormals to zero, so a factor of a product can
# vanish while the product itself (a few thousand times larger) is still a normal number. Below FLOOR the error is
# asserted to be at most FLOOR.
FLOOR = 1e-34


def _values_grads_hessians(f, xs: np.ndarray, y: float):
    """f(x, y), d/dx and d2/dx2 per element, under jit and vmap, by reverse mode and forward-over-reverse."""
    run = jax.jit(lambda a, b: (jax.vmap(f)(a, b), jax.vmap(jax.grad(f))(a, b), jax.vmap(jax.hessian(f))(a, b),
                                jax.vmap(jax.grad(jax.grad(f)))(a, b)))
    x = jnp.asarray(xs)
    return [np.asarray(v, np.float64) for v in run(x, jnp.full_like(x, y))]


def _check(got: np.ndarray, want: list, scale: list, what: str) -> tuple[float, float]:
    """Assert |got - want| <= SCALE_ULPS * EPS * scale, and <= REL |want| where |want| >= scale / 2 (no
    cancellation), wherever scale >= FLOOR; below it |got - want| <= FLOOR. Returns (max error / (EPS scale), max
    relative error without cancellation)."""
    want_np = np.array([float(w) for w in want])
    scale_np = np.array([float(s) for s in scale])
    assert np.all(np.isfinite(got)), f"{what}: non-finite at {np.flatnonzero(~np.isfinite(got))[:5]}"
    normal = scale_np >= FLOOR
    small_err = np.abs(got - want_np)[~normal]
    assert np.all(small_err <= FLOOR), (what, "below the floor", small_err.max(initial=0.0))
    err = np.abs(got - want_np)[normal]
    ulps = err / (EPS * scale_np[normal])
    i = int(np.argmax(ulps)) if ulps.size else 0
    assert not ulps.size or ulps[i] <= SCALE_ULPS, (what, "ulps of scale", ulps[i], got[normal][i], want_np[normal][i])
    plain = np.abs(want_np[normal]) >= 0.5 * scale_np[normal]
    rel = err[plain] / np.abs(want_np[normal][plain])
    j = int(np.argmax(rel)) if rel.size else 0
    assert not rel.size or rel[j] <= REL, (what, "relative", rel[j], got[normal][plain][j], want_np[normal][plain][j])
    return float(ulps.max(initial=0.0)), float(rel.max(initial=0.0))


# ---------- 1. sigmoid family: loss, gradient, Hessian on a dense grid ----------


def _mp_sigmoid(x, y, g):
    """L = u^g CE and its derivatives in x, each with the sum of the magnitudes of its terms (the scale)."""
    p, q = 1 / (1 + mp.exp(-x)), 1 / (1 + mp.exp(x))
    u = p * (1 - y) + q * y
    ce = mp.log1p(mp.exp(x)) - x * y if x < 0 else x * (1 - y) + mp.log1p(mp.exp(-x))
    s, w, r, ug = 1 - 2 * y, q - p, p * q / u, u**g
    e_terms = [p * (1 - y), -q * y]  # e = dCE/dx = p - y, without cancellation
    d1 = e_terms + [g * s * r * ce]
    d2 = [p * q] + [2 * g * s * r * t for t in e_terms] + [g * s * r * w * ce, g * (g - 1) * (s * r) ** 2 * ce]
    return ((ug * ce, ug * ce), (ug * mp.fsum(d1), ug * mp.fsum(abs(t) for t in d1)),
            (ug * mp.fsum(d2), ug * mp.fsum(abs(t) for t in d2)))


def test_sigmoid_reference_formulas_match_mpmath_derivatives() -> None:
    """The closed forms used as references below equal mpmath's numerical derivatives of u^g CE."""
    for g in (0.5, 2.0, 5.0):
        for y in (0.0, 1.0, 0.25):
            for x in (-60.0, -7.5, -1.0, 0.0, 2.5, 50.0, 90.0):
                ym, xm = mp.mpf(y), mp.mpf(x)
                num = list(mp.diffs(lambda t: _mp_sigmoid(t, ym, g)[0][0], xm, 2))
                ref = [v for v, _ in _mp_sigmoid(xm, ym, g)]
                for k in (1, 2):
                    assert abs(num[k] - ref[k]) <= mp.mpf(10) ** -20 * abs(ref[k]), (g, y, x, k)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_dense_grid_finite_and_accurate(gamma: float) -> None:
    f = lambda z, t: fj.sigmoid_focal_loss(z, t, gamma=gamma)  # noqa: E731
    for y in LABELS:
        loss, grad, hess, grad_grad = _values_grads_hessians(f, GRID, y)
        np.testing.assert_allclose(grad_grad, hess, rtol=1e-6, atol=FLOOR)  # reverse-over-reverse = fwd-over-rev
        ref = [_mp_sigmoid(mp.mpf(float(x)), mp.mpf(y), gamma) for x in GRID]
        for k, got in enumerate((loss, grad, hess)):
            _check(got, [r[k][0] for r in ref], [r[k][1] for r in ref], f"gamma={gamma} y={y} order {k}")


def test_sigmoid_hessian_confidently_right_44_to_69() -> None:
    """The reported case: NaN before (autodiff of the gradient divided by u^2, which overflows)."""
    h = float(jax.hessian(lambda v: fj.sigmoid_focal_loss(v, 1.0, gamma=0.5))(50.0))
    want = float(mp.mpf(1.5) ** 2 * mp.exp(-75))  # L ~ exp(-(1 + g) x): L'' = (1 + g)^2 exp(-(1 + g) x)
    assert abs(h - want) <= 1e-6 * want, (h, want)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_joint_hessian_in_logits_and_labels_finite(gamma: float) -> None:
    """Second derivatives that involve the labels (distillation, meta-learning) are closed forms too."""
    xs = jnp.asarray(GRID[np.abs(GRID) <= 120])
    f = lambda x, y: fj.sigmoid_focal_loss(x, y, alpha=0.25, gamma=gamma)  # noqa: E731
    for y in LABELS:
        h = jax.jit(jax.vmap(jax.hessian(f, argnums=(0, 1))))(xs, jnp.full_like(xs, y))
        for block in jax.tree_util.tree_leaves(h):
            assert bool(jnp.all(jnp.isfinite(block))), (gamma, y)
    # the mixed and label second derivatives agree with mpmath at sample points
    for x, y in [(-3.0, 0.3), (2.0, 0.8), (50.0, 1.0), (-50.0, 0.0), (7.0, 0.999)]:
        y32 = float(np.float32(y))
        got = jax.hessian(f, argnums=(0, 1))(jnp.float32(x), jnp.float32(y32))
        for (i, j), order in (((0, 1), (1, 1)), ((1, 1), (0, 2))):
            want = mp.diff(lambda a, b: _mp_sigmoid(a, b, gamma)[0][0] * (0.25 * b + 0.75 * (1 - b)),
                           (mp.mpf(x), mp.mpf(y32)), order)
            value = float(got[i][j])
            assert abs(value - float(want)) <= 2e-5 * abs(float(want)) + 1e-30, (gamma, x, y, order, value, want)


def _mp_binary(p, y, g):
    """L = u^g BCE(p, y) and its derivatives in p (no clamp: 0 < p < 1), each with its scale."""
    q = 1 - p
    u = p * (1 - y) + q * y
    bce = -(y * mp.log(p) + (1 - y) * mp.log(q))
    s = 1 - 2 * y
    b1 = [(1 - y) / q, -y / p]
    b2 = [(1 - y) / q**2, y / p**2]
    d1 = [g * s * u ** (g - 1) * bce] + [u**g * t for t in b1]
    d2 = [g * (g - 1) * s * s * u ** (g - 2) * bce]
    d2 += [2 * g * s * u ** (g - 1) * t for t in b1] + [u**g * t for t in b2]
    loss = u**g * bce
    return (loss, loss), (mp.fsum(d1), mp.fsum(abs(t) for t in d1)), (mp.fsum(d2), mp.fsum(abs(t) for t in d2))


@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_probability_grid_finite_and_accurate(gamma: float) -> None:
    """Probabilities sigmoid(x) of the logit grid (in float32: many are exactly 0 or 1). Inside (0, 1): accurate
    wherever the true value is a normal float32 number, +inf only where it exceeds float32's range (y / p^2 for
    p < 1e-19). At 0 and 1: finite (the clamp of the core)."""
    probs = np.unique(np.asarray(jax.nn.sigmoid(jnp.asarray(GRID)), np.float32))
    f = lambda z, t: fj.binary_focal_loss(z, t, alpha=None, gamma=gamma)  # noqa: E731
    for y in LABELS:
        loss, grad, hess, grad_grad = _values_grads_hessians(f, probs, y)
        edge = (probs == 0) | (probs == 1)
        for v in (loss, grad, hess, grad_grad):
            assert np.all(np.isfinite(v[edge])), (gamma, y, probs[edge], v[edge])
        inner = ~edge
        ref = [_mp_binary(mp.mpf(float(p)), mp.mpf(y), gamma) for p in probs[inner]]
        for k, got in enumerate((loss, grad, hess)):
            scale = np.array([float(r[k][1]) for r in ref])
            over = scale > FLT_MAX / 4
            assert np.all(np.isfinite(got[inner][~over])), (gamma, y, k)
            _check(got[inner][~over], [r[k][0] for r, o in zip(ref, over, strict=True) if not o],
                   [r[k][1] for r, o in zip(ref, over, strict=True) if not o], f"binary gamma={gamma} y={y} order {k}")


@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_hessian_at_probabilities_0_and_1(gamma: float) -> None:
    """NaN before, even at gamma 0 (tiny^2 underflows in the derivative of the clamped 1/p). Values: at p = y the
    limit of the Hessian ((1 + gamma) gamma u^(gamma - 1) + ...: 1 at gamma 0, 2 at gamma 1, 0 above), evaluated
    at u = FLT_MIN where it is infinite (0 < gamma < 1); on the clamped side the clamped logarithm is flat to
    second order, as in the core's double backward: gamma (gamma - 1) (-log FLT_MIN)."""
    log_tiny = -float(np.log(np.float32(FLT_MIN)))
    for p, y in [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.0, 0.3), (1.0, 0.3)]:
        f = lambda z: fj.binary_focal_loss(z, jnp.float32(y), alpha=None, gamma=gamma)  # noqa: E731
        h = float(jax.hessian(f)(jnp.float32(p)))
        assert np.isfinite(h), (p, y, h)
        if p == y and gamma in (0.0, 1.0, 2.0, 5.0):
            assert h == pytest.approx({0.0: 1.0, 1.0: 2.0}.get(gamma, 0.0), abs=1e-30, rel=1e-6), (p, y, h)
        if p != y and y in (0.0, 1.0):
            assert h == pytest.approx(gamma * (gamma - 1) * log_tiny, rel=1e-6, abs=1e-30), (p, y, h)


def test_softmax_dense_grid_finite() -> None:
    """The softmax form on margins from the same grid: loss, gradient and Hessian finite."""
    ms = GRID
    zeros = np.zeros_like(ms)
    rows = np.concatenate([np.stack([ms, zeros, -ms], 1), np.stack([ms, -ms, zeros], 1),
                           np.stack([ms, 0.5 * ms, 0.25 * ms], 1)]).astype(np.float32)
    for gamma in GAMMAS:
        for t in range(3):
            def f(z, t=t, gamma=gamma):
                return fj.softmax_focal_loss(z[None], jnp.array([t]), gamma=gamma)[0]

            v, g, h = jax.jit(jax.vmap(lambda z, f=f: (f(z), jax.grad(f)(z), jax.hessian(f)(z))))(jnp.asarray(rows))
            assert bool(jnp.all(jnp.isfinite(v)) & jnp.all(jnp.isfinite(g)) & jnp.all(jnp.isfinite(h))), (gamma, t)


# ---------- 2. FL*: derivatives of softplus through the stable sigmoid ----------

STAR_PARAMS = [(0.5, 1.0), (1.0, 0.0), (2.0, 1.0), (4.0, 0.0), (5.0, 1.0), (2.0, 0.1)]


def _mp_star(x, y, g, b):
    zp, zn = g * x + b, g * x - b
    sig = lambda z: 1 / (1 + mp.exp(-z))  # noqa: E731
    sp = lambda z: mp.log1p(mp.exp(z)) if z < 0 else z + mp.log1p(mp.exp(-z))  # noqa: E731
    terms0 = [y * sp(-zp) / g, (1 - y) * sp(zn) / g]
    terms1 = [-y * sig(-zp), (1 - y) * sig(zn)]
    terms2 = [g * y * sig(zp) * sig(-zp), g * (1 - y) * sig(zn) * sig(-zn)]
    return [(mp.fsum(t), mp.fsum(abs(v) for v in t)) for t in (terms0, terms1, terms2)]


@pytest.mark.parametrize("gamma,beta", STAR_PARAMS)
def test_star_grid_and_random_accuracy(gamma: float, beta: float) -> None:
    """FL* = softplus(-(gamma x_t + beta)) / gamma: its derivatives are sigmoids of the margin z = gamma x + beta,
    and the rounding of z in float32 (of gamma x, then of the sum: up to |z| 2^-23 absolute, hence relative in
    exp(-z)) bounds every float32 evaluation. Bound tested: 2e-7 + |z| 2^-23 relative, on the half-integer grid
    (where z is often exact) and on 2,000 random logits in [-30, 30]. Measured: <= 1.6e-6 on the grid (beta 0.1),
    <= 2.0e-6 at gamma 2, <= 4.9e-6 at gamma 5 for |x| <= 30."""
    rng = np.random.default_rng(7)
    xs = np.concatenate([GRID, rng.uniform(-30, 30, 2000).astype(np.float32)])
    b32 = float(np.float32(beta))
    f = lambda z, t: fj.sigmoid_focal_loss_star(z, t, gamma=gamma, beta=beta)  # noqa: E731
    for y in (0.0, 1.0, 0.25):
        got = _values_grads_hessians(f, xs, y)
        assert all(np.all(np.isfinite(v)) for v in got), (gamma, beta, y)
        np.testing.assert_allclose(got[3], got[2], rtol=1e-6, atol=FLOOR)
        z = np.maximum(np.abs(gamma * xs.astype(np.float64) + b32), np.abs(gamma * xs.astype(np.float64) - b32))
        ref = [_mp_star(mp.mpf(float(x)), mp.mpf(y), mp.mpf(gamma), mp.mpf(b32)) for x in xs]
        for k in range(3):
            want = np.array([float(r[k][0]) for r in ref])
            scale = np.array([float(r[k][1]) for r in ref])
            ok = scale >= FLOOR
            bound = (2e-7 + 2 * z * EPS) * scale
            err = np.abs(got[k] - want)
            worst = int(np.argmax(np.divide(err, bound, out=np.zeros_like(err), where=ok)))
            assert np.all(err[ok] <= bound[ok]), (gamma, beta, y, k, xs[worst], got[k][worst], want[worst])
            assert np.all(err[~ok] <= FLOOR), (gamma, beta, y, k)


def test_star_hessian_reported_cases() -> None:
    """gamma 2, x = 9, y = 0: was 0 (50-digit value 8.28e-8); gamma 0.5, x = 30: was 15 % off."""
    for gamma, beta, x, y in [(2.0, 1.0, 9.0, 0.0), (0.5, 1.0, 30.0, 1.0), (0.5, 1.0, 30.0, 0.0)]:
        def f(v, y=y, gamma=gamma, beta=beta):
            return fj.sigmoid_focal_loss_star(v, y, gamma=gamma, beta=beta)

        h = float(jax.hessian(f)(jnp.float32(x)))
        want = float(_mp_star(mp.mpf(x), mp.mpf(y), mp.mpf(gamma), mp.mpf(beta))[2][0])
        assert abs(h - want) <= 1e-6 * want, (gamma, x, y, h, want)


# ---------- 3. bad values, shapes and types ----------

X3 = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]], np.float32)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: fj.sigmoid_focal_loss(X3, jnp.array([[0.0, 1.5, 1.0], [0.0, 1.0, 1.0]])), InvalidArgumentError,
         r"labels: expected values in \[0, 1\], got values in \[0, 1.5\]"),
        (lambda: fj.sigmoid_focal_loss(X3, np.full((2, 3), -0.1)), InvalidArgumentError,
         r"labels: expected values in \[0, 1\], got values in \[-0.1, -0.1\]"),
        (lambda: fj.sigmoid_focal_loss(X3, [[0.0, float("nan"), 1.0]] * 2), InvalidArgumentError,
         r"labels: expected values in \[0, 1\], got values in \[nan, nan\]"),
        (lambda: fj.sigmoid_focal_loss(X3, 2), InvalidArgumentError, r"labels: expected values in \[0, 1\]"),
        (lambda: fj.sigmoid_focal_loss(X3, jnp.ones((4, 2, 3))), InvalidArgumentError,
         r"labels: expected a shape broadcastable to the logits' shape \(2, 3\), got \(4, 2, 3\)"),
        (lambda: fj.sigmoid_focal_loss(X3, np.array(["a", "b", "c"])), InvalidTypeError, r"labels: expected a real"),
        (lambda: fj.sigmoid_focal_loss(X3, ["a", "b", "c"]), InvalidTypeError, r"labels: expected a real"),
        (lambda: fj.sigmoid_focal_loss([["a"]], [[1.0]]), InvalidTypeError, r"logits: expected a floating-point"),
        (lambda: fj.sigmoid_focal_loss(X3, 1.0, alpha=jnp.array([0.1, 2.0, 0.3])), InvalidArgumentError,
         r"alpha: expected per-class values in \[0, 1\]"),
        (lambda: fj.sigmoid_focal_loss(X3, 1.0, alpha=np.array([[0.1, -0.5, 0.3]])), InvalidArgumentError,
         r"alpha: expected per-class values in \[0, 1\]"),
        (lambda: fj.sigmoid_focal_loss(X3, 1.0, alpha=[0.1, 2.0, 0.3]), InvalidArgumentError,
         r"alpha: expected per-class values in \[0, 1\]"),
        (lambda: fj.sigmoid_focal_loss(X3, 1.0, alpha=[0.1, 0.3]), InvalidArgumentError,
         r"alpha: expected a shape broadcastable to the logits' shape \(2, 3\), got \(2,\)"),
        (lambda: fj.sigmoid_focal_loss(X3, 1.0, alpha=jnp.ones((4, 1, 1)) * 0.5), InvalidArgumentError,
         r"alpha: expected a shape broadcastable"),
        (lambda: fj.sigmoid_focal_loss(X3, 1.0, alpha=np.array(["a", "b", "c"])), InvalidTypeError,
         r"alpha: expected a number, None or real per-class values"),
        (lambda: fj.sigmoid_focal_loss(X3, 1.0, alpha=np.array([True, False, True])), InvalidTypeError, r"alpha:"),
        (lambda: fj.binary_focal_loss(np.array([1.5, 0.2], np.float32), np.array([1.0, 0.0])), InvalidArgumentError,
         r"probs: expected values in \[0, 1\], got values in \[0.2, 1.5\]"),
        (lambda: fj.binary_focal_loss(jnp.array([-0.1, 0.2]), jnp.array([1.0, 0.0])), InvalidArgumentError,
         r"probs: expected values in \[0, 1\], got values in \[-0.1, 0.2\]"),
        (lambda: fj.binary_focal_loss(jnp.array([0.5, 0.2]), jnp.array([1.0, 1.5])), InvalidArgumentError,
         r"labels: expected values in \[0, 1\]"),
        (lambda: fj.sigmoid_focal_loss_star(X3, np.full((2, 3), 1.5)), InvalidArgumentError,
         r"labels: expected values in \[0, 1\]"),
        (lambda: fj.softmax_focal_loss(X3, jnp.array([0, 3])), InvalidArgumentError,
         r"labels: expected class indices in \[0, 2\] or ignore_index=-100, got 3 \(shape \(2,\), dtype int32\)"),
        (lambda: fj.softmax_focal_loss(X3, np.array([0, -1])), InvalidArgumentError,
         r"labels: expected class indices in \[0, 2\] or ignore_index=-100, got -1"),
        (lambda: fj.softmax_focal_loss(X3, np.array([255, 0]), ignore_index=None), InvalidArgumentError,
         r"labels: expected class indices in \[0, 2\], got 255"),
        (lambda: fj.softmax_focal_loss(X3, np.array([0, 1]), alpha=jnp.array([0.1, 2.0, 0.3])),
         InvalidArgumentError, r"alpha: expected per-class values in \[0, 1\]"),
        (lambda: fj.softmax_focal_loss(X3, np.array([0, 1]), alpha=[0.1, 0.3]), InvalidArgumentError,
         r"alpha: expected a number or an array of shape \(3,\), got \(2,\)"),
        (lambda: fj.softmax_focal_loss(X3, np.array(["a", "b"])), InvalidTypeError, r"labels: expected an integer"),
        (lambda: fj.softmax_focal_loss(X3, np.array([0, 1]), ignore_index=1.5), InvalidTypeError,
         r"ignore_index: expected an integer or None, got 1.5"),
        (lambda: fj.softmax_focal_loss(X3, np.array([0, 1]), where=np.array(["a", "b"])), InvalidTypeError,
         r"where: expected a boolean array"),
    ],
)
def test_bad_values_raise_typed_errors_where_readable(call, error, message: str) -> None:
    with pytest.raises(error, match="^" + message):
        call()


def test_shape_and_type_checks_run_under_jit() -> None:
    with pytest.raises(InvalidArgumentError, match="^labels: expected a shape broadcastable"):
        jax.jit(lambda y: fj.sigmoid_focal_loss(X3, y))(jnp.ones((4, 2, 3)))
    with pytest.raises(InvalidArgumentError, match="^alpha: expected a shape broadcastable"):
        jax.jit(lambda a: fj.sigmoid_focal_loss(X3, 1.0, alpha=a))(jnp.ones(2))
    with pytest.raises(InvalidArgumentError, match="^alpha: expected a number or an array of shape"):
        jax.jit(lambda a: fj.softmax_focal_loss(X3, jnp.array([0, 1]), alpha=a))(jnp.ones(2))
    with pytest.raises(InvalidArgumentError, match="^labels: expected shape"):
        jax.jit(lambda t: fj.softmax_focal_loss(X3, t))(jnp.zeros(3, jnp.int32))
    with pytest.raises(InvalidTypeError, match="^labels: expected an integer"):
        jax.jit(lambda t: fj.softmax_focal_loss(X3, t))(jnp.zeros(2))


def test_valid_special_labels() -> None:
    """ignore_index (default -100, as in the core) and masked entries are not errors; labels broadcast to the
    logits (a scalar label, a row of labels)."""
    loss = fj.softmax_focal_loss(X3, np.array([0, -100]))
    assert float(loss[0]) > 0 and float(loss[1]) == 0
    loss = fj.softmax_focal_loss(X3, np.array([0, 255]), ignore_index=255)
    assert float(loss[1]) == 0
    loss = fj.softmax_focal_loss(X3, np.array([0, 1]), ignore_index=1)  # an ignored index inside [0, C)
    assert float(loss[0]) > 0 and float(loss[1]) == 0
    loss = fj.softmax_focal_loss(X3, np.array([0, 7]), where=np.array([True, False]))
    assert float(loss[1]) == 0
    assert fj.sigmoid_focal_loss(X3, 1.0).shape == (2, 3)
    assert fj.sigmoid_focal_loss(X3, np.array([1.0, 0.0, 1.0])).shape == (2, 3)
    assert fj.binary_focal_loss(np.float32(0.3), True, alpha=None).shape == ()


def test_traced_bad_values_give_nan_and_leave_the_rest() -> None:
    """Under jit / vmap, values cannot be read: the entries with bad values (labels or probabilities outside
    [0, 1], class indices out of range, per-class alpha outside [0, 1]) give NaN losses and zero gradients; the
    other entries are unchanged."""
    y_bad = jnp.array([[0.0, 1.5, 1.0], [-0.1, 1.0, 0.3]])
    y_ok = jnp.where((y_bad >= 0) & (y_bad <= 1), y_bad, 0.0)
    nan = ~((y_bad >= 0) & (y_bad <= 1))
    for fn in (fj.sigmoid_focal_loss, fj.sigmoid_focal_loss_star):
        got = jax.jit(lambda y: fn(X3, y, alpha=0.25))(y_bad)  # noqa: B023
        want = fn(X3, y_ok, alpha=0.25)
        assert bool(jnp.all(jnp.isnan(got) == nan)), got
        np.testing.assert_array_equal(np.asarray(got)[~np.asarray(nan)], np.asarray(want)[~np.asarray(nan)])
        grad = jax.jit(jax.grad(lambda x, y: jnp.nansum(fn(x, y)), argnums=0))(jnp.asarray(X3), y_bad)  # noqa: B023
        assert bool(jnp.all(jnp.isfinite(grad))) and bool(jnp.all(jnp.where(nan, grad == 0, True))), grad
        vm = jax.vmap(lambda x, y: fn(x, y))(jnp.asarray(X3), y_bad)  # noqa: B023
        assert bool(jnp.all(jnp.isnan(vm) == nan)), vm
    probs = jnp.array([0.3, 1.5, -0.1, 1.0])
    got = jax.jit(lambda p: fj.binary_focal_loss(p, jnp.ones(4)))(probs)
    assert np.isnan(np.asarray(got)).tolist() == [False, True, True, False], got
    grad = jax.jit(jax.grad(lambda p: jnp.nansum(fj.binary_focal_loss(p, jnp.ones(4)))))(probs)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(grad[1]) == 0 and float(grad[2]) == 0, grad
    alpha = jnp.array([0.25, 2.0, 0.5])
    got = jax.jit(lambda a: fj.sigmoid_focal_loss(X3, 1.0, alpha=a))(alpha)
    assert np.isnan(np.asarray(got)).tolist() == [[False, True, False]] * 2, got
    x4 = jnp.asarray(np.tile(X3, (2, 1)))
    labels = jnp.array([0, 3, -100, -1])
    got = jax.jit(lambda t: fj.softmax_focal_loss(x4, t))(labels)
    assert np.isnan(np.asarray(got)).tolist() == [False, True, False, True] and float(got[2]) == 0, got
    grad = jax.jit(jax.grad(lambda z, t: jnp.nansum(fj.softmax_focal_loss(z, t))))(x4, labels)
    assert bool(jnp.all(jnp.isfinite(grad))) and bool(jnp.all(grad[jnp.array([1, 2, 3])] == 0)), grad
    got = jax.jit(lambda t, m: fj.softmax_focal_loss(x4, t, where=m))(labels, jnp.array([True, False, True, True]))
    assert np.isnan(np.asarray(got)).tolist() == [False, False, False, True], got  # masked out: not an error
    got = jax.jit(lambda a: fj.softmax_focal_loss(x4, jnp.array([0, 1, 2, 1]), alpha=a))(alpha)
    assert np.isnan(np.asarray(got)).tolist() == [False, True, False, True], got
