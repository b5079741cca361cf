"""The log-space per-sample focal term shared by the adaptive losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import focalkit
from focalkit import reference
from focalkit.adaptive import per_sample_focal_loss


def _logits(n=16, c=5, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64) * scale, torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
def test_matches_reference_for_constant_gamma(gamma):
    x, t = _logits()
    got = per_sample_focal_loss(x, t, torch.full((16,), gamma), reduction="none")
    want = reference.softmax_focal_loss(x, t, gamma=gamma)
    torch.testing.assert_close(got.double(), want, rtol=2e-5, atol=1e-6)


def test_gamma_zero_is_cross_entropy():
    x, t = _logits()
    got = per_sample_focal_loss(x.float(), t, torch.zeros(16))
    torch.testing.assert_close(got, F.cross_entropy(x.float(), t), rtol=1e-6, atol=1e-7)


def test_per_row_gamma_and_inverse_focal():
    x, t = _logits(n=4, c=3)
    gamma = torch.tensor([0.0, 2.0, -1.5, -0.2])
    got = per_sample_focal_loss(x, t, gamma, reduction="none").double()
    p = torch.softmax(x, 1).gather(1, t[:, None]).squeeze(1)
    g = gamma.double()
    want = torch.where(g >= 0, (1 - p) ** g.abs(), (1 + p) ** g.abs()) * -torch.log(p)
    torch.testing.assert_close(got, want, rtol=2e-5, atol=1e-6)
    # the inverse focal loss is larger than CE, the focal loss smaller
    ce = -torch.log(p)
    assert got[2] > ce[2] and got[1] < ce[1]


@pytest.mark.parametrize("gamma", [0.0, 0.5, 3.0, -2.0, -0.2])
def test_finite_value_and_gradient_at_extreme_logits(gamma):
    x = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    t = torch.tensor([0, 0, 2])
    loss = per_sample_focal_loss(x, t, torch.full((3,), gamma), reduction="sum")
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    # the confidently wrong row has loss ~ 200 (x 2^|gamma| for inverse focal), never NaN
    assert loss.item() > 199


def test_gradcheck_float64():
    x, t = _logits(n=5, c=4)
    x.requires_grad_(True)
    gamma = torch.tensor([0.0, 0.5, 2.0, -1.0, 5.0])
    assert torch.autograd.gradcheck(lambda z: per_sample_focal_loss(z, t, gamma, reduction="none"), (x,))


def test_inputs_not_modified_and_weight_and_reductions():
    x, t = _logits(n=6, c=3)
    x0, t0 = x.clone(), t.clone()
    w = torch.tensor([1.0, 2.0, 3.0])
    none = per_sample_focal_loss(x, t, torch.full((6,), 2.0), weight=w, reduction="none")
    assert torch.equal(x, x0) and torch.equal(t, t0)
    plain = per_sample_focal_loss(x, t, torch.full((6,), 2.0), reduction="none")
    torch.testing.assert_close(none, plain * w[t])
    torch.testing.assert_close(per_sample_focal_loss(x, t, 2.0, weight=w, reduction="sum"), none.sum())
    torch.testing.assert_close(per_sample_focal_loss(x, t, 2.0, weight=w, reduction="mean"), none.sum() / 6)


def test_errors_are_typed():
    x, t = _logits(n=3, c=3)
    with pytest.raises(focalkit.InvalidArgumentError, match="reduction"):
        per_sample_focal_loss(x, t, 1.0, reduction="avg")
    with pytest.raises(focalkit.InvalidTypeError, match="target"):
        per_sample_focal_loss(x, t.float(), 1.0)
    with pytest.raises(focalkit.InvalidArgumentError, match="logits"):
        per_sample_focal_loss(x[:, :1], t, 1.0)
    with pytest.raises(focalkit.InvalidArgumentError, match=r"target: expected shape \(3,\)"):
        per_sample_focal_loss(x, t[:2], 1.0)
