"""binary_focal_loss (probabilities, worked examples) and FL* (Appendix A)."""

from __future__ import annotations

import pytest
import torch

import focalkit
from focalkit import reference

from conftest import FLOAT_DTYPES, assert_close


def test_worked_example_positive_at_p_02_and_08():
    """gamma = 2, alpha_t = 0.25, a positive sample: p = 0.2 (hard) -> 0.257, p = 0.8 (easy) -> 0.002.

    0.257 is 0.25 * 0.64 * 1.6094 = 0.25751 truncated to three decimals.
    """
    loss = focalkit.binary_focal_loss(torch.tensor([0.2, 0.8]), torch.ones(2), alpha=0.25, gamma=2.0, reduction="none")
    assert float(loss[0]) == pytest.approx(0.257, abs=1e-3)
    assert float(loss[0]) == pytest.approx(0.25 * 0.64 * 1.6094379124, rel=1e-5)
    assert float(loss[1]) == pytest.approx(0.002, abs=5e-4)
    assert float(loss[1]) == pytest.approx(0.25 * 0.04 * 0.2231435513, rel=1e-5)


def test_modulating_factor_at_pt_09_and_0968():
    """At gamma = 2 the modulating factor is 0.01 at p_t = 0.9 (loss 100x below CE) and 0.032^2 at p_t = 0.968."""
    p = torch.tensor([0.9], dtype=torch.float64)
    fl = focalkit.binary_focal_loss(p, torch.ones(1, dtype=torch.float64), alpha=None, gamma=2.0, reduction="sum")
    ce = focalkit.binary_focal_loss(p, torch.ones(1, dtype=torch.float64), alpha=None, gamma=0.0, reduction="sum")
    assert float(fl / ce) == pytest.approx(0.01, rel=1e-12)
    p = torch.tensor([0.968], dtype=torch.float64)
    fl = focalkit.binary_focal_loss(p, torch.ones(1, dtype=torch.float64), alpha=None, gamma=2.0, reduction="sum")
    ce = focalkit.binary_focal_loss(p, torch.ones(1, dtype=torch.float64), alpha=None, gamma=0.0, reduction="sum")
    assert float(ce / fl) == pytest.approx(1 / 0.032**2, rel=1e-9)  # "about 1000x" in the paper


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, [0.1, 0.9, 0.5]])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.float64])
def test_binary_matches_reference(gamma, alpha, dtype):
    g = torch.Generator().manual_seed(3)
    p = (torch.rand(6, 3, generator=g) * 0.98 + 0.01).to(dtype).requires_grad_(True)
    y = torch.rand(6, 3, generator=g).round().to(dtype)
    loss = focalkit.binary_focal_loss(p, y, alpha, gamma, "none")
    (grad,) = torch.autograd.grad(loss.sum(), p)
    p64 = p.detach().double().requires_grad_(True)
    ref = reference.binary_focal_loss(p64, y.double(), alpha, gamma)
    (ref_grad,) = torch.autograd.grad(ref.sum(), p64)
    assert_close(loss, ref, dtype)
    assert_close(grad, ref_grad, dtype, scale=4.0)


