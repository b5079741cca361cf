"""The reduced and the normalized focal loss as options of ``sigmoid_focal_loss`` and ``softmax_focal_loss``.

Reduced (Sergievskiy & Ponamarev 2019; segmentation_models_pytorch's ``reduced_threshold``): the modulating factor is
((1 - p_t) / th)^gamma where p_t >= th, 1 below. Normalized (smp's ``normalized=True``): every loss divided by the
sum of the modulating factors of the elements (rows) that count. Checked against ``focalkit.reference`` in float64
(values, and gradients through autograd of the reference), in every dtype, with index targets, ignored rows, label
smoothing and probability targets, in both gradient modes, to second order, and at extreme logits.
"""

from __future__ import annotations

import pytest
import torch

import focalkit
from focalkit import InvalidArgumentError, InvalidTypeError, reference

from conftest import BANDS, FLOAT_DTYPES, PATTERNS, assert_close, make_logits, make_targets

SHAPE = (6, 5, 3)
THRESHOLDS = [None, 0.3, 0.5, 0.9, 1.0]


def _grad(fn, x):
    x = x.detach().clone().requires_grad_(True)
    loss = fn(x)
    loss.sum().backward()
    return loss.detach(), x.grad


def _sigmoid_reference(x, y, alpha, gamma, threshold, normalized, valid=None):
    loss = reference.sigmoid_focal_loss(x, y, alpha, gamma, reduced_threshold=threshold)
    p = torch.sigmoid(x.double())
    factor = reference.reduced_focal_factor(p * (1 - y.double()) + (1 - p) * y.double(), gamma, threshold)
    if valid is not None:
        loss, factor = loss * valid, factor * valid
    return loss / factor.sum().clamp_min(1e-6) if normalized else loss


@pytest.mark.parametrize("band", sorted(BANDS))
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("normalized", [False, True])
def test_sigmoid_matches_reference_float64(band, pattern, threshold, normalized, gradient_mode):
    x = make_logits(band, SHAPE).double()
    y = make_targets(pattern, SHAPE).double()
    for alpha, gamma in [(0.25, 2.0), (None, 0.5), (0.7, 0.0)]:
        ours, ours_grad = _grad(lambda a: focalkit.sigmoid_focal_loss(
            a, y, alpha, gamma, "sum", normalized=normalized, reduced_threshold=threshold), x)
        theirs, theirs_grad = _grad(lambda a: _sigmoid_reference(a, y, alpha, gamma, threshold, normalized).sum(), x)
        assert_close(ours, theirs, torch.float64)
        assert_close(ours_grad, theirs_grad, torch.float64)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("threshold", [0.25, 0.5])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_half_precision_and_reductions(dtype, threshold, reduction):
    x = make_logits("random", SHAPE).to(dtype)
    y = make_targets("random", SHAPE).to(dtype)
    for normalized in (False, True):
        ours = focalkit.sigmoid_focal_loss(x, y, reduction=reduction, normalized=normalized,
                                           reduced_threshold=threshold)
        elements = _sigmoid_reference(x.double(), y.double(), 0.25, 2.0, threshold, normalized)
        expected = {"none": elements, "sum": elements.sum(), "mean": elements.mean()}[reduction]
        assert_close(ours, expected, dtype, scale=2.0)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_sigmoid_index_targets_ignore_rows_in_the_normalizer(threshold):
    x = make_logits("random", SHAPE).double()
    index = torch.randint(0, SHAPE[1] + 1, (SHAPE[0], SHAPE[2]), generator=torch.Generator().manual_seed(3))
    index[0, 0] = -100
    valid = (index != -100).unsqueeze(1).double().expand(SHAPE)
    one_hot = torch.nn.functional.one_hot(index.clamp(0, SHAPE[1]), SHAPE[1] + 1)[..., :SHAPE[1]].movedim(-1, 1)
    ours, ours_grad = _grad(lambda a: focalkit.sigmoid_focal_loss(a, index, reduction="mean", normalized=True,
                                                                  reduced_threshold=threshold), x)
    count = valid.sum()
    theirs, theirs_grad = _grad(
        lambda a: _sigmoid_reference(a, one_hot.double(), 0.25, 2.0, threshold, True, valid).sum() / count, x)
    assert_close(ours, theirs, torch.float64)
    assert_close(ours_grad, theirs_grad, torch.float64)
    assert float(ours_grad[0, :, 0].abs().max()) == 0.0  # the ignored row takes no part


