"""The classification family: Asymmetric Loss (multi-label and single-label) and Poly-1 (cross-entropy and focal).

Values and gradients against the float64 reference (probability bands x target patterns x parameter grids x dtypes),
gradcheck / gradgradcheck in float64, finiteness of loss, gradient and second derivative at |logit| up to 1e4, typed
errors, both gradient modes, torch.compile(fullgraph=True) parity, the saved-tensor budget, Poly-1 cross-entropy
against F.cross_entropy at epsilon = 0, and parity with the peers' published formulas (the ASL authors' code, timm,
the PolyLoss paper's code) written out below, with one test per deliberate difference.
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
INDEX_PATTERNS = ["first", "last", "random", "ignore"]
SHAPE = (6, 5)


_targets = make_targets  # hard, soft, all-0 and all-1 target patterns (conftest)


def _rows_case(band: str, pattern: str, rows: int = 12, c: int = 5, seed: int = 0):
    """Logits (rows, c) and targets: class indices (``INDEX_PATTERNS``) or class probabilities ("probs"); the band
    shifts the target class' logit (the arg-max of the probabilities) down, up, or not at all."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, c, generator=g) * 2
    if pattern == "probs":
        t = torch.softmax(torch.randn(rows, c, generator=g) * 2, dim=1)
        column = t.argmax(dim=1)
    else:
        t = torch.randint(0, c, (rows,), generator=g)
        if pattern == "first":
            t = torch.zeros(rows, dtype=torch.long)
        elif pattern == "last":
            t = torch.full((rows,), c - 1)
        elif pattern == "ignore":
            t[::3] = -100
        column = t.clamp(min=0)
    x[torch.arange(rows), column] += {"low": -8.0, "high": 8.0, "random": 0.0}[band]
    return x, t


def _cast_targets(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t


def _f64_targets(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t


# ================================================================================ values and gradients vs reference
ASL_GRID = list(itertools.product([0.0, 0.5, 1.0], [0.0, 0.5, 4.0], [None, 0.05, 0.3], [False, True]))


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_asymmetric_matches_reference(band, pattern, dtype):
    x = make_logits(band, SHAPE).to(dtype)
    y = _targets(pattern, SHAPE).to(dtype)
    for gamma_pos, gamma_neg, clip, detach in ASL_GRID:
        loss, grad = with_grad(focalkit.asymmetric_loss, x, y, gamma_pos, gamma_neg, clip, "none",
                                detach_focal_weight=detach)
        ref_loss, ref_grad = reference_with_grad(reference.asymmetric_loss, x, y.double(), gamma_pos, gamma_neg,
                                                  clip, detach_focal_weight=detach)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


ASL1_GRID = list(itertools.product([0.0, 0.5, 2.0], [0.0, 0.5, 4.0], [0.0, 0.1]))


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, INDEX_PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_asymmetric_single_label_matches_reference(band, pattern, dtype):
    x, t = _rows_case(band, pattern)
    x = x.to(dtype)
    for gamma_pos, gamma_neg, smoothing in ASL1_GRID:
        loss, grad = with_grad(focalkit.asymmetric_loss_single_label, x, t, gamma_pos, gamma_neg, "none",
                                label_smoothing=smoothing)
        ref_loss, ref_grad = reference_with_grad(reference.asymmetric_loss_single_label, x, t, gamma_pos,
                                                  gamma_neg, smoothing)
        assert loss.dtype == dtype and grad.dtype == dtype and loss.shape == t.shape
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


POLY_CE_GRID = list(itertools.product([-1.0, 0.0, 1.0, 2.0], [0.0, 0.1], [False, True]))
CLASS_WEIGHT = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5])


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, [*INDEX_PATTERNS, "probs"])))
@pytest.mark.parametrize("dtype", DTYPES)
def test_poly1_cross_entropy_matches_reference(band, pattern, dtype):
    x, t = _rows_case(band, pattern)
    x, t = x.to(dtype), _cast_targets(t, dtype)
    for epsilon, smoothing, weighted in POLY_CE_GRID:
        weight = CLASS_WEIGHT if weighted else None
        loss, grad = with_grad(focalkit.poly1_cross_entropy, x, t, epsilon, weight, -100, "none", smoothing)
        ref_loss, ref_grad = reference_with_grad(reference.poly1_cross_entropy, x, _f64_targets(t), epsilon,
                                                  weight, smoothing)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


POLY_FL_GRID = list(itertools.product([-1.0, 0.0, 1.0], [0.25, None], [0.0, 0.5, 2.0]))


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_poly1_focal_matches_reference(band, pattern, dtype):
    x = make_logits(band, SHAPE).to(dtype)
    y = _targets(pattern, SHAPE).to(dtype)
    for epsilon, alpha, gamma in POLY_FL_GRID:
        loss, grad = with_grad(focalkit.poly1_focal_loss, x, y, epsilon, alpha, gamma, "none")
        ref_loss, ref_grad = reference_with_grad(reference.poly1_focal_loss, x, y.double(), epsilon, alpha, gamma)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


def test_per_class_alpha_and_spatial_dims():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 3
    y = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    alpha = [0.25, 0.5, 0.9]
    ours = focalkit.poly1_focal_loss(x, y, -0.5, alpha, 1.5)
    ref = reference.poly1_focal_loss(x, y, -0.5, alpha, 1.5)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    t = torch.randint(0, 3, (2, 4, 5))
    t[0, 0] = -100
    rows = x.movedim(1, -1).reshape(-1, 3)
    flat = t.reshape(-1)
    ours = focalkit.asymmetric_loss_single_label(x, t, 0.5, 2.0, "none", label_smoothing=0.2)
    ref = reference.asymmetric_loss_single_label(rows, flat, 0.5, 2.0, 0.2).view(2, 4, 5)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    ours = focalkit.poly1_cross_entropy(x, t, 2.0, [1.0, 0.5, 2.0], reduction="none", label_smoothing=0.1)
    ref = reference.poly1_cross_entropy(rows, flat, 2.0, [1.0, 0.5, 2.0], 0.1).view(2, 4, 5)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)


def test_one_sample_inputs_as_f_cross_entropy():
    x = torch.randn(5, dtype=torch.float64)
    t = torch.tensor(3)
    torch.testing.assert_close(focalkit.poly1_cross_entropy(x, t, epsilon=0.0), F.cross_entropy(x, t))
    torch.testing.assert_close(focalkit.asymmetric_loss_single_label(x, t, 0.5),
                               reference.asymmetric_loss_single_label(x[None], t[None], 0.5)[0])


