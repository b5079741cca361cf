"""The detection family: quality focal, varifocal, Gaussian focal and distribution focal loss.

Values and gradients against the float64 reference (probability bands x target patterns x parameter grids x dtypes),
gradcheck / gradgradcheck in float64, finiteness of loss, gradient and second derivative at |logit| up to 1e4, typed
errors, both gradient modes, torch.compile(fullgraph=True) parity, the saved-tensor budget, and parity with the
peers' published formulas (mmdetection, CenterNet, YOLOv8 / ultralytics) written out below, with one test per
deliberate difference.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import focalkit
from focalkit import InvalidArgumentError, InvalidTypeError, reference

from family_checks import max_relative_difference, reference_with_grad, saved_bytes, with_grad
from conftest import BANDS, assert_close, make_logits, make_targets

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
TARGET_PATTERNS = ["zeros", "ones", "random", "soft"]
SHAPE = (6, 5)


_targets = make_targets  # hard, soft, all-0 and all-1 target patterns (conftest)


# ================================================================================ values and gradients vs reference
QFL_BETAS = [0.0, 0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_quality_focal_matches_reference(band, pattern, dtype):
    x = make_logits(band, SHAPE).to(dtype)
    y = _targets(pattern, SHAPE).to(dtype)
    for beta in QFL_BETAS:
        loss, grad = with_grad(focalkit.quality_focal_loss, x, y, beta, "none")
        ref_loss, ref_grad = reference_with_grad(reference.quality_focal_loss, x, y.double(), beta)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("band", list(BANDS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_quality_focal_pair_form_is_the_dense_form(band, dtype):
    """(labels, scores) with background C and ignored rows equals the dense targets with the ignored rows removed."""
    x = make_logits(band, (8, 4)).to(dtype)
    labels = torch.tensor([0, 4, 2, -100, 1, 3, 4, 0])
    scores = torch.rand(8, generator=torch.Generator().manual_seed(3)).to(dtype)
    dense = torch.zeros(8, 4, dtype=dtype)
    keep = (labels >= 0) & (labels < 4)
    dense[keep, labels[keep]] = scores[keep]
    valid = (labels != -100).to(torch.float64).unsqueeze(1)
    for beta in (0.5, 2.0):
        loss, grad = with_grad(focalkit.quality_focal_loss, x, (labels, scores), beta, "none")
        ref_loss, ref_grad = reference_with_grad(lambda z: reference.quality_focal_loss(z, dense.double(), beta) * valid, x)
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)
        mean = focalkit.quality_focal_loss(x, (labels, scores), beta, "mean")
        assert_close(mean, ref_loss.sum() / (7 * 4), dtype)  # C per non-ignored row


def _vfl_targets(pattern, shape, seed=1):
    q = _targets(pattern, shape, seed)
    if pattern == "soft":  # IoU targets: soft at the positives, 0 elsewhere
        q = q * (torch.rand(shape, generator=torch.Generator().manual_seed(seed + 7)) > 0.6)
    return q


VFL_GRID = list(itertools.product([0.25, 0.75], [0.0, 0.5, 2.0], [True, False], [False, True]))


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_varifocal_matches_reference(band, pattern, dtype):
    x = make_logits(band, SHAPE).to(dtype)
    q = _vfl_targets(pattern, SHAPE).to(dtype)
    yolo_labels = (torch.rand(SHAPE, generator=torch.Generator().manual_seed(5)) > 0.5).to(dtype)
    for alpha, gamma, iou_weighted, with_labels in VFL_GRID:
        labels = yolo_labels if with_labels else None
        loss, grad = with_grad(focalkit.varifocal_loss, x, q, alpha, gamma, iou_weighted, "none", labels=labels)
        ref_loss, ref_grad = reference_with_grad(
            reference.varifocal_loss, x, q.double(), alpha, gamma, iou_weighted,
            None if labels is None else labels.double())
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


def _heatmap(pattern, shape, seed=1):
    y = _targets(pattern, shape, seed)
    if pattern == "soft":  # a Gaussian-like heatmap: soft values and a few exact peaks
        y[::2, 1] = 1.0
    return y


GFL_GRID = list(itertools.product([0.0, 0.5, 2.0], [0.0, 1.0, 4.0]))


def _probabilities(x: torch.Tensor) -> torch.Tensor:
    """sigmoid(x) inside (0, 1) after rounding to x's dtype (a probability of 1 is the documented clamp case)."""
    return torch.sigmoid(x.double()).clamp(1e-3, 0.99).to(x.dtype)


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_focal_matches_reference(band, pattern, dtype, from_logits):
    x = make_logits(band, SHAPE).to(dtype)
    inputs = x if from_logits else _probabilities(x)
    y = _heatmap(pattern, SHAPE).to(dtype)
    for alpha, beta in GFL_GRID:
        loss, grad = with_grad(focalkit.gaussian_focal_loss, inputs, y, alpha, beta, "none", from_logits=from_logits)
        ref_loss, ref_grad = reference_with_grad(
            reference.gaussian_focal_loss, inputs, y.double(), alpha, beta, from_logits=from_logits)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_close(loss, ref_loss, dtype)
        # from probabilities the gradient has 1 / p and 1 / (1 - p) factors (up to 1e3 here): relative tolerance
        assert_close(grad, ref_grad, dtype, scale=1.0 if from_logits else 10.0)
        mean = focalkit.gaussian_focal_loss(inputs, y, alpha, beta, from_logits=from_logits)
        peaks = max(int((y == 1).sum()), 1)
        assert_close(mean, ref_loss.sum() / peaks, dtype, scale=4.0)


def _dfl_case(band: str, pattern: str, n: int, rows: int = 12, seed: int = 0):
    """Bin logits (rows, n + 1) and targets (rows,) in [0, n]; the band sets the target bins' probability."""
    g = torch.Generator().manual_seed(seed)
    if pattern == "zeros":
        y = torch.zeros(rows)
    elif pattern == "ones":  # the top of the range: clamped to n - 0.01
        y = torch.full((rows,), float(n))
    elif pattern == "random":
        y = torch.randint(0, n + 1, (rows,), generator=g).float()
    else:
        y = torch.rand(rows, generator=g) * n
    x = torch.randn(rows, n + 1, generator=g) * 2
    left = y.clamp(0, n - 0.01).floor().long()
    shift = {"low": -8.0, "high": 8.0, "random": 0.0}[band]
    x[torch.arange(rows), left] += shift
    x[torch.arange(rows), left + 1] += shift
    return x, y


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_distribution_focal_matches_reference(band, pattern, dtype):
    for n in (1, 4, 16):
        x, y = _dfl_case(band, pattern, n)
        x, y = x.to(dtype), y.to(dtype)
        loss, grad = with_grad(focalkit.distribution_focal_loss, x, y, "none")
        ref_loss, ref_grad = reference_with_grad(reference.distribution_focal_loss, x, y.double())
        assert loss.dtype == dtype and grad.dtype == dtype and loss.shape == y.shape
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


