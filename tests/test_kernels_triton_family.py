"""Triton kernels of the loss family (quality focal, varifocal, Gaussian focal, distribution focal, asymmetric,
Poly-1 focal) vs the float64 reference and vs the PyTorch back-end, through Triton's CPU interpreter (or on a GPU).

Without CUDA the kernels run with ``TRITON_INTERPRET=1`` on CPU tensors, so this file needs Triton installed but no
GPU; with CUDA (or ``FOCALKIT_TRITON_TESTS=cuda``) the compiled kernels run on the GPU, and
``FOCALKIT_TRITON_TESTS=interpret`` forces the interpreter (as ``tests/test_kernels_triton.py``). Values and gradients
are compared with :mod:`focalkit.reference` (float64; gradients by autograd) evaluated at the kernel's rounded input,
and with :func:`forward` of the PyTorch back-end, over the probability bands x target patterns of ``conftest.py``.
Losses are float32 for every input dtype (fp32 tolerance); gradients are stored in the input dtype (its tolerance).
"""

from __future__ import annotations

import pytest
import torch
from triton_mode import check_kernels, choose_mode

# The interpreter must be on before triton itself is imported (tests/triton_mode.py).
ON_GPU = choose_mode("tests/test_kernels_triton_family.py")

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton); kernels not tested")

import focalkit  # noqa: E402
from conftest import BANDS, PATTERNS, assert_close, make_logits, make_targets  # noqa: E402
from focalkit import backends, reference  # noqa: E402
from focalkit.backends import pytorch as torch_backend  # noqa: E402
from focalkit.backends.triton import distribution as triton_distribution  # noqa: E402
from focalkit.backends.triton import logistic as triton_logistic  # noqa: E402

check_kernels(ON_GPU, [triton_logistic._logistic_loss_kernel, triton_distribution._distribution_focal_kernel],
              "tests/test_kernels_triton_family.py")

DEV = torch.device("cuda" if ON_GPU else "cpu")
FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SHAPE = (6, 5, 3)  # (N, C, S): small, with a spatial dim


def _dev(v):
    return v.to(DEV) if isinstance(v, torch.Tensor) else v


def triton_forward(op: str, x, t, **kw):
    """The Triton back-end's contract function of ``op`` on DEV; CPU results."""
    fn = backends.get_forward(op, "triton")
    loss, grad = fn(_dev(x), _dev(t), **{k: _dev(v) for k, v in kw.items()})
    assert loss.device.type == DEV.type
    return loss.cpu(), (None if grad is None else grad.cpu())


def torch_forward(op: str, x, t, **kw):
    return torch_backend.forward(op)(x, t, **kw)


def reference_and_grad(fn, x, *args, **kw):
    """Float64 reference loss at the (rounded) input and its gradient by autograd."""
    x64 = x.detach().to(torch.float64).requires_grad_(True)
    loss = fn(x64, *args, **kw)
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


def check_against(loss, grad, want_loss, want_grad, dtype, where=None):
    """Loss with the fp32 tolerance (fp32 output), gradient with the input dtype's; ``where`` selects elements."""
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
    assert_close(loss, want_loss, torch.float32)
    if where is not None:
        grad, want_grad = grad[where], want_grad[where]
    assert_close(grad, want_grad, dtype)


# --------------------------------------------------------------------------------------------- the elementwise ops
# op -> (contract scalars and element args, the float64 reference of the same loss)
def _alpha_vectors(c: int):
    a = torch.linspace(0.2, 0.8, c)
    return a, 1 - a


