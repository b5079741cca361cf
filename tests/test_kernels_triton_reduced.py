"""The reduced focal loss (``reduced_threshold``) in the Triton kernels of ``sigmoid_focal`` and ``softmax_focal``,
vs the PyTorch back-end and the float64 reference, through Triton's CPU interpreter (or on a GPU).

Reduced focal loss (Sergievskiy & Ponamarev 2019, arXiv:1903.01347): with u = 1 - p_t and threshold th in (0, 1],
the modulating factor is (u / th)^gamma where p_t >= th and 1 below, so the loss is the plain cross-entropy there.
Without CUDA the kernels run with ``TRITON_INTERPRET=1`` on CPU tensors, so this file needs Triton installed but no
GPU; with CUDA (or ``FOCALKIT_TRITON_TESTS=cuda``) the compiled kernels run on the GPU, and
``FOCALKIT_TRITON_TESTS=interpret`` forces the interpreter (as ``tests/test_kernels_triton.py``). Values and
gradients are compared with :func:`focalkit.reference.sigmoid_focal_loss` / ``softmax_focal_loss`` (float64,
gradients by autograd) evaluated at the kernel's rounded input, and with the PyTorch back-end's ``forward`` on the
same input. Losses are float32 for every input dtype (fp32 tolerance); gradients are stored in the input dtype (its
tolerance).
"""

from __future__ import annotations

import pytest
import torch
from triton_mode import check_kernels, choose_mode

# The interpreter must be on before triton itself is imported (tests/triton_mode.py).
ON_GPU = choose_mode("tests/test_kernels_triton_reduced.py")

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton); kernels not tested")

import focalkit  # noqa: E402
from conftest import BANDS, assert_close, make_logits, make_targets  # noqa: E402
from focalkit import backends, reference  # noqa: E402
from focalkit.backends.triton import sigmoid as triton_sigmoid  # noqa: E402
from focalkit.backends.triton import softmax as triton_softmax  # noqa: E402

check_kernels(ON_GPU, [triton_sigmoid._sigmoid_focal_fwd_kernel, triton_softmax._softmax_focal_fwd_kernel],
              "tests/test_kernels_triton_reduced.py")

DEV = torch.device("cuda" if ON_GPU else "cpu")
FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
THRESHOLDS = [0.3, 0.5, 1.0]
SHAPE = (6, 5, 3)  # (N, C, S): small, with a spatial dim
IGNORE = -100


def _dev(v):
    return v.to(DEV) if isinstance(v, torch.Tensor) else v


def triton_forward(op: str, x, t, **kw):
    """The Triton back-end's contract function of ``op`` on DEV; CPU results."""
    loss, grad = backends.get_forward(op, "triton")(_dev(x), _dev(t), **{k: _dev(v) for k, v in kw.items()})
    assert loss.device.type == DEV.type
    return loss.cpu(), (None if grad is None else grad.cpu())


def torch_forward(op: str, x, t, **kw):
    """The PyTorch back-end's contract function of ``op`` (CPU)."""
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


def _alpha_vectors(c: int):
    a = torch.linspace(0.2, 0.8, c)
    return a, 1 - a


def _class_view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[1] = v.numel()
    return v.to(torch.float64).reshape(shape)


def _sigmoid_targets(kind: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    """Soft float targets of the logits' shape, or class indices (N, S) with C = background and ignored columns."""
    if kind == "float":
        return make_targets("soft", x.shape, seed=seed)
    n, c, s = x.shape
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, c + 1, (n, s), generator=g)
    t[0, 0] = IGNORE
    return t


