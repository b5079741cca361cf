"""The Triton Poly-1 cross-entropy (the softmax kernel's ``POLY`` switch) vs the float64 reference, the PyTorch
back-end and the fused CPU kernel, through Triton's CPU interpreter (or on a GPU).

Without CUDA the kernel runs with ``TRITON_INTERPRET=1`` on CPU tensors (``tests/triton_mode.py``), so this file needs
Triton installed but no GPU; run it on its own (the interpreter must be switched on before the kernels are imported).
Values and gradients are compared with :func:`focalkit.reference.poly1_cross_entropy` (float64, gradients by
autograd) at the kernel's rounded input over the probability bands, dtypes, epsilon >= 0 and < 0, class weights,
ignored rows, the one-tile and multi-tile (online softmax) layouts and spatial dims.
"""

from __future__ import annotations

import pytest
import torch
from triton_mode import check_kernels, choose_mode

# The interpreter must be on before triton itself is imported (tests/triton_mode.py).
ON_GPU = choose_mode("tests/test_kernels_triton_poly.py")

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton); kernels not tested")

import focalkit  # noqa: E402
from conftest import BANDS, FLOAT_DTYPES, assert_close, make_logits  # noqa: E402
from focalkit import backends, reference  # noqa: E402
from focalkit.backends.triton import softmax as triton_softmax  # noqa: E402

check_kernels(ON_GPU, [triton_softmax._softmax_focal_fwd_kernel], "tests/test_kernels_triton_poly.py")

DEV = torch.device("cuda" if ON_GPU else "cpu")
EPSILONS = [1.0, 2.0, 0.0, -0.5, -1.0]
# (N, C) one tile, (N, C, S) with a spatial dim, and C wider than one class chunk (the online softmax)
SHAPES = [(19, 5), (3, 6, 4), (2, 1100)]


def _targets(shape, seed=3):
    rows = (shape[0], *shape[2:])
    t = torch.randint(0, shape[1], rows, generator=torch.Generator().manual_seed(seed))
    t.view(-1)[::5] = -100
    return t


def _triton(x, t, **kwargs):
    fn = backends.get_forward("poly1_cross_entropy", "triton")
    args = {k: (v.to(DEV) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    loss, grad = fn(x.to(DEV), t.to(DEV), **args)
    return loss.cpu(), (None if grad is None else grad.cpu())


def _reference(x, t, epsilon, weight):
    x64 = x.detach().double().requires_grad_(True)
    loss = reference.poly1_cross_entropy(x64, t, epsilon, weight, 0.0, -100)
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("band", list(BANDS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("epsilon", EPSILONS)
def test_poly1_cross_entropy_matches_reference(epsilon, shape, band, dtype):
    x = make_logits(band, shape).to(dtype)
    t = _targets(shape)
    weight = torch.linspace(0.25, 2.0, shape[1])
    loss, grad = _triton(x, t, class_weight=weight, epsilon=epsilon, label_smoothing=0.0, ignore_index=-100,
                         reduce_sum=False, compute_grad=True)
    ref_loss, ref_grad = _reference(x, t, epsilon, weight)
    assert loss.shape == t.shape and grad.dtype == dtype
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("epsilon", [-1.0, 1.0])
def test_confident_rows_keep_relative_accuracy(epsilon):
    x = torch.zeros(32, 4)
    x[:, 2] = torch.linspace(2.0, 20.0, 32)
    t = torch.full((32,), 2)
    loss, grad = _triton(x, t, epsilon=epsilon, label_smoothing=0.0, ignore_index=None, reduce_sum=False,
                         compute_grad=True)
    ref_loss, ref_grad = _reference(x, t, epsilon, None)
    assert (loss > 0).all()
    torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-5, atol=1e-30)


def test_sum_no_gradient_and_the_cpu_kernel_agree():
    x = make_logits("random", (40, 7), seed=5)
    t = _targets((40, 7))
    kwargs = dict(class_weight=torch.linspace(0.5, 1.5, 7), epsilon=2.0, label_smoothing=0.0, ignore_index=-100)
    loss, grad = _triton(x, t, **kwargs, reduce_sum=False, compute_grad=True)
    total, none = _triton(x, t, **kwargs, reduce_sum=True, compute_grad=False)
    assert none is None
    torch.testing.assert_close(total.double(), loss.double().sum(), rtol=1e-6, atol=1e-6)
    from focalkit.backends.cpu import library as cpu_lib

    if cpu_lib.available():
        cpu_loss, cpu_grad = backends.get_forward("poly1_cross_entropy", "cpu")(x, t, **kwargs, reduce_sum=False,
                                                                               compute_grad=True)
        torch.testing.assert_close(loss, cpu_loss, rtol=2e-6, atol=1e-7)
        torch.testing.assert_close(grad, cpu_grad, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("case", ["probabilities", "label smoothing"])
def test_cases_computed_by_the_torch_closed_form(case):
    x = make_logits("random", (12, 5), seed=6)
    if case == "probabilities":
        t, ignore, smoothing = torch.softmax(make_logits("random", (12, 5), seed=9), dim=1), None, 0.0
    else:
        t, ignore, smoothing = _targets((12, 5)), -100, 0.1
    kwargs = dict(class_weight=torch.linspace(0.5, 1.5, 5), epsilon=1.5, label_smoothing=smoothing,
                  ignore_index=ignore, reduce_sum=False, compute_grad=True)
    ours = _triton(x, t, **kwargs)
    # the same closed form on the same device: bit for bit (a GPU's exp and log round differently from the CPU's)
    args = {k: (v.to(DEV) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    theirs = backends.get_forward("poly1_cross_entropy", "torch")(x.to(DEV), t.to(DEV), **args)
    torch.testing.assert_close(ours[0], theirs[0].cpu(), rtol=0, atol=0)
    torch.testing.assert_close(ours[1], theirs[1].cpu(), rtol=0, atol=0)


def test_public_function_forced_to_triton(monkeypatch):
    monkeypatch.setenv("FOCALKIT_BACKEND", "triton")
    x = make_logits("random", (6, 4), seed=7).to(DEV).requires_grad_(True)
    t = torch.tensor([0, 3, 2, -100, 1, 1], device=DEV)
    assert backends.resolve_backend("poly1_cross_entropy", x, t) == "triton"
    loss = focalkit.poly1_cross_entropy(x, t, 1.0, reduction="sum")
    loss.backward()
    ref_loss, ref_grad = _reference(x.detach().cpu(), t.cpu(), 1.0, None)
    assert_close(loss.detach().cpu(), ref_loss.sum(), torch.float32)
    assert_close(x.grad.cpu(), ref_grad, torch.float32)
