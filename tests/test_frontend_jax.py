"""focalkit.jax: shared vectors, stability of loss / gradient / Hessian, transformations, optax parity and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")
jnp = pytest.importorskip("jax.numpy", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")

import mpmath as mp  # noqa: E402  (a dependency of torch via sympy)

import focalkit.jax as fj  # noqa: E402
from focalkit import InvalidArgumentError, InvalidTypeError  # noqa: E402

DOC = json.loads((Path(__file__).parent / "vectors" / "focal_vectors.json").read_text())
TOL = DOC["tolerance"]
JAX_FNS = ("sigmoid_focal_loss", "binary_focal_loss", "sigmoid_focal_loss_star", "softmax_focal_loss")
CASES = [c for c in DOC["cases"] if c["fn"] in JAX_FNS]
GAMMAS = (0.0, 0.5, 2.0)


def _ids(case: dict) -> str:
    return f"{case['fn']}-" + "-".join(f"{k}={v}" for k, v in case["params"].items())


def _assert_vector(got: np.ndarray, want: list, tol: dict, what: str) -> None:
    got = np.asarray(got, dtype=np.float64).ravel()
    want_np = np.asarray(want, dtype=np.float64).ravel()
    assert np.all(np.isfinite(got)), f"{what}: non-finite"
    err = np.abs(got - want_np)
    bound = tol["rtol"] * np.abs(want_np) + tol["atol"]
    i = int(np.argmax(err / bound))
    assert np.all(err <= bound), (
        f"{what}: |got - want| = {err[i]:.3g} > {bound[i]:.3g} (got {got[i]}, want {want_np[i]})"
    )


def _loss_fn(case: dict):
    p = case["params"]
    fn = case["fn"]
    if fn == "sigmoid_focal_loss":
        y = jnp.asarray(case["labels"], jnp.float32)
        return lambda x: fj.sigmoid_focal_loss(x, y, alpha=p["alpha"], gamma=p["gamma"]), case["logits"]
    if fn == "binary_focal_loss":
        y = jnp.asarray(case["labels"], jnp.float32)
        return lambda x: fj.binary_focal_loss(x, y, alpha=p["alpha"], gamma=p["gamma"]), case["probs"]
    if fn == "sigmoid_focal_loss_star":
        y = jnp.asarray(case["labels"], jnp.float32)
        return (
            lambda x: fj.sigmoid_focal_loss_star(x, y, gamma=p["gamma"], beta=p["beta"], alpha=p["alpha"]),
            case["logits"],
        )
    t = jnp.asarray(case["labels"], jnp.int32)
    return lambda x: fj.softmax_focal_loss(x, t, alpha=p["alpha"], gamma=p["gamma"]), case["logits"]


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_shared_vectors(case: dict) -> None:
    f, x = _loss_fn(case)
    x = jnp.asarray(x, jnp.float32)
    loss = f(x)
    grad = jax.grad(lambda z: jnp.sum(f(z)))(x)
    kind = "softmax_loss" if case["fn"] == "softmax_focal_loss" else "loss"
    _assert_vector(loss, case["loss"], TOL[kind], "loss")
    _assert_vector(grad, case["grad"], TOL["grad"], "grad")


# ---------- stability: loss, gradient and Hessian finite in the tails ----------

EXTREME = (-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4)


def _all_finite(*arrays) -> bool:
    return all(bool(jnp.all(jnp.isfinite(a))) for a in arrays)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_loss_grad_hessian_finite(gamma: float) -> None:
    """Every (logit, label) pair of EXTREME x {0, 1, 0.3, 0.999}: forward, reverse and forward-over-reverse."""
    xs, ys = np.meshgrid(np.asarray(EXTREME, np.float32), np.asarray([0.0, 1.0, 0.3, 0.999], np.float32))
    xs, ys = jnp.asarray(xs.ravel()), jnp.asarray(ys.ravel())
    f = lambda z, y: fj.sigmoid_focal_loss(z, y, alpha=0.25, gamma=gamma)  # noqa: E731
    values = jax.jit(lambda a, b: (
        jax.vmap(f)(a, b),
        jax.vmap(jax.grad(f))(a, b),
        jax.vmap(jax.hessian(f))(a, b),
        jax.vmap(jax.grad(jax.grad(f)))(a, b),
    ))(xs, ys)
    assert _all_finite(*values), values


@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_loss_grad_hessian_finite(gamma: float) -> None:
    rows = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [100.0, -100.0, 0.0], [-100.0, 100.0, 0.0], [0.0, 0.0, 0.0]])
    rows = jnp.repeat(rows, 3, axis=0)
    targets = jnp.tile(jnp.arange(3), 5)
    f = lambda z, t: fj.softmax_focal_loss(z[None], t[None], gamma=gamma)[0]  # noqa: E731
    values = jax.jit(lambda a, b: (
        jax.vmap(f)(a, b),
        jax.vmap(jax.grad(f))(a, b),
        jax.vmap(jax.hessian(f))(a, b),
        jax.vmap(jax.jacrev(jax.jacrev(f)))(a, b),
    ))(rows, targets)
    assert _all_finite(*values), values


@pytest.mark.parametrize("gamma,beta", [(2.0, 1.0), (4.0, 0.0), (0.5, 1.0)])
def test_star_loss_grad_hessian_finite(gamma: float, beta: float) -> None:
    xs, ys = np.meshgrid(np.asarray(EXTREME, np.float32), np.asarray([0.0, 1.0, 0.3], np.float32))
    f = lambda z, y: fj.sigmoid_focal_loss_star(z, y, gamma=gamma, beta=beta)  # noqa: E731
    values = jax.jit(lambda a, b: (jax.vmap(f)(a, b), jax.vmap(jax.grad(f))(a, b), jax.vmap(jax.hessian(f))(a, b)))(
        jnp.asarray(xs.ravel()), jnp.asarray(ys.ravel())
    )
    assert _all_finite(*values), values


@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_probabilities_at_0_and_1(gamma: float) -> None:
    tiny = float(np.finfo(np.float32).tiny)
    for p, y in [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)]:
        f = lambda z: fj.binary_focal_loss(z, jnp.float32(y), alpha=None, gamma=gamma)  # noqa: E731
        value, grad = f(jnp.float32(p)), jax.grad(f)(jnp.float32(p))
        assert bool(jnp.isfinite(value)) and bool(jnp.isfinite(grad)), (p, y, value, grad)
        if p == y:
            assert float(value) == 0.0
        else:  # an underflowed probability saturates at -log(tiny), as in the PyTorch core
            assert float(value) == pytest.approx(-np.log(tiny), rel=1e-6)


def _mp_sigmoid_focal(x, y: float, gamma: float, alpha: float = 0.25):
    y = mp.mpf(y)
    p = 1 / (1 + mp.exp(-x))
    u = p * (1 - y) + (1 - p) * y
    return (alpha * y + (1 - alpha) * (1 - y)) * u**gamma * (mp.log1p(mp.exp(x)) - x * y)


def test_sigmoid_gradient_and_hessian_match_50_digit_values() -> None:
    """Loss and closed-form gradient agree with mpmath to 1e-6 relative, JAX's derivative of that gradient (the
    Hessian) to 5e-6, for |x| <= 30, binary and soft labels, under jit and vmap."""
    mp.mp.dps = 50
    xs = jnp.asarray([-30.0, -20.0, -3.0, -1.0, 0.0, 0.5, 1.0, 3.0, 20.0, 30.0], jnp.float32)
    for gamma in GAMMAS:
        f = lambda z, y: fj.sigmoid_focal_loss(z, y, alpha=0.25, gamma=gamma)  # noqa: E731
        both = jax.jit(lambda a, b: (jax.vmap(f)(a, b), jax.vmap(jax.grad(f))(a, b), jax.vmap(jax.hessian(f))(a, b)))
        for y in (0.0, 1.0, 0.25, 0.75):
            got = [np.asarray(v, np.float64) for v in both(xs, jnp.full_like(xs, y))]
            for i, x in enumerate(np.asarray(xs, np.float64)):
                xm = mp.mpf(x)
                want = [
                    float(_mp_sigmoid_focal(xm, y, gamma)),
                    float(mp.diff(lambda t: _mp_sigmoid_focal(t, y, gamma), xm)),
                    float(mp.diff(lambda t: _mp_sigmoid_focal(t, y, gamma), xm, 2)),
                ]
                for k, rtol in enumerate((1e-6, 1e-6, 5e-6)):
                    rel = abs(got[k][i] - want[k]) / max(abs(want[k]), 1e-30)
                    assert rel <= rtol, (["loss", "grad", "hessian"][k], gamma, y, x, got[k][i], want[k])


def test_label_gradient_matches_reference() -> None:
    """d loss / d labels (soft labels, e.g. distillation) from the closed form equals float64 autograd."""
    torch = pytest.importorskip("torch")
    from focalkit import reference

    x = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=np.float32)
    y = np.array([0.1, 0.5, 0.25, 0.9, 0.6], dtype=np.float32)
    for gamma in GAMMAS:
        got = jax.grad(lambda t: jnp.sum(fj.sigmoid_focal_loss(x, t, alpha=0.25, gamma=gamma)))(jnp.asarray(y))
        yt = torch.tensor(y, dtype=torch.float64, requires_grad=True)
        (want,) = torch.autograd.grad(reference.sigmoid_focal_loss(torch.tensor(x), yt, 0.25, gamma).sum(), yt)
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5, atol=1e-6)


# ---------- transformations ----------


def test_jit_vmap_jacfwd() -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(0, 3, (8, 4)), jnp.float32)
    y = jnp.asarray(rng.uniform(size=(8, 4)), jnp.float32)
    t = jnp.asarray(rng.integers(0, 4, 8))
    f = lambda a, b: fj.sigmoid_focal_loss(a, b, alpha=0.25, gamma=2.0)  # noqa: E731
    np.testing.assert_allclose(jax.jit(f)(x, y), f(x, y), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(x, y), f(x, y), rtol=1e-6)
    g = lambda a: jnp.sum(f(a, y))  # noqa: E731
    # forward mode equals reverse mode (custom_jvp serves both)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(g))(x), jax.jit(jax.grad(g))(x), rtol=1e-6, atol=1e-7)
    s = lambda a: fj.softmax_focal_loss(a, t, gamma=2.0)  # noqa: E731
    per_row = jax.jit(jax.vmap(lambda r, c: fj.softmax_focal_loss(r[None], c[None])[0]))(x, t)
    np.testing.assert_allclose(per_row, s(x), rtol=1e-6)
    h = lambda a: jnp.sum(s(a))  # noqa: E731
    np.testing.assert_allclose(jax.jit(jax.jacfwd(h))(x), jax.jit(jax.grad(h))(x), rtol=1e-5, atol=1e-7)


def test_half_precision_is_computed_in_float32() -> None:
    x16 = jnp.asarray([-20.0, -9.0, 0.0, 9.0, 20.0], jnp.float16)
    y = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0], jnp.float32)
    for gamma in (0.5, 2.0):
        got = fj.sigmoid_focal_loss(x16, y, gamma=gamma)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, fj.sigmoid_focal_loss(x16.astype(jnp.float32), y, gamma=gamma), rtol=1e-7)
        grad = jax.grad(lambda z: jnp.sum(fj.sigmoid_focal_loss(z, y, gamma=gamma)))(x16)
        assert grad.dtype == jnp.float16 and bool(jnp.all(jnp.isfinite(grad)))
    bf = jnp.asarray([[30.0, -30.0, 0.0]], jnp.bfloat16)
    assert fj.softmax_focal_loss(bf, jnp.array([1]), gamma=0.5).dtype == jnp.float32


# ---------- semantics ----------


def test_ignored_and_masked_rows_give_zero_loss_and_gradient() -> None:
    x = jnp.asarray([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]])
    t = jnp.asarray([0, -100, 2])
    where = jnp.asarray([True, True, False])
    loss = fj.softmax_focal_loss(x, t, where=where)
    grad = jax.grad(lambda z: jnp.sum(fj.softmax_focal_loss(z, t, where=where)))(x)
    assert float(loss[0]) > 0 and float(loss[1]) == 0 and float(loss[2]) == 0
    assert bool(jnp.all(grad[1:] == 0)) and bool(jnp.any(grad[0] != 0))


def test_softmax_alpha_semantics() -> None:
    x = jnp.asarray([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]])
    t = jnp.asarray([0, 2])
    plain = fj.softmax_focal_loss(x, t)
    np.testing.assert_allclose(fj.softmax_focal_loss(x, t, alpha=0.25), 0.25 * plain, rtol=1e-6)
    per_class = jnp.asarray([0.1, 0.2, 0.7])
    np.testing.assert_allclose(fj.softmax_focal_loss(x, t, alpha=per_class), per_class[t] * plain, rtol=1e-6)


def test_sigmoid_alpha_semantics() -> None:
    x = jnp.asarray([[1.0, -2.0], [0.5, 3.0]])
    y = jnp.asarray([[1.0, 0.0], [0.3, 1.0]])
    plain = fj.sigmoid_focal_loss(x, y)
    np.testing.assert_allclose(fj.sigmoid_focal_loss(x, y, alpha=0.25), (0.25 * y + 0.75 * (1 - y)) * plain, rtol=1e-6)
    np.testing.assert_allclose(fj.sigmoid_focal_loss(x, y, alpha=-1.0), plain, rtol=0)  # negative: disabled
    a = jnp.asarray([0.1, 0.9])  # per class along the last axis
    np.testing.assert_allclose(fj.sigmoid_focal_loss(x, y, alpha=a), (a * y + (1 - a) * (1 - y)) * plain, rtol=1e-6)


# ---------- optax: where semantics agree the values agree; where they differ, show it ----------

def _optax():
    return pytest.importorskip("optax", reason="the optax comparison needs optax")


def test_gamma_0_equals_optax_cross_entropies() -> None:
    """gamma = 0, alpha = None is the cross-entropy: same values as optax where its float32 evaluation is accurate
    (rtol 5e-5 where loss >= 1e-3). optax's log_softmax (x_t - logsumexp) cancels as the loss gets small (1e-5
    relative at a loss of 4e-3); focalkit's softplus(log S' - x_t) does not."""
    optax = _optax()
    mp.mp.dps = 30
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(0, 4, (16, 5)), jnp.float32)
    y = jnp.asarray(rng.uniform(size=(16, 5)), jnp.float32)
    t = jnp.asarray(rng.integers(0, 5, 16))
    np.testing.assert_allclose(fj.sigmoid_focal_loss(x, y, gamma=0.0), optax.sigmoid_binary_cross_entropy(x, y),
                               rtol=2e-6, atol=1e-7)
    ours = np.asarray(fj.softmax_focal_loss(x, t, gamma=0.0), np.float64)
    theirs = np.asarray(optax.softmax_cross_entropy_with_integer_labels(x, t), np.float64)
    body = theirs >= 1e-3
    np.testing.assert_allclose(ours[body], theirs[body], rtol=5e-5)
    rows, targets = np.asarray(x, np.float64), np.asarray(t)
    want = np.array(
        [
            float(mp.log(mp.fsum(mp.exp(mp.mpf(v)) for v in r)) - mp.mpf(r[k]))
            for r, k in zip(rows, targets, strict=True)
        ]
    )
    ours_err = np.max(np.abs(ours - want) / want)
    theirs_err = np.max(np.abs(theirs - want) / want)
    assert ours_err <= 1e-6, ours_err
    print(f"softmax cross-entropy max relative error: focalkit {ours_err:.3g}, optax {theirs_err:.3g}")
    assert theirs_err > 5 * ours_err, (theirs_err, ours_err)  # measured: 3.2e-7 vs 1.0e-5


@pytest.mark.parametrize("case", [c for c in CASES if c["fn"] == "sigmoid_focal_loss" and not isinstance(
    c["params"]["alpha"], list)], ids=_ids)
def test_sigmoid_focal_agrees_with_optax(case: dict) -> None:
    """Same definition (alpha_t, soft labels): values agree within optax's own float32 error."""
    optax = _optax()
    x = jnp.asarray(case["logits"], jnp.float32)
    y = jnp.asarray(case["labels"], jnp.float32)
    p = case["params"]
    ours = fj.sigmoid_focal_loss(x, y, alpha=p["alpha"], gamma=p["gamma"])
    theirs = optax.losses.sigmoid_focal_loss(x, y, alpha=p["alpha"], gamma=p["gamma"])
    np.testing.assert_allclose(ours, theirs, rtol=5e-6, atol=1e-30)