def test_binary_gradcheck():
    p = (torch.rand(4, 3, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    y = torch.rand(4, 3, dtype=torch.float64)
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradcheck(lambda v: focalkit.binary_focal_loss(v, y, 0.25, gamma, "none"), (p,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_binary_finite_at_saturated_probabilities(dtype, gamma):
    """Probabilities from logits of +-1e4 are exactly 0 and 1: loss saturates at -log(tiny), gradient finite."""
    p = torch.sigmoid(torch.tensor([-1e4, -100.0, -17.0, 0.0, 17.0, 100.0, 1e4])).to(dtype).repeat(2).requires_grad_(True)
    y = torch.cat([torch.zeros(7), torch.ones(7)]).to(dtype)
    loss = focalkit.binary_focal_loss(p, y, 0.25, gamma, "none")
    (grad,) = torch.autograd.grad(loss.sum(), p)
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())
    assert float(loss.detach().max()) <= 0.75 * -torch.log(torch.tensor(torch.finfo(dtype).tiny)).item() + 1e-3
    # A confidently wrong prediction keeps a non-zero gradient pushing it back.
    assert float(grad[6]) > 0 and float(grad[7]) < 0  # y = 0 with p = 1, and y = 1 with p = 0


@pytest.mark.parametrize("gamma,beta", [(2.0, 1.0), (4.0, 0.0), (1.0, -0.5)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.float64])
def test_star_matches_reference(gamma, beta, dtype):
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(8, 3, generator=g) * 4).to(dtype).requires_grad_(True)
    y = torch.rand(8, 3, generator=g).round().to(dtype)
    loss = focalkit.sigmoid_focal_loss_star(x, y, gamma, beta, 0.25, "none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    x64 = x.detach().double().requires_grad_(True)
    ref = reference.sigmoid_focal_loss_star(x64, y.double(), gamma, beta, 0.25)
    (ref_grad,) = torch.autograd.grad(ref.sum(), x64)
    assert_close(loss, ref, dtype)
    assert_close(grad, ref_grad, dtype)


def test_star_paper_definition_and_gradcheck():
    """FL* = -log(sigmoid(gamma x_t + beta)) / gamma with x_t = y x, y in {-1, +1} (alpha disabled)."""
    x = torch.randn(10, dtype=torch.float64, requires_grad=True)
    y01 = (torch.arange(10) % 2).double()
    s = 2 * y01 - 1
    expected = -torch.nn.functional.logsigmoid(2.0 * s * x + 1.0) / 2.0
    torch.testing.assert_close(focalkit.sigmoid_focal_loss_star(x, y01, 2.0, 1.0, None), expected)
    assert torch.autograd.gradcheck(lambda v: focalkit.sigmoid_focal_loss_star(v, y01, 2.0, 1.0, 0.25), (x,))
    t = torch.tensor([0, 2, -100])
    x2 = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: focalkit.sigmoid_focal_loss_star(v, t, 2.0, 1.0, 0.25, "mean"), (x2,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_star_finite_at_extremes(dtype):
    x = torch.tensor([-1e4, -100.0, -17.0, 0.0, 17.0, 100.0, 1e4]).repeat(2).to(dtype).requires_grad_(True)
    y = torch.cat([torch.zeros(7), torch.ones(7)]).to(dtype)
    loss = focalkit.sigmoid_focal_loss_star(x, y, 2.0, 1.0, 0.25, "sum")
    (grad,) = torch.autograd.grad(loss, x)
    assert bool(torch.isfinite(loss)) and bool(torch.isfinite(grad).all())


PROBABILITY_BANDS = {
    "low": lambda g: torch.rand(6, 4, generator=g) * 0.05 + 1e-4,
    "high": lambda g: 1 - torch.rand(6, 4, generator=g) * 0.05 - 1e-4,
    "random": lambda g: torch.rand(6, 4, generator=g) * 0.98 + 0.01,
}
TARGET_PATTERNS = {
    "zeros": lambda g: torch.zeros(6, 4),
    "ones": lambda g: torch.ones(6, 4),
    "random": lambda g: torch.rand(6, 4, generator=g).round(),
    "soft": lambda g: torch.rand(6, 4, generator=g),
}


@pytest.mark.parametrize("band", list(PROBABILITY_BANDS))
@pytest.mark.parametrize("pattern", list(TARGET_PATTERNS))
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binary_bands_and_patterns_match_reference(band, pattern, gamma, alpha, dtype):
    g = torch.Generator().manual_seed(7)
    p = PROBABILITY_BANDS[band](g).to(dtype).requires_grad_(True)
    y = TARGET_PATTERNS[pattern](g).to(dtype)
    loss = focalkit.binary_focal_loss(p, y, alpha, gamma, "none")
    (grad,) = torch.autograd.grad(loss.sum(), p)
    p64 = p.detach().double().requires_grad_(True)
    ref = reference.binary_focal_loss(p64, y.double(), alpha, gamma)
    (ref_grad,) = torch.autograd.grad(ref.sum(), p64)
    assert_close(loss, ref, dtype)
    assert_close(grad, ref_grad, dtype, scale=4.0)


@pytest.mark.parametrize("band", ["low", "high", "random"])
@pytest.mark.parametrize("pattern", ["zeros", "ones", "random", "soft"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_star_bands_and_patterns_match_reference(band, pattern, dtype):
    from conftest import make_logits, make_targets

    x = make_logits(band, (6, 4)).to(dtype).requires_grad_(True)
    y = make_targets(pattern, (6, 4)).to(dtype)
    loss = focalkit.sigmoid_focal_loss_star(x, y, 2.0, 1.0, 0.25, "none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    x64 = x.detach().double().requires_grad_(True)
    ref = reference.sigmoid_focal_loss_star(x64, y.double(), 2.0, 1.0, 0.25)
    (ref_grad,) = torch.autograd.grad(ref.sum(), x64)
    assert_close(loss, ref, dtype)
    assert_close(grad, ref_grad, dtype)