def _softmax_reference(x, target, gamma, threshold, normalized, label_smoothing=0.0, ignore_index=-100):
    c = x.shape[1]
    if target.is_floating_point():
        q = target.double()
        valid = torch.ones(x.shape[0], *x.shape[2:], dtype=torch.float64)
    else:
        valid = (target != ignore_index).double()
        q = torch.nn.functional.one_hot(torch.where(target == ignore_index, 0, target), c).movedim(-1, 1).double()
        q = q * valid.unsqueeze(1)
    q = q * (1 - label_smoothing) + label_smoothing / c * (valid.unsqueeze(1) if not target.is_floating_point() else 1)
    rows = reference.softmax_focal_loss(x, q, gamma=gamma, reduced_threshold=threshold)
    if not normalized:
        return rows
    factor = reference.reduced_focal_factor(1 - torch.softmax(x.double(), 1), gamma, threshold)
    return rows / (q * factor).sum().clamp_min(1e-6)


@pytest.mark.parametrize("band", sorted(BANDS))
@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("target_kind", ["index", "probabilities", "smoothed"])
def test_softmax_matches_reference_float64(band, threshold, normalized, target_kind, gradient_mode):
    x = make_logits(band, SHAPE).double()
    g = torch.Generator().manual_seed(5)
    if target_kind == "probabilities":
        target = torch.softmax(torch.randn(SHAPE, generator=g, dtype=torch.float64) * 2, 1)
    else:
        target = torch.randint(0, SHAPE[1], (SHAPE[0], SHAPE[2]), generator=g)
        target[1, 1] = -100
    smoothing = 0.1 if target_kind == "smoothed" else 0.0
    for gamma in (2.0, 0.5):
        ours, ours_grad = _grad(lambda a: focalkit.softmax_focal_loss(
            a, target, reduction="sum", gamma=gamma, label_smoothing=smoothing, normalized=normalized,
            reduced_threshold=threshold), x)
        theirs, theirs_grad = _grad(lambda a: _softmax_reference(
            a, target, gamma, threshold, normalized, smoothing).sum(), x)
        assert_close(ours, theirs, torch.float64)
        assert_close(ours_grad, theirs_grad, torch.float64)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softmax_half_precision(dtype):
    x = make_logits("random", SHAPE).to(dtype)
    target = torch.randint(0, SHAPE[1], (SHAPE[0], SHAPE[2]), generator=torch.Generator().manual_seed(2))
    for normalized in (False, True):
        ours = focalkit.softmax_focal_loss(x, target, reduction="none", normalized=normalized, reduced_threshold=0.4)
        assert_close(ours, _softmax_reference(x.double(), target, 2.0, 0.4, normalized), dtype, scale=2.0)