ELEMENTWISE = {
    "quality_focal": [
        (dict(beta=2.0), lambda x, y: reference.quality_focal_loss(x, y, beta=2.0)),
        (dict(beta=0.5), lambda x, y: reference.quality_focal_loss(x, y, beta=0.5)),
        (dict(beta=0.0), lambda x, y: reference.quality_focal_loss(x, y, beta=0.0)),
    ],
    "varifocal": [
        (dict(alpha=0.75, gamma=2.0, iou_weighted=1.0),
         lambda x, y: reference.varifocal_loss(x, y, alpha=0.75, gamma=2.0, iou_weighted=True)),
        (dict(alpha=0.5, gamma=0.0, iou_weighted=0.0),
         lambda x, y: reference.varifocal_loss(x, y, alpha=0.5, gamma=0.0, iou_weighted=False)),
    ],
    "gaussian_focal": [
        (dict(alpha=2.0, beta=4.0), lambda x, y: reference.gaussian_focal_loss(x, y, alpha=2.0, beta=4.0)),
        (dict(alpha=0.0, beta=0.0), lambda x, y: reference.gaussian_focal_loss(x, y, alpha=0.0, beta=0.0)),
    ],
    "asymmetric": [
        (dict(gamma_pos=0.0, gamma_neg=4.0, clip=0.05, detach_focal_weight=0.0),
         lambda x, y: reference.asymmetric_loss(x, y, 0.0, 4.0, 0.05)),
        (dict(gamma_pos=1.0, gamma_neg=2.0, clip=0.0, detach_focal_weight=0.0),
         lambda x, y: reference.asymmetric_loss(x, y, 1.0, 2.0, 0.0)),
        (dict(gamma_pos=1.0, gamma_neg=4.0, clip=0.2, detach_focal_weight=1.0),
         lambda x, y: reference.asymmetric_loss(x, y, 1.0, 4.0, 0.2, detach_focal_weight=True)),
    ],
    "poly1_focal": [
        (dict(gamma=2.0, epsilon=1.0), lambda x, y: reference.poly1_focal_loss(x, y, epsilon=1.0, alpha=None, gamma=2.0)),
        (dict(gamma=0.5, epsilon=-0.9, alpha_pos=_alpha_vectors(SHAPE[1])[0], alpha_neg=_alpha_vectors(SHAPE[1])[1]),
         lambda x, y: reference.poly1_focal_loss(x, y, epsilon=-0.9, alpha=_alpha_vectors(SHAPE[1])[0], gamma=0.5)),
    ],
}
CASES = [(op, i) for op, cases in ELEMENTWISE.items() for i in range(len(cases))]


