"""sigmoid_focal_loss against the float64 reference: values, gradients, identities, targets, tails and extremes."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import focalkit
from focalkit import reference

from conftest import BANDS, FLOAT_DTYPES, PATTERNS, assert_close, make_logits, make_targets

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
ALPHAS = [None, 0.25, 0.75]


def reference_with_grad(x, y, alpha, gamma):
    x64 = x.detach().to(torch.float64).requires_grad_(True)
    loss = reference.sigmoid_focal_loss(x64, y.to(torch.float64), alpha, gamma)
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, PATTERNS)))
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_values_and_gradients_match_reference(band, pattern, alpha, gamma, dtype):
    x = make_logits(band, (6, 5)).to(dtype).requires_grad_(True)
    y = make_targets(pattern, (6, 5)).to(dtype)
    loss = focalkit.sigmoid_focal_loss(x, y, alpha, gamma, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    ref_loss, ref_grad = reference_with_grad(x, y, alpha, gamma)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.float64])
def test_reductions(reduction, dtype):
    x = make_logits("random", (4, 7, 3)).to(dtype).requires_grad_(True)
    y = make_targets("soft", (4, 7, 3)).to(dtype)
    loss = focalkit.sigmoid_focal_loss(x, y, 0.25, 2.0, reduction=reduction)
    ref = reference.sigmoid_focal_loss(x.detach(), y, 0.25, 2.0)
    expected = ref.mean() if reduction == "mean" else ref.sum()
    assert loss.dtype == (dtype if dtype in (torch.float32, torch.float64) else torch.float32)
    assert_close(loss, expected, dtype)


def torchvision_formula(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss (v0.26) as published, for the drop-in comparison."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_drop_in_for_torchvision_formula(reduction, alpha):
    x = torch.randn(16, 10, dtype=torch.float64) * 2
    y = torch.rand(16, 10, dtype=torch.float64)
    ours = focalkit.sigmoid_focal_loss(x, y, alpha, 2.0, reduction)
    theirs = torchvision_formula(x, y, alpha, 2.0, reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_drop_in_for_installed_torchvision():
    ops = pytest.importorskip("torchvision.ops", reason="torchvision is not installed (it is optional)")
    x = torch.randn(32, 8) * 3
    y = (torch.rand(32, 8) > 0.7).float()
    for reduction in ("none", "mean", "sum"):
        torch.testing.assert_close(
            focalkit.sigmoid_focal_loss(x, y, 0.25, 2.0, reduction),
            ops.sigmoid_focal_loss(x, y, 0.25, 2.0, reduction),
            rtol=1e-5,
            atol=1e-6,
        )


def test_gamma_zero_is_alpha_balanced_bce():
    x = torch.randn(50, dtype=torch.float64) * 4
    y = torch.rand(50, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, y, None, 0.0), bce, rtol=1e-12, atol=1e-14)
    alpha_t = 0.3 * y + 0.7 * (1 - y)
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, y, 0.3, 0.0), alpha_t * bce, rtol=1e-12, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    logits=st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=20),
    hard=st.booleans(),
    gamma=st.floats(0, 5),
    alpha=st.one_of(st.none(), st.floats(0, 1)),
)
def test_properties_fl_below_ce_and_ratio(logits, hard, gamma, alpha):
    x = torch.tensor(logits, dtype=torch.float64)
    y = (torch.arange(len(logits)) % 2).to(torch.float64)
    if not hard:
        y = (y + 0.3) / 1.6
    fl = focalkit.sigmoid_focal_loss(x, y, alpha, gamma)
    ce = focalkit.sigmoid_focal_loss(x, y, alpha, 0.0)
    assert bool((fl <= ce * (1 + 1e-12) + 1e-300).all())
    if hard:
        one_minus_p_t = torch.sigmoid(-(2 * y - 1) * x)  # exact form of 1 - p_t for hard targets
        mask = ce > 1e-200
        torch.testing.assert_close(fl[mask] / ce[mask], (one_minus_p_t**gamma)[mask], rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_finite_loss_and_gradient_at_extremes(dtype, gamma, reduction):
    magnitudes = torch.tensor([0.0, 9.0, 12.0, 17.0, 20.0, 50.0, 100.0, 1e3, 1e4])
    x = torch.cat([magnitudes, -magnitudes]).repeat(2).to(dtype).requires_grad_(True)
    y = torch.cat([torch.zeros(18), torch.ones(18)]).to(dtype)
    loss = focalkit.sigmoid_focal_loss(x, y, 0.25, gamma, reduction=reduction)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())
    # Soft targets and index targets at the same extremes.
    ys = torch.full_like(x, 0.3)
    loss = focalkit.sigmoid_focal_loss(x, ys, 0.25, gamma, reduction=reduction)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())
    x2 = x.detach().reshape(4, 9).requires_grad_(True)
    loss = focalkit.sigmoid_focal_loss(x2, torch.tensor([0, 9, -100, 4]), [0.1] * 9, gamma, reduction=reduction)
    (grad,) = torch.autograd.grad(loss.sum(), x2)
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("magnitude", [9.0, 12.0, 17.0])
@pytest.mark.parametrize("target", [0.0, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_fp32_tail_accuracy(magnitude, target, gamma):
    """Relative error <= 1e-4 against float64 at |x| in {9, 12, 17}, on both sides, for hard targets."""
    x = torch.tensor([magnitude, -magnitude], requires_grad=True)
    y = torch.full((2,), target)
    loss = focalkit.sigmoid_focal_loss(x, y, 0.25, gamma)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    ref_loss, ref_grad = reference_with_grad(x, y, 0.25, gamma)
    assert float(((loss.double() - ref_loss) / ref_loss).abs().max()) <= 1e-4
    assert float(((grad.double() - ref_grad) / ref_grad).abs().max()) <= 1e-4


def test_torch_bce_loses_the_tail_that_focalkit_keeps():
    """The pitfall focalkit avoids: torch's BCE-with-logits is exactly 0 at x = -17, t = 0."""
    x = torch.tensor([-17.0])
    t = torch.zeros(1)
    assert float(F.binary_cross_entropy_with_logits(x, t)) == 0.0
    assert float(focalkit.sigmoid_focal_loss(x, t, None, 0.0)) == pytest.approx(4.139937718785167e-08, rel=1e-6)