def test_second_derivatives_are_those_of_the_reference():
    x = make_logits("random", (4, 3)).double().requires_grad_(True)
    y = (torch.rand(4, 3, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    t = torch.tensor([0, 2, 1, 1])
    cases = [
        (lambda a: focalkit.sigmoid_focal_loss(a, y, reduction="sum", reduced_threshold=0.3, normalized=True),
         lambda a: _sigmoid_reference(a, y, 0.25, 2.0, 0.3, True).sum()),
        (lambda a: focalkit.softmax_focal_loss(a, t, reduction="sum", reduced_threshold=0.3, normalized=True),
         lambda a: _softmax_reference(a, t, 2.0, 0.3, True).sum()),
    ]
    v = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    for ours, theirs in cases:
        torch.autograd.gradgradcheck(ours, (x,))
        hv = []
        for fn in (ours, theirs):
            (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
            hv.append(torch.autograd.grad((g * v).sum(), x)[0])
        torch.testing.assert_close(hv[0], hv[1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_finite_at_extreme_logits(dtype):
    x = torch.tensor([[-1e4, -100.0, -17.0, 0.0, 17.0, 100.0, 1e4]], dtype=dtype).repeat(2, 1)
    y = torch.tensor([[0.0], [1.0]], dtype=dtype).expand_as(x)
    t = torch.tensor([0, 6])
    for threshold in (0.01, 0.5, 1.0):
        for fn in (lambda a: focalkit.sigmoid_focal_loss(a, y, reduction="sum", normalized=True,
                                                         reduced_threshold=threshold),
                   lambda a: focalkit.softmax_focal_loss(a, t, normalized=True, reduced_threshold=threshold)):
            loss, grad = _grad(fn, x)
            assert torch.isfinite(loss).all() and torch.isfinite(grad).all()


def test_all_well_classified_normalized_is_zero_not_nan():
    x = torch.full((3, 2), 200.0, requires_grad=True)
    loss = focalkit.sigmoid_focal_loss(x, torch.ones(3, 2), reduction="mean", normalized=True)
    loss.backward()
    assert float(loss) == 0.0 and torch.isfinite(x.grad).all()


def test_every_back_end_gives_the_same_reduced_loss(monkeypatch):
    x = make_logits("random", (64, 4)).float()
    y = (torch.rand(64, 4, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    t = torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(2))
    results = []
    for name in ("torch", "cpu", None):
        if name is None:
            monkeypatch.delenv("FOCALKIT_BACKEND", raising=False)
        else:
            monkeypatch.setenv("FOCALKIT_BACKEND", name)
        results.append([_grad(lambda a: focalkit.sigmoid_focal_loss(a, y, reduction="sum", reduced_threshold=0.4), x),
                        _grad(lambda a: focalkit.softmax_focal_loss(a, t, reduced_threshold=0.4), x)])
    for other in results[1:]:
        for (l0, g0), (l1, g1) in zip(results[0], other):
            torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-6)


def test_the_option_is_a_feature_a_back_end_must_implement():
    from focalkit import backends

    x, y = torch.zeros(2, 3), torch.zeros(2, 3)
    assert backends.missing_features("torch", "sigmoid_focal", {"reduced_threshold": 0.5}) == []
    if "reduced_threshold" not in backends.cpu.IMPLEMENTS["sigmoid_focal"][1]:
        assert backends.missing_features("cpu", "sigmoid_focal", {"reduced_threshold": 0.5}) == [
            "it does not implement reduced_threshold"]
        assert backends.resolve_backend("sigmoid_focal", x, y, {"reduced_threshold": 0.5}) == "torch"


@pytest.mark.parametrize("call, error, match", [
    (lambda: focalkit.sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), reduced_threshold=0.0),
     InvalidArgumentError, r"reduced_threshold: expected None or a number in \(0, 1\], got 0.0"),
    (lambda: focalkit.sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), reduced_threshold=float("nan")),
     InvalidArgumentError, "reduced_threshold: expected a finite number"),
    (lambda: focalkit.softmax_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), reduced_threshold=2),
     InvalidArgumentError, r"reduced_threshold: expected None or a number in \(0, 1\], got 2.0"),
    (lambda: focalkit.softmax_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), normalized="yes"),
     InvalidTypeError, "normalized: expected a bool"),
    (lambda: focalkit.sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), reduced_threshold=[0.5]),
     InvalidTypeError, "reduced_threshold: expected a real number"),
])
def test_bad_options_raise_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
