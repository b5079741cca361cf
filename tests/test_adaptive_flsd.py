"""FLSD-53 (Mukhoti et al. 2020): gamma 5 where p_t < 0.2, else 3."""

from __future__ import annotations

import pytest
import torch

import focalkit
from focalkit.adaptive import FLSD53Loss, per_sample_focal_loss


def test_gamma_rule_at_and_around_threshold():
    loss = FLSD53Loss()
    p = torch.tensor([0.0, 0.1, 0.1999, 0.2, 0.2001, 0.9, 1.0])
    assert loss.gamma_for(p).tolist() == [5.0, 5.0, 5.0, 3.0, 3.0, 3.0, 3.0]


def test_forward_uses_the_rule_per_sample():
    # row 0: p_t = 0.5 (gamma 3); row 1: p_t small (gamma 5)
    x = torch.tensor([[0.0, 0.0], [0.0, 4.0]], requires_grad=True)
    t = torch.tensor([0, 0])
    got = FLSD53Loss(reduction="none")(x, t)
    want = per_sample_focal_loss(x, t, torch.tensor([3.0, 5.0]), reduction="none")
    torch.testing.assert_close(got, want)
    got.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_hooks_are_no_ops_and_module_is_stateless():
    loss = FLSD53Loss()
    x = torch.randn(8, 3)
    t = torch.randint(0, 3, (8,))
    before = loss(x, t)
    loss.after_batch(x, t)
    loss.after_epoch(x, t)
    assert torch.equal(before, loss(x, t))


def test_invalid_arguments():
    with pytest.raises(focalkit.InvalidArgumentError, match="threshold"):
        FLSD53Loss(threshold=1.5)
    with pytest.raises(ValueError, match="gamma_low"):
        FLSD53Loss(gamma_low=-1.0)
