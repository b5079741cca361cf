"""AdaFocal (Ghosh et al. 2022): per-bin gamma updates, regime switch, clipping, equal-mass bins."""

from __future__ import annotations

import math

import pytest
import torch

import focalkit
from focalkit.adaptive import AdaFocalLoss, equal_mass_bins, per_sample_focal_loss


def test_update_rule_positive_regime():
    loss = AdaFocalLoss()
    # over-confident (conf > acc): gamma grows by exp(lambda * gap)
    assert loss.update_rule(1.0, 0.3) == pytest.approx(math.exp(0.3))
    # under-confident: gamma shrinks
    assert loss.update_rule(1.0, -0.3) == pytest.approx(math.exp(-0.3))
    lam = AdaFocalLoss(lam=2.0)
    assert lam.update_rule(1.5, 0.1) == pytest.approx(1.5 * math.exp(0.2))


def test_update_rule_switches_to_inverse_focal_and_back():
    loss = AdaFocalLoss()
    # 0.25 * exp(-0.5) = 0.152 < 0.2 -> switch to inverse focal with gamma = -0.2
    assert loss.update_rule(0.25, -0.5) == pytest.approx(-0.2)
    # negative regime: over-confidence shrinks |gamma| (towards focal), under-confidence grows it
    assert loss.update_rule(-1.0, 0.3) == pytest.approx(-math.exp(-0.3))
    assert loss.update_rule(-1.0, -0.3) == pytest.approx(-math.exp(0.3))
    # -0.25 * exp(-0.5) -> |.| < 0.2 -> back to focal with +0.2
    assert loss.update_rule(-0.25, 0.5) == pytest.approx(0.2)


def test_update_rule_clips():
    loss = AdaFocalLoss()
    assert loss.update_rule(19.0, 1.0) == 20.0
    assert loss.update_rule(-1.9, -1.0) == -2.0


def test_equal_mass_bins():
    conf = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.6])
    correct = torch.tensor([1, 0, 1, 0, 0, 1])
    edges, mean_conf, acc = equal_mass_bins(conf, correct, 3)
    # sorted: 0.1 0.3 | 0.5 0.6 | 0.7 0.9
    torch.testing.assert_close(mean_conf, torch.tensor([0.2, 0.55, 0.8], dtype=torch.float64))
    torch.testing.assert_close(acc, torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(edges, torch.tensor([0.0, 0.4, 0.65, 1.0], dtype=torch.float64))


def test_after_epoch_updates_each_bin_from_validation_calibration():
    loss = AdaFocalLoss(num_bins=2)
    # two confident wrong predictions (conf ~0.982, acc 0) and two unsure right ones (conf ~0.525, acc 1)
    val = torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 0.1], [0.0, 0.1]])
    target = torch.tensor([1, 1, 1, 1])
    loss.after_epoch(val, target)
    conf_hi = torch.softmax(torch.tensor([4.0, 0.0]), 0)[0].item()
    conf_lo = torch.softmax(torch.tensor([0.0, 0.1]), 0)[1].item()
    assert loss.gammas[1].item() == pytest.approx(math.exp(conf_hi - 0.0), rel=1e-6)
    assert loss.gammas[0].item() == pytest.approx(math.exp(conf_lo - 1.0), rel=1e-6)
    assert loss.edges[1].item() == pytest.approx((conf_lo + conf_hi) / 2, rel=1e-6)
    assert len(loss.history) == 2


def test_forward_uses_gamma_of_the_bin_of_p_t():
    loss = AdaFocalLoss(num_bins=2)
    loss.gammas = torch.tensor([-1.0, 4.0], dtype=torch.float64)
    loss.edges = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    x = torch.tensor([[0.0, 2.0], [2.0, 0.0]], requires_grad=True)
    t = torch.tensor([0, 0])  # p_t = 0.12 (bin 0, inverse focal), 0.88 (bin 1)
    got = loss.__class__.forward(loss, x, t)
    want = per_sample_focal_loss(x, t, torch.tensor([-1.0, 4.0]))
    torch.testing.assert_close(got, want)
    got.backward()
    assert torch.isfinite(x.grad).all()


def test_default_configuration_and_errors():
    loss = AdaFocalLoss()
    assert loss.num_bins == 15 and torch.all(loss.gammas == 1.0)
    assert (loss.gamma_min, loss.gamma_max, loss.switch_point, loss.lam) == (-2.0, 20.0, 0.2, 1.0)
    with pytest.raises(focalkit.InvalidArgumentError, match="num_bins"):
        loss.after_epoch(torch.zeros(10, 3), torch.zeros(10, dtype=torch.int64))
    with pytest.raises(focalkit.InvalidArgumentError, match="num_bins"):
        AdaFocalLoss(num_bins=0)
    with pytest.raises(ValueError, match="gamma_init"):
        AdaFocalLoss(gamma_init=30.0)
