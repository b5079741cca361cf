"""Triton focal-loss kernels vs the float64 reference, run through Triton's CPU interpreter (or on a GPU).

Without CUDA the kernels (``focalkit.backends.triton.sigmoid`` / ``softmax``) are executed with
``TRITON_INTERPRET=1`` on CPU tensors, so this file needs Triton installed but no GPU. With CUDA (or
``FOCALKIT_TRITON_TESTS=cuda``) the same tests run the compiled kernels on the GPU; ``FOCALKIT_TRITON_TESTS=interpret``
forces the interpreter. Every kernel is compared with ``focalkit.reference``
(float64, written from Lin et al. 2017) on values and on gradients (autograd of the reference).

Tolerances: losses are computed in fp32 from the (possibly rounded) input, so they are compared with the reference
evaluated at the same rounded input with an fp32 tolerance for every dtype; gradients are stored in the input dtype,
so their tolerance depends on it (table ``GRAD_TOL``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from triton_mode import check_kernels, choose_mode

# The interpreter must be on before triton itself is imported (tests/triton_mode.py).
ON_GPU = choose_mode("tests/test_kernels_triton.py")

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton); kernels not tested")

try:  # the package is normally installed (pip install -e .); fall back to the source tree
    import focalkit  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from focalkit import reference  # noqa: E402
from focalkit.backends.triton import sigmoid as triton_sigmoid, softmax as triton_softmax  # noqa: E402

check_kernels(ON_GPU, [triton_sigmoid._sigmoid_focal_fwd_kernel, triton_softmax._softmax_focal_fwd_kernel],
              "tests/test_kernels_triton.py")

DEV = torch.device("cuda" if ON_GPU else "cpu")


def _dev(v):
    return v.to(DEV) if isinstance(v, torch.Tensor) else v


def _call(fn, x, t, **kw):
    """Run a host function on DEV (strides kept for tensors already there) and return CPU results."""
    loss, grad = fn(_dev(x), _dev(t), **{k: _dev(v) for k, v in kw.items()})
    assert loss.device.type == DEV.type
    return loss.cpu(), (None if grad is None else grad.cpu())


def sigmoid_focal_forward(x, t, **kw):
    return _call(triton_sigmoid.forward, x, t, **kw)


def softmax_focal_forward(x, t, **kw):
    return _call(triton_softmax.forward, x, t, **kw)


DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Relative / absolute tolerance of gradients stored in each dtype (fp16 subnormals start at 6e-8).
GRAD_TOL = {
    torch.float32: (2e-5, 1e-7),
    torch.float16: (1e-3, 1e-7),
    torch.bfloat16: (8e-3, 1e-30),
}
LOSS_TOL = (2e-5, 1e-7)  # fp32 output for every input dtype
GAMMAS = [0.0, 0.5, 2.0]


# --------------------------------------------------------------------------------------------- reference helpers
def _class_view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    if ndim >= 2:
        shape[1] = v.numel()
    return v.reshape(shape)


def ref_sigmoid(x, y, alpha_pos, alpha_neg, gamma, keep=None):
    """Float64 loss and gradient; ``y`` dense in [0, 1]; ``keep`` masks ignored columns."""
    x64 = x.detach().cpu().to(torch.float64).requires_grad_(True)
    y64 = y.cpu().to(torch.float64)
    loss = reference.sigmoid_focal_loss(x64, y64, alpha=None, gamma=gamma)
    ap = 1.0 if alpha_pos is None else _class_view(alpha_pos.double(), x.ndim)
    an = 1.0 if alpha_neg is None else _class_view(alpha_neg.double(), x.ndim)
    loss = loss * (ap * y64 + an * (1 - y64))
    if keep is not None:
        loss = loss * keep
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


def index_to_dense(t: torch.Tensor, num_classes: int, ignore_index: int):
    """One-hot of index targets along dim 1 (value C = background) and the keep mask of non-ignored columns."""
    t = t.cpu()
    keep = t != ignore_index
    tt = torch.where(keep, t, num_classes).clamp(0, num_classes)
    y = torch.nn.functional.one_hot(tt, num_classes + 1)[..., :num_classes].movedim(-1, 1).to(torch.float64)
    return y, keep.unsqueeze(1).to(torch.float64)


def ref_softmax(x, t, weight, alpha, gamma, ignore_index):
    x64 = x.detach().cpu().to(torch.float64).requires_grad_(True)
    t = t.cpu()
    t_ref = torch.where(t == ignore_index, torch.full_like(t, -100), t)
    loss = reference.softmax_focal_loss(
        x64, t_ref, alpha=None if alpha is None else alpha.double(), gamma=gamma,
        weight=None if weight is None else weight.double(),
    )
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float, atol: float, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    g = got.detach().to(torch.float64)
    assert torch.isfinite(g).all(), f"{what}: non-finite values"
    err = (g - want).abs()
    bound = atol + rtol * want.abs()
    worst = (err / bound).max().item() if err.numel() else 0.0
    assert worst <= 1.0, f"{what}: max |err| {err.max().item():.3e}, {worst:.2f}x the tolerance"


def max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    g = got.detach().to(torch.float64)
    return ((g - want).abs() / want.abs().clamp_min(1e-300)).max().item()


def soft_targets(shape, gen):
    y = torch.rand(shape, generator=gen)
    hard = torch.rand(shape, generator=gen) < 0.3
    return torch.where(hard, (y > 0.5).to(y.dtype), y)


# --------------------------------------------------------------------------------------------- sigmoid, dense
SIG_SHAPES = [(1,), (11,), (1, 1), (7, 5), (13, 3), (3, 5, 7), (2, 3, 4, 5), (1, 80)]


@pytest.mark.parametrize("shape", SIG_SHAPES)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_dense_matches_reference(shape, gamma):
    gen = torch.Generator().manual_seed(hash((shape, gamma)) % 2**31)
    x = torch.randn(shape, generator=gen) * 4
    y = soft_targets(shape, gen)
    c = shape[1] if len(shape) >= 2 else 1
    ap = torch.rand(c, generator=gen)
    an = torch.rand(c, generator=gen) if gamma != 0.5 else None
    loss, grad = sigmoid_focal_forward(x, y, alpha_pos=ap, alpha_neg=an, gamma=gamma, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    want_l, want_g = ref_sigmoid(x, y, ap, an, gamma)
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    assert_close(loss, want_l, *LOSS_TOL, "loss")
    assert_close(grad, want_g, *GRAD_TOL[torch.float32], "grad")
    total, none = sigmoid_focal_forward(x, y, alpha_pos=ap, alpha_neg=an, gamma=gamma, ignore_index=-100,
                                        reduce_sum=True, compute_grad=False)
    assert none is None and total.shape == () and total.dtype == torch.float32
    assert_close(total, want_l.sum(), 1e-5, 1e-6, "sum")


def test_sigmoid_dense_hard_targets_equal_closed_form_bce_at_gamma0():
    # gamma = 0, no alpha: the loss is the binary cross-entropy, written here independently of the reference.
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(9, 4, generator=gen).double() * 6
    y = (torch.rand(9, 4, generator=gen) > 0.5).double()
    want = torch.clamp(x, min=0) - x * y + torch.log1p(torch.exp(-x.abs()))
    loss, grad = sigmoid_focal_forward(x.float(), y.float(), alpha_pos=None, alpha_neg=None, gamma=0.0,
                                       ignore_index=-100, reduce_sum=False, compute_grad=True)
    assert_close(loss, want, *LOSS_TOL, "loss")
    assert_close(grad, torch.sigmoid(x) - y, *GRAD_TOL[torch.float32], "grad")


# --------------------------------------------------------------------------------------------- sigmoid, index targets
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (13, 3), (2, 3, 5), (3, 4, 3, 5), (1, 80)])
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_sigmoid_index_matches_reference(shape, gamma, ignore_index):
    gen = torch.Generator().manual_seed(hash((shape, gamma, ignore_index)) % 2**31)
    c = shape[1]
    x = torch.randn(shape, generator=gen) * 4
    t_shape = (shape[0],) + shape[2:]
    t = torch.randint(0, c + 1, t_shape, generator=gen)  # value c = background
    flat = t.view(-1)
    flat[0] = c  # at least one background column
    if flat.numel() > 1:
        flat[1] = ignore_index
    ap = torch.rand(c, generator=gen)
    an = torch.rand(c, generator=gen)
    loss, grad = sigmoid_focal_forward(x, t, alpha_pos=ap, alpha_neg=an, gamma=gamma, ignore_index=ignore_index,
                                       reduce_sum=False, compute_grad=True)
    y, keep = index_to_dense(t, c, ignore_index)
    want_l, want_g = ref_sigmoid(x, y, ap, an, gamma, keep=keep)
    assert_close(loss, want_l, *LOSS_TOL, "loss")
    assert_close(grad, want_g, *GRAD_TOL[torch.float32], "grad")
    if flat.numel() > 1:  # the ignored column is exactly zero
        ign = (t == ignore_index).unsqueeze(1).expand_as(x)
        assert (loss[ign] == 0).all() and (grad[ign] == 0).all()


def test_sigmoid_index_without_alpha_equals_dense_one_hot():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(17, 6, generator=gen) * 3
    t = torch.randint(0, 7, (17,), generator=gen)
    y, _ = index_to_dense(t, 6, -100)
    a = sigmoid_focal_forward(x, t, alpha_pos=None, alpha_neg=None, gamma=2.0, ignore_index=-100,
                              reduce_sum=False, compute_grad=True)
    b = sigmoid_focal_forward(x, y.float(), alpha_pos=None, alpha_neg=None, gamma=2.0, ignore_index=-100,
                              reduce_sum=False, compute_grad=True)
    assert_close(a[0], b[0].double(), 1e-6, 1e-9, "loss")
    assert_close(a[1], b[1].double(), 1e-6, 1e-9, "grad")


# --------------------------------------------------------------------------------------------- softmax
SM_SHAPES = [(1, 1), (1, 2), (7, 5), (13, 37), (5, 130), (2, 3, 5), (2, 7, 3, 3), (11, 2)]


@pytest.mark.parametrize("shape", SM_SHAPES)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_matches_reference(shape, gamma):
    gen = torch.Generator().manual_seed(hash((shape, gamma)) % 2**31)
    c = shape[1]
    x = torch.randn(shape, generator=gen) * 4
    t = torch.randint(0, c, (shape[0],) + shape[2:], generator=gen)
    if t.numel() > 1:
        t.view(-1)[1] = -100
    w = torch.rand(c, generator=gen) + 0.5
    a = torch.rand(c, generator=gen) if gamma != 0.5 else None
    loss, grad = softmax_focal_forward(x, t, weight=w, alpha=a, gamma=gamma, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    want_l, want_g = ref_softmax(x, t, w, a, gamma, -100)
    if c == 1:  # p_t = 1: the loss is constant 0; the reference's pow gives a NaN gradient for gamma < 1
        want_g = torch.zeros_like(want_g)
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    assert_close(loss, want_l, *LOSS_TOL, "loss")
    assert_close(grad, want_g, *GRAD_TOL[torch.float32], "grad")
    total, none = softmax_focal_forward(x, t, weight=w, alpha=a, gamma=gamma, ignore_index=-100,
                                        reduce_sum=True, compute_grad=False)
    assert none is None and total.shape == ()
    assert_close(total, want_l.sum(), 1e-5, 1e-6, "sum")


@pytest.mark.parametrize("shape", [(5, 37), (3, 20, 5), (2, 9)])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_softmax_chunked_online_path(monkeypatch, shape, gamma):
    # A class chunk narrower than C forces the online-softmax loop and the second (gradient) pass.
    monkeypatch.setattr(triton_softmax, "_MAX_BLOCK_C", 4)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=gen) * 5
    t = torch.randint(0, shape[1], (shape[0],) + shape[2:], generator=gen)
    t.view(-1)[0] = 7 if shape[1] > 7 else 0
    t.view(-1)[-1] = 255
    loss, grad = softmax_focal_forward(x, t, weight=None, alpha=None, gamma=gamma, ignore_index=255,
                                       reduce_sum=False, compute_grad=True)
    want_l, want_g = ref_softmax(x, t, None, None, gamma, 255)
    assert_close(loss, want_l, *LOSS_TOL, "loss")
    assert_close(grad, want_g, *GRAD_TOL[torch.float32], "grad")


def test_softmax_gamma0_equals_cross_entropy():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(19, 7, 3, generator=gen) * 3
    t = torch.randint(0, 7, (19, 3), generator=gen)
    t[0, 0] = -100
    w = torch.rand(7, generator=gen)
    x64 = x.double().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(x64, t, weight=w.double(), reduction="none")
    (g_ce,) = torch.autograd.grad(ce.sum(), x64)
    loss, grad = softmax_focal_forward(x, t, weight=w, alpha=None, gamma=0.0, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    assert_close(loss, ce.detach(), *LOSS_TOL, "loss")
    assert_close(grad, g_ce, *GRAD_TOL[torch.float32], "grad")


def test_softmax_ignored_and_out_of_range_rows_are_zero():
    x = torch.randn(4, 3)
    t = torch.tensor([0, -100, 3, -5])  # 3 and -5 are outside [0, C): treated as ignored, never read out of bounds
    loss, grad = softmax_focal_forward(x, t, weight=torch.ones(3), alpha=torch.ones(3), gamma=2.0,
                                       ignore_index=-100, reduce_sum=False, compute_grad=True)
    assert loss[0] > 0 and (loss[1:] == 0).all()
    assert (grad[1:] == 0).all() and (grad[0] != 0).all()


# --------------------------------------------------------------------------------------------- layouts
def _noncontiguous_cases():
    gen = torch.Generator().manual_seed(11)
    base = (torch.randn(6, 10, 4, 5, generator=gen) * 3).to(DEV)  # views made on the kernel's device
    return {
        "slice_classes": base[:, ::2],  # (6, 5, 4, 5), class stride 40
        "channels_last": base.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),  # class stride 1
        "transposed_2d": base[:, :, 0, 0].t().contiguous().t(),  # (6, 10) with strides (1, 6)
        "non_mergeable": base[:, :, ::2, :3],  # trailing dims cannot be merged: reshape copies
    }


@pytest.mark.parametrize("case", ["slice_classes", "channels_last", "transposed_2d", "non_mergeable"])
def test_noncontiguous_inputs(case):
    x = _noncontiguous_cases()[case]
    assert not x.is_contiguous()
    gen = torch.Generator().manual_seed(12)
    c = x.shape[1]
    t_shape = (x.shape[0],) + tuple(x.shape[2:])
    # dense targets, themselves non-contiguous
    y = soft_targets(x.shape[::-1], gen).to(DEV).permute(*reversed(range(x.ndim)))
    loss, grad = sigmoid_focal_forward(x, y, alpha_pos=None, alpha_neg=None, gamma=2.0, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    want_l, want_g = ref_sigmoid(x, y, None, None, 2.0)
    assert_close(loss, want_l, *LOSS_TOL, "sigmoid dense loss")
    assert_close(grad, want_g, *GRAD_TOL[torch.float32], "sigmoid dense grad")
    # index targets, non-contiguous
    t = torch.randint(0, c + 1, t_shape[::-1], generator=gen).to(DEV).permute(*reversed(range(len(t_shape))))
    t[(0,) * t.ndim] = -100
    loss, grad = sigmoid_focal_forward(x, t, alpha_pos=None, alpha_neg=None, gamma=0.5, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    yd, keep = index_to_dense(t, c, -100)
    want_l, want_g = ref_sigmoid(x, yd, None, None, 0.5, keep=keep)
    assert_close(loss, want_l, *LOSS_TOL, "sigmoid index loss")
    assert_close(grad, want_g, *GRAD_TOL[torch.float32], "sigmoid index grad")
    # softmax
    ts = t.clamp(max=c - 1)
    loss, grad = softmax_focal_forward(x, ts, weight=None, alpha=None, gamma=2.0, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    want_l, want_g = ref_softmax(x, ts, None, None, 2.0, -100)
    assert_close(loss, want_l, *LOSS_TOL, "softmax loss")
    assert_close(grad, want_g, *GRAD_TOL[torch.float32], "softmax grad")


# --------------------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dtypes(dtype):
    gen = torch.Generator().manual_seed(13)
    x = (torch.randn(9, 6, 5, generator=gen) * 4).to(dtype)
    xr = x.to(torch.float64)  # the reference sees the rounded input
    rtol_g, atol_g = GRAD_TOL[dtype]
    y = soft_targets(x.shape, gen).to(dtype)
    loss, grad = sigmoid_focal_forward(x, y, alpha_pos=torch.full((6,), 0.25), alpha_neg=torch.full((6,), 0.75),
                                       gamma=2.0, ignore_index=-100, reduce_sum=False, compute_grad=True)
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    want_l, want_g = ref_sigmoid(xr, y, torch.full((6,), 0.25), torch.full((6,), 0.75), 2.0)
    assert_close(loss, want_l, *LOSS_TOL, "sigmoid dense loss")
    assert_close(grad, want_g, rtol_g, atol_g, "sigmoid dense grad")

    t = torch.randint(0, 7, (9, 5), generator=gen)
    t[0, 0] = -100
    loss, grad = sigmoid_focal_forward(x, t, alpha_pos=None, alpha_neg=None, gamma=0.5, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    assert grad.dtype == dtype
    yd, keep = index_to_dense(t, 6, -100)
    want_l, want_g = ref_sigmoid(xr, yd, None, None, 0.5, keep=keep)
    assert_close(loss, want_l, *LOSS_TOL, "sigmoid index loss")
    assert_close(grad, want_g, rtol_g, atol_g, "sigmoid index grad")

    ts = t.clamp(max=5)
    alpha = torch.rand(6, generator=gen)
    loss, grad = softmax_focal_forward(x, ts, weight=None, alpha=alpha, gamma=2.0, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    want_l, want_g = ref_softmax(xr, ts, None, alpha, 2.0, -100)
    assert_close(loss, want_l, *LOSS_TOL, "softmax loss")
    assert_close(grad, want_g, rtol_g, atol_g, "softmax grad")


# --------------------------------------------------------------------------------------------- tails and extremes
TAILS = [-17.0, -12.0, -9.0, 9.0, 12.0, 17.0]


@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_tails_relative_error(gamma):
    x = torch.tensor(TAILS).repeat(2)  # each tail with y = 0 and y = 1
    y = torch.tensor([0.0] * 6 + [1.0] * 6)
    t = torch.tensor([1] * 6 + [0] * 6)  # as index targets with C = 1: 1 = background, 0 = positive
    want_l, want_g = ref_sigmoid(x.unsqueeze(1), y.unsqueeze(1), None, None, gamma)
    for targets in (y.unsqueeze(1), t):
        loss, grad = sigmoid_focal_forward(x.unsqueeze(1), targets, alpha_pos=None, alpha_neg=None, gamma=gamma,
                                           ignore_index=-100, reduce_sum=False, compute_grad=True)
        assert max_rel_err(loss, want_l) <= 1e-4, (targets.dtype, loss, want_l)
        assert max_rel_err(grad, want_g) <= 1e-4, (targets.dtype, grad, want_g)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_tails_relative_error(gamma):
    rows = []
    for m in TAILS:
        rows.append([m, 0.0, 0.0, -3.0])  # target 0 at margin m over the others
    x = torch.tensor(rows)
    t = torch.zeros(len(rows), dtype=torch.int64)
    loss, grad = softmax_focal_forward(x, t, weight=None, alpha=None, gamma=gamma, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    want_l, want_g = ref_softmax(x, t, None, None, gamma, -100)
    assert max_rel_err(loss, want_l) <= 1e-4
    assert max_rel_err(grad, want_g) <= 1e-4


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_extremes_are_finite(dtype, gamma):
    vals = torch.tensor([-1e4, -1e3, -100.0, -30.0, 0.0, 30.0, 100.0, 1e3, 1e4])
    x = vals.repeat(4).reshape(4, 9).t().contiguous().to(dtype)  # (9, 4)
    y = torch.tensor([0.0, 1.0, 0.5, 1e-3]).repeat(9, 1).to(dtype)
    t = torch.tensor([0, 1, 4, -100] * 2 + [2])
    for targets in (y, t):
        loss, grad = sigmoid_focal_forward(x, targets, alpha_pos=None, alpha_neg=None, gamma=gamma,
                                           ignore_index=-100, reduce_sum=False, compute_grad=True)
        assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all(), (targets.dtype, loss, grad)
        assert (loss >= 0).all()
    loss, grad = softmax_focal_forward(x, t.clamp(max=3), weight=None, alpha=None, gamma=gamma, ignore_index=-100,
                                       reduce_sum=False, compute_grad=True)
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
    assert (loss >= 0).all()
    # rows of a single huge logit: the target either dominates or is dominated by 2e4
    xs = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]]).to(dtype)
    loss, grad = softmax_focal_forward(xs, torch.tensor([0, 0]), weight=None, alpha=None, gamma=gamma,
                                       ignore_index=-100, reduce_sum=False, compute_grad=True)
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
    margin = xs[1, 1].item() - xs[1, 0].item()  # -log p_t of row 1 is this margin (u = 1)
    assert loss[0] == 0 and abs(loss[1].item() - margin) <= 1e-6 * margin


# --------------------------------------------------------------------------------------------- contract details
def test_determinism_bit_identical():
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(37, 11, 13, generator=gen) * 3
    y = soft_targets(x.shape, gen)
    t = torch.randint(0, 11, (37, 13), generator=gen)
    for fn, tg, kw in (
        (sigmoid_focal_forward, y, dict(alpha_pos=None, alpha_neg=None)),
        (sigmoid_focal_forward, t, dict(alpha_pos=None, alpha_neg=None)),
        (softmax_focal_forward, t, dict(weight=None, alpha=None)),
    ):
        a = fn(x, tg, gamma=2.0, ignore_index=-100, reduce_sum=True, compute_grad=True, **kw)
        b = fn(x.clone(), tg.clone(), gamma=2.0, ignore_index=-100, reduce_sum=True, compute_grad=True, **kw)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert a[0].item() > 0


def test_compute_grad_false_returns_none_and_same_loss():
    gen = torch.Generator().manual_seed(19)
    x = torch.randn(5, 7, generator=gen)
    t = torch.randint(0, 7, (5,), generator=gen)
    for fn, kw in ((sigmoid_focal_forward, dict(alpha_pos=None, alpha_neg=None)),
                   (softmax_focal_forward, dict(weight=None, alpha=None))):
        l1, g1 = fn(x, t, gamma=2.0, ignore_index=-100, reduce_sum=False, compute_grad=False, **kw)
        l2, g2 = fn(x, t, gamma=2.0, ignore_index=-100, reduce_sum=False, compute_grad=True, **kw)
        assert g1 is None and g2 is not None
        assert torch.equal(l1, l2)


@pytest.mark.parametrize("reduce_sum", [False, True])
@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (2, 3, 0)])
def test_empty_inputs(shape, reduce_sum):
    x = torch.randn(shape)
    t_shape = (shape[0],) + shape[2:]
    for fn, tg, kw in (
        (sigmoid_focal_forward, torch.rand(shape), dict(alpha_pos=None, alpha_neg=None)),
        (sigmoid_focal_forward, torch.zeros(t_shape, dtype=torch.int64), dict(alpha_pos=None, alpha_neg=None)),
        (softmax_focal_forward, torch.zeros(t_shape, dtype=torch.int64), dict(weight=None, alpha=None)),
    ):
        loss, grad = fn(x, tg, gamma=2.0, ignore_index=-100, reduce_sum=reduce_sum, compute_grad=True, **kw)
        assert grad.shape == x.shape and grad.dtype == x.dtype
        if reduce_sum:
            assert loss.shape == () and loss.item() == 0.0
        else:
            want = x.shape if fn is sigmoid_focal_forward else t_shape
            assert loss.shape == want and loss.dtype == torch.float32


def test_ignore_index_none_ignores_nothing():
    # The dispatcher passes ignore_index=None when nothing is ignored; -100 is then an ordinary (out-of-range) value.
    gen = torch.Generator().manual_seed(23)
    x = torch.randn(6, 4, generator=gen) * 3
    t = torch.tensor([0, 4, 3, 1, 4, 2])
    a = sigmoid_focal_forward(x, t, alpha_pos=None, alpha_neg=None, gamma=2.0, ignore_index=None,
                              reduce_sum=False, compute_grad=True)
    y, _ = index_to_dense(t, 4, -100)
    want_l, want_g = ref_sigmoid(x, y, None, None, 2.0)
    assert_close(a[0], want_l, *LOSS_TOL, "sigmoid loss")
    assert_close(a[1], want_g, *GRAD_TOL[torch.float32], "sigmoid grad")
    ts = t.clamp(max=3)
    b = softmax_focal_forward(x, ts, weight=None, alpha=None, gamma=2.0, ignore_index=None, reduce_sum=False,
                              compute_grad=True)
    want_l, want_g = ref_softmax(x, ts, None, None, 2.0, -100)
    assert_close(b[0], want_l, *LOSS_TOL, "softmax loss")
    assert_close(b[1], want_g, *GRAD_TOL[torch.float32], "softmax grad")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_public_loss_backward_holds_one_gradient_buffer(monkeypatch, reduction):
    """Through the public function on the Triton back-end, the backward's gradient buffer (a reshaped view of the
    kernel's output) is scaled by the incoming gradient in place (a GPU's 1, a mean's 1 / N): at most one
    logits-sized buffer at the peak of forward + backward."""
    monkeypatch.setenv("FOCALKIT_BACKEND", "triton")
    x = (torch.randn(2000, 80, generator=torch.Generator().manual_seed(3)) * 3).to(DEV).requires_grad_(True)
    y = (torch.rand(2000, 80, generator=torch.Generator().manual_seed(4)) < 0.1).float().to(DEV)
    logits_bytes = x.numel() * x.element_size()

    def loss_of(logits, targets):
        return focalkit.sigmoid_focal_loss(logits, targets, reduction=reduction)

    if ON_GPU:
        loss_of(x, y).backward()  # warm-up: compiles the kernels
        x.grad = None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        loss_of(x, y).backward()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        from focalkit_app.bench._runner import peak_extra_bytes

        peak = peak_extra_bytes(loss_of, x, y)
    assert peak <= 1.01 * logits_bytes + 262144
