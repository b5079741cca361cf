"""Double backward (create_graph=True): second derivatives are exact (float64 gradgradcheck, the float64 reference)
and finite at |logit| up to 1e4 for every loss; the first derivative is unchanged by the route it takes."""

from __future__ import annotations

import pytest
import torch

import focalkit
from focalkit import reference

torch.manual_seed(0)
N, C = 5, 4
Y_HARD = (torch.rand(N, C) > 0.6).double()
Y_SOFT = torch.rand(N, C, dtype=torch.float64)
T_INDEX = torch.tensor([0, 4, 2, -100, 1])  # 4 = background for the sigmoid losses
T_SOFTMAX = torch.tensor([0, 3, 2, -100, 1])
Q_SOFT = torch.softmax(torch.randn(N, C, dtype=torch.float64), dim=1)

LOSSES = {
    "sigmoid hard": lambda x, g: focalkit.sigmoid_focal_loss(x, Y_HARD.to(x.dtype), 0.25, g, "sum"),
    "sigmoid soft": lambda x, g: focalkit.sigmoid_focal_loss(x, Y_SOFT.to(x.dtype), 0.25, g, "mean"),
    "sigmoid index": lambda x, g: focalkit.sigmoid_focal_loss(x, T_INDEX, [0.1, 0.2, 0.3, 0.4], g, "mean"),
    "sigmoid pos_weight": lambda x, g: focalkit.sigmoid_focal_loss(
        x, Y_SOFT.to(x.dtype), 0.25, g, "sum", pos_weight=torch.tensor([1.0, 2.0, 3.0, 0.5], dtype=x.dtype)),
    "sigmoid none": lambda x, g: (focalkit.sigmoid_focal_loss(x, Y_HARD.to(x.dtype), 0.25, g, "none")
                                  * torch.arange(N * C, dtype=x.dtype).view(N, C)).sum(),
    "softmax index": lambda x, g: focalkit.softmax_focal_loss(x, T_SOFTMAX, gamma=g, alpha=[0.1, 0.2, 0.3, 0.4]),
    "softmax weight none": lambda x, g: (focalkit.softmax_focal_loss(
        x, T_SOFTMAX, weight=torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=x.dtype), gamma=g, reduction="none")
        * torch.arange(N, dtype=x.dtype)).sum(),
    "softmax probabilities": lambda x, g: focalkit.softmax_focal_loss(x, Q_SOFT.to(x.dtype), gamma=g),
    "softmax smoothing": lambda x, g: focalkit.softmax_focal_loss(x, T_SOFTMAX, gamma=g, label_smoothing=0.1),
    "star": lambda x, g: focalkit.sigmoid_focal_loss_star(x, Y_HARD.to(x.dtype), g + 0.5, 1.0, 0.25, "sum"),
    "star index": lambda x, g: focalkit.sigmoid_focal_loss_star(x, T_INDEX, g + 0.5, -1.0, 0.25, "mean"),
}


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradgradcheck_float64(name, gamma):
    x = (3 * torch.randn(N, C, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda v: LOSSES[name](v, gamma), (x,))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_binary_focal_loss_gradgradcheck(gamma):
    p = torch.rand(N, C, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda v: focalkit.binary_focal_loss(v, Y_SOFT, 0.25, gamma, "sum"), (p,))


def _hessian_vector(loss_fn, x, v):
    (g,) = torch.autograd.grad(loss_fn(x), x, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), x)
    return g.detach(), hv


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_hessian_vector_products_match_the_float64_reference(gamma):
    x = (4 * torch.randn(N, C, dtype=torch.float64)).requires_grad_(True)
    v = torch.randn(N, C, dtype=torch.float64)
    for ours, theirs in [
        (lambda z: focalkit.sigmoid_focal_loss(z, Y_SOFT, 0.25, gamma, "sum"),
         lambda z: reference.sigmoid_focal_loss(z, Y_SOFT, 0.25, gamma).sum()),
        (lambda z: focalkit.softmax_focal_loss(z, T_SOFTMAX.clamp(min=0), gamma=gamma, reduction="sum"),
         lambda z: reference.softmax_focal_loss(z, T_SOFTMAX.clamp(min=0), gamma=gamma).sum()),
        (lambda z: focalkit.sigmoid_focal_loss_star(z, Y_SOFT, gamma + 0.5, 1.0, 0.25, "sum"),
         lambda z: reference.sigmoid_focal_loss_star(z, Y_SOFT, gamma + 0.5, 1.0, 0.25).sum()),
    ]:
        g_ours, hv_ours = _hessian_vector(ours, x, v)
        g_ref, hv_ref = _hessian_vector(theirs, x, v)
        # the reference's (1 - p)**gamma cancels where p -> 1: agreement to 1e-8 of the largest entry
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-8, atol=1e-8 * float(g_ref.abs().max()))
        torch.testing.assert_close(hv_ours, hv_ref, rtol=1e-8, atol=1e-8 * float(hv_ref.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_second_derivatives_finite_at_extreme_logits(name, gamma, dtype):
    base = torch.tensor([1e4, -1e4, 100.0, -100.0, 30.0, -30.0, 17.0, -17.0, 0.0, 1.0], dtype=torch.float64)
    x = base[torch.randperm(10)[: N * C % 10].tolist() + list(range(10))][: N * C]
    x = x.repeat(N * C // x.numel() + 1)[: N * C].view(N, C).to(dtype).requires_grad_(True)
    v = torch.randn(N, C).to(dtype)
    g, hv = _hessian_vector(lambda z: LOSSES[name](z, gamma), x, v)
    assert torch.isfinite(g).all(), g
    assert torch.isfinite(hv).all(), hv


def test_first_derivative_is_the_same_with_and_without_create_graph():
    x = (5 * torch.randn(64, 7)).requires_grad_(True)
    y = (torch.rand(64, 7) > 0.9).float()
    for loss_fn in (
        lambda z: focalkit.sigmoid_focal_loss(z, y, 0.25, 0.5, "sum"),
        lambda z: focalkit.softmax_focal_loss(z, torch.randint(0, 7, (64,)).clamp(max=6), gamma=0.5),
    ):
        torch.manual_seed(1)
        (fused,) = torch.autograd.grad(loss_fn(x), x)
        torch.manual_seed(1)
        (composed,) = torch.autograd.grad(loss_fn(x), x, create_graph=True)
        torch.testing.assert_close(composed, fused, rtol=2e-5, atol=1e-7)


def test_gradient_penalty_through_a_model_trains():
    """A gradient penalty (create_graph through the loss into parameters) gives finite parameter gradients that
    match the same computation with the float64 reference loss."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 3).double()
    inputs = torch.randn(16, 6, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(16, 3) > 0.7).double()

    def penalised(loss_fn):
        layer.zero_grad()
        loss = loss_fn(layer(inputs), target)
        (g_in,) = torch.autograd.grad(loss, inputs, create_graph=True)
        (loss + g_in.pow(2).sum()).backward()
        return [p.grad.clone() for p in layer.parameters()]

    ours = penalised(lambda z, t: focalkit.sigmoid_focal_loss(z, t, 0.25, 2.0, "sum"))
    theirs = penalised(lambda z, t: reference.sigmoid_focal_loss(z, t, 0.25, 2.0).sum())
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
