"""Equalized Focal Loss (Li et al. 2022): the stateless function, the op, and the stateful module.

Function: values and gradients against the float64 reference (probability bands x target patterns x dtypes x
per-class factors), reductions, gradcheck / gradgradcheck, finiteness of loss, gradient and second derivative at
|logit| up to 1e4 for every gamma_j >= 0, the core sigmoid focal loss when every g_j = 1, torch.compile and the
saved-tensor budget. Module: the statistics (accumulated |d loss / d logits| of positives and negatives per class)
against a hand computation, the direction of the factors (rare classes: small g_j, larger gamma_j), when they are
not updated, state_dict round trip, typed errors, parity with the authors' code (ModelTC EOD) where the definitions
agree and the difference where its -log(pred_t) overflows, and two gloo processes with sync_statistics=True ending
with the statistics of one process on the concatenated batch.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import focalkit
from focalkit import InvalidArgumentError, InvalidTypeError, reference
from focalkit.adaptive.equalized import equalized_focal_statistics

from conftest import BANDS, assert_close, make_logits, make_targets

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
PATTERNS = ["zeros", "ones", "random", "soft", "index"]
N, C = 6, 5
GAMMA = torch.tensor([0.0, 0.5, 2.0, 6.3, 10.0])  # 0 and 10 = gamma_b + s: the range the module produces
WEIGHT = torch.tensor([1.0, 0.25, 1.0, 3.15, 5.0])
ALPHAS = [0.25, None, [0.1, 0.3, 0.5, 0.7, 0.9]]
INDEX = torch.tensor([0, 5, 3, -100, 4, 1])  # 5 = background, -100 = ignored


def _targets(pattern: str, shape=(N, C), seed: int = 1) -> torch.Tensor:
    return make_targets(pattern, shape, seed)


def _dense(index: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot float64 targets of index targets (C = background, all 0) and the rows' validity (N, 1, ...)."""
    valid = (index != -100).unsqueeze(1).double()
    classes = torch.arange(num_classes).view(1, num_classes, *([1] * (index.ndim - 1)))
    return (index.unsqueeze(1) == classes).double(), valid


def _with_grad(fn, x, *args, **kwargs):
    x = x.detach().clone().requires_grad_(True)
    loss = fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def _reference(x, targets, gamma, weight=None, alpha=0.25):
    """Per-element float64 reference of (x, float or index targets): loss and gradient."""
    if targets.is_floating_point():
        y, valid = targets.double(), 1.0
    else:
        y, valid = _dense(targets, x.shape[1])
    return _with_grad(lambda z: reference.equalized_focal_loss(z, y, gamma, weight, alpha) * valid,
                      x.detach().double())


# ================================================================================ values and gradients vs reference
@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, PATTERNS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(band, pattern, dtype):
    x = make_logits(band, (N, C)).to(dtype)
    t = INDEX if pattern == "index" else _targets(pattern).to(dtype)
    for alpha, weight in itertools.product(ALPHAS, (None, WEIGHT)):
        loss, grad = _with_grad(focalkit.equalized_focal_loss, x, t, GAMMA, weight, alpha, "none")
        ref_loss, ref_grad = _reference(x, t, GAMMA, weight, alpha)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reductions_and_spatial_dims(dtype):
    x = (3 * torch.randn(4, C, 3, 2)).to(dtype)
    t = torch.randint(0, C + 1, (4, 3, 2))
    t[0, 1, 1] = t[2, 0, 0] = -100
    y, valid = _dense(t, C)
    ref = reference.equalized_focal_loss(x, y, GAMMA, WEIGHT) * valid
    counted = int((t != -100).sum()) * C
    tol = dict(rtol=1e-10 if dtype == torch.float64 else 2e-5, atol=1e-12 if dtype == torch.float64 else 1e-6)
    fn = focalkit.equalized_focal_loss
    torch.testing.assert_close(fn(x, t, GAMMA, WEIGHT, reduction="none").double(), ref, **tol)
    torch.testing.assert_close(fn(x, t, GAMMA, WEIGHT, reduction="sum").double(), ref.sum(), **tol)
    torch.testing.assert_close(fn(x, t, GAMMA, WEIGHT).double(), ref.sum() / counted, **tol)
    torch.testing.assert_close(fn(x, t, GAMMA, WEIGHT, normalizer=7.0).double(), ref.sum() / 7, **tol)
    torch.testing.assert_close(fn(x, y.to(dtype), GAMMA.tolist(), WEIGHT.tolist(), reduction="sum").double(),
                               (reference.equalized_focal_loss(x, y, GAMMA, WEIGHT)).sum(), **tol)
    for half in (torch.float16, torch.bfloat16):  # reduced losses come back in float32
        assert fn(x.to(half), t, GAMMA).dtype == torch.float32