def test_distribution_focal_with_spatial_dims_is_per_row():
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    y = torch.rand(2, 3, 4, dtype=torch.float64) * 4
    ours = focalkit.distribution_focal_loss(x, y, "none")
    rows = reference.distribution_focal_loss(x.movedim(1, -1).reshape(-1, 5), y.reshape(-1)).view(2, 3, 4)
    torch.testing.assert_close(ours, rows, rtol=1e-12, atol=1e-14)


# ================================================================================ reductions, weights, normalizers
def test_reductions_weights_and_normalizers():
    x = torch.randn(5, 4, dtype=torch.float64) * 3
    y = torch.rand(5, 4, dtype=torch.float64)
    q = y * (y > 0.5)
    w = torch.rand(5, 4, dtype=torch.float64)
    w_row = torch.rand(5, dtype=torch.float64)
    qfl = reference.quality_focal_loss(x, y)
    vfl = reference.varifocal_loss(x, q)
    close = dict(rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(focalkit.quality_focal_loss(x, y), qfl.mean(), **close)
    torch.testing.assert_close(focalkit.quality_focal_loss(x, y, reduction="sum", weight=w), (qfl * w).sum(), **close)
    torch.testing.assert_close(focalkit.quality_focal_loss(x, y, weight=w, normalizer=3.0), (qfl * w).sum() / 3, **close)
    labels = torch.tensor([0, 4, 3, 1, 4])
    scores = torch.rand(5, dtype=torch.float64)
    dense = torch.zeros(5, 4, dtype=torch.float64)
    dense[[0, 2, 3], labels[[0, 2, 3]]] = scores[[0, 2, 3]]
    pair_rows = reference.quality_focal_loss(x, dense) * w_row[:, None]
    torch.testing.assert_close(  # a weight of the labels' shape is one weight per row, as mmdetection's
        focalkit.quality_focal_loss(x, (labels, scores), reduction="sum", weight=w_row), pair_rows.sum(), **close)
    torch.testing.assert_close(focalkit.varifocal_loss(x, q), vfl.mean(), **close)
    torch.testing.assert_close(focalkit.varifocal_loss(x, q, weight=w, normalizer=torch.tensor(2.0)),
                               (vfl * w).sum() / 2, **close)
    heat = y.clone()
    heat[0, 0] = heat[3, 2] = 1.0
    gfl = reference.gaussian_focal_loss(x, heat)
    torch.testing.assert_close(focalkit.gaussian_focal_loss(x, heat), gfl.sum() / 2, **close)
    torch.testing.assert_close(focalkit.gaussian_focal_loss(x, heat.clamp(max=0.9)),  # no peak: the sum
                               reference.gaussian_focal_loss(x, heat.clamp(max=0.9)).sum(), **close)
    torch.testing.assert_close(focalkit.gaussian_focal_loss(x, heat, normalizer=4), gfl.sum() / 4, **close)
    bins = torch.randn(5, 9, dtype=torch.float64)
    d = torch.rand(5, dtype=torch.float64) * 8
    dfl = reference.distribution_focal_loss(bins, d)
    torch.testing.assert_close(focalkit.distribution_focal_loss(bins, d), dfl.mean(), **close)
    torch.testing.assert_close(focalkit.distribution_focal_loss(bins, d, weight=w_row, normalizer=2.5),
                               (dfl * w_row).sum() / 2.5, **close)
    for dtype in (torch.float16, torch.bfloat16):  # reduced losses come back in float32
        assert focalkit.varifocal_loss(x.to(dtype), q.to(dtype)).dtype == torch.float32


def test_modules_call_the_functions():
    x = torch.randn(6, 3)
    labels, scores = torch.tensor([0, 3, 2, 1, 3, 0]), torch.rand(6)
    q = torch.rand(6, 3) * (torch.rand(6, 3) > 0.6)
    torch.testing.assert_close(focalkit.QualityFocalLoss(beta=1.5)(x, (labels, scores)),
                               focalkit.quality_focal_loss(x, (labels, scores), 1.5))
    torch.testing.assert_close(focalkit.VarifocalLoss(0.5, 1.0, False)(x, q, labels=q > 0),
                               focalkit.varifocal_loss(x, q, 0.5, 1.0, False, labels=q > 0))
    heat = torch.rand(6, 3)
    heat[0, 0] = 1.0
    torch.testing.assert_close(focalkit.GaussianFocalLoss(from_logits=False)(torch.sigmoid(x), heat),
                               focalkit.gaussian_focal_loss(torch.sigmoid(x), heat, from_logits=False))
    bins, d = torch.randn(6, 5), torch.rand(6) * 4
    torch.testing.assert_close(focalkit.DistributionFocalLoss("sum")(bins, d),
                               focalkit.distribution_focal_loss(bins, d, "sum"))
    assert "beta=1.5" in repr(focalkit.QualityFocalLoss(beta=1.5))
    assert "iou_weighted=False" in repr(focalkit.VarifocalLoss(iou_weighted=False))


# ================================================================================ gradcheck / gradgradcheck
N, C = 4, 3
torch.manual_seed(0)
Y_SOFT = torch.rand(N, C, dtype=torch.float64)
Y_HARD = (torch.rand(N, C) > 0.5).double()
Q_VFL = Y_SOFT * (Y_SOFT > 0.5)
LABELS = torch.tensor([0, 3, 2, -100])
SCORES = torch.rand(N, dtype=torch.float64)
HEAT = Y_SOFT.clone()
HEAT[0, 1] = HEAT[2, 0] = 1.0
DFL_Y = torch.tensor([0.0, 1.5, 3.999, 2.25], dtype=torch.float64)

LOSSES = {
    "qfl soft": lambda x, b: focalkit.quality_focal_loss(x, Y_SOFT, b + 0.5, "sum"),
    "qfl hard": lambda x, b: focalkit.quality_focal_loss(x, Y_HARD, b, "mean"),
    "qfl pair": lambda x, b: focalkit.quality_focal_loss(x, (LABELS, SCORES), b + 0.25, "mean"),
    "qfl none": lambda x, b: (focalkit.quality_focal_loss(x, Y_SOFT, b + 0.5, "none")
                              * torch.arange(N * C, dtype=x.dtype).view(N, C)).sum(),
    "vfl": lambda x, g: focalkit.varifocal_loss(x, Q_VFL, 0.75, g, True, "sum"),
    "vfl labels": lambda x, g: focalkit.varifocal_loss(x, Q_VFL, 0.5, g, False, "mean", labels=Y_HARD),
    "gaussian logits": lambda x, a: focalkit.gaussian_focal_loss(x, HEAT, a, 4.0),
    "gaussian beta 0": lambda x, a: focalkit.gaussian_focal_loss(x, HEAT, a + 0.5, 0.0, "sum"),
    "dfl": lambda x, _: focalkit.distribution_focal_loss(x, DFL_Y, "sum"),
    "dfl none": lambda x, _: (focalkit.distribution_focal_loss(x, DFL_Y, "none")
                              * torch.arange(N, dtype=x.dtype)).sum(),
}
PARAMS = [0.0, 0.5, 2.0]


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck_and_gradgradcheck_float64(name, param):
    shape = (N, 5) if name.startswith("dfl") else (N, C)
    x = (3 * torch.randn(shape, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: LOSSES[name](v, param), (x,))
    assert torch.autograd.gradgradcheck(lambda v: LOSSES[name](v, param), (x,))


@pytest.mark.parametrize("alpha", PARAMS)
def test_gaussian_from_probabilities_gradgradcheck(alpha):
    p = torch.rand(N, C, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_(True)
    fn = lambda v: focalkit.gaussian_focal_loss(v, HEAT, alpha, 4.0, "sum", from_logits=False)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (p,))
    assert torch.autograd.gradgradcheck(fn, (p,))


def test_targets_are_differentiated_exactly():
    """Soft targets that require grad go through the differentiable composition: exact against the reference."""
    x = (3 * torch.randn(N, C, dtype=torch.float64)).requires_grad_(True)
    cases = [
        (lambda a, b: focalkit.quality_focal_loss(a, b, 1.5, "sum"),
         lambda a, b: reference.quality_focal_loss(a, b, 1.5).sum(), Y_SOFT.clamp(0.05, 0.95)),
        (lambda a, b: focalkit.varifocal_loss(a, b, 0.75, 2.0, True, "sum"),
         lambda a, b: reference.varifocal_loss(a, b, 0.75, 2.0, True).sum(), Q_VFL),
        (lambda a, b: focalkit.gaussian_focal_loss(a, b, 2.0, 4.0, "sum"),
         lambda a, b: reference.gaussian_focal_loss(a, b, 2.0, 4.0).sum(), Y_SOFT.clamp(0.05, 0.95)),
    ]
    for ours, ref, y0 in cases:
        y = y0.clone().requires_grad_(True)
        gx, gy = torch.autograd.grad(ours(x, y), (x, y))
        yr = y0.clone().requires_grad_(True)
        rx, ry = torch.autograd.grad(ref(x, yr), (x, yr))
        torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(gy, ry, rtol=1e-9, atol=1e-12)
    bins = torch.randn(N, 5, dtype=torch.float64, requires_grad=True)
    d = torch.tensor([0.3, 1.5, 3.5, 2.25], dtype=torch.float64, requires_grad=True)  # away from the bins' kinks
    assert torch.autograd.gradcheck(lambda a, b: focalkit.distribution_focal_loss(a, b, "sum"), (bins, d))


# ================================================================================ finiteness at extreme logits
EXTREME = torch.tensor([1e4, -1e4, 100.0, -100.0, 30.0, -30.0, 17.0, -17.0, 0.0, 1.0], dtype=torch.float64)
FINITE_CASES = {
    **{f"qfl beta={b} {p}": (lambda x, y, b=b: focalkit.quality_focal_loss(x, y, b, "sum"), p)
       for b in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0) for p in TARGET_PATTERNS},
    **{f"qfl pair beta={b}": (lambda x, y, b=b: focalkit.quality_focal_loss(
        x, (torch.tensor([0, 5, 1, 4]), torch.tensor([1.0, 0.3, 0.0, 0.7], dtype=x.dtype)), b), "pair")
       for b in (0.0, 0.5, 2.0)},
    **{f"vfl gamma={g} iw={iw} labels={lb} {p}": (
        lambda x, y, g=g, iw=iw, lb=lb: focalkit.varifocal_loss(
            x, y, 0.75, g, iw, "sum", labels=(y > 0.3) if lb else None), p)
       for g in (0.0, 0.25, 0.5, 2.0) for iw in (True, False) for lb in (False, True) for p in TARGET_PATTERNS},
    **{f"gaussian alpha={a} beta={b} {p}": (lambda x, y, a=a, b=b: focalkit.gaussian_focal_loss(x, y, a, b, "sum"), p)
       for a in (0.0, 0.5, 2.0) for b in (0.0, 0.5, 4.0) for p in TARGET_PATTERNS},
}


def _extreme_logits(shape, dtype):
    n = 1
    for s in shape:
        n *= s
    values = EXTREME.repeat(n // EXTREME.numel() + 1)[torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    return values[:n].view(shape).to(dtype)


def _hessian_vector(loss_fn, x, v):
    (g,) = torch.autograd.grad(loss_fn(x), x, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), x)
    return g.detach(), hv


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(FINITE_CASES))
def test_loss_gradient_and_second_derivative_finite_at_extreme_logits(name, dtype):
    fn, pattern = FINITE_CASES[name]
    shape = (4, 5)
    x = _extreme_logits(shape, dtype).requires_grad_(True)
    y = torch.zeros(shape) if pattern == "pair" else _targets(pattern, shape)
    if name.startswith("gaussian") and pattern == "soft":
        y[::2, 1] = 1.0
    y = y.to(dtype)
    loss = fn(x, y)
    (g,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(loss) and torch.isfinite(g).all(), (loss, g)
    v = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    g2, hv = _hessian_vector(lambda z: fn(z, y), x, v)
    assert torch.isfinite(g2).all() and torch.isfinite(hv).all(), (g2, hv)
    torch.testing.assert_close(g2.double(), g.double(), rtol=1e-4 if dtype == torch.float64 else 2e-2, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_distribution_focal_finite_at_extreme_logits(dtype):
    x = _extreme_logits((6, 5), dtype).requires_grad_(True)
    y = torch.tensor([0.0, 4.0, 3.995, 2.5, 1.0, 0.01]).to(dtype)
    fn = lambda z: focalkit.distribution_focal_loss(z, y, "sum")  # noqa: E731
    loss = fn(x)
    (g,) = torch.autograd.grad(loss, x)
    v = torch.randn(6, 5, generator=torch.Generator().manual_seed(1)).to(dtype)
    _, hv = _hessian_vector(fn, x, v)
    assert torch.isfinite(loss) and torch.isfinite(g).all() and torch.isfinite(hv).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_gaussian_from_probabilities_saturates_where_a_probability_underflowed(alpha, dtype):
    """p = 0 at a peak or p = 1 at a negative: -log(tiny) (87.3 in fp32) with a finite gradient, never inf / NaN.

    At p = tiny itself (the clamp's edge) the first derivative 1 / tiny is finite; the true second derivative
    1 / tiny^2 is not representable, so second derivatives are checked where the clamp acts and inside (0, 1)."""
    tiny = torch.finfo(dtype).tiny
    p = torch.tensor([0.0, 1.0, tiny, 0.5, 1.0, 0.0], dtype=dtype).requires_grad_(True)
    y = torch.tensor([1.0, 0.5, 1.0, 0.2, 1.0, 0.0], dtype=dtype)
    loss = focalkit.gaussian_focal_loss(p, y, alpha, 4.0, "none", from_logits=False)
    (g,) = torch.autograd.grad(loss.sum(), p)
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    saturated = -torch.log(torch.tensor(tiny, dtype=torch.float64))
    torch.testing.assert_close(loss[0].double(), saturated, rtol=4e-3, atol=0)  # a peak at p = 0
    torch.testing.assert_close(loss[1].double(), 0.5**4 * saturated, rtol=4e-3, atol=0)  # a negative at p = 1
    assert float(loss[4].detach()) == 0.0 and float(loss[5].detach()) == 0.0  # the exact zeros stay exact
    _, hv = _hessian_vector(lambda z: focalkit.gaussian_focal_loss(z, y, alpha, 4.0, "sum", from_logits=False),
                            p, torch.ones_like(p))
    assert torch.isfinite(hv[[0, 1, 3, 4, 5]]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_quality_focal_cusp_for_beta_below_one(dtype):
    """For beta < 1 |y - p|^beta has an unbounded derivative as p -> y (the loss' minimum): focalkit gives 0 at
    p == y exactly (a subgradient) and a finite value, saturating at the dtype's largest, next to it."""
    x = torch.tensor([0.0, 0.0, 1e-3, -1e-3], dtype=dtype, requires_grad=True)  # p = 0.5 exactly, then just off
    y = torch.full((4,), 0.5, dtype=dtype)
    loss = focalkit.quality_focal_loss(x, y, 0.25, "none")
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(g).all()
    assert float(g[0]) == 0.0 and float(loss[0].detach()) == 0.0
    assert float(g[2]) > 0 > float(g[3])  # p > y pushes x down, p < y pushes it up
    ref_loss, ref_grad = reference_with_grad(reference.quality_focal_loss, x[2:], y[2:].double(), 0.25)
    assert_close(g[2:], ref_grad, dtype, scale=10.0)


# ================================================================================ typed errors
X = torch.randn(4, 3)
Q = torch.rand(4, 3)
LB = torch.tensor([0, 3, 1, 2])
SC = torch.rand(4)
BINS = torch.randn(4, 5)
D = torch.rand(4) * 4


@pytest.mark.parametrize("call,error,match", [
    (lambda: focalkit.quality_focal_loss(X.long(), Q), InvalidTypeError, "inputs: expected a floating-point"),
    (lambda: focalkit.quality_focal_loss(X, Q, beta=-1.0), InvalidArgumentError, r"beta: expected a number >= 0.0"),
    (lambda: focalkit.quality_focal_loss(X, Q, beta=float("nan")), InvalidArgumentError, "beta: expected a finite"),
    (lambda: focalkit.quality_focal_loss(X, Q, beta="2"), InvalidTypeError, "beta: expected a real number"),
    (lambda: focalkit.quality_focal_loss(X, Q, reduction="avg"), InvalidArgumentError, "reduction"),
    (lambda: focalkit.quality_focal_loss(X, Q * 2), InvalidArgumentError, r"targets: expected values in \[0, 1\]"),
    (lambda: focalkit.quality_focal_loss(X, Q[:, :2]), InvalidArgumentError, "targets: expected float quality targets"),
    (lambda: focalkit.quality_focal_loss(X, LB), InvalidTypeError, r"targets: expected .* or a \(labels, scores\) pair"),
    (lambda: focalkit.quality_focal_loss(X, (LB,)), InvalidArgumentError, "targets: expected a float tensor or a"),
    (lambda: focalkit.quality_focal_loss(X, (LB.float(), SC)), InvalidTypeError, r"targets\[0\] \(labels\)"),
    (lambda: focalkit.quality_focal_loss(X, (LB + 1, SC)), InvalidArgumentError, r"targets\[0\] \(labels\): expected class indices in \[0, 3\]"),
    (lambda: focalkit.quality_focal_loss(X, (LB, SC[:3])), InvalidArgumentError, r"targets\[1\] \(scores\)"),
    (lambda: focalkit.quality_focal_loss(X, (LB, SC + 1)), InvalidArgumentError, r"targets\[1\] \(scores\): expected values in \[0, 1\]"),
    (lambda: focalkit.quality_focal_loss(X, (LB, SC.long())), InvalidTypeError, r"targets\[1\] \(scores\)"),
    (lambda: focalkit.quality_focal_loss(X[:, 0], (LB, SC)), InvalidArgumentError, "inputs: expected logits with a class"),
    (lambda: focalkit.quality_focal_loss(X, Q, weight=torch.ones(2, 4, 3)), InvalidArgumentError, "weight: expected a tensor broadcastable"),
    (lambda: focalkit.quality_focal_loss(X, Q, weight=torch.ones(4, 3, dtype=torch.bool)), InvalidTypeError, "weight"),
    (lambda: focalkit.quality_focal_loss(X, Q, reduction="sum", normalizer=2.0), InvalidArgumentError, "normalizer"),
    (lambda: focalkit.quality_focal_loss(X, Q, normalizer=-1.0), InvalidArgumentError, "normalizer: expected a number >= 0.0"),
    (lambda: focalkit.quality_focal_loss(X, (LB, SC), ignore_index=1.5), InvalidTypeError, "ignore_index"),
    (lambda: focalkit.varifocal_loss(X, Q, alpha=-0.1), InvalidArgumentError, "alpha: expected a number >= 0.0"),
    (lambda: focalkit.varifocal_loss(X, Q, gamma=-1), InvalidArgumentError, "gamma: expected a number >= 0.0"),
    (lambda: focalkit.varifocal_loss(X, Q, iou_weighted=1), InvalidTypeError, "iou_weighted: expected a bool"),
    (lambda: focalkit.varifocal_loss(X, LB), InvalidTypeError, "targets: expected a torch.Tensor|targets: expected float target scores"),
    (lambda: focalkit.varifocal_loss(X, Q.long()), InvalidTypeError, "targets: expected float target scores"),
    (lambda: focalkit.varifocal_loss(X, Q - 1), InvalidArgumentError, r"targets: expected values in \[0, 1\]"),
    (lambda: focalkit.varifocal_loss(X, Q, labels=Q[:2]), InvalidArgumentError, "labels: expected labels of the inputs' shape"),
    (lambda: focalkit.varifocal_loss(X, Q, labels=Q + 1), InvalidArgumentError, r"labels: expected values in \[0, 1\]"),
    (lambda: focalkit.varifocal_loss(X, Q, labels=[1, 0]), InvalidTypeError, "labels: expected a torch.Tensor"),
    (lambda: focalkit.varifocal_loss(X, Q, weight=torch.ones(5)), InvalidArgumentError, "weight"),
    (lambda: focalkit.gaussian_focal_loss(X, Q, alpha=-2.0), InvalidArgumentError, "alpha: expected a number >= 0.0"),
    (lambda: focalkit.gaussian_focal_loss(X, Q, beta=float("inf")), InvalidArgumentError, "beta: expected a finite"),
    (lambda: focalkit.gaussian_focal_loss(X, Q, from_logits="yes"), InvalidTypeError, "from_logits: expected a bool"),
    (lambda: focalkit.gaussian_focal_loss(X, Q, from_logits=False), InvalidArgumentError, r"inputs: expected values in \[0, 1\]"),
    (lambda: focalkit.gaussian_focal_loss(X, Q + 0.5), InvalidArgumentError, r"targets: expected values in \[0, 1\]"),
    (lambda: focalkit.gaussian_focal_loss(X, Q.T), InvalidArgumentError, "targets: expected float heatmap targets"),
    (lambda: focalkit.distribution_focal_loss(BINS, D + 5), InvalidArgumentError, r"targets: expected values in \[0, 4\]"),
    (lambda: focalkit.distribution_focal_loss(BINS, D - 5), InvalidArgumentError, r"targets: expected values in \[0, 4\]"),
    (lambda: focalkit.distribution_focal_loss(BINS, torch.full((4,), float("nan"))), InvalidArgumentError, "targets: expected values"),
    (lambda: focalkit.distribution_focal_loss(BINS, D.long()), InvalidTypeError, "targets: expected float distances"),
    (lambda: focalkit.distribution_focal_loss(BINS, D[:3]), InvalidArgumentError, r"targets: expected targets of shape \(4,\)"),
    (lambda: focalkit.distribution_focal_loss(BINS[:, :1], D * 0), InvalidArgumentError, "inputs: expected bin logits"),
    (lambda: focalkit.distribution_focal_loss(BINS[:, 0], D), InvalidArgumentError, "inputs: expected bin logits"),
    (lambda: focalkit.distribution_focal_loss(BINS, D, weight=torch.ones(4, 5)), InvalidArgumentError, "weight"),
    (lambda: focalkit.QualityFocalLoss(beta=-1), InvalidArgumentError, "beta"),
    (lambda: focalkit.VarifocalLoss(iou_weighted=None), InvalidTypeError, "iou_weighted"),
    (lambda: focalkit.GaussianFocalLoss(alpha=float("nan")), InvalidArgumentError, "alpha"),
    (lambda: focalkit.DistributionFocalLoss(reduction="max"), InvalidArgumentError, "reduction"),
])
def test_bad_arguments_raise_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_unchecked_out_of_range_distribution_targets_are_clamped_and_nan_propagates():
    focalkit.set_value_checks("never")
    try:
        low = focalkit.distribution_focal_loss(BINS, torch.tensor([-3.0, 9.0, 1.0, float("nan")]), "none")
    finally:
        focalkit.set_value_checks("auto")
    clamped = focalkit.distribution_focal_loss(BINS[:3], torch.tensor([0.0, 4.0, 1.0]), "none")
    torch.testing.assert_close(low[:3], clamped)
    assert torch.isnan(low[3])


def test_empty_batches_give_zero_with_a_gradient_path():
    for fn, shape in [
        (lambda x: focalkit.quality_focal_loss(x, torch.zeros(0, 3)), (0, 3)),
        (lambda x: focalkit.quality_focal_loss(x, (torch.zeros(0, dtype=torch.long), torch.zeros(0))), (0, 3)),
        (lambda x: focalkit.quality_focal_loss(x, (torch.full((2,), -100), torch.zeros(2))), (2, 3)),
        (lambda x: focalkit.varifocal_loss(x, torch.zeros(0, 3)), (0, 3)),
        (lambda x: focalkit.gaussian_focal_loss(x, torch.zeros(0, 3)), (0, 3)),
        (lambda x: focalkit.distribution_focal_loss(x, torch.zeros(0)), (0, 5)),
    ]:
        x = torch.randn(shape, requires_grad=True)
        loss = fn(x)
        assert loss.ndim == 0 and float(loss.detach()) == 0.0 and loss.requires_grad
        loss.backward()
        assert x.grad is not None and not bool(x.grad.ne(0).any())


# ================================================================================ gradient modes, compile, memory
MODE_CASES = {
    "qfl": lambda x: focalkit.quality_focal_loss(x, Q, 2.0, "mean"),
    "qfl pair": lambda x: focalkit.quality_focal_loss(x, (LB, SC), 0.5, "sum"),
    "vfl": lambda x: focalkit.varifocal_loss(x, Q * (Q > 0.5), reduction="sum"),
    "vfl labels": lambda x: focalkit.varifocal_loss(x, Q, labels=Q > 0.3),
    "gaussian": lambda x: focalkit.gaussian_focal_loss(x, Q, 2.0, 4.0),
    "gaussian probs": lambda x: focalkit.gaussian_focal_loss(torch.sigmoid(x), Q, from_logits=False),
    "dfl": lambda x: focalkit.distribution_focal_loss(x, D.clamp(max=2.0), "mean"),  # 3 bins: n = 2
}


@pytest.mark.parametrize("name", sorted(MODE_CASES))
def test_both_gradient_modes_give_the_same_loss_and_gradient(name, gradient_mode):
    x = (3 * torch.randn(4, 3, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    loss = MODE_CASES[name](x)
    loss.backward()
    focalkit.set_gradient_mode("recompute")
    xr = x.detach().clone().requires_grad_(True)
    ref = MODE_CASES[name](xr)
    ref.backward()
    focalkit.set_gradient_mode(gradient_mode)
    assert torch.equal(loss.detach(), ref.detach())
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-6, atol=1e-7)


COMPILE_CASES = {
    "qfl": lambda x, b: focalkit.quality_focal_loss(x, Q, b, "mean"),
    "qfl pair": lambda x, b: focalkit.quality_focal_loss(x, (LB, SC), b, "mean", normalizer=3.0),
    "vfl labels": lambda x, g: focalkit.varifocal_loss(x, Q, 0.75, g, True, "sum", labels=Q > 0.3),
    "gaussian": lambda x, a: focalkit.gaussian_focal_loss(x, Q, a, 4.0),
    "gaussian probs": lambda x, a: focalkit.gaussian_focal_loss(torch.sigmoid(x), Q, a, 4.0, from_logits=False),
    "dfl": lambda x, _: focalkit.distribution_focal_loss(x, D.clamp(max=2.0), "mean"),
}


@pytest.mark.parametrize("name", sorted(COMPILE_CASES))
def test_compile_fullgraph_matches_eager(name):
    torch._dynamo.reset()
    fn = COMPILE_CASES[name]
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")  # fullgraph: a graph break raises
    for param in (2.0, 0.5):
        a = (3 * torch.randn(4, 3)).requires_grad_(True)
        b = a.detach().clone().requires_grad_(True)
        eager = fn(a, param)
        got = compiled(b, param)
        torch.testing.assert_close(got, eager)
        eager.backward()
        got.backward()
        torch.testing.assert_close(b.grad, a.grad)


def test_opcheck_new_ops():
    ops = torch.ops.focalkit
    x = torch.randn(6, 3, requires_grad=True)
    q = torch.rand(6, 3)
    two = torch.tensor([2.0, 4.0], dtype=torch.float64)
    labels = torch.tensor([0, 3, 1, 2, -100, 0])
    torch.library.opcheck(ops.quality_focal.default, (x, q, [None], two[:1], None, False, True, "torch"))
    torch.library.opcheck(ops.quality_focal.default, (x, labels, [torch.rand(6)], two[:1], -100, True, True, "torch"))
    torch.library.opcheck(ops.varifocal.default, (x, q, [q > 0.5], torch.tensor([0.75, 2.0, 1.0], dtype=torch.float64),
                                                  None, False, True, "torch"))
    torch.library.opcheck(ops.gaussian_focal.default, (x, q, [], two, None, False, True, "torch"))
    torch.library.opcheck(ops.gaussian_focal_probs.default,
                          (torch.rand(6, 3, requires_grad=True), q, [], two, None, True, True, "torch"))
    torch.library.opcheck(ops.distribution_focal.default,
                          (x, torch.rand(6) * 2, [], torch.zeros(0, dtype=torch.float64), None, False, True, "torch"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_saved_tensors_at_most_logits_plus_targets(dtype):
    # sizes above the small-input rule, under which the forward pass also keeps the gradient
    x = (3 * torch.randn(1024, 80)).to(dtype).requires_grad_(True)
    q = (torch.rand(1024, 80) * (torch.rand(1024, 80) > 0.95)).to(dtype)
    labels = torch.randint(0, 81, (1024,))
    scores = torch.rand(1024).to(dtype)
    bins = (3 * torch.randn(4096, 17)).to(dtype).requires_grad_(True)
    d = (torch.rand(4096) * 16).to(dtype)
    size = lambda t: t.numel() * t.element_size()  # noqa: E731
    cases = {
        "qfl dense": (lambda: focalkit.quality_focal_loss(x, q), size(x) + size(q)),
        "qfl pair": (lambda: focalkit.quality_focal_loss(x, (labels, scores)), size(x) + size(labels)),
        "vfl": (lambda: focalkit.varifocal_loss(x, q, reduction="sum"), size(x) + size(q)),
        "vfl labels": (lambda: focalkit.varifocal_loss(x, q, labels=q > 0), size(x) + size(q)),
        "gaussian": (lambda: focalkit.gaussian_focal_loss(x, q), size(x) + size(q)),
        "dfl": (lambda: focalkit.distribution_focal_loss(bins, d), size(bins) + size(d)),
    }
    for name, (fn, budget) in cases.items():
        saved, loss = saved_bytes(fn)
        assert saved <= budget + 16, f"{name}: saved {saved} bytes > logits + targets = {budget}"
        loss.backward()


# Peers' published formulas: written out in focalkit_app.bench.peer_formulas (shared with the benchmark).
from focalkit_app.bench.peer_formulas import (  # noqa: E402
    mmdet_weight_reduce_loss,
    mmdet_quality_focal_loss,
    mmdet_quality_focal_loss_tensor_target,
    mmdet_varifocal_loss,
    mmdet_gaussian_focal_loss,
    mmdet_distribution_focal_loss,
    centernet_sigmoid,
    centernet_neg_loss,
    yolo_varifocal_loss,
    yolo_dfl,
)


PARITY = 1e-6


def _peer_inputs(seed=0, n=64, c=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, c + 1, (n,), generator=g)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    return x, labels, scores


def parity_figures() -> dict[str, float]:
    """Max relative difference (loss and gradient) against each peer where the definitions agree, float64."""
    figures = {}
    x, labels, scores = _peer_inputs()
    c = x.shape[1]
    dense = torch.zeros_like(x)
    pos = labels < c
    dense[pos, labels[pos]] = scores[pos]
    for beta in (2.0, 1.0):
        ours = with_grad(lambda z: focalkit.quality_focal_loss(z, (labels, scores), beta, "none").sum(1), x)
        theirs = with_grad(lambda z: mmdet_quality_focal_loss(z, (labels, scores), beta), x)
        figures[f"mmdet quality_focal_loss beta={beta} (per row)"] = max(map(max_relative_difference, ours, theirs))
        ours = with_grad(lambda z: focalkit.quality_focal_loss(z, dense, beta, "none").sum(1), x)
        theirs = with_grad(lambda z: mmdet_quality_focal_loss_tensor_target(z, dense, beta), x)
        figures[f"mmdet quality_focal_loss_tensor_target beta={beta}"] = max(map(max_relative_difference, ours, theirs))
    num_pos = float(pos.sum())
    ours = with_grad(lambda z: focalkit.quality_focal_loss(z, (labels, scores), normalizer=num_pos), x)
    theirs = with_grad(lambda z: mmdet_weight_reduce_loss(
        mmdet_quality_focal_loss(z, (labels, scores)), None, "mean", num_pos), x)
    figures["mmdet QualityFocalLoss mean, avg_factor"] = max(map(max_relative_difference, ours, theirs))

    q = dense
    w = torch.rand(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for alpha, gamma, iw in ((0.75, 2.0, True), (0.25, 1.0, False)):
        ours = with_grad(lambda z: focalkit.varifocal_loss(z, q, alpha, gamma, iw, "none"), x)
        theirs = with_grad(lambda z: mmdet_varifocal_loss(z, q, None, alpha, gamma, iw, "none"), x)
        figures[f"mmdet varifocal_loss alpha={alpha} gamma={gamma} iou_weighted={iw}"] = max(
            map(max_relative_difference, ours, theirs))
    ours = with_grad(lambda z: focalkit.varifocal_loss(z, q, weight=w, normalizer=num_pos), x)
    theirs = with_grad(lambda z: mmdet_varifocal_loss(z, q, w, avg_factor=num_pos), x)
    figures["mmdet VarifocalLoss mean, weight, avg_factor"] = max(map(max_relative_difference, ours, theirs))
    one_hot = (q > 0).double()
    x3, q3, l3 = x.view(8, 8, c), q.view(8, 8, c), one_hot.view(8, 8, c)  # (batch, queries, classes) as RT-DETR
    ours = with_grad(lambda z: focalkit.varifocal_loss(z, q3, labels=l3, reduction="none").mean(1).sum(), x3)
    theirs = with_grad(lambda z: yolo_varifocal_loss(z, q3, l3, upcast=False), x3)
    figures["ultralytics VarifocalLoss (its fp32 cast skipped)"] = max(map(max_relative_difference, ours, theirs))

    heat = torch.rand(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 0.99
    heat[::5, 2] = 1.0
    probs = torch.sigmoid(x).clamp(1e-4, 1 - 1e-4)
    num_peaks = float((heat == 1).sum())
    for alpha, beta in ((2.0, 4.0), (1.0, 2.0)):
        ours = with_grad(lambda p: focalkit.gaussian_focal_loss(p, heat, alpha, beta, "none", from_logits=False), probs)
        theirs = with_grad(lambda p: mmdet_gaussian_focal_loss(p, heat, alpha, beta), probs)
        figures[f"mmdet gaussian_focal_loss alpha={alpha} gamma={beta} (probabilities)"] = max(
            map(max_relative_difference, ours, theirs))
    ours = with_grad(lambda z: focalkit.gaussian_focal_loss(z, heat, 2.0, 4.0), x)
    theirs = with_grad(lambda z: mmdet_weight_reduce_loss(
        mmdet_gaussian_focal_loss(z.sigmoid(), heat), None, "mean", max(1.0, num_peaks)), x)
    figures["mmdet GaussianFocalLoss on sigmoid, avg_factor = #peaks (from logits)"] = max(
        map(max_relative_difference, ours, theirs))
    inside = x.clamp(-9.0, 9.0)  # sigmoid(x) within CenterNet's clamp [1e-4, 1 - 1e-4]
    ours = with_grad(lambda z: focalkit.gaussian_focal_loss(z, heat), inside)
    theirs = with_grad(lambda z: centernet_neg_loss(centernet_sigmoid(z), heat), inside)
    figures["CenterNet _neg_loss(_sigmoid(x)) (from logits)"] = max(map(max_relative_difference, ours, theirs))

    bins = torch.randn(64, 17, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 3
    dist = torch.rand(64, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 15.99
    ours = with_grad(lambda z: focalkit.distribution_focal_loss(z, dist, "none"), bins)
    theirs = with_grad(lambda z: mmdet_distribution_focal_loss(z, dist), bins)
    figures["mmdet distribution_focal_loss"] = max(map(max_relative_difference, ours, theirs))
    ltrb = (torch.rand(16, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 16)  # incl. > 15.99
    ours = with_grad(lambda z: focalkit.distribution_focal_loss(z, ltrb.view(-1), "none").view(16, 4).mean(-1, keepdim=True), bins)
    theirs = with_grad(lambda z: yolo_dfl(z, ltrb.clone(), reg_max=17), bins)
    figures["ultralytics DFLoss (reg_max = 17 bins, clamp at 15.99)"] = max(map(max_relative_difference, ours, theirs))
    return figures


def test_parity_with_the_peers_where_the_definitions_agree():
    figures = parity_figures()
    assert figures and all(value <= PARITY for value in figures.values()), figures


# ---------------------------------------------------------------------------------------------- deliberate differences
def test_qfl_reduction_conventions_differ_from_mmdetection():
    """mmdetection's QFL returns one loss per row (summed over classes) and its "mean" divides by the rows;
    focalkit returns per-element losses and its "mean" divides by the elements that count (as the core's sigmoid
    loss), so focalkit's "mean" times C equals mmdetection's "mean" (no ignored rows)."""
    x, labels, scores = _peer_inputs(1)
    c = x.shape[1]
    ours_rows = focalkit.quality_focal_loss(x, (labels, scores), reduction="none").sum(1)
    theirs_rows = mmdet_quality_focal_loss(x, (labels, scores))
    assert max_relative_difference(ours_rows, theirs_rows) <= PARITY
    ours_mean = focalkit.quality_focal_loss(x, (labels, scores))
    theirs_mean = mmdet_weight_reduce_loss(theirs_rows, None, "mean")
    assert max_relative_difference(ours_mean * c, theirs_mean) <= PARITY
    assert abs(float(ours_mean) - float(theirs_mean)) > 1e-3  # not the same number


def test_qfl_ignore_index_rows_are_excluded_where_mmdetection_counts_them_as_background():
    x, labels, scores = _peer_inputs(2)
    labels[::4] = -100
    ours = focalkit.quality_focal_loss(x, (labels, scores), reduction="none").sum(1)
    theirs = mmdet_quality_focal_loss(x, (labels, scores))  # -100 is not in [0, C): an all-negative row there
    ignored = labels == -100
    assert bool((ours[ignored] == 0).all()) and bool((theirs[ignored] > 0).all())
    assert max_relative_difference(ours[~ignored], theirs[~ignored]) <= PARITY


def test_qfl_beta_below_one_mmdetection_gives_nan_gradients_where_p_rounds_to_y():
    """|score - sigmoid(x)|.pow(beta) at 0 has an infinite derivative times 0 from abs: NaN in the peer, finite
    here. In fp32, sigmoid(20) rounds to 1 (a positive of quality 1) and sigmoid(-110) to 0 (a negative)."""
    x = torch.tensor([[20.0, -110.0]], requires_grad=True)
    labels, scores = torch.tensor([0]), torch.tensor([1.0])
    (g_theirs,) = torch.autograd.grad(mmdet_quality_focal_loss(x, (labels, scores), beta=0.5).sum(), x)
    assert torch.isnan(g_theirs).all()
    (g_ours,) = torch.autograd.grad(focalkit.quality_focal_loss(x, (labels, scores), 0.5, "sum"), x)
    assert torch.isfinite(g_ours).all()
    x64 = x.detach().double().requires_grad_(True)
    ref = reference.quality_focal_loss(x64, torch.tensor([[1.0, 0.0]], dtype=torch.float64), 0.5).sum()
    (g_ref,) = torch.autograd.grad(ref, x64)
    torch.testing.assert_close(g_ours.double(), g_ref, rtol=1e-5, atol=1e-30)


def test_vfl_gamma_below_one_peers_give_nan_gradients_where_p_underflows():
    x = torch.tensor([[-120.0, 3.0]], requires_grad=True)  # sigmoid(-120) = 0 in fp32
    q = torch.tensor([[0.0, 0.8]])
    (g_mmdet,) = torch.autograd.grad(mmdet_varifocal_loss(x, q, gamma=0.5, reduction="sum"), x)
    (g_yolo,) = torch.autograd.grad(yolo_varifocal_loss(x[None], q[None], (q > 0).float()[None], gamma=0.5), x)
    assert torch.isnan(g_mmdet[0, 0]) and torch.isnan(g_yolo[0, 0])
    (g_ours,) = torch.autograd.grad(focalkit.varifocal_loss(x, q, gamma=0.5, reduction="sum"), x)
    assert torch.isfinite(g_ours).all()


def test_vfl_labels_select_the_yolo_form_where_a_label_disagrees_with_q():
    """A positive of IoU 0 (label 1, q = 0) gets no loss in the YOLO form and alpha p^gamma BCE(p, 0) in
    mmdetection's; a q > 0 labelled 0 is a negative with BCE(p, q) in the YOLO form and a positive in mmdetection's."""
    x = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.6, 0.9]], dtype=torch.float64)
    label = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    yolo = focalkit.varifocal_loss(x, q, labels=label, reduction="none")
    mmdet = focalkit.varifocal_loss(x, q, reduction="none")
    yolo_elementwise = ((0.75 * torch.sigmoid(x) ** 2 * (1 - label) + q * label)  # the peer's weight, unreduced
                        * F.binary_cross_entropy_with_logits(x, q, reduction="none"))
    torch.testing.assert_close(yolo, yolo_elementwise)
    torch.testing.assert_close(yolo.sum(), yolo_varifocal_loss(x[None], q[None], label[None]))  # mean over 1 row
    torch.testing.assert_close(mmdet, mmdet_varifocal_loss(x, q, reduction="none"))
    assert float(yolo[0, 0]) == 0.0 < float(mmdet[0, 0])
    torch.testing.assert_close(yolo[0, 2], mmdet[0, 2])


def test_gaussian_differs_from_centernet_where_its_clamp_acts_and_from_mmdetection_at_beta_zero():
    heat = torch.tensor([[1.0, 0.0, 0.5]], dtype=torch.float64)
    x = torch.tensor([[-12.0, 12.0, 0.3]], dtype=torch.float64, requires_grad=True)  # beyond the clamp at +-9.2
    theirs = centernet_neg_loss(centernet_sigmoid(x), heat)
    ours = focalkit.gaussian_focal_loss(x, heat)
    (g_theirs,) = torch.autograd.grad(theirs, x)
    (g_ours,) = torch.autograd.grad(ours, x)
    assert float(theirs) < float(ours)  # the clamp caps -log p at 9.2 where the exact value is about 12
    assert float(g_theirs[0, 0]) == 0.0 and float(g_theirs[0, 1]) == 0.0  # no gradient beyond the clamp
    assert float(g_ours[0, 0]) < -1.0 and float(g_ours[0, 1]) > 1.0  # the exact loss keeps pushing
    # mmdetection's neg_weights = (1 - y)^gamma is 1 at a peak when gamma = 0: the peak also gets the negative term
    p = torch.tensor([[0.6, 0.3, 0.4]], dtype=torch.float64)
    theirs0 = mmdet_gaussian_focal_loss(p, heat, 2.0, 0.0)
    ours0 = focalkit.gaussian_focal_loss(p, heat, 2.0, 0.0, "none", from_logits=False)
    extra = -torch.log1p(-p[0, 0]) * p[0, 0] ** 2  # -p^alpha log(1 - p) at the peak
    torch.testing.assert_close(theirs0[0, 0] - ours0[0, 0], extra, rtol=1e-9, atol=0)
    torch.testing.assert_close(ours0[0, 1:], theirs0[0, 1:], rtol=1e-9, atol=1e-12)


def test_gaussian_from_probabilities_saturates_higher_than_mmdetection_eps():
    """At p = 0 on a peak mmdetection's log(p + 1e-12) gives 27.6; focalkit's clamp at finfo.tiny gives 87.3 in
    fp32 (and from logits, the exact value)."""
    heat = torch.tensor([1.0])
    p = torch.tensor([0.0])
    theirs = mmdet_gaussian_focal_loss(p, heat)
    ours = focalkit.gaussian_focal_loss(p, heat, reduction="sum", from_logits=False)
    assert abs(float(theirs) - 27.631) < 1e-2 and abs(float(ours) - 87.336) < 1e-2
    exact = focalkit.gaussian_focal_loss(torch.tensor([-200.0]), heat, reduction="sum")
    assert abs(float(exact) - 200.0) < 1e-3


def test_dfl_top_of_range_is_clamped_where_mmdetection_indexes_a_missing_bin():
    bins = torch.randn(2, 5, dtype=torch.float64)
    y = torch.tensor([4.0, 1.5], dtype=torch.float64)  # n = 4: 4.0 is the top of the range
    with pytest.raises(IndexError):  # mmdetection: bin 5 of 5 bins
        mmdet_distribution_focal_loss(bins, y)
    ours = focalkit.distribution_focal_loss(bins, y, "none")
    log_p = torch.log_softmax(bins, 1)
    torch.testing.assert_close(ours[0], -(0.01 * log_p[0, 3] + 0.99 * log_p[0, 4]), rtol=1e-9, atol=1e-12)
    theirs = yolo_dfl(bins, y.clone().view(2, 1), reg_max=5).view(2)
    assert max_relative_difference(ours, theirs) <= PARITY  # YOLOv8 clamps the same way


def test_dfl_does_not_modify_the_targets_where_yolo_clamps_them_in_place():
    bins = torch.randn(2, 5, dtype=torch.float64)
    y = torch.tensor([[4.0], [1.5]], dtype=torch.float64)
    before = y.clone()
    focalkit.distribution_focal_loss(bins, y.view(2))
    assert torch.equal(y, before)
    yolo_dfl(bins, y, reg_max=5)
    assert float(y[0, 0]) == pytest.approx(3.99)  # the peer's clamp_ wrote into the caller's tensor