def _well_conditioned(op: str, kw: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Elements whose float32 gradient is well conditioned: for quality_focal with beta < 1 the derivative has a
    cusp at p = y (|y - p|^(beta - 1)), where the fp32 rounding of y - p is amplified; those are left out."""
    if op != "quality_focal" or kw["beta"] >= 1:
        return None
    p = torch.sigmoid(x.double())
    return (y.double() - p).abs() > 1e-2


@pytest.mark.parametrize("op,case", CASES, ids=[f"{op}-{i}" for op, i in CASES])
@pytest.mark.parametrize("band", list(BANDS))
def test_elementwise_ops_match_reference_and_torch_backend(op, case, band):
    kw, ref = ELEMENTWISE[op][case]
    x = make_logits(band, SHAPE, seed=3)
    for pattern in PATTERNS:
        y = make_targets(pattern, SHAPE, seed=4)
        if op == "gaussian_focal" and pattern == "soft":
            y = torch.where(y > 0.8, torch.ones_like(y), y)  # a heatmap: peaks (y == 1) among soft values
        loss, grad = triton_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False, compute_grad=True)
        want_loss, want_grad = reference_and_grad(ref, x, y.double())
        where = _well_conditioned(op, kw, x, y)
        check_against(loss, grad, want_loss, want_grad, torch.float32, where)
        torch_loss, torch_grad = torch_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False, compute_grad=True)
        check_against(loss, grad, torch_loss.double(), torch_grad.double(), torch.float32, where)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("op", list(ELEMENTWISE))
def test_elementwise_ops_in_each_dtype(op, dtype):
    kw, ref = ELEMENTWISE[op][0]
    x = make_logits("random", SHAPE, seed=5).to(dtype)
    y = make_targets("soft", SHAPE, seed=6)
    y = torch.where(y > 0.7, (y > 0.85).float(), y).to(dtype)  # soft with some hard 0 / 1
    loss, grad = triton_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False, compute_grad=True)
    want_loss, want_grad = reference_and_grad(ref, x, y.double())  # the reference sees the rounded input
    check_against(loss, grad, want_loss, want_grad, dtype)
    torch_loss, torch_grad = torch_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False, compute_grad=True)
    assert torch_grad.dtype == grad.dtype
    check_against(loss, grad, torch_loss.double(), torch_grad.double(), dtype)


@pytest.mark.parametrize("op", list(ELEMENTWISE) + ["distribution_focal"])
def test_reduce_sum_and_compute_grad_false(op):
    x = make_logits("random", SHAPE, seed=7)
    if op == "distribution_focal":
        kw, y = {}, torch.rand((SHAPE[0], SHAPE[2]), generator=torch.Generator().manual_seed(8)) * (SHAPE[1] - 1)
    else:
        kw, y = ELEMENTWISE[op][0][0], make_targets("soft", SHAPE, seed=8)
    per_element, grad = triton_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False, compute_grad=True)
    alone, none = triton_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False, compute_grad=False)
    assert none is None and grad is not None
    assert torch.equal(alone, per_element)  # the gradient switch does not change the loss
    total, none = triton_forward(op, x, y, **kw, ignore_index=None, reduce_sum=True, compute_grad=False)
    assert none is None and total.shape == () and total.dtype == torch.float32
    assert_close(total, per_element.double().sum(), torch.float32)
    torch_total, _ = torch_forward(op, x, y, **kw, ignore_index=None, reduce_sum=True, compute_grad=False)
    assert_close(total, torch_total, torch.float32)


# --------------------------------------------------------------------------------------------- element arguments
def _index_targets(n: int, c: int, s: int, ignore_index: int, seed: int) -> torch.Tensor:
    """Class indices (N, S) with every kind of row: classes, background (C) and ignored."""
    t = torch.randint(0, c + 1, (n, s), generator=torch.Generator().manual_seed(seed))
    t[0, 0], t[1, 0], t[2, 1] = c, ignore_index, 0
    return t


@pytest.mark.parametrize("ignore_index", [-100, 2, None])
@pytest.mark.parametrize("with_scores", [True, False])
@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
def test_quality_index_targets_with_scores(ignore_index, with_scores, beta):
    n, c, s = SHAPE
    x = make_logits("random", SHAPE, seed=9)
    t = _index_targets(n, c, s, -100 if ignore_index is None else ignore_index, seed=10)
    scores = torch.rand((n, s), generator=torch.Generator().manual_seed(11)) if with_scores else None
    kw = dict(beta=beta, ignore_index=ignore_index)
    if scores is not None:
        kw["scores"] = scores
        scores_nan = torch.where(t == c, torch.full_like(scores, float("nan")), scores)  # never read off-label
    loss, grad = triton_forward("quality_focal", x, t, **kw, reduce_sum=False, compute_grad=True)
    # dense equivalent: y = score (or 1) in the labelled column, 0 elsewhere; ignored rows removed
    one_hot = (t.unsqueeze(1) == torch.arange(c).view(1, c, 1)).double()
    y = one_hot * (1.0 if scores is None else scores.double().unsqueeze(1))
    keep = torch.ones_like(one_hot) if ignore_index is None else (t != ignore_index).unsqueeze(1).double()
    want_loss, want_grad = reference_and_grad(
        lambda x64: reference.quality_focal_loss(x64, y, beta=beta) * keep, x)
    where = _well_conditioned("quality_focal", dict(beta=beta), x, y)
    check_against(loss, grad, want_loss, want_grad, torch.float32, where)
    torch_loss, torch_grad = torch_forward("quality_focal", x, t, **kw, reduce_sum=False, compute_grad=True)
    check_against(loss, grad, torch_loss.double(), torch_grad.double(), torch.float32, where)
    if ignore_index is not None:
        ignored = (t == ignore_index).unsqueeze(1).expand_as(loss)
        assert (loss[ignored] == 0).all() and (grad[ignored] == 0).all()
    if scores is not None:  # a NaN score of a background row stays out of the loss
        loss_nan, grad_nan = triton_forward("quality_focal", x, t, **{**kw, "scores": scores_nan},
                                            reduce_sum=False, compute_grad=True)
        assert torch.equal(loss_nan, loss) and torch.equal(grad_nan, grad)


@pytest.mark.parametrize("labels_dtype", [torch.bool, torch.int64, torch.float32])
def test_varifocal_labels(labels_dtype):
    x = make_logits("random", SHAPE, seed=12)
    q = make_targets("soft", SHAPE, seed=13)
    labels = make_targets("random", SHAPE, seed=14)  # independent of q > 0: the labels decide
    kw = dict(alpha=0.75, gamma=1.5, iou_weighted=1.0, labels=labels.to(labels_dtype))
    loss, grad = triton_forward("varifocal", x, q, **kw, reduce_sum=False, compute_grad=True)
    want_loss, want_grad = reference_and_grad(
        lambda x64: reference.varifocal_loss(x64, q.double(), 0.75, 1.5, True, labels=labels.double()), x)
    check_against(loss, grad, want_loss, want_grad, torch.float32)
    torch_loss, torch_grad = torch_forward("varifocal", x, q, **kw, reduce_sum=False, compute_grad=True)
    check_against(loss, grad, torch_loss.double(), torch_grad.double(), torch.float32)


# --------------------------------------------------------------------------------------------- distribution focal
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(7, 17), (2, 9, 5), (3, 2)])
def test_distribution_matches_reference_and_torch_backend(shape, dtype):
    n_bins = shape[1] - 1
    x = make_logits("random", shape, seed=15).to(dtype)
    row_shape = (shape[0], *shape[2:])
    y = torch.rand(row_shape, generator=torch.Generator().manual_seed(16)) * n_bins
    flat = y.view(-1)
    flat[0], flat[1], flat[-1] = 0.0, float(n_bins), float(n_bins // 2)  # both ends and an exact bin
    loss, grad = triton_forward("distribution_focal", x, y, reduce_sum=False, compute_grad=True)
    assert loss.shape == row_shape
    want_loss, want_grad = reference_and_grad(reference.distribution_focal_loss, x, y.double())
    check_against(loss, grad, want_loss, want_grad, dtype)
    torch_loss, torch_grad = torch_forward("distribution_focal", x, y, reduce_sum=False, compute_grad=True)
    check_against(loss, grad, torch_loss.double(), torch_grad.double(), dtype)


def test_distribution_noncontiguous_and_dominant_bin():
    base = make_logits("random", (4, 3, 11), seed=17) * 2
    x = base.transpose(1, 2)  # (4, 11, 3), bins not innermost, not contiguous
    y = torch.rand((4, 3), generator=torch.Generator().manual_seed(18)) * 10
    x = x.clone()
    x[0, 3, 0], y[0, 0] = 60.0, 3.0  # one bin dominates: -log p stays accurate (no rounding to 0)
    x = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert not x.is_contiguous()
    loss, grad = triton_forward("distribution_focal", x, y, reduce_sum=False, compute_grad=True)
    want_loss, want_grad = reference_and_grad(reference.distribution_focal_loss, x, y.double())
    check_against(loss, grad, want_loss, want_grad, torch.float32)
    assert loss[0, 0] > 0


# --------------------------------------------------------------------------------------------- extremes and edges
EXTREME_LOGITS = [-1e4, -1e3, -100.0, -30.0, 0.0, 30.0, 100.0, 1e3, 1e4]
EXTREME_SETTINGS = {
    "quality_focal": [dict(beta=0.0), dict(beta=0.5), dict(beta=2.0)],
    "varifocal": [dict(alpha=0.75, gamma=0.0, iou_weighted=1.0), dict(alpha=0.75, gamma=0.5, iou_weighted=0.0)],
    "gaussian_focal": [dict(alpha=0.0, beta=0.0), dict(alpha=0.5, beta=4.0)],
    "asymmetric": [dict(gamma_pos=0.0, gamma_neg=0.0, clip=0.05, detach_focal_weight=0.0),
                   dict(gamma_pos=0.5, gamma_neg=0.5, clip=0.0, detach_focal_weight=1.0)],
    "poly1_focal": [dict(gamma=0.0, epsilon=-1.0), dict(gamma=0.5, epsilon=2.0)],
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("op", list(EXTREME_SETTINGS))
def test_extremes_are_finite_and_match_torch_backend(op, dtype):
    values = torch.tensor(EXTREME_LOGITS)
    x = values.repeat(4).reshape(4, -1).t().contiguous().to(dtype)  # (9, 4): each logit with four targets
    y = torch.tensor([0.0, 1.0, 0.5, 1e-3]).repeat(len(EXTREME_LOGITS), 1).to(dtype)
    for kw in EXTREME_SETTINGS[op]:
        loss, grad = triton_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False, compute_grad=True)
        assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all(), (kw, loss, grad)
        assert (loss >= 0).all()
        torch_loss, torch_grad = torch_forward(op, x, y, **kw, ignore_index=None, reduce_sum=False,
                                               compute_grad=True)
        assert_close(loss, torch_loss, torch.float32)
        assert_close(grad.float(), torch_grad.float(), dtype)
    if op == "quality_focal":  # index targets at the extremes too
        t = torch.tensor([0, 1, 4, -100, 2, 3, 0, 1, 4])
        loss, grad = triton_forward(op, x, t, beta=0.5, ignore_index=-100, reduce_sum=False, compute_grad=True)
        assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_quality_cusp_at_p_equal_y(dtype):
    # x = 0 gives p = 1/2 exactly: d = y - p is 0 at y = 1/2 and one fp32 ulp away beside it (the cusp of beta < 1)
    x = torch.zeros(4, dtype=dtype)
    y = torch.tensor([0.5, 0.5 + 2.0**-24, 0.5 - 2.0**-25, 0.5 + 2.0**-10])
    for beta in (0.0, 0.05, 0.5):
        loss, grad = triton_forward("quality_focal", x, y, beta=beta, ignore_index=None, reduce_sum=False,
                                    compute_grad=True)
        assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
        assert loss[0].item() == pytest.approx(0.6931471805599453 if beta == 0 else 0.0, rel=1e-6)  # 0^0 = 1
        if beta > 0:
            assert grad[0].item() == 0.0  # 0 is a subgradient at the minimum
            assert grad[1] < 0 < grad[2]  # -sign(y - p): steepest next to the cusp, finite
        torch_loss, torch_grad = torch_forward("quality_focal", x, y, beta=beta, ignore_index=None,
                                               reduce_sum=False, compute_grad=True)
        assert_close(loss, torch_loss, torch.float32)
        assert_close(grad.float(), torch_grad.float(), dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_distribution_extremes_are_finite(dtype):
    x = torch.tensor([[1e4, -1e4, 0.0, 5.0], [-1e4, 1e4, -1e4, 0.0], [0.0, 0.0, 0.0, 0.0]]).to(dtype)
    y = torch.tensor([0.5, 2.9, 3.0])
    loss, grad = triton_forward("distribution_focal", x, y, reduce_sum=False, compute_grad=True)
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
    torch_loss, torch_grad = torch_forward("distribution_focal", x, y, reduce_sum=False, compute_grad=True)
    assert_close(loss, torch_loss, torch.float32)
    assert_close(grad.float(), torch_grad.float(), dtype)


@pytest.mark.parametrize("reduce_sum", [False, True])
def test_empty_inputs(reduce_sum):
    x = torch.randn(0, 4)
    for op, kw in {op: settings[0] for op, settings in EXTREME_SETTINGS.items()}.items():
        loss, grad = triton_forward(op, x, torch.rand(0, 4), **kw, ignore_index=None, reduce_sum=reduce_sum,
                                    compute_grad=True)
        assert grad.shape == x.shape and loss.shape == (() if reduce_sum else x.shape)
    loss, grad = triton_forward("distribution_focal", x, torch.rand(0), reduce_sum=reduce_sum, compute_grad=True)
    assert grad.shape == x.shape and loss.shape == (() if reduce_sum else (0,))


# --------------------------------------------------------------------------------------------- registration
def test_registered_and_dispatched_through_the_public_functions(monkeypatch):
    from focalkit.backends import triton as triton_backend

    for op in ("quality_focal", "varifocal", "gaussian_focal", "distribution_focal", "asymmetric", "poly1_focal"):
        assert op in triton_backend.IMPLEMENTS
        x = torch.zeros(2, 3, device=DEV)
        assert backends.unsupported_reasons("triton", op, x, torch.zeros(2, 3, device=DEV), forced=True) == []
    with pytest.raises(focalkit.InvalidArgumentError, match="loss: expected one of"):
        triton_logistic.launch("focal", torch.zeros(2, 3), torch.zeros(2, 3), scalars=(2.0,), ignore_index=None,
                               reduce_sum=False, compute_grad=False)
    wide = torch.zeros(2, triton_backend.DISTRIBUTION_MAX_BINS + 1)
    assert "bins" in " ".join(backends.unsupported_reasons("triton", "distribution_focal", wide, torch.zeros(2)))
    # forced through the environment variable: the public function runs the Triton kernel, forward and backward
    x = make_logits("random", (4, 3), seed=19).to(DEV)
    labels = torch.tensor([0, 3, 2, -100], device=DEV)
    scores = torch.rand(4, generator=torch.Generator().manual_seed(20)).to(DEV)
    results = {}
    for name in ("torch", "triton"):
        monkeypatch.setenv(backends.ENV_VAR, name)
        xg = x.clone().requires_grad_(True)
        loss = focalkit.quality_focal_loss(xg, (labels, scores), beta=2.0, reduction="sum")
        loss.backward()
        results[name] = (loss.detach().cpu(), xg.grad.cpu())
    assert backends.resolve_backend("quality_focal", x, labels, {"scores": scores}, backend="triton") == "triton"
    assert_close(results["triton"][0], results["torch"][0], torch.float32)
    assert_close(results["triton"][1], results["torch"][1], torch.float32)
