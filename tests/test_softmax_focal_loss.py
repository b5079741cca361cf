"""softmax_focal_loss: exact equality with F.cross_entropy at gamma = 0, the reference elsewhere, extremes."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

import focalkit
from focalkit import reference

from conftest import FLOAT_DTYPES, assert_close


def _inputs(shape, seed=0, ignore_every=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    if ignore_every:
        t.view(-1)[::ignore_every] = -100
    return x, t


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 2, 3), (1, 2)])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_gamma_zero_equals_cross_entropy_index_targets(shape, use_weight, label_smoothing, reduction, ignore_index):
    x, t = _inputs(shape)
    t = torch.where(t == -100, ignore_index, t)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if use_weight else None
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    ours = focalkit.softmax_focal_loss(x1, t, weight, ignore_index, reduction, label_smoothing, gamma=0.0)
    theirs = F.cross_entropy(x2, t, weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    if torch.isnan(theirs).any():  # fully ignored mean: torch gives 0/0, focalkit gives 0
        assert float(ours.detach()) == 0.0
        return
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    (g1,) = torch.autograd.grad(ours.sum(), x1)
    (g2,) = torch.autograd.grad(theirs.sum(), x2)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 2, 3)])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gamma_zero_equals_cross_entropy_probability_targets(shape, use_weight, label_smoothing, reduction):
    x, _ = _inputs(shape)
    q = torch.softmax(torch.randn(shape, dtype=torch.float64), dim=1)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if use_weight else None
    ours = focalkit.softmax_focal_loss(x, q, weight, reduction=reduction, label_smoothing=label_smoothing, gamma=0.0)
    theirs = F.cross_entropy(x, q, weight, reduction=reduction, label_smoothing=label_smoothing)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_alpha_float_multiplies_every_term():
    x, t = _inputs((6, 4), ignore_every=0)
    ce = F.cross_entropy(x, t)
    torch.testing.assert_close(focalkit.softmax_focal_loss(x, t, gamma=0.0, alpha=0.25), 0.25 * ce)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.5, [0.1, 0.2, 0.3, 0.4]])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_values_and_gradients_match_reference(gamma, alpha, dtype, soft):
    x, t = _inputs((9, 4), ignore_every=4)
    target = torch.softmax(torch.randn(9, 4, dtype=torch.float64), 1) if soft else t
    xd = x.to(dtype).requires_grad_(True)
    loss = focalkit.softmax_focal_loss(xd, target.to(dtype) if soft else target, gamma=gamma, alpha=alpha, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), xd)
    x64 = xd.detach().to(torch.float64).requires_grad_(True)
    ref = reference.softmax_focal_loss(x64, target.to(dtype).to(torch.float64) if soft else target, alpha, gamma)
    (ref_grad,) = torch.autograd.grad(ref.sum(), x64)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert_close(loss, ref, dtype, scale=2.0)
    assert_close(grad, ref_grad, dtype, scale=2.0)


def test_label_smoothing_with_focal_matches_soft_reference():
    x, t = _inputs((8, 5), ignore_every=0)
    eps = 0.1
    q = F.one_hot(t, 5).to(torch.float64) * (1 - eps) + eps / 5
    for gamma in (0.5, 2.0):
        torch.testing.assert_close(
            focalkit.softmax_focal_loss(x, t, label_smoothing=eps, gamma=gamma, reduction="sum"),
            reference.softmax_focal_loss(x, q, None, gamma).sum(),
        )


def test_gradcheck_float64():
    x, t = _inputs((5, 4), ignore_every=3)
    x.requires_grad_(True)
    w = torch.rand(4, dtype=torch.float64) + 0.5
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradcheck(lambda v: focalkit.softmax_focal_loss(v, t, w, gamma=gamma, reduction="none"), (x,))
        assert torch.autograd.gradcheck(
            lambda v: focalkit.softmax_focal_loss(v, t, w, label_smoothing=0.1, gamma=gamma, alpha=[0.1, 0.2, 0.3, 0.4]), (x,)
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("magnitude", [20.0, 100.0, 1e4])
def test_finite_at_extremes(dtype, gamma, label_smoothing, magnitude):
    x = torch.tensor([[magnitude, 0.0, -magnitude], [-magnitude, magnitude, 0.0], [0.0, 0.0, 0.0], [magnitude, magnitude, -magnitude]])
    x = x.to(dtype).requires_grad_(True)
    for target in (torch.tensor([0, 0, 2, 1]), torch.softmax(torch.tensor([[9.0, 0, 0], [0, 0, 9], [1, 1, 1], [0, 0, 0]]), 1).to(dtype)):
        loss = focalkit.softmax_focal_loss(x, target, gamma=gamma, label_smoothing=label_smoothing)
        (grad,) = torch.autograd.grad(loss, x)
        assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())


def test_fp32_confident_rows_keep_relative_accuracy():
    """u = 1 - p_t = S'/S with S' summed directly: no cancellation when the target class dominates."""
    x = torch.tensor([[17.0, 0.0, 0.0]], requires_grad=True)
    t = torch.tensor([0])
    for gamma in (0.0, 0.5, 2.0):
        loss = focalkit.softmax_focal_loss(x, t, gamma=gamma, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x64 = x.detach().double().requires_grad_(True)
        ref = reference.softmax_focal_loss(x64, t, None, gamma).sum()
        (ref_grad,) = torch.autograd.grad(ref, x64)
        assert abs(float(loss) - float(ref)) <= 1e-4 * float(ref)
        assert float(((grad.double() - ref_grad) / ref_grad).abs().max()) <= 1e-4


def test_unbatched_input():
    x = torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(focalkit.softmax_focal_loss(x, torch.tensor(2), gamma=0.0), F.cross_entropy(x, torch.tensor(2)))
    q = torch.softmax(torch.randn(5, dtype=torch.float64), 0)
    torch.testing.assert_close(focalkit.softmax_focal_loss(x, q, gamma=0.0), F.cross_entropy(x, q))
    torch.testing.assert_close(
        focalkit.softmax_focal_loss(x, q, gamma=2.0, reduction="none"),
        focalkit.softmax_focal_loss(x.unsqueeze(0), q.unsqueeze(0), gamma=2.0, reduction="none").squeeze(0),
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_empty_batch(reduction):
    x = torch.zeros(0, 4, requires_grad=True)
    loss = focalkit.softmax_focal_loss(x, torch.zeros(0, dtype=torch.long), reduction=reduction)
    assert not bool(torch.isnan(loss).any())
    loss.sum().backward()
    assert x.grad is not None


def test_normalizer_and_ignore_count():
    x, t = _inputs((10, 3), ignore_every=2)
    total = focalkit.softmax_focal_loss(x, t, reduction="sum")
    torch.testing.assert_close(focalkit.softmax_focal_loss(x, t, normalizer=4), total / 4)
    torch.testing.assert_close(focalkit.softmax_focal_loss(x, t), total / (t != -100).sum())


SOFTMAX_BANDS = {
    "confident_right": 6.0,  # the target logit far above the others: p_t near 1
    "confident_wrong": -6.0,  # far below: p_t near 0
    "random": 0.0,
}


@pytest.mark.parametrize("band", list(SOFTMAX_BANDS))
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, [0.4, 0.3, 0.2, 0.1, 0.5]])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_probability_bands_match_reference(band, gamma, alpha, dtype):
    g = torch.Generator().manual_seed(11)
    t = torch.randint(0, 5, (12,), generator=g)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64) * 2
    x = x + SOFTMAX_BANDS[band] * torch.nn.functional.one_hot(t, 5)
    xd = x.to(dtype).requires_grad_(True)
    loss = focalkit.softmax_focal_loss(xd, t, alpha=alpha, gamma=gamma, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), xd)
    x64 = xd.detach().double().requires_grad_(True)
    ref = reference.softmax_focal_loss(x64, t, alpha, gamma)
    (ref_grad,) = torch.autograd.grad(ref.sum(), x64)
    assert_close(loss, ref, dtype, scale=2.0)
    assert_close(grad, ref_grad, dtype, scale=2.0)