# ================================================================================ gradcheck / gradgradcheck
Y_SOFT = torch.rand(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
Y_HARD = (Y_SOFT > 0.5).double()
LABELS = torch.tensor([0, 3, 2, -100])
GRAD_CASES = {
    "soft sum": lambda x, g: focalkit.equalized_focal_loss(x, Y_SOFT, g, g + 0.5, reduction="sum"),
    "hard mean": lambda x, g: focalkit.equalized_focal_loss(x, Y_HARD, g, None, None),
    "index mean": lambda x, g: focalkit.equalized_focal_loss(x, LABELS, g, 2 * g, [0.2, 0.5, 0.8]),
    "none weighted": lambda x, g: (focalkit.equalized_focal_loss(x, Y_SOFT, g, reduction="none")
                                   * torch.arange(12, dtype=x.dtype).view(4, 3)).sum(),
}
GAMMA_SETS = {"mixed": [0.0, 0.5, 10.0], "small": [0.25, 1.0, 1.5], "module": [2.0, 6.0, 10.0]}


@pytest.mark.parametrize("gammas", sorted(GAMMA_SETS))
@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradcheck_and_gradgradcheck_float64(name, gammas):
    g = torch.tensor(GAMMA_SETS[gammas], dtype=torch.float64)
    x = (3 * torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: GRAD_CASES[name](v, g), (x,))
    assert torch.autograd.gradgradcheck(lambda v: GRAD_CASES[name](v, g), (x,))


def test_soft_targets_that_require_grad_are_differentiated_exactly():
    x = (3 * torch.randn(4, 3, dtype=torch.float64)).requires_grad_(True)
    y = Y_SOFT.clamp(0.05, 0.95).clone().requires_grad_(True)
    g = torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64)
    gx, gy = torch.autograd.grad(focalkit.equalized_focal_loss(x, y, g, g / 2, reduction="sum"), (x, y))
    yr = y.detach().clone().requires_grad_(True)
    rx, ry = torch.autograd.grad(reference.equalized_focal_loss(x, yr, g, g / 2).sum(), (x, yr))
    torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gy, ry, rtol=1e-9, atol=1e-12)


# ================================================================================ finiteness at extreme logits
EXTREME = torch.tensor([1e4, -1e4, 100.0, -100.0, 30.0, -30.0, 17.0, -17.0, 0.0, 1.0], dtype=torch.float64)
FINITE_GAMMAS = {"zeros": [0.0] * 5, "quarter": [0.25] * 5, "mixed": [0.0, 0.25, 0.5, 1.0, 10.0]}


def _extreme_logits(shape, dtype):
    n = math.prod(shape)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return EXTREME.repeat(n // EXTREME.numel() + 1)[order][:n].view(shape).to(dtype)


@pytest.mark.parametrize("gammas", sorted(FINITE_GAMMAS))
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_gradient_and_second_derivative_finite_at_extreme_logits(dtype, pattern, gammas):
    g = torch.tensor(FINITE_GAMMAS[gammas])
    x = _extreme_logits((N, C), dtype).requires_grad_(True)
    t = INDEX if pattern == "index" else _targets(pattern).to(dtype)
    fn = lambda z: focalkit.equalized_focal_loss(z, t, g, 1 + g, reduction="sum")  # noqa: E731
    loss = fn(x)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(loss) and torch.isfinite(grad).all(), (loss, grad)
    v = torch.randn(N, C, generator=torch.Generator().manual_seed(1)).to(dtype)
    (g2,) = torch.autograd.grad(fn(x), x, create_graph=True)
    (hv,) = torch.autograd.grad((g2 * v).sum(), x)
    assert torch.isfinite(g2).all() and torch.isfinite(hv).all()
    torch.testing.assert_close(g2.detach().double(), grad.double(), rtol=1e-4 if dtype == torch.float64 else 2e-2,
                               atol=1e-6)
    if dtype in (torch.float32, torch.float64):  # and exact there, against the float64 reference
        ref_loss, ref_grad = _reference(x, t, g, 1 + g)
        # autograd through the reference's u ** gamma_j gives 0 * inf = NaN where u underflowed to 0 (|x| = 1e4 on
        # the predicted side) for gamma_j < 1; the true derivative there is e^(-(gamma_j + 1) 1e4), i.e. 0
        ref_grad = torch.nan_to_num(ref_grad, nan=0.0)
        assert_close(loss, ref_loss.sum(), dtype)
        assert_close(grad, ref_grad, dtype)


# ================================================================================ the core loss when every g_j = 1
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["float", "index"])
def test_every_g_one_is_the_sigmoid_focal_loss(kind, dtype):
    x = (3 * torch.randn(8, C, 2)).to(dtype)
    t = torch.randint(0, C + 1, (8, 2)) if kind == "index" else torch.rand(8, C, 2).to(dtype)
    if kind == "index":
        t[3, 1] = -100
    tol = {} if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)
    core = _with_grad(lambda z: focalkit.sigmoid_focal_loss(z, t, 0.25, 2.0, "mean"), x)
    fresh = focalkit.EqualizedFocalLoss(C)  # g_j = 1 before any statistics
    assert torch.equal(fresh.gamma, torch.full((C,), 2.0, dtype=torch.float64))
    assert torch.equal(fresh.weight, torch.ones(C, dtype=torch.float64))
    for fn in (
        lambda z: fresh(z, t),
        lambda z: focalkit.equalized_focal_loss(z, t, torch.full((C,), 2.0), None),
        lambda z: focalkit.equalized_focal_loss(z, t, [2.0] * C, [1.0] * C, 0.25, "mean"),
    ):
        torch.testing.assert_close(_with_grad(fn, x), core, **tol)
    trained = focalkit.EqualizedFocalLoss(C, scale=0.0)  # s = 0: gamma_j = gamma_b whatever g_j
    for _ in range(2):
        trained(x.clone().requires_grad_(True), t).backward()
    assert float(trained.pos_neg.min()) < 1
    torch.testing.assert_close(_with_grad(lambda z: trained(z, t), x), core, **tol)
    trained.pos_neg.fill_(1.0)
    trained.scale = 8.0
    torch.testing.assert_close(_with_grad(lambda z: trained(z, t), x), core, **tol)


