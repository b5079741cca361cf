"""The reduced focal loss (``reduced_threshold``) in the fused CPU kernels of ``sigmoid_focal`` and ``softmax_focal``,
vs the PyTorch back-end and the float64 reference.

Reduced focal loss (Sergievskiy & Ponamarev 2019, arXiv:1903.01347): with u = 1 - p_t and threshold th in (0, 1],
the modulating factor is (u / th)^gamma where p_t >= th and 1 below, so the loss and its gradient are the plain
cross-entropy's there. Values and gradients of :mod:`focalkit.backends.cpu` are compared with the PyTorch back-end's
``forward`` on the same input and with :func:`focalkit.reference.sigmoid_focal_loss` / ``softmax_focal_loss``
(float64, gradients by autograd) at the kernel's rounded input. Losses are float32 for every input dtype (fp32
tolerance); gradients are stored in the input dtype (its tolerance). Also covered: the sum and the no-gradient calls,
logits up to 1e4, the independence of sums from the thread count, and the public functions choosing this back-end.
"""

from __future__ import annotations

import pytest
import torch

import focalkit
from conftest import BANDS, assert_close, make_logits, make_targets
from focalkit import backends, reference
from focalkit.backends.cpu import library as cpu_lib

pytestmark = pytest.mark.skipif(not cpu_lib.available(), reason=f"CPU kernels not built: {cpu_lib.load_error()}")

FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
THRESHOLDS = [0.3, 0.5, 1.0]
# (N, C, S) with a spatial dim (column segments of index targets), and (N, C) rows spanning several 256-element chunks
SIGMOID_SHAPES = [(6, 5, 3), (67, 9)]
IGNORE = -100


def cpu_forward(op: str, x, t, **kw):
    """The CPU back-end's contract function of ``op``."""
    return backends.get_forward(op, "cpu")(x, t, **kw)


def torch_forward(op: str, x, t, **kw):
    """The PyTorch back-end's contract function of ``op``."""
    return backends.get_forward(op, "torch")(x, t, **kw)


def reference_and_grad(fn, x, *args, **kw):
    """Float64 reference loss at the (rounded) input and its gradient by autograd."""
    x64 = x.detach().to(torch.float64).requires_grad_(True)
    loss = fn(x64, *args, **kw)
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


def check(loss, grad, want_loss, want_grad, dtype):
    """Loss with the fp32 tolerance (fp32 output), gradient with the input dtype's; both finite."""
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
    assert_close(loss, want_loss, torch.float32)
    assert_close(grad, want_grad, dtype)


def _class_view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[1] = v.numel()
    return v.to(torch.float64).reshape(shape)


def _sigmoid_targets(kind: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    """Soft or hard (0/1) float targets of the logits' shape, or class indices (N, *spatial) with C = background and
    ignored entries."""
    if kind == "soft":
        return make_targets("soft", x.shape, seed=seed)
    if kind == "binary":
        return make_targets("random", x.shape, seed=seed)
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, x.shape[1] + 1, (x.shape[0], *x.shape[2:]), generator=g)
    t.view(-1)[::4] = IGNORE
    return t


def _sigmoid_reference(x, t, alpha_pos, alpha_neg, gamma, threshold):
    """Float64 sigmoid (reduced) focal loss with per-class alpha vectors (or none), and its gradient."""
    if t.is_floating_point():
        y, keep = t.to(torch.float64), 1.0
    else:
        c = x.shape[1]
        valid = t != IGNORE
        one_hot = torch.nn.functional.one_hot(torch.where(valid, t, c), c + 1)[..., :c].movedim(-1, 1)
        y, keep = one_hot.to(torch.float64), valid.unsqueeze(1).to(torch.float64)
    a_t = 1.0 if alpha_pos is None else _class_view(alpha_pos, x.ndim) * y + _class_view(alpha_neg, x.ndim) * (1 - y)

    def loss(x64):
        return reference.sigmoid_focal_loss(x64, y, alpha=None, gamma=gamma, reduced_threshold=threshold) * a_t * keep

    return reference_and_grad(loss, x)


