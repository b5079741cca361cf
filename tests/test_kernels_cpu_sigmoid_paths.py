"""The fused CPU sigmoid kernel's specialised paths give the general path's numbers: one alpha for every class (formed
inside the loss loop) against per-class alphas, binary chunks (selections instead of products) against soft ones,
NaN logits staying NaN on every path, exp(-|x|) near its underflow; the gradient-only call of a backward pass; and the
host-side pieces around a call (block sums, the mean of a count known on the host, the target scan of targets that
require a gradient)."""

from __future__ import annotations

import ctypes

import pytest
import torch

import focalkit
from focalkit.backends.contract import GRADIENT_ONLY
from focalkit.backends.cpu import library as cpu_lib
from focalkit.backends.cpu.sigmoid import forward as sigmoid_forward

from test_kernels_cpu import _close, _run_sigmoid, _sigmoid_ref

pytestmark = pytest.mark.skipif(not cpu_lib.available(), reason=f"CPU kernels not built: {cpu_lib.load_error()}")


def _inputs(shape, soft_rows: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 4
    y = (torch.rand(shape, generator=g) < 0.2).float()
    if soft_rows:
        y[::3] = torch.rand(y[::3].shape, generator=g)
    return x, y


@pytest.mark.parametrize("soft_rows", [False, True])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.3])
@pytest.mark.parametrize("shape", [(37, 5), (300, 3), (4, 3, 70)])
def test_one_alpha_for_every_class_matches_per_class_alphas_and_the_reference(shape, gamma, soft_rows):
    x, y = _inputs(shape, soft_rows, seed=len(shape) * 100 + shape[-1])
    c = shape[1]
    uniform = (torch.full((c,), 0.3), torch.full((c,), 0.7))
    loss_u, grad_u = _run_sigmoid(x, y, *uniform, gamma=gamma)
    ref_loss, ref_grad = _sigmoid_ref(x, y, *uniform, gamma)
    _close(loss_u, ref_loss, torch.float32, "loss, one alpha")
    _close(grad_u, ref_grad, torch.float32, "grad, one alpha")
    # the last class differs: the per-class array path, equal to the uniform path on the other classes
    per_class = (uniform[0].clone(), uniform[1].clone())
    per_class[0][-1], per_class[1][-1] = 0.9, 0.1
    loss_a, grad_a = _run_sigmoid(x, y, *per_class, gamma=gamma)
    ref_loss_a, ref_grad_a = _sigmoid_ref(x, y, *per_class, gamma)
    _close(loss_a, ref_loss_a, torch.float32, "loss, per-class alphas")
    _close(grad_a, ref_grad_a, torch.float32, "grad, per-class alphas")
    same = torch.ones(shape, dtype=torch.bool)
    same[:, -1] = False
    torch.testing.assert_close(loss_a[same], loss_u[same], rtol=1e-6, atol=0)
    torch.testing.assert_close(grad_a[same], grad_u[same], rtol=1e-6, atol=0)


def test_scalar_alpha_and_equal_per_class_alphas_give_the_same_numbers():
    x, y = _inputs((64, 6), soft_rows=True, seed=3)
    a = focalkit.sigmoid_focal_loss(x, y, alpha=0.25, reduction="none")
    b = focalkit.sigmoid_focal_loss(x, y, alpha=[0.25] * 6, reduction="none")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("soft", [False, True])
def test_nan_logits_give_nan_loss_and_gradient_whatever_the_target(alpha, soft):
    """A NaN logit on the predicted side of its target must not read as a confident, correct one (loss 0)."""
    x = torch.zeros(2, 300)
    y = torch.zeros(2, 300)
    y[1] = 1.0
    if soft:
        y[:, -1] = 0.5  # one soft target: the chunk takes the general path
    x[:, 0] = float("nan")
    ap = an = None
    if alpha is not None:
        ap, an = torch.full((300,), alpha), torch.full((300,), 1 - alpha)
    loss, grad = _run_sigmoid(x, y, ap, an, gamma=2.0)
    assert torch.isnan(loss[:, 0]).all() and torch.isnan(grad[:, 0]).all()
    assert torch.isfinite(loss[:, 1:]).all() and torch.isfinite(grad[:, 1:]).all()


def test_block_sums_total_adds_the_partials_in_order_in_float64():
    sums = cpu_lib.BlockSums(3 * cpu_lib.BLOCK + 1)  # 4 blocks
    values = [1e16, 1.0, -1e16, 3.0]
    for i, v in enumerate(values):
        (ctypes.c_double * 4).from_address(sums.data_ptr())[i] = v
    total = sums.total()
    assert total.dtype == torch.float32 and total.shape == ()
    assert float(total) == float(torch.tensor(((1e16 + 1.0) + -1e16) + 3.0, dtype=torch.float32))
    assert float(cpu_lib.BlockSums(0).total()) == 0.0