# ================================================================================ the statistics
def test_statistics_at_zero_logits_by_hand():
    """At x = 0: p = 1/2, u = 1/2, r = 1/2, CE = log 2, so |dL/dx| = a_t (1/4)(1/2 + log 2) / 18 for every element
    (mean over 6 x 3): a positive has a_t = 1/4, a negative 3/4. Class 0 has 2 positives and 4 negatives, class 1
    one and five, class 2 none: g = (2/12, 1/15, 0)."""
    criterion = focalkit.EqualizedFocalLoss(3)
    x = torch.zeros(6, 3, dtype=torch.float64, requires_grad=True)
    criterion(x, torch.tensor([0, 0, 1, 3, 3, 3])).backward()
    unit = 0.25 * (0.5 + math.log(2)) / 18
    f64 = dict(dtype=torch.float64)
    pos, neg = torch.tensor([2, 1, 0], **f64) * 0.25 * unit, torch.tensor([4, 5, 6], **f64) * 0.75 * unit
    torch.testing.assert_close(criterion.pos_grad, pos, rtol=1e-14, atol=0)
    torch.testing.assert_close(criterion.neg_grad, neg, rtol=1e-14, atol=0)
    g = pos / (neg + 1e-10)  # the authors' epsilon: 2e-9 relative here
    torch.testing.assert_close(criterion.pos_neg, g, rtol=1e-14, atol=0)
    torch.testing.assert_close(g, torch.tensor([1 / 6, 1 / 15, 0.0], **f64), rtol=1e-8, atol=0)
    torch.testing.assert_close(criterion.gamma, 2 + 8 * (1 - g), rtol=1e-12, atol=0)
    torch.testing.assert_close(criterion.weight, (2 + 8 * (1 - g)) / 2, rtol=1e-12, atol=0)
    # the gradient of this batch used the factors before its own update (gamma_b, weight 1)
    torch.testing.assert_close(x.grad.abs(), torch.tensor([[0.25, 0.75, 0.75]] * 2 + [[0.75, 0.25, 0.75]]
                                                          + [[0.75] * 3] * 3, **f64) * unit, rtol=1e-14, atol=0)