# --------------------------------------------------------------------------------------------- sigmoid_focal
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("with_alpha", [True, False], ids=["alpha", "no_alpha"])
@pytest.mark.parametrize("kind", ["soft", "binary", "index"])
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_sigmoid_matches_torch_and_reference(threshold, kind, with_alpha, dtype):
    for shape in SIGMOID_SHAPES:
        a = torch.linspace(0.2, 0.8, shape[1])
        alpha_pos, alpha_neg = (a, 1 - a) if with_alpha else (None, None)
        for seed, band in enumerate(BANDS):
            x = make_logits(band, shape, seed=seed).to(dtype)
            t = _sigmoid_targets(kind, x, seed=seed + 10)
            for gamma in (0.5, 2.0):
                kw = dict(alpha_pos=alpha_pos, alpha_neg=alpha_neg, gamma=gamma, ignore_index=IGNORE,
                          reduce_sum=False, compute_grad=True, reduced_threshold=threshold)
                loss, grad = cpu_forward("sigmoid_focal", x, t, **kw)
                check(loss, grad, *torch_forward("sigmoid_focal", x, t, **kw), dtype)
                check(loss, grad, *_sigmoid_reference(x, t, alpha_pos, alpha_neg, gamma, threshold), dtype)


def test_sigmoid_factor_is_one_below_the_threshold_and_scaled_above():
    """Where p_t < th the reduced loss is the cross-entropy (gamma = 0); where p_t >= th it is th^-gamma times the
    focal loss, and so is its gradient."""
    x = torch.linspace(-4.0, 4.0, 41).reshape(1, 41)
    y = torch.ones_like(x)  # p_t = sigmoid(x)
    kw = dict(ignore_index=None, reduce_sum=False, compute_grad=True)
    reduced = cpu_forward("sigmoid_focal", x, y, gamma=2.0, reduced_threshold=0.5, **kw)
    focal = cpu_forward("sigmoid_focal", x, y, gamma=2.0, **kw)
    cross_entropy = cpu_forward("sigmoid_focal", x, y, gamma=0.0, **kw)
    above = torch.sigmoid(x) >= 0.5
    assert above.any() and (~above).any()
    for got, f, ce in zip(reduced, focal, cross_entropy):
        torch.testing.assert_close(got[~above], ce[~above])
        torch.testing.assert_close(got[above], f[above] * 4.0, rtol=1e-5, atol=0.0)  # th^-gamma = 0.5^-2


