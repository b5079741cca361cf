"""Automated focal loss (Weber et al. 2019): gamma = -log(running mean of p_t)."""

from __future__ import annotations

import math

import pytest
import torch

import focalkit
from focalkit.adaptive import AutomatedFocalLoss, per_sample_focal_loss


def test_initial_gamma_is_log_num_classes():
    loss = AutomatedFocalLoss()
    x = torch.zeros(4, 10)
    t = torch.zeros(4, dtype=torch.int64)
    loss(x, t)
    assert loss.gamma == pytest.approx(math.log(10))


def test_running_mean_update_rule():
    loss = AutomatedFocalLoss(momentum=0.9)
    t = torch.tensor([0, 0])
    # batch 1: p_t = 0.5 for both rows -> first update sets p_hat = 0.5
    loss.after_batch(torch.zeros(2, 2), t)
    assert loss.p_hat == pytest.approx(0.5)
    # batch 2: p_t = sigmoid(3) -> p_hat = 0.9 * 0.5 + 0.1 * sigmoid(3)
    loss.after_batch(torch.tensor([[3.0, 0.0], [3.0, 0.0]]), t)
    p2 = 1 / (1 + math.exp(-3))
    assert loss.p_hat == pytest.approx(0.9 * 0.5 + 0.1 * p2, rel=1e-6)
    assert loss.gamma == pytest.approx(-math.log(0.9 * 0.5 + 0.1 * p2), rel=1e-6)


def test_gamma_shrinks_as_model_gets_confident_and_forward_uses_it():
    loss = AutomatedFocalLoss(momentum=0.5)
    t = torch.tensor([1, 1, 1])
    gammas = []
    for scale in [0.0, 2.0, 5.0, 10.0]:
        x = torch.tensor([[0.0, scale]] * 3)
        loss.after_batch(x, t)
        gammas.append(loss.gamma)
    assert all(a > b for a, b in zip(gammas, gammas[1:]))
    x = torch.tensor([[0.3, -0.2], [1.0, 2.0], [0.0, 0.0]])
    torch.testing.assert_close(loss(x, t), per_sample_focal_loss(x, t, torch.full((3,), loss.gamma)))


def test_invalid_arguments():
    with pytest.raises(focalkit.InvalidArgumentError, match="momentum"):
        AutomatedFocalLoss(momentum=1.0)
    with pytest.raises(focalkit.InvalidArgumentError, match="p_init"):
        AutomatedFocalLoss(p_init=0.0)