def test_statistics_over_two_steps_match_the_reference():
    """Index targets with background and ignored rows, spatial dims, a normaliser: after each backward the buffers
    are the accumulated |reference gradient| split by target, and the second step's loss uses the factors of the
    reference mapping."""
    criterion = focalkit.EqualizedFocalLoss(4, gamma_b=2.0, scale=8.0, alpha=0.25)
    gen = torch.Generator().manual_seed(5)
    pos = torch.zeros(4, dtype=torch.float64)
    neg = torch.zeros(4, dtype=torch.float64)
    gamma, weight = torch.full((4,), 2.0, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    for _ in range(2):
        x = 3 * torch.randn(8, 4, 3, generator=gen, dtype=torch.float64)
        t = torch.tensor([0, 4, 4, 1, 4, 0, 2, 4]).view(8, 1).repeat(1, 3)
        t[1, 2] = t[5, 0] = -100
        y, valid = _dense(t, 4)
        xr = x.clone().requires_grad_(True)
        ref = (reference.equalized_focal_loss(xr, y, gamma, weight) * valid).sum() / 5.0
        (ref_grad,) = torch.autograd.grad(ref, xr)
        xm = x.clone().requires_grad_(True)
        loss = criterion(xm, t, normalizer=5.0)
        torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=0)
        loss.backward()
        torch.testing.assert_close(xm.grad, ref_grad, rtol=1e-12, atol=1e-300)
        pos += (ref_grad.abs() * y * valid).sum((0, 2))
        neg += (ref_grad.abs() * (1 - y) * valid).sum((0, 2))
        torch.testing.assert_close(criterion.pos_grad, pos, rtol=1e-12, atol=0)
        torch.testing.assert_close(criterion.neg_grad, neg, rtol=1e-12, atol=0)
        g, gamma, weight = reference.equalized_focal_factors(pos, neg, 2.0, 8.0)
        torch.testing.assert_close(criterion.pos_neg, g, rtol=1e-12, atol=0)
        torch.testing.assert_close(criterion.gamma, gamma, rtol=1e-12, atol=0)
    assert float(criterion.pos_neg[3]) == 0.0 and float(criterion.gamma[3]) == 10.0  # class 3 never positive


def test_statistics_of_soft_targets_and_the_helper_forms():
    x = 2 * torch.randn(5, 3, 4, dtype=torch.float64)
    q = torch.rand(5, 3, 4, dtype=torch.float64)
    criterion = focalkit.EqualizedFocalLoss(3, reduction="sum")
    xm = x.clone().requires_grad_(True)
    criterion(xm, q).backward()
    torch.testing.assert_close(criterion.pos_grad, (xm.grad.abs() * q).sum((0, 2)), rtol=1e-12, atol=0)
    torch.testing.assert_close(criterion.neg_grad, (xm.grad.abs() * (1 - q)).sum((0, 2)), rtol=1e-12, atol=0)
    # index targets (gathered, no one-hot) give what their dense one-hot gives, ignored rows excluded
    t = torch.randint(0, 4, (5, 4))
    t[0, 0] = t[4, 3] = -100
    grad = torch.randn(5, 3, 4, dtype=torch.float64)
    y, valid = _dense(t, 3)
    expected = ((grad.abs() * y * valid).sum((0, 2)), (grad.abs() * (1 - y) * valid).sum((0, 2)))
    got = equalized_focal_statistics(grad, t, -100)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    got_half = equalized_focal_statistics(grad.half(), t, -100)
    torch.testing.assert_close(got_half, expected, rtol=2e-3, atol=1e-3)
    assert got_half[0].dtype == torch.float64