def _dense(t: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index targets (N, S) as float64 one-hot (N, C, S) (value C = background) and the keep mask of columns."""
    keep = t != IGNORE
    one_hot = torch.nn.functional.one_hot(torch.where(keep, t, c), c + 1)[..., :c].movedim(-1, 1)
    return one_hot.to(torch.float64), keep.unsqueeze(1).to(torch.float64)


def _sigmoid_reference(x, t, alpha_pos, alpha_neg, gamma, threshold):
    """Float64 sigmoid (reduced) focal loss with per-class alpha vectors, and its gradient."""
    if t.is_floating_point():
        y, keep = t.to(torch.float64), 1.0
    else:
        y, keep = _dense(t, x.shape[1])
    a_t = _class_view(alpha_pos, x.ndim) * y + _class_view(alpha_neg, x.ndim) * (1 - y)

    def loss(x64):
        return reference.sigmoid_focal_loss(x64, y, alpha=None, gamma=gamma, reduced_threshold=threshold) * a_t * keep

    return reference_and_grad(loss, x)


# --------------------------------------------------------------------------------------------- sigmoid_focal
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["float", "index"])
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_sigmoid_matches_torch_and_reference(threshold, kind, dtype):
    alpha_pos, alpha_neg = _alpha_vectors(SHAPE[1])
    for seed, band in enumerate(BANDS):
        x = make_logits(band, SHAPE, seed=seed).to(dtype)
        t = _sigmoid_targets(kind, x, seed=seed + 10)
        for gamma in (0.5, 2.0):
            kw = dict(alpha_pos=alpha_pos, alpha_neg=alpha_neg, gamma=gamma, ignore_index=IGNORE, reduce_sum=False,
                      compute_grad=True, reduced_threshold=threshold)
            loss, grad = triton_forward("sigmoid_focal", x, t, **kw)
            check(loss, grad, *torch_forward("sigmoid_focal", x, t, **kw), dtype)
            check(loss, grad, *_sigmoid_reference(x, t, alpha_pos, alpha_neg, gamma, threshold), dtype)


def test_sigmoid_reduced_factor_is_one_below_the_threshold_and_scaled_above():
    """Where p_t < th the reduced loss is the cross-entropy (gamma = 0); where p_t >= th it is th^-gamma times the
    focal loss, and so is its gradient."""
    x = torch.linspace(-4.0, 4.0, 41).reshape(1, 41)
    y = torch.ones_like(x)  # p_t = sigmoid(x)
    kw = dict(ignore_index=None, reduce_sum=False, compute_grad=True)
    reduced = triton_forward("sigmoid_focal", x, y, gamma=2.0, reduced_threshold=0.5, **kw)
    focal = triton_forward("sigmoid_focal", x, y, gamma=2.0, **kw)
    cross_entropy = triton_forward("sigmoid_focal", x, y, gamma=0.0, **kw)
    above = torch.sigmoid(x) >= 0.5
    assert above.any() and (~above).any()
    for got, f, ce in zip(reduced, focal, cross_entropy):
        torch.testing.assert_close(got[~above], ce[~above])
        torch.testing.assert_close(got[above], f[above] * 4.0, rtol=1e-5, atol=0.0)  # th^-gamma = 0.5^-2


# --------------------------------------------------------------------------------------------- softmax_focal
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_softmax_matches_torch_and_reference(threshold, dtype):
    n, c, s = SHAPE
    weight, alpha = torch.linspace(0.5, 1.5, c), torch.linspace(0.9, 0.1, c)
    for seed, scale in enumerate((1.0, 0.25)):  # wide rows, and rows whose p_t fall on both sides of every th
        x = (make_logits("random", SHAPE, seed=seed) * scale).to(dtype)
        t = torch.randint(0, c, (n, s), generator=torch.Generator().manual_seed(seed + 20))
        t[1, 2] = IGNORE
        for gamma in (0.5, 2.0):
            kw = dict(weight=weight, alpha=alpha, gamma=gamma, ignore_index=IGNORE, reduce_sum=False,
                      compute_grad=True, reduced_threshold=threshold)
            loss, grad = triton_forward("softmax_focal", x, t, **kw)
            check(loss, grad, *torch_forward("softmax_focal", x, t, **kw), dtype)
            want = reference_and_grad(reference.softmax_focal_loss, x, t, alpha=alpha, gamma=gamma, weight=weight,
                                      reduced_threshold=threshold)
            check(loss, grad, *want, dtype)


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_softmax_chunked_online_path(monkeypatch, threshold):
    """Rows wider than one class chunk take the online-softmax path, with the same reduced factor."""
    monkeypatch.setattr(triton_softmax, "_MAX_BLOCK_C", 4)
    x = make_logits("random", (5, 13, 2), seed=3) / 2
    t = torch.randint(0, 13, (5, 2), generator=torch.Generator().manual_seed(4))
    kw = dict(gamma=2.0, ignore_index=IGNORE, reduce_sum=False, compute_grad=True, reduced_threshold=threshold)
    loss, grad = triton_forward("softmax_focal", x, t, **kw)
    check(loss, grad, *torch_forward("softmax_focal", x, t, **kw), torch.float32)
    want = reference_and_grad(reference.softmax_focal_loss, x, t, gamma=2.0, reduced_threshold=threshold)
    check(loss, grad, *want, torch.float32)


# --------------------------------------------------------------------------------------------- both ops
def _call_inputs(op: str):
    x = make_logits("random", SHAPE, seed=7)
    if op == "sigmoid_focal":
        return x, _sigmoid_targets("index", x, seed=8), dict(alpha_pos=_alpha_vectors(SHAPE[1])[0])
    return x, torch.randint(0, SHAPE[1], (SHAPE[0], SHAPE[2]), generator=torch.Generator().manual_seed(8)), {}


@pytest.mark.parametrize("op", ["sigmoid_focal", "softmax_focal"])
def test_reduce_sum_and_compute_grad_false(op):
    x, t, tensors = _call_inputs(op)
    if op == "sigmoid_focal":
        tensors["alpha_neg"] = 1 - tensors["alpha_pos"]
    kw = dict(gamma=2.0, ignore_index=IGNORE, reduced_threshold=0.5, **tensors)
    loss, grad = triton_forward(op, x, t, reduce_sum=False, compute_grad=True, **kw)
    total, total_grad = triton_forward(op, x, t, reduce_sum=True, compute_grad=True, **kw)
    assert total.shape == () and total.dtype == torch.float32
    assert_close(total, loss.double().sum(), torch.float32)
    assert torch.equal(total_grad, grad)
    loss_only, none = triton_forward(op, x, t, reduce_sum=False, compute_grad=False, **kw)
    assert none is None
    assert torch.equal(loss_only, loss)
    total_only, none = triton_forward(op, x, t, reduce_sum=True, compute_grad=False, **kw)
    assert none is None
    assert torch.equal(total_only, total)


@pytest.mark.parametrize("op", ["sigmoid_focal", "softmax_focal"])
def test_threshold_one_is_the_cross_entropy(op):
    """th = 1: p_t >= 1 never holds at finite moderate logits, so the loss and gradient are gamma = 0's."""
    x, t, _ = _call_inputs(op)
    kw = dict(ignore_index=IGNORE, reduce_sum=False, compute_grad=True)
    reduced = triton_forward(op, x, t, gamma=2.0, reduced_threshold=1.0, **kw)
    cross_entropy = triton_forward(op, x, t, gamma=0.0, **kw)
    for got, want in zip(reduced, cross_entropy):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


EXTREMES = [-1.0e4, -500.0, -90.0, -20.0, -1.0, 0.0, 1.0, 20.0, 90.0, 500.0, 1.0e4]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_extreme_logits_are_finite_and_match_torch(threshold, dtype):
    values = torch.tensor(EXTREMES)
    k = len(EXTREMES)
    for gamma in (0.0, 0.5, 2.0):
        # sigmoid: every extreme logit with a positive, a negative and a soft target, as float and index targets
        x = values.repeat(3).reshape(3, 1, k).expand(3, 2, k).contiguous().to(dtype)
        y = torch.stack([torch.ones(2, k), torch.zeros(2, k), torch.full((2, k), 0.25)])
        index = torch.tensor([[0] * k, [2] * k, [1] * k])  # C = 2: class 0 positive, background, class 1 positive
        for t in (y, index):
            kw = dict(gamma=gamma, ignore_index=None, reduce_sum=False, compute_grad=True, reduced_threshold=threshold)
            loss, grad = triton_forward("sigmoid_focal", x, t, **kw)
            check(loss, grad, *torch_forward("sigmoid_focal", x, t, **kw), dtype)
        # softmax: rows with one extreme logit among ordinary ones, the target on and off it
        rows = torch.zeros(2 * k, 4)
        rows[:, 0] = values.repeat(2)
        rows[:, 1] = -3.0
        x = rows.to(dtype)
        t = torch.tensor([0] * k + [2] * k)
        kw = dict(gamma=gamma, ignore_index=None, reduce_sum=False, compute_grad=True, reduced_threshold=threshold)
        loss, grad = triton_forward("softmax_focal", x, t, **kw)
        check(loss, grad, *torch_forward("softmax_focal", x, t, **kw), dtype)


# --------------------------------------------------------------------------------------------- end to end
def _spy(monkeypatch, module):
    """Record the keyword arguments of every call of ``module.forward`` (the back-end looks it up at each call)."""
    calls = []
    original = module.forward

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "forward", recording)
    return calls