@pytest.mark.parametrize("normalizer", [None, 8, 2.5, 0, torch.tensor(4.0)])
def test_mean_divides_by_the_count_or_the_normalizer(normalizer):
    x, y = _inputs((16, 5), soft_rows=True, seed=5)
    x.requires_grad_(True)
    total = focalkit.sigmoid_focal_loss(x, y, reduction="sum")
    mean = focalkit.sigmoid_focal_loss(x, y, reduction="mean", normalizer=normalizer)
    denominator = x.numel() if normalizer is None else float(normalizer) or 1.0
    torch.testing.assert_close(mean, total / denominator)
    (grad_mean,) = torch.autograd.grad(mean, x)
    (grad_sum,) = torch.autograd.grad(total, x)
    torch.testing.assert_close(grad_mean, grad_sum / denominator)
    empty = focalkit.sigmoid_focal_loss(torch.zeros(0, 5), torch.zeros(0, 5), reduction="mean")
    assert float(empty) == 0.0


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_targets_that_require_a_gradient_are_scanned(monkeypatch, backend):
    """Soft targets that require a gradient take the differentiable composition, which counts nothing: an invalid
    value is refused on the host whichever back-end the call would have used."""
    monkeypatch.setenv("FOCALKIT_BACKEND", backend)
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.full((4, 3), 0.5)
    y[2, 1] = 1.5
    with pytest.raises(focalkit.InvalidArgumentError, match="targets"):
        focalkit.sigmoid_focal_loss(x, y.requires_grad_(True), reduction="sum")
    with pytest.raises(focalkit.InvalidArgumentError, match="targets"):
        focalkit.sigmoid_focal_loss(x, y.detach(), reduction="sum")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("targets", ["binary", "soft", "indices"])
@pytest.mark.parametrize("options", [{}, {"alpha": 0.25}, {"per_class": True}, {"gamma": 1.5}, {"reduced": 0.5}])
def test_gradient_only_gives_the_gradient_of_the_full_call(dtype, targets, options):
    """``compute_grad=GRADIENT_ONLY`` (a backward pass recomputing the gradient): the kernel forms no loss and returns
    None in its place, and the gradient is bit for bit the one a call computing both returns."""
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(40, 70, generator=g) * 4).to(dtype)  # 2800 elements: several chunks and a partial one
    if targets == "indices":
        y = torch.randint(0, 71, (40,), generator=g)
    else:
        y = (torch.rand(40, 70, generator=g) < 0.1).to(dtype)
        if targets == "soft":
            y[5] = torch.rand(70, generator=g).to(dtype)
    c = 70
    ap = an = None
    if "alpha" in options:
        ap, an = torch.full((c,), options["alpha"]), torch.full((c,), 1 - options["alpha"])
    if "per_class" in options:
        ap = torch.linspace(0.1, 0.9, c)
        an = 1 - ap
    kwargs = dict(alpha_pos=ap, alpha_neg=an, gamma=options.get("gamma", 2.0), ignore_index=None,
                  reduced_threshold=options.get("reduced", 0.0))
    for reduce_sum in (True, False):
        loss, grad = sigmoid_forward(x, y, **kwargs, reduce_sum=reduce_sum, compute_grad=True)
        none, grad_only = sigmoid_forward(x, y, **kwargs, reduce_sum=reduce_sum, compute_grad=GRADIENT_ONLY)
        assert none is None and loss is not None
        assert grad_only.dtype == dtype and torch.equal(grad_only, grad)


def test_gradient_only_still_refuses_invalid_targets():
    x = torch.randn(8, 300)
    y = torch.zeros(8, 300)
    y[3, 7] = 1.5
    with pytest.raises(focalkit.InvalidArgumentError, match="targets"):
        sigmoid_forward(x, y, gamma=2.0, ignore_index=None, reduce_sum=True, compute_grad=GRADIENT_ONLY)


def test_the_backward_pass_asks_for_the_gradient_only(monkeypatch):
    """The recompute mode's backward requests GRADIENT_ONLY, and its gradient is the store mode's."""
    from focalkit.backends.cpu import sigmoid as cpu_sigmoid

    seen = []
    original = cpu_sigmoid.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["compute_grad"])
        return original(*args, **kwargs)

    monkeypatch.setattr(cpu_sigmoid, "forward", spy)
    monkeypatch.setenv("FOCALKIT_BACKEND", "cpu")
    x, y = _inputs((600, 200), soft_rows=False, seed=9)  # above the small-call size: the gradient comes in backward
    grads = {}
    for mode in ("recompute", "store"):
        xg = x.clone().requires_grad_(True)
        focalkit.set_gradient_mode(mode)
        try:
            focalkit.sigmoid_focal_loss(xg, y, alpha=0.25, reduction="sum").backward()
        finally:
            focalkit.set_gradient_mode("recompute")
        grads[mode] = xg.grad
    assert GRADIENT_ONLY in seen
    torch.testing.assert_close(grads["recompute"], grads["store"], rtol=0, atol=0)


@pytest.mark.parametrize("magnitude", [0.0, 20.0, 86.5, 87.4, 87.9, 88.0, 88.5, 100.0, 1e30])
def test_exp_of_minus_abs_x_near_the_underflow_and_beyond(magnitude):
    """exp(-|x|) is formed without a clamp of its result: near and beyond |x| = 88 the loss and gradient keep the
    float64 reference's values (to the float32 tolerance), on both sides and for both targets."""
    x = torch.tensor([[magnitude, -magnitude]] * 2, dtype=torch.float32).repeat(1, 150)
    y = torch.zeros_like(x)
    y[1] = 1.0
    loss, grad = _run_sigmoid(x, y, gamma=2.0)
    ref_loss, ref_grad = _sigmoid_ref(x, y, None, None, 2.0)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    _close(loss, ref_loss, torch.float32, "loss")
    _close(grad, ref_grad, torch.float32, "grad")