def test_rare_classes_get_small_g_and_larger_gamma():
    """The direction the paper describes (Sec. 3): a rare class collects little positive gradient against the
    negative gradient of every anchor, so its g_j is small and its focusing and weighting factors large.

    1. Logits that favour no class (i.i.d. N(-2, 2^2)), labels drawn with frequencies 10 : 3 : 1 : 0.25 % (the rest
       background): g_j falls and gamma_j, w_j rise strictly from the frequent to the rare class.
    2. A linear classifier trained with EFL on long-tailed anchors (400 : 120 : 40 : 10, 1430 background; equally
       separable classes): the rarest class ends with the smallest g_j and a larger gamma_j than the most frequent."""
    gen = torch.Generator().manual_seed(0)
    criterion = focalkit.EqualizedFocalLoss(4)
    frequencies = torch.tensor([0.1, 0.03, 0.01, 0.0025, 0.8575])
    for _ in range(5):
        labels = torch.multinomial(frequencies, 4000, replacement=True, generator=gen)
        criterion((2 * torch.randn(4000, 4, generator=gen) - 2).requires_grad_(True), labels).backward()
    g, gamma, weight = criterion.pos_neg, criterion.gamma, criterion.weight
    assert bool((g[:-1] > g[1:]).all()) and float(g[3]) < 0.05, g
    assert bool((gamma[:-1] < gamma[1:]).all()) and bool((weight[:-1] < weight[1:]).all()), gamma

    counts = torch.tensor([400, 120, 40, 10, 1430])
    labels = torch.repeat_interleave(torch.arange(5), counts)
    features = 3 * torch.eye(5, 8)[labels] + torch.randn(len(labels), 8, generator=gen)
    head = torch.nn.Linear(8, 4)
    with torch.no_grad():
        head.weight.copy_(0.1 * torch.randn(4, 8, generator=gen))
        head.bias.zero_()
    criterion = focalkit.EqualizedFocalLoss(4)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.5)
    for _ in range(20):
        loss = criterion(head(features), labels, normalizer=float(counts[:4].sum()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert int(criterion.pos_neg.argmin()) == 3 and float(criterion.gamma[3]) > float(criterion.gamma[0]) + 1.0
    assert float(criterion.weight[3]) > float(criterion.weight[0])


def test_statistics_are_not_updated_outside_training_backward():
    x = torch.randn(6, 3, requires_grad=True)
    t = torch.tensor([0, 1, 2, 3, 3, 0])
    criterion = focalkit.EqualizedFocalLoss(3)
    untouched = {k: v.clone() for k, v in criterion.state_dict().items()}

    def unchanged():
        return all(torch.equal(criterion.state_dict()[k], v) for k, v in untouched.items())

    criterion(x, t)  # forward only
    assert unchanged()
    criterion(x.detach(), t)  # logits without grad
    with torch.no_grad():
        criterion(x, t)
    assert unchanged()
    criterion.eval()
    criterion(x, t).backward()
    assert unchanged()
    criterion.train()
    criterion.update_statistics(torch.tensor([1.0, float("inf"), 0.0]), torch.ones(3))  # an AMP overflow step
    assert unchanged()
    loss = criterion(x, t)
    loss.backward()
    assert not unchanged()
    criterion.reset_statistics()
    assert unchanged()


def test_the_gradient_tap_changes_no_gradient():
    x = torch.randn(6, 4, 2, dtype=torch.float64)
    t = torch.randint(0, 5, (6, 2))
    criterion = focalkit.EqualizedFocalLoss(4, alpha=[0.2, 0.4, 0.6, 0.8])
    criterion.update_statistics(torch.tensor([1.0, 0.5, 0.1, 0.0]), torch.tensor([2.0, 2.0, 4.0, 1.0]))
    gamma, weight = criterion.gamma.clone(), criterion.weight.clone()
    alpha = criterion.alpha  # a float32 buffer, as the other modules keep per-class alpha
    expected = _with_grad(lambda z: focalkit.equalized_focal_loss(z, t, gamma, weight, alpha), x)
    torch.testing.assert_close(_with_grad(criterion, x, t), expected, rtol=0, atol=0)
    # fp16 / bf16 logits: float64 buffers, finite statistics
    for dtype in (torch.float16, torch.bfloat16):
        criterion(x.to(dtype).requires_grad_(True), t).backward()
        assert criterion.pos_grad.dtype == torch.float64 and bool(torch.isfinite(criterion.neg_grad).all())


def test_state_dict_round_trip():
    gen = torch.Generator().manual_seed(1)
    criterion = focalkit.EqualizedFocalLoss(3, gamma_b=1.5, scale=4.0, alpha=[0.25, 0.5, 0.75])
    for _ in range(3):
        x = torch.randn(10, 3, generator=gen, requires_grad=True)
        criterion(x, torch.randint(0, 4, (10,), generator=gen)).backward()
    state = criterion.state_dict()
    assert set(state) == {"alpha", "pos_grad", "neg_grad", "pos_neg"}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = focalkit.EqualizedFocalLoss(3, gamma_b=1.5, scale=4.0, alpha=[0.25, 0.5, 0.75])
    restored.load_state_dict(torch.load(buffer))
    for name in ("pos_grad", "neg_grad", "pos_neg"):
        assert torch.equal(getattr(restored, name), getattr(criterion, name))
    x, t = torch.randn(7, 3, generator=gen), torch.randint(0, 4, (7,), generator=gen)
    torch.testing.assert_close(_with_grad(restored, x, t), _with_grad(criterion, x, t), rtol=0, atol=0)
    torch.testing.assert_close(restored.pos_grad, criterion.pos_grad, rtol=0, atol=0)  # both updated alike
    # a float32 state (as the authors' buffers) loads into the float64 buffers
    eod_like = {k: v.float() for k, v in criterion.state_dict().items()}
    other = focalkit.EqualizedFocalLoss(3, gamma_b=1.5, scale=4.0, alpha=[0.25, 0.5, 0.75])
    other.load_state_dict(eod_like)
    assert other.pos_neg.dtype == torch.float64
    torch.testing.assert_close(other.pos_neg, criterion.pos_neg, rtol=1e-6, atol=0)
    other.half()  # e.g. of a whole model holding the loss: the statistics stay float64
    assert other.alpha.dtype == torch.float16 and other.pos_grad.dtype == other.pos_neg.dtype == torch.float64
    assert "num_classes=3, gamma_b=1.5, scale=4.0" in repr(criterion)


# ================================================================================ the authors' code
def eod_equalized_focal_loss(inp, target, pos_neg, gamma_b=2.0, scale=8.0, alpha=0.25, normalizer=1.0):
    """ModelTC EOD ``EqualizedFocalLoss.forward`` written out: labels 1..C with 0 = background and -1 = ignored,
    ``_reduce(loss, "mean", normalizer)`` = sum / normalizer. Returns the loss and what ``collect_grad`` caches."""
    n_i, n_c = inp.shape
    expand = inp.new_zeros(n_i, n_c + 1)
    expand[torch.arange(n_i), target] = 1
    expand = expand[:, 1:]
    mask = target != -1
    inputs, targets = inp[mask], expand[mask]
    pred = torch.sigmoid(inputs)
    pred_t = pred * targets + (1 - pred) * (1 - targets)
    ff = (gamma_b + scale * (1 - pos_neg)).view(1, -1).expand(n_i, n_c)[mask]
    wf = ff / gamma_b
    loss = -torch.log(pred_t) * torch.pow(1 - pred_t, ff) * wf
    loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum() / normalizer, expand, mask


def eod_collect_grad(grad, expand, mask, pos_grad, neg_grad):
    """ModelTC EOD ``EqualizedFocalLoss.collect_grad`` on one level, without all-reduce: new (pos, neg, pos_neg)."""
    target = expand[mask]
    grad = torch.abs(grad)[mask]
    pos_grad = pos_grad + torch.sum(grad * target, dim=0)
    neg_grad = neg_grad + torch.sum(grad * (1 - target), dim=0)
    return pos_grad, neg_grad, torch.clamp(pos_grad / (neg_grad + 1e-10), min=0, max=1)


def test_parity_with_the_authors_code_where_the_definitions_agree():
    """float64, logits where their -log(pred_t) is accurate: loss, gradient and the statistics over three steps agree
    with EOD's (labels shifted to its convention, normalizer = number of positives) to 1e-10."""
    gen = torch.Generator().manual_seed(7)
    criterion = focalkit.EqualizedFocalLoss(6)
    pos = neg = torch.zeros(6, dtype=torch.float64)
    pos_neg = torch.ones(6, dtype=torch.float64)
    for _ in range(3):
        x = 3 * torch.randn(64, 6, generator=gen, dtype=torch.float64)
        t = torch.multinomial(torch.tensor([0.1, 0.06, 0.03, 0.01, 0.01, 0.005, 0.785]), 64, replacement=True,
                              generator=gen)
        t[::9] = -100
        eod_labels = torch.where(t == 6, 0, t + 1).masked_fill(t == -100, -1)
        num_pos = float(((t >= 0) & (t < 6)).sum())
        ours = _with_grad(lambda z: criterion(z, t, normalizer=num_pos), x)
        xe = x.clone().requires_grad_(True)
        theirs, expand, mask = eod_equalized_focal_loss(xe, eod_labels, pos_neg, normalizer=num_pos)
        (grad,) = torch.autograd.grad(theirs, xe)
        torch.testing.assert_close(ours, (theirs.detach(), grad), rtol=1e-10, atol=1e-14)
        pos, neg, pos_neg = eod_collect_grad(grad, expand, mask, pos, neg)
        for name, value in (("pos_grad", pos), ("neg_grad", neg), ("pos_neg", pos_neg)):
            torch.testing.assert_close(getattr(criterion, name), value, rtol=1e-10, atol=1e-16, msg=name)
    assert float(pos_neg.min()) < 0.5


def test_the_authors_loss_is_inf_with_nan_gradients_where_p_t_rounds_to_zero():
    x = torch.tensor([[-110.0, 3.0], [2.0, 120.0]], requires_grad=True)  # a positive and a negative far off, fp32
    labels = torch.tensor([0, 1])  # ours: row 0 is class 0, row 1 class 1 (EOD: 1 and 2)
    theirs, _, _ = eod_equalized_focal_loss(x, labels + 1, torch.ones(2))
    (g_theirs,) = torch.autograd.grad(theirs, x)
    assert torch.isinf(theirs) and torch.isnan(g_theirs).any()
    ours = focalkit.equalized_focal_loss(x, labels, [2.0, 2.0], reduction="sum")
    (g_ours,) = torch.autograd.grad(ours, x)
    assert torch.isfinite(ours) and torch.isfinite(g_ours).all()
    y, _ = _dense(labels, 2)
    x64 = x.detach().double().requires_grad_(True)
    ref = reference.equalized_focal_loss(x64, y, [2.0, 2.0]).sum()
    (g_ref,) = torch.autograd.grad(ref, x64)
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(g_ours.double(), g_ref, rtol=1e-6, atol=1e-30)


# ================================================================================ typed errors
X = torch.randn(4, 3)
T = torch.tensor([0, 3, 1, 2])
G3 = torch.tensor([2.0, 4.0, 6.0])
EFL = focalkit.equalized_focal_loss


@pytest.mark.parametrize("call,error,match", [
    (lambda: EFL(X.long(), T, G3), InvalidTypeError, "inputs: expected a floating-point"),
    (lambda: EFL(X[:, 0], T, G3), InvalidArgumentError, "inputs: expected logits with a class dimension"),
    (lambda: EFL(X, T, 2.0), InvalidTypeError, "gamma: expected a sequence or 1-d tensor of 3 per-class values"),
    (lambda: EFL(X, T, None), InvalidTypeError, "gamma: expected a sequence"),
    (lambda: EFL(X, T, "2"), InvalidTypeError, "gamma"),
    (lambda: EFL(X, T, G3[:2]), InvalidArgumentError, r"gamma: expected 3 per-class values"),
    (lambda: EFL(X, T, -G3), InvalidArgumentError, "gamma: expected non-negative per-class values"),
    (lambda: EFL(X, T, [2.0, float("nan"), 1.0]), InvalidArgumentError, "gamma: expected finite values"),
    (lambda: EFL(X, T, [2.0, 1.0, "a"]), InvalidTypeError, "gamma: expected a sequence of real numbers"),
    (lambda: EFL(X, T, G3.to(torch.complex64)), InvalidTypeError, "gamma"),
    (lambda: EFL(X, T, G3, 1.0), InvalidTypeError, "weight: expected a sequence"),
    (lambda: EFL(X, T, G3, [1.0, -1.0, 1.0]), InvalidArgumentError, "weight: expected non-negative"),
    (lambda: EFL(X, T, G3, alpha=1.5), InvalidArgumentError, "alpha"),
    (lambda: EFL(X, T, G3, alpha=[0.5, 2.0, 0.5]), InvalidArgumentError, "alpha"),
    (lambda: EFL(X, T, G3, reduction="avg"), InvalidArgumentError, "reduction"),
    (lambda: EFL(X, T + 1, G3), InvalidArgumentError, r"targets: expected class indices in \[0, 3\]"),
    (lambda: EFL(X, T.float(), G3), InvalidArgumentError, "targets: expected float targets of the inputs' shape"),
    (lambda: EFL(X, X * 2, G3), InvalidArgumentError, r"targets: expected values in \[0, 1\]"),
    (lambda: EFL(X, T.bool(), G3), InvalidTypeError, "targets"),
    (lambda: EFL(X, [0, 1, 2, 3], G3), InvalidTypeError, "targets: expected a torch.Tensor"),
    (lambda: EFL(X, T, G3, reduction="sum", normalizer=2.0), InvalidArgumentError, "normalizer"),
    (lambda: EFL(X, T, G3, ignore_index=1.5), InvalidTypeError, "ignore_index"),
    (lambda: focalkit.EqualizedFocalLoss(0), InvalidArgumentError, "num_classes: expected a positive int"),
    (lambda: focalkit.EqualizedFocalLoss(True), InvalidArgumentError, "num_classes"),
    (lambda: focalkit.EqualizedFocalLoss(3.0), InvalidArgumentError, "num_classes"),
    (lambda: focalkit.EqualizedFocalLoss(3, gamma_b=0.0), InvalidArgumentError, "gamma_b: expected a number > 0.0"),
    (lambda: focalkit.EqualizedFocalLoss(3, gamma_b="2"), InvalidTypeError, "gamma_b: expected a real number"),
    (lambda: focalkit.EqualizedFocalLoss(3, scale=-1.0), InvalidArgumentError, "scale: expected a number >= 0.0"),
    (lambda: focalkit.EqualizedFocalLoss(3, scale=float("inf")), InvalidArgumentError, "scale: expected a finite"),
    (lambda: focalkit.EqualizedFocalLoss(3, alpha=2.0), InvalidArgumentError, "alpha"),
    (lambda: focalkit.EqualizedFocalLoss(3, alpha=[0.5, 0.5]), InvalidArgumentError, "alpha: expected 3 per-class"),
    (lambda: focalkit.EqualizedFocalLoss(3, reduction="avg"), InvalidArgumentError, "reduction"),
    (lambda: focalkit.EqualizedFocalLoss(3, ignore_index=None), InvalidTypeError, "ignore_index"),
    (lambda: focalkit.EqualizedFocalLoss(3, sync_statistics=1), InvalidTypeError, "sync_statistics: expected a bool"),
    (lambda: focalkit.EqualizedFocalLoss(3, sync_normalizer="no"), InvalidTypeError, "sync_normalizer"),
    (lambda: focalkit.EqualizedFocalLoss(4)(X, T), InvalidArgumentError, "inputs: expected logits with num_classes=4"),
    (lambda: focalkit.EqualizedFocalLoss(3)(X[:, 0], T), InvalidArgumentError, "inputs: expected logits with"),
    (lambda: focalkit.EqualizedFocalLoss(3)(X.long(), T), InvalidTypeError, "inputs"),
    (lambda: focalkit.EqualizedFocalLoss(3)(X, T[:2]), InvalidArgumentError, "targets: expected class indices of"),
    (lambda: focalkit.EqualizedFocalLoss(3).update_statistics(torch.ones(2), torch.ones(3)), InvalidArgumentError,
     r"pos_grad: expected shape \(3,\)"),
    (lambda: focalkit.EqualizedFocalLoss(3).update_statistics(torch.ones(3), [1.0, 1.0, 1.0]), InvalidTypeError,
     "neg_grad: expected a tensor"),
])
def test_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ================================================================================ compile, op, memory
def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    fn = lambda x, g: focalkit.equalized_focal_loss(x, T, g, g / 2.0, 0.25, "mean")  # noqa: E731
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")  # fullgraph: a graph break raises
    for gamma in (G3, torch.tensor([0.5, 10.0, 2.0])):
        a = (3 * torch.randn(4, 3)).requires_grad_(True)
        b = a.detach().clone().requires_grad_(True)
        eager = fn(a, gamma)
        got = compiled(b, gamma)
        torch.testing.assert_close(got, eager)
        eager.backward()
        got.backward()
        torch.testing.assert_close(b.grad, a.grad)


def test_opcheck_and_saved_tensor_budget():
    x = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 2, -100, 0])
    alpha = torch.full((3,), 0.25)
    args = [G3, G3 / 2, alpha, 1 - alpha]
    empty = torch.zeros(0, dtype=torch.float64)
    op = torch.ops.focalkit.equalized_focal.default
    torch.library.opcheck(op, (x, labels, args, empty, -100, True, True, "torch"))
    torch.library.opcheck(op, (x, torch.rand(6, 3), [G3, None, None, None], empty, None, False, True, "torch"))
    big = (3 * torch.randn(1024, 80)).requires_grad_(True)  # above the small-input rule
    index = torch.randint(0, 81, (1024,))
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = focalkit.EqualizedFocalLoss(80)(big, index)
    budget = big.numel() * big.element_size() + index.numel() * index.element_size()
    assert sum(storages.values()) <= budget + 16, (sum(storages.values()), budget)
    loss.backward()


