"""class_balanced_weights (Cui et al. 2019) and the prior-probability bias (Lin et al. section 3.3)."""

from __future__ import annotations

import math

import pytest
import torch

import focalkit


def test_class_balanced_weights_formula_and_normalisation():
    counts = [5000, 500, 50, 5]
    beta = 0.999
    raw = torch.tensor([(1 - beta) / (1 - beta**n) for n in counts], dtype=torch.float64)
    expected = raw * len(counts) / raw.sum()
    got = focalkit.class_balanced_weights(counts, beta)
    torch.testing.assert_close(got, expected.float())
    assert float(got.sum()) == pytest.approx(4.0, rel=1e-6)
    assert bool((got[1:] > got[:-1]).all())  # rarer classes weigh more


def test_class_balanced_weights_limits():
    counts = torch.tensor([100, 10, 1])
    torch.testing.assert_close(focalkit.class_balanced_weights(counts, 0.0), torch.ones(3))
    near_one = focalkit.class_balanced_weights(counts, 1 - 1e-9)
    inverse = 1 / counts.double()
    torch.testing.assert_close(near_one, (inverse * 3 / inverse.sum()).float(), rtol=1e-5, atol=1e-6)


def test_prior_bias_gives_pi():
    for pi in (0.01, 0.1, 0.5):
        assert torch.sigmoid(torch.tensor(focalkit.prior_bias(pi), dtype=torch.float64)).item() == pytest.approx(pi)
    assert focalkit.prior_bias(0.01) == pytest.approx(-math.log(99))
    conv = torch.nn.Conv2d(4, 9, 3)
    focalkit.init_prior_bias_(conv, 0.01)
    assert torch.allclose(conv.bias, torch.full((9,), -math.log(99)))