def test_optax_tail_accuracy_difference() -> None:
    """optax evaluates (1 - p_t)^gamma as exp(gamma log(1 - p_t)): relative error grows like gamma |x| eps.
    focalkit uses pow on 1 - p_t wherever it is representable. Measured on x in [-14, -6], y = 0, gamma = 5
    against 50-digit values. If this fails because optax became as accurate, update docs/frontends.md."""
    optax = _optax()
    mp.mp.dps = 50
    xs = np.arange(-14.0, -5.9, 0.25).astype(np.float32)
    want = np.array([float(_mp_sigmoid_focal(mp.mpf(float(x)), 0.0, 5.0, alpha=0.0)) for x in xs])  # alpha_t = 1
    ours = np.asarray(fj.sigmoid_focal_loss(xs, 0.0, gamma=5.0), np.float64)
    theirs = np.asarray(optax.losses.sigmoid_focal_loss(jnp.asarray(xs), jnp.zeros_like(xs), gamma=5.0), np.float64)
    ours_err = np.max(np.abs(ours - want) / want)
    theirs_err = np.max(np.abs(theirs - want) / want)
    assert ours_err <= 1e-6, ours_err
    assert theirs_err > 2 * ours_err, (theirs_err, ours_err)


# ---------- errors ----------


@pytest.mark.parametrize(
    "call,error,name",
    [
        (lambda: fj.sigmoid_focal_loss(jnp.ones(3), jnp.ones(3), gamma=-1.0), InvalidArgumentError, "gamma"),
        (lambda: fj.sigmoid_focal_loss(jnp.ones(3), jnp.ones(3), gamma=jnp.float32(2)), InvalidTypeError, "gamma"),
        (lambda: fj.sigmoid_focal_loss(jnp.ones(3), jnp.ones(3), alpha=1.5), InvalidArgumentError, "alpha"),
        (lambda: fj.sigmoid_focal_loss(jnp.ones(3, jnp.int32), jnp.ones(3)), InvalidTypeError, "logits"),
        (lambda: fj.sigmoid_focal_loss(jnp.ones(3), jnp.ones(4)), InvalidArgumentError, "labels"),
        (lambda: fj.softmax_focal_loss(jnp.ones((2, 3)), jnp.ones(2)), InvalidTypeError, "labels"),
        (lambda: fj.softmax_focal_loss(jnp.ones((2, 3)), jnp.ones(3, jnp.int32)), InvalidArgumentError, "labels"),
        (lambda: fj.softmax_focal_loss(jnp.ones((2, 1)), jnp.zeros(2, jnp.int32)), InvalidArgumentError, "logits"),
        (lambda: fj.softmax_focal_loss(jnp.ones((2, 3)), jnp.zeros(2, jnp.int32), alpha=-0.5), InvalidArgumentError,
         "alpha"),
        (lambda: fj.softmax_focal_loss(jnp.ones((2, 3)), jnp.zeros(2, jnp.int32), alpha=jnp.ones(2)),
         InvalidArgumentError, "alpha"),
        (lambda: fj.sigmoid_focal_loss_star(jnp.ones(3), jnp.ones(3), gamma=0.0), InvalidArgumentError, "gamma"),
        (lambda: fj.binary_focal_loss(jnp.ones(3), jnp.ones(3), gamma=float("nan")), InvalidArgumentError, "gamma"),
    ],
)
def test_bad_arguments_raise_typed_errors(call, error, name: str) -> None:
    with pytest.raises(error, match=f"^{name}: expected"):
        call()