def _loss_and_grad(fn, x):
    x = x.clone().requires_grad_(True)
    loss = fn(x)
    loss.sum().backward()
    return loss.detach(), x.grad


def test_public_functions_run_on_triton_with_the_option(monkeypatch, gradient_mode):
    x = make_logits("random", (8, 4), seed=11)
    y = make_targets("random", (8, 4), seed=12)
    t = torch.randint(0, 4, (8,), generator=torch.Generator().manual_seed(13))
    x_dev, y_dev, t_dev = _dev(x), _dev(y), _dev(t)
    option = {"reduced_threshold": 0.5}
    assert backends.resolve_backend("sigmoid_focal", x_dev, y_dev, option, backend="triton") == "triton"
    assert backends.resolve_backend("softmax_focal", x_dev, t_dev, option, backend="triton") == "triton"

    def sigmoid(a):
        return focalkit.sigmoid_focal_loss(a, y_dev, reduced_threshold=0.5)

    def softmax(a):
        return focalkit.softmax_focal_loss(a, t_dev, reduction="none", reduced_threshold=0.5)

    monkeypatch.setenv(backends.ENV_VAR, "torch")
    want = [_loss_and_grad(sigmoid, x_dev), _loss_and_grad(softmax, x_dev)]
    monkeypatch.setenv(backends.ENV_VAR, "triton")
    assert backends.resolve_backend("sigmoid_focal", x_dev, y_dev, option) == "triton"
    sigmoid_calls = _spy(monkeypatch, triton_sigmoid)
    softmax_calls = _spy(monkeypatch, triton_softmax)
    got = [_loss_and_grad(sigmoid, x_dev), _loss_and_grad(softmax, x_dev)]
    assert sigmoid_calls and all(call["reduced_threshold"] == 0.5 for call in sigmoid_calls)
    assert softmax_calls and all(call["reduced_threshold"] == 0.5 for call in softmax_calls)
    for (loss, grad), (want_loss, want_grad) in zip(got, want):
        assert_close(loss.cpu(), want_loss.cpu(), torch.float32)
        assert_close(grad.cpu(), want_grad.cpu(), torch.float32)