# --------------------------------------------------------------------------------------------- softmax_focal
# (N, C): the row-at-a-time path; (N, C, S): the 256-column path, with S over one chunk
SOFTMAX_SHAPES = [(40, 6), (3, 5, 300)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_softmax_matches_torch_and_reference(threshold, shape, dtype):
    c = shape[1]
    weight, alpha = torch.linspace(0.5, 1.5, c), torch.linspace(0.9, 0.1, c)
    for seed, scale in enumerate((1.0, 0.25)):  # wide rows, and rows whose p_t fall on both sides of every th
        x = (make_logits("random", shape, seed=seed) * scale).to(dtype)
        t = torch.randint(0, c, (shape[0], *shape[2:]), generator=torch.Generator().manual_seed(seed + 20))
        t.view(-1)[::7] = IGNORE
        for gamma in (0.5, 2.0):
            for vectors in (dict(weight=weight, alpha=alpha), {}):
                kw = dict(vectors, gamma=gamma, ignore_index=IGNORE, reduce_sum=False, compute_grad=True,
                          reduced_threshold=threshold)
                loss, grad = cpu_forward("softmax_focal", x, t, **kw)
                check(loss, grad, *torch_forward("softmax_focal", x, t, **kw), dtype)
                want = reference_and_grad(reference.softmax_focal_loss, x, t, gamma=gamma, reduced_threshold=threshold,
                                          **vectors)
                check(loss, grad, *want, dtype)


def test_softmax_factor_is_one_below_the_threshold_and_scaled_above():
    """Rows with p_t < th get the cross-entropy (gamma = 0), rows with p_t >= th th^-gamma times the focal loss."""
    x = torch.stack([torch.linspace(-4.0, 4.0, 41), torch.zeros(41)], dim=1)  # p_t = sigmoid(x_0) for target 0
    t = torch.zeros(41, dtype=torch.long)
    kw = dict(ignore_index=None, reduce_sum=False, compute_grad=True)
    reduced = cpu_forward("softmax_focal", x, t, gamma=2.0, reduced_threshold=0.5, **kw)
    focal = cpu_forward("softmax_focal", x, t, gamma=2.0, **kw)
    cross_entropy = cpu_forward("softmax_focal", x, t, gamma=0.0, **kw)
    above = torch.sigmoid(x[:, 0]) >= 0.5  # p_t = 1/2 exactly at x_0 = 0 (softmax rounds it just below)
    assert above.any() and (~above).any()
    for got, f, ce in zip(reduced, focal, cross_entropy):
        torch.testing.assert_close(got[~above], ce[~above])
        torch.testing.assert_close(got[above], f[above] * 4.0, rtol=1e-5, atol=0.0)


# --------------------------------------------------------------------------------------------- both ops
def _inputs(op: str, dtype: torch.dtype, shape=(33, 7, 5)):
    x = make_logits("random", shape, seed=3).to(dtype)
    g = torch.Generator().manual_seed(4)
    if op == "sigmoid_focal":
        t = torch.randint(0, shape[1] + 1, (shape[0], *shape[2:]), generator=g)
    else:
        t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    t.view(-1)[::5] = IGNORE
    return x, t


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("op", ["sigmoid_focal", "softmax_focal"])
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_sum_and_no_gradient_calls(op, threshold, dtype):
    """reduce_sum gives the sum of the per-element losses with the same gradient; compute_grad=False gives None."""
    x, t = _inputs(op, dtype)
    kw = dict(gamma=2.0, ignore_index=IGNORE, reduced_threshold=threshold)
    loss, grad = cpu_forward(op, x, t, reduce_sum=False, compute_grad=True, **kw)
    total, total_grad = cpu_forward(op, x, t, reduce_sum=True, compute_grad=True, **kw)
    assert total.ndim == 0 and total.dtype == torch.float32
    torch.testing.assert_close(total.double(), loss.double().sum(), rtol=1e-6, atol=1e-6)
    assert torch.equal(grad, total_grad)
    no_grad_loss, none = cpu_forward(op, x, t, reduce_sum=False, compute_grad=False, **kw)
    assert none is None and torch.equal(no_grad_loss, loss)
    no_grad_total, none = cpu_forward(op, x, t, reduce_sum=True, compute_grad=False, **kw)
    assert none is None and torch.equal(no_grad_total, total)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_huge_logits_stay_finite(threshold, dtype):
    """Logits up to 1e4 on either side of every target give finite losses and gradients, equal to the PyTorch
    back-end's, and a confidently wrong prediction keeps a gradient pushing it back."""
    x = torch.tensor([[1e4, -1e4, 1e4, -1e4, 100.0, -100.0]]).to(dtype)
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.5, 0.5]]).to(dtype)
    rows = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [1e4, 1e4, -1e4]]).to(dtype)
    t = torch.tensor([0, 0, 2])
    for gamma in (0.0, 0.5, 2.0):
        kw = dict(gamma=gamma, ignore_index=None, reduce_sum=False, compute_grad=True, reduced_threshold=threshold)
        for op, logits, targets in (("sigmoid_focal", x, y), ("softmax_focal", rows, t)):
            loss, grad = cpu_forward(op, logits, targets, **kw)
            assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
            want_loss, want_grad = torch_forward(op, logits, targets, **kw)
            assert_close(loss, want_loss, torch.float32)
            assert_close(grad, want_grad, dtype)
        sigmoid_grad = cpu_forward("sigmoid_focal", x, y, **kw)[1]
        assert float(sigmoid_grad[0, 1]) < 0 and float(sigmoid_grad[0, 2]) > 0
        softmax_grad = cpu_forward("softmax_focal", rows, t, **kw)[1]
        assert float(softmax_grad[1, 0]) < 0 and float(softmax_grad[2, 2]) < 0