# ================================================================================ two gloo processes
WORLD_SIZE = 2
STEPS = 3


def _dist_batch(step: int):
    g = torch.Generator().manual_seed(100 + step)
    x = 3 * torch.randn(2 * 6, 4, 3, generator=g, dtype=torch.float64)
    t = torch.multinomial(torch.tensor([0.3, 0.15, 0.1, 0.02, 0.43]), 2 * 6 * 3, replacement=True,
                          generator=g).view(12, 3)
    t[1, 0] = t[8, 2] = t[9, 1] = -100  # unequal ignored rows: the halves' default denominators differ
    return x, t


def _dist_criteria():
    return {
        "mean, sync_normalizer": (focalkit.EqualizedFocalLoss(4, sync_normalizer=True), lambda t: None),
        "normalizer=#positives": (focalkit.EqualizedFocalLoss(4, sync_normalizer=True),
                                  lambda t: ((t >= 0) & (t < 4)).sum()),
    }


def _run_steps(criteria, rows=slice(None)):
    for step in range(STEPS):
        x, t = _dist_batch(step)
        for criterion, normalizer in criteria.values():
            criterion(x[rows].clone().requires_grad_(True), t[rows], normalizer(t[rows])).backward()
    return {name: [getattr(c, b).tolist() for b in ("pos_grad", "neg_grad", "pos_neg")]
            for name, (c, _) in criteria.items()}