# ================================================================================ Poly-1 CE at epsilon 0 = F.cross_entropy
@pytest.mark.parametrize("shape", [(7, 5), (3, 5, 4)])
@pytest.mark.parametrize("probabilities", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_poly1_cross_entropy_at_epsilon_zero_is_f_cross_entropy(shape, probabilities, weighted):
    """Every combination of weight, ignore_index, label_smoothing and reduction, float64 (values and gradients)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    weight = torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.1 if weighted else None
    if probabilities:
        targets = {"probs": torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64), dim=1)}
    else:
        t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
        ignored = t.clone()
        ignored.view(-1)[::3] = 7
        targets = {"indices": t, "ignore 7": ignored}
    for (name, target), smoothing, reduction in itertools.product(targets.items(), [0.0, 0.1, 1.0],
                                                                  ["none", "sum", "mean"]):
        ignore_index = 7 if name == "ignore 7" else -100
        ours, ours_grad = with_grad(focalkit.poly1_cross_entropy, x, target, 0.0, weight, ignore_index, reduction,
                                     smoothing)
        theirs, theirs_grad = with_grad(F.cross_entropy, x, target, weight, ignore_index=ignore_index,
                                         reduction=reduction, label_smoothing=smoothing)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14, msg=f"{name} {smoothing} {reduction}")
        torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-12, atol=1e-14)
        if reduction == "mean":  # float32 too
            ours32 = focalkit.poly1_cross_entropy(x.float(), _cast_targets(target, torch.float32), 0.0,
                                                  None if weight is None else weight.float(), ignore_index,
                                                  reduction, smoothing)
            torch.testing.assert_close(ours32.double(), theirs, rtol=2e-6, atol=1e-6)


def test_fully_ignored_batch_gives_zero_where_f_cross_entropy_gives_nan():
    x = torch.randn(3, 4, requires_grad=True)
    t = torch.full((3,), -100)
    assert torch.isnan(F.cross_entropy(x, t))
    for loss in (focalkit.poly1_cross_entropy(x, t), focalkit.asymmetric_loss_single_label(x, t)):
        assert float(loss.detach()) == 0.0 and loss.requires_grad
        (g,) = torch.autograd.grad(loss, x)
        assert not bool(g.ne(0).any())


# ================================================================================ reductions, weights, modules
def test_reductions_weights_and_normalizers():
    x = torch.randn(5, 4, dtype=torch.float64) * 3
    y = (torch.rand(5, 4, dtype=torch.float64) > 0.6).double()
    w = torch.rand(4, dtype=torch.float64)
    close = dict(rtol=1e-12, atol=1e-14)
    asl = reference.asymmetric_loss(x, y)
    torch.testing.assert_close(focalkit.asymmetric_loss(x, y), asl.mean(), **close)  # over N C elements
    torch.testing.assert_close(focalkit.asymmetric_loss(x, y, reduction="sum"), asl.sum(), **close)
    torch.testing.assert_close(focalkit.asymmetric_loss(x, y, weight=w, normalizer=5), (asl * w).sum() / 5, **close)
    pfl = reference.poly1_focal_loss(x, y, 1.0)
    torch.testing.assert_close(focalkit.poly1_focal_loss(x, y, reduction="mean"), pfl.mean(), **close)
    torch.testing.assert_close(focalkit.poly1_focal_loss(x, y, reduction="sum", weight=w), (pfl * w).sum(), **close)
    torch.testing.assert_close(focalkit.poly1_focal_loss(x, y, reduction="mean", normalizer=torch.tensor(2.0)),
                               pfl.sum() / 2, **close)
    t = torch.tensor([0, 3, -100, 1, 2])
    rows = reference.asymmetric_loss_single_label(x, t, 0.0, 4.0, 0.1)
    torch.testing.assert_close(focalkit.asymmetric_loss_single_label(x, t, label_smoothing=0.1), rows.sum() / 4,
                               **close)  # the rows that are not ignored
    torch.testing.assert_close(focalkit.asymmetric_loss_single_label(x, t, reduction="sum", label_smoothing=0.1),
                               rows.sum(), **close)
    for dtype in (torch.float16, torch.bfloat16):  # reduced losses come back in float32
        assert focalkit.asymmetric_loss(x.to(dtype), y.to(dtype)).dtype == torch.float32
        assert focalkit.poly1_cross_entropy(x.to(dtype), t).dtype == torch.float32


def test_without_smoothing_gamma_neg_has_no_effect_and_single_label_asl_is_the_softmax_focal_loss():
    x = torch.randn(6, 5, dtype=torch.float64) * 3
    t = torch.tensor([0, 4, 2, 1, 3, 0])
    a = focalkit.asymmetric_loss_single_label(x, t, 2.0, 0.0, "none")
    b = focalkit.asymmetric_loss_single_label(x, t, 2.0, 4.0, "none")
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, focalkit.softmax_focal_loss(x, t, reduction="none", gamma=2.0), rtol=1e-12, atol=0)
    assert not torch.allclose(focalkit.asymmetric_loss_single_label(x, t, 2.0, 0.0, "none", label_smoothing=0.1),
                              focalkit.asymmetric_loss_single_label(x, t, 2.0, 4.0, "none", label_smoothing=0.1))


def test_asymmetric_special_cases():
    """gamma = 0 and no shift: the BCE; gamma_pos = gamma_neg and no shift: the (unweighted) sigmoid focal loss."""
    x = torch.randn(5, 4, dtype=torch.float64) * 4
    y = torch.rand(5, 4, dtype=torch.float64)
    torch.testing.assert_close(focalkit.asymmetric_loss(x, y, 0.0, 0.0, None, "none"),
                               F.binary_cross_entropy_with_logits(x, y, reduction="none"), rtol=1e-12, atol=1e-14)
    y = (y > 0.5).double()
    torch.testing.assert_close(focalkit.asymmetric_loss(x, y, 2.0, 2.0, 0.0, "none"),
                               focalkit.sigmoid_focal_loss(x, y, None, 2.0), rtol=1e-12, atol=1e-14)


def test_modules_call_the_functions():
    x = torch.randn(6, 3)
    y = (torch.rand(6, 3) > 0.5).float()
    t = torch.tensor([0, 2, 1, 1, -100, 0])
    w = torch.rand(3)
    torch.testing.assert_close(focalkit.AsymmetricLoss(1.0, 3.0, None, "sum", detach_focal_weight=True)(x, y, w),
                               focalkit.asymmetric_loss(x, y, 1.0, 3.0, None, "sum", detach_focal_weight=True, weight=w))
    torch.testing.assert_close(focalkit.AsymmetricLossSingleLabel(0.5, 2.0, label_smoothing=0.1)(x, t),
                               focalkit.asymmetric_loss_single_label(x, t, 0.5, 2.0, label_smoothing=0.1))
    module = focalkit.Poly1CrossEntropyLoss(2.0, [1.0, 0.5, 2.0], label_smoothing=0.1)
    torch.testing.assert_close(module(x, t), focalkit.poly1_cross_entropy(x, t, 2.0, torch.tensor([1.0, 0.5, 2.0]),
                                                                          label_smoothing=0.1))
    assert "weight" in dict(module.named_buffers())
    torch.testing.assert_close(focalkit.Poly1FocalLoss(-1.0, None, 1.5)(x, y),
                               focalkit.poly1_focal_loss(x, y, -1.0, None, 1.5, "mean"))
    assert "clip=0.05" in repr(focalkit.AsymmetricLoss()) and "epsilon=2.0" in repr(module)


# ================================================================================ gradcheck / gradgradcheck
N, C = 4, 3
_G = torch.Generator().manual_seed(0)
Y_SOFT = torch.rand(N, C, generator=_G, dtype=torch.float64)
Y_HARD = (torch.rand(N, C, generator=_G) > 0.5).double()
T_IDX = torch.tensor([0, 2, -100, 1])
T_PROB = torch.softmax(torch.randn(N, C, generator=_G, dtype=torch.float64), dim=1)
W3 = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)

LOSSES = {
    "asl soft": lambda x, g: focalkit.asymmetric_loss(x, Y_SOFT, g, g + 1.0, 0.05, "sum"),
    "asl hard": lambda x, g: focalkit.asymmetric_loss(x, Y_HARD, 1.0, g, 0.2, "mean"),
    "asl no clip": lambda x, g: focalkit.asymmetric_loss(x, Y_SOFT, g, 4.0, None, "mean"),
    "asl none": lambda x, g: (focalkit.asymmetric_loss(x, Y_SOFT, g, g, 0.1, "none")
                              * torch.arange(N * C, dtype=x.dtype).view(N, C)).sum(),
    "asl single": lambda x, g: focalkit.asymmetric_loss_single_label(x, T_IDX, g, 4.0, label_smoothing=0.1),
    "asl single none": lambda x, g: (focalkit.asymmetric_loss_single_label(x, T_IDX, 1.0, g, "none",
                                                                           label_smoothing=0.3)
                                     * torch.arange(N, dtype=x.dtype)).sum(),
    "poly ce": lambda x, e: focalkit.poly1_cross_entropy(x, T_IDX, e, W3, label_smoothing=0.1),
    "poly ce probs": lambda x, e: focalkit.poly1_cross_entropy(x, T_PROB, e - 1.0, reduction="sum"),
    "poly focal": lambda x, g: focalkit.poly1_focal_loss(x, Y_SOFT, 1.0, 0.25, g, "sum"),
    "poly focal eps -1": lambda x, g: focalkit.poly1_focal_loss(x, Y_HARD, -1.0, None, g, "mean"),
}
PARAMS = [0.0, 0.5, 2.0]


def _away_from_the_margin(x: torch.Tensor) -> torch.Tensor:
    """Logits at least 0.1 from logit(m) for the margins above (the shifted negative term has a kink there)."""
    for m in (0.05, 0.1, 0.2):
        kink = torch.logit(torch.tensor(m, dtype=x.dtype))
        x = torch.where((x - kink).abs() < 0.1, x + 0.3, x)
    return x


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck_and_gradgradcheck_float64(name, param):
    g = torch.Generator().manual_seed(sorted(LOSSES).index(name))
    x = _away_from_the_margin(3 * torch.randn(N, C, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: LOSSES[name](v, param), (x,))
    assert torch.autograd.gradgradcheck(lambda v: LOSSES[name](v, param), (x,))


def test_detached_focal_weights_are_constants_at_every_order():
    """detach_focal_weight: first and second derivatives are those of the loss with the weights detached (the
    reference's ``detach_focal_weight``), not the derivatives of the loss."""
    x = _away_from_the_margin(3 * torch.randn(N, C, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    v = torch.randn(N, C, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for clip in (None, 0.05):
        ours = _hessian_vector(lambda z: focalkit.asymmetric_loss(z, Y_SOFT, 1.0, 4.0, clip, "sum",
                                                                  detach_focal_weight=True), x.clone(), v)
        ref = _hessian_vector(lambda z: reference.asymmetric_loss(z, Y_SOFT, 1.0, 4.0, clip,
                                                                  detach_focal_weight=True).sum(), x.clone(), v)
        full = _hessian_vector(lambda z: reference.asymmetric_loss(z, Y_SOFT, 1.0, 4.0, clip).sum(), x.clone(), v)
        torch.testing.assert_close(ours[0], ref[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours[1], ref[1], rtol=1e-10, atol=1e-12)
        assert not torch.allclose(ours[0], full[0])


def test_targets_are_differentiated_exactly():
    """Soft targets that require grad go through the differentiable composition: exact against the reference."""
    x = _away_from_the_margin(3 * torch.randn(N, C, dtype=torch.float64)).requires_grad_(True)
    cases = [
        (lambda a, b: focalkit.asymmetric_loss(a, b, 1.0, 4.0, 0.05, "sum"),
         lambda a, b: reference.asymmetric_loss(a, b, 1.0, 4.0, 0.05).sum(), Y_SOFT),
        (lambda a, b: focalkit.asymmetric_loss(a, b, 0.5, 2.0, None, "sum", detach_focal_weight=True),
         lambda a, b: reference.asymmetric_loss(a, b, 0.5, 2.0, None, detach_focal_weight=True).sum(), Y_SOFT),
        (lambda a, b: focalkit.poly1_focal_loss(a, b, -1.0, 0.25, 2.0, "sum"),
         lambda a, b: reference.poly1_focal_loss(a, b, -1.0, 0.25, 2.0).sum(), Y_SOFT),
        (lambda a, b: focalkit.poly1_cross_entropy(a, b, 2.0, W3, reduction="sum", label_smoothing=0.1),
         lambda a, b: reference.poly1_cross_entropy(a, b, 2.0, W3, 0.1).sum(), T_PROB),
    ]
    for ours, ref, y0 in cases:
        y = y0.clone().requires_grad_(True)
        gx, gy = torch.autograd.grad(ours(x, y), (x, y))
        yr = y0.clone().requires_grad_(True)
        rx, ry = torch.autograd.grad(ref(x, yr), (x, yr))
        torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(gy, ry, rtol=1e-9, atol=1e-12)


# ================================================================================ finiteness at extreme logits
EXTREME = torch.tensor([1e4, -1e4, 100.0, -100.0, 30.0, -30.0, 17.0, -17.0, 0.0, 1.0], dtype=torch.float64)
ROW_TARGETS = {"index": torch.tensor([0, 4, 2, -100]), "probs": torch.tensor(
    [[0.7, 0.1, 0.1, 0.1, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0], [0.2, 0.2, 0.2, 0.2, 0.2], [0.0, 0.5, 0.5, 0.0, 0.0]])}
FINITE_CASES = {
    **{f"asl gp={gp} gn={gn} clip={m} detach={d}": (
        lambda x, y, gp=gp, gn=gn, m=m, d=d: focalkit.asymmetric_loss(x, y, gp, gn, m, "sum", detach_focal_weight=d),
        "dense") for gp in (0.0, 0.25, 1.0) for gn in (0.0, 0.25, 4.0) for m in (None, 0.05) for d in (False, True)},
    **{f"asl single gp={gp} gn={gn} eps={s}": (
        lambda x, t, gp=gp, gn=gn, s=s: focalkit.asymmetric_loss_single_label(x, t, gp, gn, "sum", label_smoothing=s),
        "index") for gp in (0.0, 0.25, 2.0) for gn in (0.0, 0.25, 4.0) for s in (0.0, 0.1)},
    **{f"poly ce eps={e} ls={s} w={w} {kind}": (
        lambda x, t, e=e, s=s, w=w: focalkit.poly1_cross_entropy(
            x, t, e, CLASS_WEIGHT.to(x.dtype) if w else None, reduction="sum", label_smoothing=s), kind)
       for e in (-1.0, 0.0, 2.0) for s in (0.0, 0.1) for w in (False, True) for kind in ("index", "probs")},
    **{f"poly focal eps={e} alpha={a} gamma={g}": (
        lambda x, y, e=e, a=a, g=g: focalkit.poly1_focal_loss(x, y, e, a, g, "sum"), "dense")
       for e in (-1.0, 1.0) for a in (0.25, None) for g in (0.0, 0.25, 2.0)},
}


def _extreme_logits(shape, dtype):
    n = 1
    for s in shape:
        n *= s
    values = EXTREME.repeat(n // EXTREME.numel() + 1)[torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    return values[:n].view(shape).to(dtype)


def _hessian_vector(loss_fn, x, v):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(x), x, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), x)
    return g.detach(), hv


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(FINITE_CASES))
def test_loss_gradient_and_second_derivative_finite_at_extreme_logits(name, dtype):
    fn, kind = FINITE_CASES[name]
    shape = (4, 5)
    x = _extreme_logits(shape, dtype).requires_grad_(True)
    v = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    targets = [_targets(p, shape).to(dtype) for p in TARGET_PATTERNS] if kind == "dense" else [
        _cast_targets(ROW_TARGETS[kind], dtype)]
    for y in targets:
        loss = fn(x, y)
        (g,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), (loss, g)
        g2, hv = _hessian_vector(lambda z: fn(z, y), x, v)
        assert torch.isfinite(g2).all() and torch.isfinite(hv).all(), (g2, hv)
        torch.testing.assert_close(g2.double(), g.double(), rtol=1e-4 if dtype == torch.float64 else 2e-2, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_exact_tails_in_low_precision(dtype):
    """-log p of a positive at x = -60 is 60 (no clamp), (1 - p)^gamma of a confident positive keeps its exact
    exponential tail, and the Poly-1 cross-entropy with epsilon = -1 stays accurate as p_t -> 1 (where
    -log p_t - (1 - p_t) cancels). Each loss is reduced with "sum", which returns float32 for half inputs (a
    per-element fp16 output would underflow below 6e-8)."""
    rtol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    y = torch.ones(1, 1, dtype=dtype)
    for value in (-60.0, 20.0):
        x = torch.tensor([[value]], dtype=dtype)
        loss = focalkit.asymmetric_loss(x, y, 1.0, 4.0, 0.05, "sum").double()
        ref = reference.asymmetric_loss(x.double(), y.double(), 1.0, 4.0, 0.05).sum()
        torch.testing.assert_close(loss, ref, rtol=rtol, atol=0)
    for row in ([6.0, 0.0, -1.0], [12.0, 0.0, 0.0]):
        x = torch.tensor([row], dtype=dtype)
        t = torch.tensor([0])
        ours = focalkit.poly1_cross_entropy(x, t, -1.0, reduction="sum").double()
        ref = reference.poly1_cross_entropy(x.double(), t, -1.0).sum()
        torch.testing.assert_close(ours, ref, rtol=rtol, atol=0)


# ================================================================================ typed errors
X = torch.randn(4, 3)
Y = (torch.rand(4, 3) > 0.5).float()
T = torch.tensor([0, 2, 1, -100])


@pytest.mark.parametrize("call,error,match", [
    (lambda: focalkit.asymmetric_loss(X.long(), Y), InvalidTypeError, "inputs: expected a floating-point"),
    (lambda: focalkit.asymmetric_loss(X, Y, gamma_pos=-1.0), InvalidArgumentError, "gamma_pos: expected a number >= 0.0"),
    (lambda: focalkit.asymmetric_loss(X, Y, gamma_neg=float("nan")), InvalidArgumentError, "gamma_neg: expected a finite"),
    (lambda: focalkit.asymmetric_loss(X, Y, gamma_neg="4"), InvalidTypeError, "gamma_neg: expected a real number"),
    (lambda: focalkit.asymmetric_loss(X, Y, clip=-0.1), InvalidArgumentError, r"clip: expected a number in \[0, 1\]"),
    (lambda: focalkit.asymmetric_loss(X, Y, clip=1.5), InvalidArgumentError, r"clip: expected a number in \[0, 1\]"),
    (lambda: focalkit.asymmetric_loss(X, Y, clip="0.05"), InvalidTypeError, "clip: expected a real number"),
    (lambda: focalkit.asymmetric_loss(X, Y, reduction="batchmean"), InvalidArgumentError, "reduction"),
    (lambda: focalkit.asymmetric_loss(X, Y, detach_focal_weight=1), InvalidTypeError, "detach_focal_weight: expected a bool"),
    (lambda: focalkit.asymmetric_loss(X, Y.long()), InvalidTypeError, "targets: expected float targets"),
    (lambda: focalkit.asymmetric_loss(X, Y * 2), InvalidArgumentError, r"targets: expected values in \[0, 1\]"),
    (lambda: focalkit.asymmetric_loss(X, Y[:, :2]), InvalidArgumentError, "targets: expected float targets"),
    (lambda: focalkit.asymmetric_loss(X, [1.0]), InvalidTypeError, "targets: expected a torch.Tensor"),
    (lambda: focalkit.asymmetric_loss(X, Y, weight=torch.ones(5)), InvalidArgumentError, "weight: expected a tensor broadcastable"),
    (lambda: focalkit.asymmetric_loss(X, Y, reduction="sum", normalizer=2.0), InvalidArgumentError, "normalizer"),
    (lambda: focalkit.asymmetric_loss_single_label(X, T, gamma_pos=-0.5), InvalidArgumentError, "gamma_pos: expected a number >= 0.0"),
    (lambda: focalkit.asymmetric_loss_single_label(X, T, gamma_neg=None), InvalidTypeError, "gamma_neg: expected a real number"),
    (lambda: focalkit.asymmetric_loss_single_label(X, T, label_smoothing=1.5), InvalidArgumentError, r"label_smoothing: expected a number in \[0, 1\]"),
    (lambda: focalkit.asymmetric_loss_single_label(X, T, ignore_index=1.5), InvalidTypeError, "ignore_index"),
    (lambda: focalkit.asymmetric_loss_single_label(X, Y), InvalidTypeError, "target: expected integer class indices"),
    (lambda: focalkit.asymmetric_loss_single_label(X, T + 3), InvalidArgumentError, r"target: expected class indices in \[0, 2\]"),
    (lambda: focalkit.asymmetric_loss_single_label(X, T[:2]), InvalidArgumentError, r"target: expected class indices of shape \(4,\)"),
    (lambda: focalkit.asymmetric_loss_single_label(X, T, reduction="avg"), InvalidArgumentError, "reduction"),
    (lambda: focalkit.asymmetric_loss_single_label(torch.tensor(1.0), T), InvalidArgumentError, "input: expected logits"),
    (lambda: focalkit.poly1_cross_entropy(X, T, epsilon=-1.5), InvalidArgumentError, "epsilon: expected a number >= -1.0"),
    (lambda: focalkit.poly1_cross_entropy(X, T, epsilon=float("inf")), InvalidArgumentError, "epsilon: expected a finite"),
    (lambda: focalkit.poly1_cross_entropy(X, T, epsilon="1"), InvalidTypeError, "epsilon: expected a real number"),
    (lambda: focalkit.poly1_cross_entropy(X, T, weight=[1.0, 2.0]), InvalidArgumentError, "weight: expected 3 per-class values"),
    (lambda: focalkit.poly1_cross_entropy(X, T, weight=[1.0, -2.0, 1.0]), InvalidArgumentError, "weight: expected non-negative"),
    (lambda: focalkit.poly1_cross_entropy(X, T, label_smoothing=-0.1), InvalidArgumentError, "label_smoothing"),
    (lambda: focalkit.poly1_cross_entropy(X, T, reduction=None), InvalidArgumentError, "reduction"),
    (lambda: focalkit.poly1_cross_entropy(X, T + 3), InvalidArgumentError, r"target: expected class indices in \[0, 2\]"),
    (lambda: focalkit.poly1_cross_entropy(X, Y * 2), InvalidArgumentError, r"target: expected values in \[0, 1\]"),
    (lambda: focalkit.poly1_cross_entropy(X, Y[:2]), InvalidArgumentError, "target: expected class probabilities of the input's shape"),
    (lambda: focalkit.poly1_cross_entropy(X, T.bool()), InvalidTypeError, "target: expected integer class indices"),
    (lambda: focalkit.poly1_focal_loss(X, Y, epsilon=-2.0), InvalidArgumentError, "epsilon: expected a number >= -1.0"),
    (lambda: focalkit.poly1_focal_loss(X, Y, gamma=-1.0), InvalidArgumentError, "gamma: expected a number >= 0.0"),
    (lambda: focalkit.poly1_focal_loss(X, Y, alpha=1.5), InvalidArgumentError, "alpha: expected a number in"),
    (lambda: focalkit.poly1_focal_loss(X, Y, alpha=[0.5, 0.5]), InvalidArgumentError, "alpha: expected 3 per-class"),
    (lambda: focalkit.poly1_focal_loss(X, T), InvalidTypeError, "targets: expected float targets"),
    (lambda: focalkit.poly1_focal_loss(X, Y - 1), InvalidArgumentError, r"targets: expected values in \[0, 1\]"),
    (lambda: focalkit.poly1_focal_loss(X, Y, normalizer=-1.0, reduction="mean"), InvalidArgumentError, "normalizer: expected a number >= 0.0"),
    (lambda: focalkit.AsymmetricLoss(clip=2.0), InvalidArgumentError, "clip"),
    (lambda: focalkit.AsymmetricLoss(detach_focal_weight="yes"), InvalidTypeError, "detach_focal_weight"),
    (lambda: focalkit.AsymmetricLossSingleLabel(gamma_neg=-4), InvalidArgumentError, "gamma_neg"),
    (lambda: focalkit.Poly1CrossEntropyLoss(epsilon=-3), InvalidArgumentError, "epsilon"),
    (lambda: focalkit.Poly1CrossEntropyLoss(weight=[1.0, float("nan")]), InvalidArgumentError, "weight"),
    (lambda: focalkit.Poly1FocalLoss(alpha=2.0), InvalidArgumentError, "alpha"),
])
def test_bad_arguments_raise_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_empty_batches_give_zero_with_a_gradient_path():
    for fn, shape in [
        (lambda x: focalkit.asymmetric_loss(x, torch.zeros(0, 3)), (0, 3)),
        (lambda x: focalkit.asymmetric_loss_single_label(x, torch.zeros(0, dtype=torch.long)), (0, 3)),
        (lambda x: focalkit.poly1_cross_entropy(x, torch.zeros(0, dtype=torch.long)), (0, 3)),
        (lambda x: focalkit.poly1_focal_loss(x, torch.zeros(0, 3), reduction="mean"), (0, 3)),
    ]:
        x = torch.randn(shape, requires_grad=True)
        loss = fn(x)
        assert loss.ndim == 0 and float(loss.detach()) == 0.0 and loss.requires_grad
        loss.backward()
        assert x.grad is not None and not bool(x.grad.ne(0).any())


# ================================================================================ gradient modes, compile, memory
Q = torch.rand(4, 3)
PROBS = torch.softmax(torch.randn(4, 3), dim=1)
MODE_CASES = {
    "asl": lambda x: focalkit.asymmetric_loss(x, Y),
    "asl detach soft": lambda x: focalkit.asymmetric_loss(x, Q, 1.0, 2.0, 0.1, "sum", detach_focal_weight=True),
    "asl single": lambda x: focalkit.asymmetric_loss_single_label(x, T, 0.5, 4.0, label_smoothing=0.1),
    "poly ce": lambda x: focalkit.poly1_cross_entropy(x, T, 2.0, [1.0, 2.0, 0.5], label_smoothing=0.1),
    "poly ce probs": lambda x: focalkit.poly1_cross_entropy(x, PROBS, -1.0, reduction="sum"),
    "poly focal": lambda x: focalkit.poly1_focal_loss(x, Q, 1.0, 0.25, 2.0, "mean"),
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
    "asl": lambda x, g: focalkit.asymmetric_loss(x, Y, 0.0, g, 0.05, "mean"),
    "asl detach": lambda x, g: focalkit.asymmetric_loss(x, Q, g, 4.0, None, "sum", detach_focal_weight=True),
    "asl single": lambda x, g: focalkit.asymmetric_loss_single_label(x, T, g, 4.0, label_smoothing=0.1),
    "poly ce": lambda x, e: focalkit.poly1_cross_entropy(x, T, e, torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1),
    "poly focal": lambda x, e: focalkit.poly1_focal_loss(x, Q, e, 0.25, 2.0, "sum"),
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
    t = torch.tensor([0, 2, 1, -100, 0, 1])
    s = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    torch.library.opcheck(ops.asymmetric.default, (x, q, [], s(0.0, 4.0, 0.05, 0.0), None, False, True, "torch"))
    torch.library.opcheck(ops.asymmetric.default, (x, q, [], s(1.0, 2.0, 0.0, 1.0), None, True, True, "torch"))
    torch.library.opcheck(ops.asymmetric_single_label.default, (x, t, [], s(0.5, 4.0, 0.1), -100, False, True, "torch"))
    torch.library.opcheck(ops.poly1_cross_entropy.default,
                          (x, t, [torch.rand(3)], s(1.0, 0.1), -100, True, True, "torch"))
    torch.library.opcheck(ops.poly1_cross_entropy.default,
                          (x, torch.softmax(q, 1), [None], s(-1.0, 0.0), None, False, True, "torch"))
    torch.library.opcheck(ops.poly1_focal.default,
                          (x, q, [torch.full((3,), 0.25), torch.full((3,), 0.75)], s(2.0, 1.0), None, False, True, "torch"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_saved_tensors_at_most_logits_plus_targets(dtype):
    # 1024 x 80 logits: above the small-input rule, under which the forward pass also keeps the gradient
    x = (3 * torch.randn(1024, 80)).to(dtype).requires_grad_(True)
    y = (torch.rand(1024, 80) > 0.95).to(dtype)
    t = torch.randint(0, 80, (1024,))
    probs = torch.softmax(torch.randn(1024, 80), dim=1).to(dtype)
    size = lambda v: v.numel() * v.element_size()  # noqa: E731
    cases = {
        "asl": (lambda: focalkit.asymmetric_loss(x, y), size(x) + size(y)),
        "asl detach sum": (lambda: focalkit.asymmetric_loss(x, y, reduction="sum", detach_focal_weight=True),
                           size(x) + size(y)),
        "asl single": (lambda: focalkit.asymmetric_loss_single_label(x, t, label_smoothing=0.1), size(x) + size(t)),
        "poly ce": (lambda: focalkit.poly1_cross_entropy(x, t, 2.0, torch.rand(80)), size(x) + size(t)),
        "poly ce probs": (lambda: focalkit.poly1_cross_entropy(x, probs, -1.0), size(x) + size(probs)),
        "poly focal": (lambda: focalkit.poly1_focal_loss(x, y, reduction="mean"), size(x) + size(y)),
    }
    for name, (fn, budget) in cases.items():
        saved, loss = saved_bytes(fn)
        assert saved <= budget + 16, f"{name}: saved {saved} bytes > logits + targets = {budget}"
        loss.backward()


# Peers' published formulas: written out in focalkit_app.bench.peer_formulas (shared with the benchmark).
from focalkit_app.bench.peer_formulas import (  # noqa: E402
    asl_authors_asymmetric_loss,
    asl_authors_asymmetric_loss_optimized,
    asl_authors_single_label,
    timm_asymmetric_loss_multi_label_classic,
    timm_asymmetric_loss_multi_label,
    timm_poly_cross_entropy,
    timm_poly_binary_cross_entropy,
    paper_poly1_cross_entropy,
    paper_poly1_focal_loss,
    keras_categorical_focal_crossentropy,
)


PARITY = 1e-6


def _figure(ours_fn, theirs_fn, x) -> float:
    return max(map(max_relative_difference, with_grad(ours_fn, x), with_grad(theirs_fn, x)))


def _peer_inputs(seed=0, n=64, c=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 3  # |x| < 18.4: the peers' 1e-8 clamp is inactive
    y = (torch.rand(n, c, generator=g) > 0.7).double()
    t = torch.randint(0, c, (n,), generator=g)
    return x, y, t


def parity_figures() -> dict[str, float]:
    """Max relative difference (loss and gradient) against each peer where the definitions agree, float64."""
    figures = {}
    x, y, t = _peer_inputs()
    n, c = x.shape
    for gp, gn, clip in ((0.0, 4.0, 0.05), (1.0, 4.0, 0.05), (1.0, 2.0, None), (2.0, 3.0, 0.2)):
        figures[f"ASL AsymmetricLoss gamma_pos={gp} gamma_neg={gn} clip={clip} (sum)"] = _figure(
            lambda z: focalkit.asymmetric_loss(z, y, gp, gn, clip, "sum"),
            lambda z: asl_authors_asymmetric_loss(z, y, gn, gp, clip), x)
        for detach in (False, True):
            figures[f"ASL AsymmetricLossOptimized gamma_pos={gp} gamma_neg={gn} clip={clip} disable_grad={detach}"] = \
                _figure(lambda z: focalkit.asymmetric_loss(z, y, gp, gn, clip, "sum", detach_focal_weight=detach),
                        lambda z: asl_authors_asymmetric_loss_optimized(z, y, gn, gp, clip,
                                                                        disable_torch_grad_focal_loss=detach), x)
            figures[f"timm AsymmetricLossMultiLabel (classic) gamma_pos={gp} gamma_neg={gn} clip={clip} "
                    f"disable_grad={detach}"] = _figure(
                lambda z: focalkit.asymmetric_loss(z, y, gp, gn, clip, "sum", detach_focal_weight=detach),
                lambda z: timm_asymmetric_loss_multi_label_classic(z, y, gn, gp, clip,
                                                                   disable_torch_grad_focal_loss=detach), x)
    w = torch.rand(c, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for reduction, normalizer in (("batchmean", n), ("mean", None), ("sum", None)):
        ours_reduction = "mean" if reduction == "batchmean" else reduction
        figures[f"timm AsymmetricLossMultiLabel {reduction}, weight (its fp32 cast skipped)"] = _figure(
            lambda z: focalkit.asymmetric_loss(z, y, 1.0, 4.0, 0.05, ours_reduction, weight=w, normalizer=normalizer),
            lambda z: timm_asymmetric_loss_multi_label(z, y, reduction=reduction, weight=w, upcast=False), x)
    for gp, gn, eps in ((0.0, 4.0, 0.1), (1.0, 4.0, 0.1), (2.0, 1.0, 0.3), (0.5, 4.0, 0.0)):
        for reduction in ("mean", "none"):
            figures[f"ASL ASLSingleLabel gamma_pos={gp} gamma_neg={gn} eps={eps} {reduction}"] = _figure(
                lambda z: focalkit.asymmetric_loss_single_label(z, t, gp, gn, reduction, label_smoothing=eps),
                lambda z: asl_authors_single_label(z, t, gp, gn, eps, reduction), x)
    probs = torch.softmax(torch.randn(n, c, generator=torch.Generator().manual_seed(4), dtype=torch.float64), dim=1)
    for eps, smoothing in ((2.0, 0.0), (1.0, 0.1), (-1.0, 0.0), (-0.5, 0.2)):
        for reduction in ("mean", "none"):
            figures[f"timm PolyCrossEntropy epsilon={eps} smoothing={smoothing} {reduction} (its fp32 cast skipped)"] = \
                _figure(lambda z: focalkit.poly1_cross_entropy(z, t, eps, reduction=reduction,
                                                               label_smoothing=smoothing),
                        lambda z: timm_poly_cross_entropy(z, t, eps, smoothing, reduction, upcast=False), x)
        figures[f"timm PolyCrossEntropy epsilon={eps} probability targets"] = _figure(
            lambda z: focalkit.poly1_cross_entropy(z, probs, eps, reduction="none"),
            lambda z: timm_poly_cross_entropy(z, probs, eps, reduction="none", upcast=False), x)
        labels = F.one_hot(t, c).double() * (1 - smoothing) + smoothing / c
        figures[f"PolyLoss paper poly1_cross_entropy epsilon={eps} smoothed labels {smoothing}"] = _figure(
            lambda z: focalkit.poly1_cross_entropy(z, t, eps, reduction="none", label_smoothing=smoothing),
            lambda z: paper_poly1_cross_entropy(z, labels, eps), x)
    for eps, gamma, alpha in ((-1.0, 2.0, 0.25), (1.0, 2.0, 0.25), (2.0, 0.5, -1.0), (-1.0, 1.5, -1.0)):
        figures[f"PolyLoss paper poly1_focal_loss epsilon={eps} gamma={gamma} alpha={alpha}"] = _figure(
            lambda z: focalkit.poly1_focal_loss(z, y, eps, alpha, gamma, "none"),
            lambda z: paper_poly1_focal_loss(z, y, eps, gamma, alpha), x)
    for eps, gamma in ((2.0, 0.0), (-1.0, 2.0)):
        figures[f"timm PolyBinaryCrossEntropy epsilon={eps} gamma={gamma} alpha=None (its fp32 cast skipped)"] = \
            _figure(lambda z: focalkit.poly1_focal_loss(z, y, eps, None, gamma, "mean"),
                    lambda z: timm_poly_binary_cross_entropy(z, y, eps, gamma, None), x)
    return figures


def test_parity_with_the_peers_where_the_definitions_agree():
    figures = parity_figures()
    assert figures and all(value <= PARITY for value in figures.values()), figures


# ---------------------------------------------------------------------------------------------- deliberate differences
def test_asl_peers_clamp_probabilities_at_1e8_where_focalkit_is_exact():
    """-log p of a positive at x = -25 is 25; the peers' clamp(min=1e-8) caps it at 18.42 with a zero gradient. The
    same for -log(1 - p) of a negative at x = 25 without the margin."""
    x = torch.tensor([[-25.0, 25.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    theirs = asl_authors_asymmetric_loss(x, y, gamma_neg=0, gamma_pos=0, clip=None)
    (g_theirs,) = torch.autograd.grad(theirs, x)
    ours = focalkit.asymmetric_loss(x, y, 0.0, 0.0, None, "sum")
    (g_ours,) = torch.autograd.grad(ours, x)
    assert abs(float(theirs.detach()) - 2 * 18.4207) < 1e-3 and abs(float(ours.detach()) - 50.0) < 1e-9
    assert bool((g_theirs == 0).all())
    torch.testing.assert_close(g_ours, torch.tensor([[-1.0, 1.0]], dtype=torch.float64), rtol=1e-10, atol=0)


def test_asl_peers_return_nan_in_half_precision():
    """In float16 sigmoid(-20) rounds to 0 and the clamp's 1e-8 rounds to 0 too: log(0) = -inf and 0 * -inf = NaN
    for a negative (timm's current version casts to float32 first). focalkit computes in float32 from the logits."""
    x = torch.tensor([[-20.0, 1.0, 12.0]], dtype=torch.float16)
    y = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float16)
    assert torch.isnan(asl_authors_asymmetric_loss(x, y, 4, 0, 0.05))
    assert torch.isnan(timm_asymmetric_loss_multi_label_classic(x, y, 4, 0, 0.05))
    assert torch.isfinite(timm_asymmetric_loss_multi_label(x, y, 4, 0, 0.05))
    xg = x.clone().requires_grad_(True)
    ours = focalkit.asymmetric_loss(xg, y, 0.0, 4.0, 0.05, "sum")
    (g,) = torch.autograd.grad(ours, xg)
    assert torch.isfinite(ours) and torch.isfinite(g).all()
    ref = reference.asymmetric_loss(x.double(), y.double(), 0.0, 4.0, 0.05).sum()
    torch.testing.assert_close(ours.double(), ref, rtol=1e-6, atol=0)


def test_asl_peers_give_nan_gradients_for_gamma_below_one():
    """pow(0, gamma) with gamma < 1 has an infinite derivative: at a clipped negative (p <= m, weight base 0) and,
    in float32, at a confident positive (1 - p rounds to 0) the peers' gradient is NaN; focalkit's is finite."""
    x = torch.tensor([[-5.0, 1.0, 30.0]], requires_grad=True)
    y = torch.tensor([[0.0, 0.0, 1.0]])
    (g_neg,) = torch.autograd.grad(asl_authors_asymmetric_loss(x, y, gamma_neg=0.5, gamma_pos=0, clip=0.05), x)
    (g_pos,) = torch.autograd.grad(asl_authors_asymmetric_loss(x, y, gamma_neg=4, gamma_pos=0.5, clip=0.05), x)
    assert torch.isnan(g_neg[0, 0]) and torch.isnan(g_pos[0, 2])
    for gp, gn in ((0.0, 0.5), (0.5, 4.0)):
        (g,) = torch.autograd.grad(focalkit.asymmetric_loss(x, y, gp, gn, 0.05, "sum"), x)
        ref = reference_with_grad(lambda z: reference.asymmetric_loss(z, y.double(), gp, gn, 0.05), x)[1]
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g.double(), ref, rtol=1e-5, atol=1e-7)
        assert float(g[0, 0]) == 0.0  # the clipped negative: no loss, no gradient


def test_asl_soft_targets_interpolate_the_two_terms_where_the_peers_mix_the_exponent():
    """For soft y the peers' weight is (1 - y p - (1 - y)(1 - p_m'))^(gamma_pos y + gamma_neg (1 - y)); focalkit
    interpolates the paper's two terms linearly, y L+ + (1 - y) L-. The two agree at y in {0, 1}."""
    x = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    soft = torch.tensor([[0.5, 0.3, 0.9]], dtype=torch.float64)
    hard = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    ours = focalkit.asymmetric_loss(x, soft, 1.0, 4.0, 0.05, "none")
    pos = focalkit.asymmetric_loss(x, torch.ones_like(x), 1.0, 4.0, 0.05, "none")
    neg = focalkit.asymmetric_loss(x, torch.zeros_like(x), 1.0, 4.0, 0.05, "none")
    torch.testing.assert_close(ours, soft * pos + (1 - soft) * neg, rtol=1e-12, atol=0)
    assert abs(float(ours.sum()) - float(asl_authors_asymmetric_loss(x, soft, 4, 1, 0.05))) > 1e-2
    assert max_relative_difference(focalkit.asymmetric_loss(x, hard, 1.0, 4.0, 0.05, "sum"),
                                   asl_authors_asymmetric_loss(x, hard, 4, 1, 0.05)) <= PARITY


def test_asl_reductions_relate_to_the_peers():
    """The authors' (and timm's classic) -loss.sum() is reduction="sum"; focalkit's "mean" divides by N C;
    timm's current 'batchmean' (sum / N) is "mean" with normalizer=N."""
    x, y, _ = _peer_inputs(1)
    n, c = x.shape
    total = asl_authors_asymmetric_loss(x, y, 4, 0, 0.05)
    assert max_relative_difference(focalkit.asymmetric_loss(x, y, reduction="sum"), total) <= PARITY
    assert max_relative_difference(focalkit.asymmetric_loss(x, y) * n * c, total) <= PARITY
    assert max_relative_difference(focalkit.asymmetric_loss(x, y, normalizer=n),
                                   timm_asymmetric_loss_multi_label(x, y, 4, 0, 0.05, upcast=False)) <= PARITY


def test_asl_single_label_defaults_and_ignore_index_differ_from_the_authors():
    """The authors' ASLSingleLabel smooths with eps = 0.1 by default (focalkit: 0, as F.cross_entropy), and has no
    ignore_index (an index of -100 fails in its scatter); focalkit drops ignored rows from the sum and the mean."""
    x, _, t = _peer_inputs(2)
    theirs = asl_authors_single_label(x, t)
    assert max_relative_difference(focalkit.asymmetric_loss_single_label(x, t, label_smoothing=0.1), theirs) <= PARITY
    assert abs(float(focalkit.asymmetric_loss_single_label(x, t)) - float(theirs)) > 1e-3
    ignored = t.clone()
    ignored[::4] = -100
    with pytest.raises(RuntimeError):
        asl_authors_single_label(x, ignored)
    keep = ignored != -100
    ours = focalkit.asymmetric_loss_single_label(x, ignored, label_smoothing=0.1)
    assert max_relative_difference(ours, asl_authors_single_label(x[keep], t[keep])) <= PARITY


def test_asl_single_label_authors_weight_cancels_in_float32():
    """The authors form p_c^gamma_neg as (1 - (1 - p_c))^gamma_neg: in float32 a p_c below 6e-8 gives a weight of 0,
    and for gamma_neg < 1 a NaN gradient (pow's derivative at 0); focalkit forms it as exp(gamma_neg log p_c)."""
    x = torch.tensor([[20.0, 0.0, -3.0]], requires_grad=True)
    t = torch.tensor([0])
    (g_theirs,) = torch.autograd.grad(asl_authors_single_label(x, t, 0, 0.5, 0.1), x)
    assert torch.isnan(g_theirs).any()
    loss, g = with_grad(focalkit.asymmetric_loss_single_label, x, t, 0.0, 0.5, label_smoothing=0.1)
    ref_loss, ref_g = reference_with_grad(reference.asymmetric_loss_single_label, x, t, 0.0, 0.5, 0.1)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(loss.double(), ref_loss.sum(), rtol=1e-5, atol=0)
    torch.testing.assert_close(g.double(), ref_g, rtol=1e-5, atol=1e-9)


def test_poly1_cross_entropy_differs_from_the_peers_for_targets_that_do_not_sum_to_one():
    """The peers' poly term is epsilon (1 - p_t); focalkit's is epsilon sum_c q_c (1 - p_c) = epsilon (sum_c q_c - p_t),
    the same for targets summing to 1 (a row of zeros, e.g. padding, gives 0 here and epsilon there)."""
    x, _, _ = _peer_inputs(3)
    q = torch.softmax(torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 1) * 0.5
    ours = focalkit.poly1_cross_entropy(x, q, 2.0, reduction="none")
    theirs = timm_poly_cross_entropy(x, q, 2.0, reduction="none", upcast=False)
    torch.testing.assert_close(theirs - ours, torch.full_like(ours, 2.0 * 0.5), rtol=1e-10, atol=1e-12)


def test_poly1_focal_poly_term_is_not_alpha_weighted_where_timm_weighs_it():
    """The paper's code adds epsilon (1 - p_t)^(gamma + 1) outside alpha_t (focalkit too); timm's
    PolyBinaryCrossEntropy multiplies the whole sum by alpha_t. Without alpha the three agree."""
    x, y, _ = _peer_inputs(4)
    ours = focalkit.poly1_focal_loss(x, y, 1.0, 0.25, 2.0, "none")
    assert max_relative_difference(ours, paper_poly1_focal_loss(x, y, 1.0, 2.0, 0.25)) <= PARITY
    timm = timm_poly_binary_cross_entropy(x, y, 1.0, 2.0, 0.25, reduction="none")
    one_minus_pt = torch.sigmoid(x) * (1 - y) + torch.sigmoid(-x) * y
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    torch.testing.assert_close(ours - timm, (1 - alpha_t) * one_minus_pt**3, rtol=1e-9, atol=1e-12)


def test_poly1_with_epsilon_minus_one_is_exact_where_the_peers_cancel():
    """epsilon = -1 (the paper's choice for detection) makes CE - (1 - p_t) cancel as p_t -> 1: the paper's code and
    timm lose digits (1.2 % in float32, 1e-7 relative in float64 below); focalkit's split (1 + epsilon) s +
    (-epsilon) g(s) matches a 50-digit evaluation (mpmath) of the same formula."""
    y = torch.zeros(1, 1)
    x32 = torch.tensor([[-6.0]])  # y = 0, gamma = 2, no alpha: p^2 (-log(1 - p) - p)
    exact32, exact32_grad = 1.8720539892717634853e-11, 7.4727850702055126472e-11
    ours, grad = with_grad(focalkit.poly1_focal_loss, x32, y, -1.0, None, 2.0, "sum")
    theirs = paper_poly1_focal_loss(x32, y, -1.0, 2.0, -1.0).sum()
    assert abs(float(ours) / exact32 - 1) < 1e-6 and abs(float(grad) / exact32_grad - 1) < 1e-5
    assert abs(float(theirs) / exact32 - 1) > 1e-2
    assert float(timm_poly_binary_cross_entropy(x32, y, -1.0, 2.0, None, "sum")) == float(theirs)
    x64 = torch.tensor([[-9.435888819369401]], dtype=torch.float64)  # y = 0, gamma = 1.5
    exact64, exact64_grad = 2.2700281516284928137e-15, 7.9445852662692510548e-15
    ours, grad = with_grad(focalkit.poly1_focal_loss, x64, y.double(), -1.0, None, 1.5, "sum")
    theirs = paper_poly1_focal_loss(x64, y.double(), -1.0, 1.5, -1.0).sum()
    assert abs(float(ours) / exact64 - 1) < 1e-14 and abs(float(grad) / exact64_grad - 1) < 1e-14
    assert abs(float(theirs) / exact64 - 1) > 1e-8
    rows = torch.tensor([[9.0, 0.0, -2.0]])  # Poly-1 CE, epsilon = -1: -log p_t - (1 - p_t) as p_t -> 1
    t = torch.tensor([0])
    exact = float(reference.poly1_cross_entropy(rows.double(), t, -1.0))
    ours = focalkit.poly1_cross_entropy(rows, t, -1.0, reduction="sum")
    theirs = paper_poly1_cross_entropy(rows, F.one_hot(t, 3).float(), -1.0)
    assert abs(float(ours) / exact - 1) < 1e-5 and abs(float(theirs) / exact - 1) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("epsilon", [2.0, 1.0, -0.5, -1.0])
def test_poly1_cross_entropy_index_path_equals_the_one_hot_path(dtype, epsilon):
    """Class indices take a path that never builds the one-hot rows; one-hot probability targets take the dense one:
    the same loss and gradient, also where p_t -> 1 (logit margins of 40) and for ignored rows."""
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(9, 6, 2, generator=g, dtype=torch.float64) * 4)
    x[0, 2, 0], x[1, 5, 1] = 40.0, -40.0
    t = torch.randint(0, 6, (9, 2), generator=g)
    t[0, 0], t[2, 1] = 2, -100
    weight = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    one_hot = torch.nn.functional.one_hot(t.clamp_min(0), 6).movedim(-1, 1).to(torch.float64)
    one_hot = one_hot * (t != -100).unsqueeze(1)
    results = []
    for target in (t, one_hot):
        xr = x.to(dtype).requires_grad_(True)
        loss = focalkit.poly1_cross_entropy(xr, target, epsilon, weight.to(dtype), reduction="sum")
        loss.backward()
        results.append((loss.detach().double(), xr.grad.double()))
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    if dtype == torch.bfloat16:
        tol = dict(rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(results[0][0], results[1][0], **tol)
    torch.testing.assert_close(results[0][1], results[1][1], **tol)


def test_soft_target_softmax_focal_loss_matches_keras_formula_where_its_clip_is_inactive():
    """focalkit.softmax_focal_loss with class probabilities (alpha a number multiplying every term) is Keras's
    categorical focal cross-entropy from logits wherever every p lies inside Keras's clip [1e-7, 1 - 1e-7]; the
    benchmark times that formula as the soft-target peer. float64, loss and gradient, CPU kernel and PyTorch
    back-end."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64) * 2
    q = torch.softmax(torch.randn(64, 6, generator=g, dtype=torch.float64), dim=1)
    theirs = with_grad(lambda z: keras_categorical_focal_crossentropy(z, q, alpha=0.25, gamma=2.0), x)
    for dtype in (torch.float64, torch.float32):  # float64 runs on the PyTorch back-end, float32 on the CPU kernel
        ours = with_grad(lambda z: focalkit.softmax_focal_loss(z, q.to(dtype), alpha=0.25, gamma=2.0,
                                                               reduction="none"), x.to(dtype))
        tol = PARITY if dtype == torch.float64 else 1e-5
        assert max(map(max_relative_difference, ours, theirs)) <= tol