@pytest.mark.parametrize("op", ["sigmoid_focal", "softmax_focal"])
def test_sums_do_not_depend_on_the_thread_count(op):
    shape = (1000, 81) if op == "sigmoid_focal" else (300, 11, 100)  # several blocks: the parallel path
    x = make_logits("random", shape, seed=5)
    if op == "sigmoid_focal":
        t = make_targets("random", shape, seed=6)
    else:
        t = torch.randint(0, shape[1], (shape[0], shape[2]), generator=torch.Generator().manual_seed(6))
    kw = dict(gamma=2.0, ignore_index=None, reduce_sum=True, compute_grad=True, reduced_threshold=0.5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        s1, g1 = cpu_forward(op, x, t, **kw)
        torch.set_num_threads(max(2, threads))
        s2, g2 = cpu_forward(op, x, t, **kw)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(s1, s2) and torch.equal(g1, g2)
    per_element, _ = cpu_forward(op, x, t, **dict(kw, reduce_sum=False))
    torch.testing.assert_close(s1.double(), per_element.double().sum(), rtol=1e-6, atol=0)


# --------------------------------------------------------------------------------------------- public functions
def test_the_back_end_implements_the_option():
    assert backends.missing_features("cpu", "sigmoid_focal", {"reduced_threshold": 0.5}) == []
    assert backends.missing_features("cpu", "softmax_focal", {"reduced_threshold": 0.5}) == []


@pytest.mark.parametrize("op", ["sigmoid_focal", "softmax_focal"])
def test_public_functions_run_on_this_back_end_and_match_torch(op, monkeypatch):
    """With the option on, CPU float32 calls resolve to "cpu", run its kernel, and equal FOCALKIT_BACKEND=torch."""
    from focalkit.backends.cpu import sigmoid as cpu_sigmoid
    from focalkit.backends.cpu import softmax as cpu_softmax

    module = cpu_sigmoid if op == "sigmoid_focal" else cpu_softmax
    g = torch.Generator().manual_seed(8)
    if op == "sigmoid_focal":
        x, y = torch.randn(16, 5, generator=g) * 3, make_targets("random", (16, 5), seed=9)

        def loss_fn(logits):
            return focalkit.sigmoid_focal_loss(logits, y, reduction="sum", reduced_threshold=0.5)
    else:
        x, y = torch.randn(16, 5, generator=g) * 3, torch.randint(0, 5, (16,), generator=g)

        def loss_fn(logits):
            return focalkit.softmax_focal_loss(logits, y, reduction="sum", reduced_threshold=0.5)

    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert backends.resolve_backend(op, x, y, {"reduced_threshold": 0.5}) == "cpu"
    calls = []
    kernel = module.forward

    def spy(*args, **kw):
        calls.append(kw.get("reduced_threshold"))
        return kernel(*args, **kw)

    monkeypatch.setattr(module, "forward", spy)
    x_cpu = x.clone().requires_grad_(True)
    loss = loss_fn(x_cpu)
    loss.backward()
    assert 0.5 in calls

    monkeypatch.setenv(backends.ENV_VAR, "torch")
    x_torch = x.clone().requires_grad_(True)
    want = loss_fn(x_torch)
    want.backward()
    assert_close(loss, want, torch.float32)
    assert_close(x_cpu.grad, x_torch.grad, torch.float32)