def _worker(rank, port, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        rows = slice(rank * 6, (rank + 1) * 6)
        synced = _run_steps(_dist_criteria(), rows)
        local = {"unsynced": (focalkit.EqualizedFocalLoss(4, sync_statistics=False), lambda t: None)}
        queue.put((rank, synced, _run_steps(local, rows)))  # plain lists: no shared-memory handles
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
@pytest.mark.slow
def test_two_gloo_processes_with_half_batches_end_with_the_statistics_of_one_process():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, queue)) for rank in range(WORLD_SIZE)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        rank, synced, unsynced = queue.get(timeout=120)
        results[rank] = (synced, unsynced)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    one_process = _run_steps(_dist_criteria())  # the concatenated batch, no process group
    for name, expected in one_process.items():
        assert min(expected[2]) < 1.0  # the factors did move
        for rank in range(WORLD_SIZE):
            for got, want, buffer in zip(results[rank][0][name], expected, ("pos_grad", "neg_grad", "pos_neg")):
                torch.testing.assert_close(torch.tensor(got, dtype=torch.float64),
                                           torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-15,
                                           msg=f"{name}, rank {rank}: {buffer} differs")
    # without sync_statistics each process keeps its own shard's statistics
    assert results[0][1]["unsynced"] != results[1][1]["unsynced"]