def test_gradcheck_float64():
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.rand(5, 4, dtype=torch.float64)
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradcheck(lambda v: focalkit.sigmoid_focal_loss(v, y, 0.25, gamma, "none"), (x,))
        assert torch.autograd.gradcheck(lambda v: focalkit.sigmoid_focal_loss(v, y, [0.1, 0.4, 0.6, 0.9], gamma, "sum"), (x,))
    t = torch.tensor([0, 4, -100, 2, 3])
    assert torch.autograd.gradcheck(
        lambda v: focalkit.sigmoid_focal_loss(v, t, 0.25, 0.5, "mean", pos_weight=[1.0, 2.0, 0.5, 3.0]), (x,)
    )


def test_index_targets_equal_one_hot_with_background_and_ignore():
    x = torch.randn(6, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 5, (6, 3, 2))  # 4 = background
    t[0, 0, 0] = -100
    t[3, 2, 1] = -100
    dense = F.one_hot(t.clamp(0, 4), 5)[..., :4].movedim(-1, 1).to(torch.float64)
    valid = (t != -100).unsqueeze(1).to(torch.float64)
    expected_none = reference.sigmoid_focal_loss(x, dense, 0.25, 2.0) * valid
    got_none = focalkit.sigmoid_focal_loss(x, t, 0.25, 2.0, "none")
    torch.testing.assert_close(got_none, expected_none)
    got_mean = focalkit.sigmoid_focal_loss(x, t, 0.25, 2.0, "mean")
    torch.testing.assert_close(got_mean, expected_none.sum() / (valid.sum() * 4))
    g1, = torch.autograd.grad(got_mean, x)
    g2, = torch.autograd.grad(expected_none.sum() / (valid.sum() * 4), x)
    torch.testing.assert_close(g1, g2)
    assert float(g1[0, :, 0, 0].abs().sum()) == 0.0  # ignored row: no gradient


def test_per_class_alpha_and_pos_weight_match_reference_and_bce():
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.rand(5, 3, dtype=torch.float64)
    alpha = [0.1, 0.5, 0.9]
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, y, alpha, 1.5), reference.sigmoid_focal_loss(x, y, alpha, 1.5))
    pw = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, y, None, 0.0, pos_weight=pw), bce)


def test_weight_like_bce_with_logits():
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.rand(5, 3, dtype=torch.float64)
    w = torch.rand(3, dtype=torch.float64)
    expected = F.binary_cross_entropy_with_logits(x, y, weight=w)
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, y, None, 0.0, "mean", weight=w), expected)


def test_normalizer_divides_sum():
    x = torch.randn(20, 4)
    t = torch.randint(0, 5, (20,))
    total = focalkit.sigmoid_focal_loss(x, t, reduction="sum")
    num_pos = (t < 4).sum()
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, t, reduction="mean", normalizer=num_pos), total / num_pos)
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, t, reduction="mean", normalizer=2.5), total / 2.5)
    # A zero normaliser (an image without positives) divides by 1 instead of giving inf / NaN.
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, t, reduction="mean", normalizer=0), total)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_empty_batch_gives_zero_with_gradient_path(reduction):
    x = torch.zeros(0, 5, requires_grad=True)
    for targets in (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)):
        loss = focalkit.sigmoid_focal_loss(x, targets, reduction=reduction)
        assert not bool(torch.isnan(loss).any())
        if reduction != "none":
            assert float(loss) == 0.0
        else:
            assert loss.shape == (0, 5)
        loss.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape


def test_all_ignored_mean_is_zero():
    x = torch.randn(3, 4, requires_grad=True)
    loss = focalkit.sigmoid_focal_loss(x, torch.full((3,), -100), reduction="mean")
    assert float(loss) == 0.0
    loss.backward()
    assert float(x.grad.abs().sum()) == 0.0


def test_inputs_not_modified():
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.rand(4, 3)
    alpha = torch.tensor([0.2, 0.3, 0.4])
    copies = [x.detach().clone(), y.clone(), alpha.clone()]
    focalkit.sigmoid_focal_loss(x, y, alpha, 2.0, "mean").backward()
    for original, copy in zip([x.detach(), y, alpha], copies):
        assert torch.equal(original, copy)


def test_non_contiguous_inputs():
    x = torch.randn(5, 8, dtype=torch.float64).t()
    y = torch.rand(5, 8, dtype=torch.float64).t()
    assert not x.is_contiguous()
    torch.testing.assert_close(focalkit.sigmoid_focal_loss(x, y), reference.sigmoid_focal_loss(x, y))
