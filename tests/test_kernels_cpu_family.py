"""Fused CPU kernels of the loss family (quality focal, varifocal, Gaussian focal, asymmetric, Poly-1 focal: one
logistic-family kernel; distribution focal: a per-row kernel) against the float64 reference and the PyTorch back-end.

Values and gradients are compared with :mod:`focalkit.reference` (gradients by float64 autograd through it) over
the probability bands and target patterns of ``conftest``, every kernel dtype and parameter grids, and with the
PyTorch back-end's ``forward`` (the same closed forms) over odd shapes; then index targets with background and
ignored rows, the per-element ``scores`` / ``labels``, ``reduce_sum``, ``compute_grad=False``, finiteness at
|logit| up to 1e4, invalid targets, thread-count independence of sums, the baseline build and dispatch. No timing
here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import focalkit
from focalkit import InvalidArgumentError, reference
from focalkit.backends import get_forward, resolve_backend
from focalkit.backends.cpu import library as cpu_lib

from conftest import BANDS, FLOAT_DTYPES, PATTERNS, assert_close, make_logits, make_targets

pytestmark = pytest.mark.skipif(not cpu_lib.available(), reason=f"CPU kernels not built: {cpu_lib.load_error()}")

ELEMENTWISE_OPS = ["quality_focal", "varifocal", "gaussian_focal", "asymmetric", "poly1_focal"]
ALL_OPS = [*ELEMENTWISE_OPS, "distribution_focal"]

# Scalar parameters per op: the paper's defaults and the edges of their ranges (0, below 1, negative epsilon).
PARAMS = {
    "quality_focal": [dict(beta=2.0), dict(beta=0.0), dict(beta=0.5)],
    "varifocal": [dict(alpha=0.75, gamma=2.0, iou_weighted=1.0), dict(alpha=0.25, gamma=0.5, iou_weighted=0.0),
                  dict(alpha=1.0, gamma=0.0, iou_weighted=1.0)],
    "gaussian_focal": [dict(alpha=2.0, beta=4.0), dict(alpha=0.0, beta=0.0), dict(alpha=0.5, beta=1.5)],
    "asymmetric": [dict(gamma_pos=0.0, gamma_neg=4.0, clip=0.05, detach_focal_weight=0.0),
                   dict(gamma_pos=1.0, gamma_neg=0.5, clip=0.0, detach_focal_weight=0.0),
                   dict(gamma_pos=0.5, gamma_neg=2.0, clip=0.2, detach_focal_weight=1.0),
                   dict(gamma_pos=2.0, gamma_neg=0.0, clip=0.0, detach_focal_weight=1.0)],
    "poly1_focal": [dict(gamma=2.0, epsilon=1.0), dict(gamma=0.5, epsilon=-1.0), dict(gamma=0.0, epsilon=-0.5)],
    "distribution_focal": [dict()],
}
CASES = [(op, i) for op in ALL_OPS for i in range(len(PARAMS[op]))]


def _contract_args(op: str, params: dict) -> dict:
    """The contract's keyword arguments of ``op`` besides the tensors and the two flags."""
    args = dict(params)
    if op in ("quality_focal", "asymmetric", "poly1_focal"):
        args["ignore_index"] = None
    return args


def _run(backend, op, x, y, params, *, reduce_sum=False, compute_grad=True, **tensors):
    return get_forward(op, backend)(x, y, **tensors, **_contract_args(op, params), reduce_sum=reduce_sum,
                                    compute_grad=compute_grad)


# ------------------------------------------------------------------------------------------------ float64 reference
def _reference_loss(op, x64, y64, params, labels=None, alpha_pos=None, alpha_neg=None):
    """Per-element (per-row for distribution) float64 losses from focalkit.reference."""
    if op == "quality_focal":
        return reference.quality_focal_loss(x64, y64, params["beta"])
    if op == "varifocal":
        return reference.varifocal_loss(x64, y64, params["alpha"], params["gamma"], bool(params["iou_weighted"]),
                                        labels=None if labels is None else labels.double())
    if op == "gaussian_focal":
        return reference.gaussian_focal_loss(x64, y64, params["alpha"], params["beta"])
    if op == "asymmetric":
        return reference.asymmetric_loss(x64, y64, params["gamma_pos"], params["gamma_neg"], params["clip"],
                                         detach_focal_weight=bool(params["detach_focal_weight"]))
    if op == "poly1_focal":
        if alpha_pos is None:
            return reference.poly1_focal_loss(x64, y64, params["epsilon"], alpha=None, gamma=params["gamma"])
        # per-class alpha weighs the focal term only; the poly term is not alpha-weighted
        shape = [1] * x64.ndim
        shape[1] = x64.shape[1]
        a_t = alpha_pos.double().view(shape) * y64 + alpha_neg.double().view(shape) * (1 - y64)
        focal = reference.sigmoid_focal_loss(x64, y64, alpha=None, gamma=params["gamma"]) * a_t
        u = torch.sigmoid(x64) * (1 - y64) + torch.sigmoid(-x64) * y64
        return focal + params["epsilon"] * u ** (params["gamma"] + 1)
    return reference.distribution_focal_loss(x64, y64)


def _reference(op, x, y, params, valid=None, **tensors):
    """(loss, d sum(loss) / d x) in float64 on the already-rounded inputs; ``valid`` masks ignored rows."""
    x64 = x.detach().double().requires_grad_(True)
    loss = _reference_loss(op, x64, y.double(), params, **tensors)
    if valid is not None:
        loss = loss * valid
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


def _targets_for(op, pattern, x_shape, seed=1):
    """Targets of an op: the conftest pattern (quality, varifocal, gaussian, asymmetric, poly1), or distances in
    [0, n] for distribution (one per row)."""
    if op == "distribution_focal":
        n = x_shape[1] - 1
        rows = (x_shape[0], *x_shape[2:])
        return {"zeros": torch.zeros(rows), "ones": torch.full(rows, float(n)),
                "random": torch.randint(0, n + 1, rows, generator=torch.Generator().manual_seed(seed)).float(),
                "soft": torch.rand(rows, generator=torch.Generator().manual_seed(seed)) * n}[pattern]
    return make_targets(pattern, x_shape, seed)


def _shape_for(op):
    return (9, 17) if op == "distribution_focal" else (6, 5)


def _tolerance_scale(op, params, pattern):
    """The cusp of beta < 1 amplifies the float32 rounding of |y - p| for soft targets (|y - p|^(beta - 1))."""
    return 10.0 if op == "quality_focal" and params.get("beta", 1.0) < 1 and pattern == "soft" else 1.0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("band", list(BANDS))
@pytest.mark.parametrize("op,case", CASES)
def test_matches_float64_reference(op, case, band, pattern, dtype):
    params = PARAMS[op][case]
    shape = _shape_for(op)
    x = make_logits(band, shape).to(dtype)
    y = _targets_for(op, pattern, shape)
    loss, grad = _run("cpu", op, x, y, params)
    ref_loss, ref_grad = _reference(op, x, y, params)
    assert loss.dtype == torch.float32 and grad.dtype == dtype and grad.shape == x.shape
    scale = _tolerance_scale(op, params, pattern)
    assert_close(loss, ref_loss, dtype, scale)
    assert_close(grad, ref_grad, dtype, scale)


@pytest.mark.parametrize("shape", [(1, 1), (7,), (257, 3), (3, 7, 11), (2, 3, 5, 7), (5, 300)])
@pytest.mark.parametrize("op,case", [c for c in CASES if c[0] != "distribution_focal"])
def test_elementwise_ops_match_the_torch_backend(op, case, shape):
    """Same closed forms in both back-ends: agreement to float32 rounding over odd shapes (chunk tails, spatial dims,
    rows longer than a 256-element chunk) and wide logits."""
    params = PARAMS[op][case]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g) * 8
    y = torch.rand(shape, generator=g)
    y[..., ::3] = 0.0
    if len(shape) > 1:
        y[1::4, ...] = 1.0
    cpu_loss, cpu_grad = _run("cpu", op, x, y, params)
    torch_loss, torch_grad = _run("torch", op, x, y, params)
    assert_close(cpu_loss, torch_loss, torch.float32, 2.0)
    assert_close(cpu_grad, torch_grad, torch.float32, 2.0)


# ------------------------------------------------------------------------------------------------ quality, index targets
def _index_reference(x, labels, scores, beta, ignore_index):
    """Dense quality targets (score in the labelled column, C = background) and the row-validity mask."""
    c = x.shape[1]
    shape = [x.shape[0], 1, *x.shape[2:]]
    t = labels.reshape(shape)
    classes = torch.arange(c).reshape([1, c] + [1] * (x.ndim - 2))
    score = torch.ones(shape) if scores is None else scores.reshape(shape).float()
    dense = torch.where(t == classes, score, torch.zeros(())).expand(x.shape)
    valid = (t != ignore_index).double().expand(x.shape) if ignore_index is not None else None
    return dense, valid


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("with_scores", [True, False])
@pytest.mark.parametrize("shape", [(13, 5), (1, 300), (3, 4, 7), (2, 3, 5, 6)])
@pytest.mark.parametrize("beta", [2.0, 0.0, 0.5])
def test_quality_index_targets_background_ignore_and_scores(beta, shape, with_scores, dtype):
    g = torch.Generator().manual_seed(5)
    c = shape[1]
    rows = (shape[0], *shape[2:])
    x = (torch.randn(shape, generator=g) * 4).to(dtype)
    labels = torch.randint(0, c + 1, rows, generator=g)  # c: background
    labels.view(-1)[::3] = -100
    scores = torch.rand(rows, generator=g) if with_scores else None
    extra = {"scores": scores} if with_scores else {}
    loss, grad = get_forward("quality_focal", "cpu")(x, labels, **extra, beta=beta, ignore_index=-100,
                                                     reduce_sum=False, compute_grad=True)
    dense, valid = _index_reference(x, labels, scores, beta, -100)
    ref_loss, ref_grad = _reference("quality_focal", x, dense, dict(beta=beta), valid=valid)
    scale = 10.0 if beta < 1 and with_scores else 1.0
    assert_close(loss, ref_loss, dtype, scale)
    assert_close(grad, ref_grad, dtype, scale)
    ignored = (labels == -100).unsqueeze(1).expand(shape)
    assert (loss[ignored] == 0).all() and (grad[ignored] == 0).all()
    torch_loss, torch_grad = get_forward("quality_focal", "torch")(x, labels, **extra, beta=beta, ignore_index=-100,
                                                                   reduce_sum=False, compute_grad=True)
    assert_close(loss, torch_loss, dtype, 2.0)
    assert_close(grad, torch_grad, dtype, 2.0)


def test_quality_scores_are_ignored_with_dense_targets_as_in_the_torch_backend():
    x = torch.randn(4, 3)
    y = torch.rand(4, 3)
    with_scores = get_forward("quality_focal", "cpu")(x, y, scores=torch.rand(4, 3), beta=2.0, ignore_index=None,
                                                      reduce_sum=False, compute_grad=True)
    without = get_forward("quality_focal", "cpu")(x, y, beta=2.0, ignore_index=None, reduce_sum=False,
                                                  compute_grad=True)
    torch.testing.assert_close(with_scores, without, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ element args, alpha
@pytest.mark.parametrize("label_dtype", [torch.float32, torch.float16, torch.bfloat16, torch.bool, torch.int64])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_varifocal_labels_element_argument(dtype, label_dtype):
    """Labels (the YOLO form) of any real dtype, disagreeing with q > 0 on purpose."""
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(6, 40, generator=g) * 4).to(dtype)
    q = torch.rand(6, 40, generator=g)
    q[:, ::2] = 0.0
    labels = torch.rand(6, 40, generator=g) > 0.5
    labels = labels.to(label_dtype)
    params = dict(alpha=0.75, gamma=2.0, iou_weighted=1.0)
    loss, grad = _run("cpu", "varifocal", x, q, params, labels=labels)
    ref_loss, ref_grad = _reference("varifocal", x, q, params, labels=labels.float())
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(11, 7), (3, 7, 5), (2, 300)])
@pytest.mark.parametrize("case", range(len(PARAMS["poly1_focal"])))
def test_poly1_focal_per_class_alpha(case, shape, dtype):
    params = PARAMS["poly1_focal"][case]
    g = torch.Generator().manual_seed(9)
    c = shape[1]
    x = (torch.randn(shape, generator=g) * 4).to(dtype)
    y = (torch.rand(shape, generator=g) > 0.7).float()
    alpha_pos, alpha_neg = torch.rand(c, generator=g), torch.rand(c, generator=g)
    loss, grad = _run("cpu", "poly1_focal", x, y, params, alpha_pos=alpha_pos, alpha_neg=alpha_neg)
    ref_loss, ref_grad = _reference("poly1_focal", x, y, params, alpha_pos=alpha_pos, alpha_neg=alpha_neg)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


# ------------------------------------------------------------------------------------------------ distribution focal
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(1, 2), (5, 17), (4, 5, 3, 2), (3, 9, 7)])
def test_distribution_focal_shapes_and_edges(shape, dtype):
    """Rows of any bin count, spatial dims, and targets at 0, at the top (clamped to n - 0.01) and on bins."""
    g = torch.Generator().manual_seed(11)
    n = shape[1] - 1
    rows = (shape[0], *shape[2:])
    x = (torch.randn(shape, generator=g) * 5).to(dtype)
    y = torch.rand(rows, generator=g) * n
    flat = y.view(-1)
    flat[0] = 0.0
    flat[-1] = float(n)
    if flat.numel() > 2:
        flat[1] = n - 0.004
    loss, grad = _run("cpu", "distribution_focal", x, y, {})
    assert loss.shape == y.shape
    ref_loss, ref_grad = _reference("distribution_focal", x, y, {})
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    torch_loss, torch_grad = _run("torch", "distribution_focal", x, y, {})
    assert_close(loss, torch_loss, dtype, 2.0)
    assert_close(grad, torch_grad, dtype, 2.0)


def test_distribution_focal_confident_rows_keep_relative_accuracy():
    """One dominant bin: -log p of the dominant bin is tiny and still accurate (log S as log1p; float64
    log_softmax rounds it to 0, so the expected value is written out: -log p_3 = log1p(8 e^-40))."""
    x = torch.full((4, 9), -20.0)
    x[:, 3] = 20.0
    y = torch.full((4,), 3.0)
    loss, _ = _run("cpu", "distribution_focal", x, y, {})
    expected = torch.log1p(8 * torch.exp(torch.tensor(-40.0, dtype=torch.float64))).expand(4)
    assert (loss > 0).all()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------------ flags
@pytest.mark.parametrize("op,case", CASES)
def test_reduce_sum_and_no_gradient(op, case):
    params = PARAMS[op][case]
    shape = (37, 17) if op == "distribution_focal" else (37, 11, 3)
    x = make_logits("random", shape, seed=2)
    y = _targets_for(op, "soft", shape)
    loss, grad = _run("cpu", op, x, y, params)
    total, no_grad = _run("cpu", op, x, y, params, reduce_sum=True, compute_grad=False)
    assert no_grad is None and total.ndim == 0 and total.dtype == torch.float32
    torch.testing.assert_close(total.double(), loss.double().sum(), rtol=1e-6, atol=1e-6)
    per_element, none = _run("cpu", op, x, y, params, compute_grad=False)
    assert none is None
    # the loops with and without the gradient are compiled separately; where a product also feeds the gradient the
    # compiler may not fuse it into a multiply-add, so a loss may differ in its last bit (one float32 rounding)
    torch.testing.assert_close(per_element, loss, rtol=2.0 ** -23, atol=0)


@pytest.mark.parametrize("op", ALL_OPS)
def test_inputs_are_not_modified_and_may_be_non_contiguous(op):
    params = PARAMS[op][0]
    base = make_logits("random", (17, 12), seed=4)
    x = base.t() if op != "distribution_focal" else base[:, ::2]  # non-contiguous views
    y = _targets_for(op, "soft", tuple(x.shape))
    x_before, y_before = x.clone(), y.clone()
    loss, grad = _run("cpu", op, x, y, params)
    ref_loss, ref_grad = _run("cpu", op, x.contiguous(), y, params)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=0)
    assert torch.equal(x, x_before) and torch.equal(y, y_before)


def test_empty_inputs():
    for op in ELEMENTWISE_OPS:
        loss, grad = _run("cpu", op, torch.zeros(0, 3), torch.zeros(0, 3), PARAMS[op][0])
        assert loss.shape == (0, 3) and grad.shape == (0, 3)
        total, _ = _run("cpu", op, torch.zeros(0, 3), torch.zeros(0, 3), PARAMS[op][0], reduce_sum=True)
        assert float(total) == 0.0
    loss, grad = _run("cpu", "distribution_focal", torch.zeros(0, 5), torch.zeros(0), {})
    assert loss.shape == (0,) and grad.shape == (0, 5)


# ------------------------------------------------------------------------------------------------ extreme logits
EXTREME_PARAMS = {
    "quality_focal": [dict(beta=0.0), dict(beta=0.25), dict(beta=2.0), dict(beta=6.0)],
    "varifocal": [dict(alpha=0.0, gamma=0.0, iou_weighted=0.0), dict(alpha=0.75, gamma=0.25, iou_weighted=1.0),
                  dict(alpha=1.0, gamma=5.0, iou_weighted=1.0)],
    "gaussian_focal": [dict(alpha=0.0, beta=0.0), dict(alpha=0.25, beta=0.5), dict(alpha=4.0, beta=8.0)],
    "asymmetric": [dict(gamma_pos=0.0, gamma_neg=0.0, clip=0.0, detach_focal_weight=0.0),
                   dict(gamma_pos=0.25, gamma_neg=0.25, clip=0.05, detach_focal_weight=0.0),
                   dict(gamma_pos=4.0, gamma_neg=4.0, clip=1.0, detach_focal_weight=0.0),
                   dict(gamma_pos=0.5, gamma_neg=0.5, clip=0.5, detach_focal_weight=1.0)],
    "poly1_focal": [dict(gamma=0.0, epsilon=-1.0), dict(gamma=0.25, epsilon=-1.0), dict(gamma=2.0, epsilon=5.0)],
    "distribution_focal": [dict()],
}
EXTREME_CASES = [(op, i) for op in ALL_OPS for i in range(len(EXTREME_PARAMS[op]))]


def _extreme_logits(shape, dtype):
    values = torch.tensor([-1e4, -1e3, -120.0, -90.0, -88.5, -40.0, -17.0, -1e-3, 0.0, 1e-3, 17.0, 40.0, 88.5, 90.0,
                           120.0, 1e3, 1e4])
    n = torch.Size(shape).numel()
    return values.repeat((n + values.numel() - 1) // values.numel())[:n].reshape(shape).to(dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op,case", EXTREME_CASES)
def test_finite_at_extreme_logits_and_close_to_the_torch_backend(op, case, dtype):
    params = EXTREME_PARAMS[op][case]
    shape = (17, 5) if op == "distribution_focal" else (17, 4)
    x = _extreme_logits(shape, dtype)
    if op == "distribution_focal":
        y = torch.linspace(0, 4, 17)
    else:
        y = torch.tensor([0.0, 1.0, 0.5, 0.999]).repeat(17, 1)
    loss, grad = _run("cpu", op, x, y, params)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (loss, grad)
    torch_loss, torch_grad = _run("torch", op, x, y, params)
    # float32 rounding, and values that underflow differently (below 2^-126 the kernel flushes to 0)
    assert_close(loss, torch_loss, dtype, 2.0)
    assert_close(grad, torch_grad, dtype, 2.0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_quality_cusp_gradient_saturates_like_the_torch_backend(dtype):
    """beta < 1: 0 at p == y exactly, the dtype's largest finite value where the true derivative overflows it."""
    x = torch.tensor([0.0, 1e-3, -1e-3, 2e-2], dtype=dtype)
    y = torch.full((4,), 0.5)
    loss, grad = _run("cpu", "quality_focal", x, y, dict(beta=0.01))
    torch_loss, torch_grad = _run("torch", "quality_focal", x, y, dict(beta=0.01))
    assert float(grad[0]) == 0.0 and float(loss[0]) == 0.0
    assert torch.isfinite(grad).all()
    assert_close(grad, torch_grad, dtype, 10.0)
    assert float(grad[1]) > 0 > float(grad[2])


# ------------------------------------------------------------------------------------------------ invalid targets
@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_kernel_counts_invalid_float_targets(op):
    x = torch.randn(5, 3)
    for bad in (1.5, -0.25, float("nan")):
        y = torch.rand(5, 3)
        y[2, 1] = bad
        with pytest.raises(InvalidArgumentError, match=r"^targets: expected values in \[0, 1\]"):
            _run("cpu", op, x, y, PARAMS[op][0])
    focalkit.set_value_checks("never")
    try:
        loss, _ = _run("cpu", op, x, torch.full((5, 3), 2.0), PARAMS[op][0])
    finally:
        focalkit.set_value_checks("auto")
    assert loss.shape == (5, 3)


def test_kernel_counts_invalid_index_and_distribution_targets():
    x = torch.randn(4, 3)
    with pytest.raises(InvalidArgumentError, match=r"^targets: expected class indices in \[0, 3\]"):
        get_forward("quality_focal", "cpu")(x, torch.tensor([0, 4, 1, 2]), beta=2.0, ignore_index=-100,
                                            reduce_sum=False, compute_grad=True)
    ok, _ = get_forward("quality_focal", "cpu")(x, torch.tensor([0, -100, 3, 2]), beta=2.0, ignore_index=-100,
                                                reduce_sum=False, compute_grad=True)
    assert ok.shape == (4, 3)
    for bad in (4.5, -1.0, float("nan")):
        with pytest.raises(InvalidArgumentError, match=r"^targets: expected values in \[0, 4\]"):
            _run("cpu", "distribution_focal", torch.randn(4, 5), torch.tensor([0.0, bad, 1.0, 2.0]), {})


PUBLIC_BAD_CALLS = {
    "quality_focal": lambda x, y: focalkit.quality_focal_loss(x, y),
    "quality_focal_pair": lambda x, y: focalkit.quality_focal_loss(x, (torch.tensor([0, 1, 5, 2]), torch.rand(4))),
    "varifocal": lambda x, y: focalkit.varifocal_loss(x, y),
    "gaussian_focal": lambda x, y: focalkit.gaussian_focal_loss(x, y),
    "asymmetric": lambda x, y: focalkit.asymmetric_loss(x, y),
    "poly1_focal": lambda x, y: focalkit.poly1_focal_loss(x, y),
    "distribution_focal": lambda x, y: focalkit.distribution_focal_loss(torch.randn(4, 5), y[:, 0] * 10),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_BAD_CALLS))
def test_public_invalid_targets_raise_the_same_typed_error_on_both_backends(name, monkeypatch):
    x = torch.randn(4, 3)
    y = torch.rand(4, 3)
    y[0, 0] = 1.5
    messages = {}
    for backend in ("cpu", "torch"):
        monkeypatch.setenv("FOCALKIT_BACKEND", backend)
        with pytest.raises(InvalidArgumentError) as info:
            PUBLIC_BAD_CALLS[name](x, y)
        messages[backend] = str(info.value)
    assert messages["cpu"] == messages["torch"]
    assert messages["cpu"].startswith("targets")


# ------------------------------------------------------------------------------------------------ threads, builds
@pytest.mark.parametrize("op", ALL_OPS)
def test_sums_do_not_depend_on_the_thread_count(op):
    shape = (20000, 17) if op == "distribution_focal" else (40000, 8)  # above the parallel threshold
    x = make_logits("random", shape, seed=6)
    y = _targets_for(op, "soft", shape, seed=7)
    params = PARAMS[op][0]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, one_grad = _run("cpu", op, x, y, params, reduce_sum=True)
        torch.set_num_threads(2)
        two, two_grad = _run("cpu", op, x, y, params, reduce_sum=True)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two) and torch.equal(one_grad, two_grad)
    elementwise, _ = _run("cpu", op, x, y, params, compute_grad=False)
    torch.testing.assert_close(one.double(), elementwise.double().sum(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("forced", ["base", "avx2"])
def test_other_builds_agree_with_loaded_build(forced):
    """The baseline and the AVX2 libraries, forced with FOCALKIT_CPU_ISA in a fresh process, give the loaded build's
    numbers (on a CPU without AVX2 both runs load the baseline build)."""
    code = r"""
import json, torch
from focalkit.backends import get_forward
from focalkit.backends.cpu import library as cpu_lib
g = torch.Generator().manual_seed(0)
x = torch.randn(300, 7, generator=g) * 5; y = torch.rand(300, 7, generator=g); y[:, ::2] = 0
out = {"isa": cpu_lib.isa()}
for op, kw in [("quality_focal", dict(beta=0.5, ignore_index=None)), ("varifocal", dict(alpha=0.75, gamma=2.0, iou_weighted=1.0)),
               ("gaussian_focal", dict(alpha=2.0, beta=4.0)), ("asymmetric", dict(gamma_pos=0.0, gamma_neg=4.0, clip=0.05, detach_focal_weight=0.0, ignore_index=None)),
               ("poly1_focal", dict(gamma=2.0, epsilon=-1.0, ignore_index=None))]:
    loss, grad = get_forward(op, "cpu")(x, y, **kw, reduce_sum=False, compute_grad=True)
    out[op] = [loss.tolist(), grad.tolist()]
loss, grad = get_forward("distribution_focal", "cpu")(x, y[:, 0] * 6, reduce_sum=False, compute_grad=True)
out["distribution_focal"] = [loss.tolist(), grad.tolist()]
print(json.dumps(out))
"""
    env = dict(os.environ, FOCALKIT_CPU_ISA=forced)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    base = json.loads(out.stdout.strip().splitlines()[-1])
    assert base["isa"] == (forced if forced == "base" or cpu_lib._cpu_has_avx2_fma() else "base")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 7, generator=g) * 5
    y = torch.rand(300, 7, generator=g)
    y[:, ::2] = 0
    params = {"quality_focal": dict(beta=0.5), "varifocal": PARAMS["varifocal"][0], "gaussian_focal": PARAMS["gaussian_focal"][0],
              "asymmetric": PARAMS["asymmetric"][0], "poly1_focal": dict(gamma=2.0, epsilon=-1.0)}
    for op, p in params.items():
        loss, grad = _run("cpu", op, x, y, p)
        torch.testing.assert_close(torch.tensor(base[op][0]), loss, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(torch.tensor(base[op][1]), grad, rtol=1e-5, atol=1e-7)
    loss, grad = _run("cpu", "distribution_focal", x, y[:, 0] * 6, {})
    torch.testing.assert_close(torch.tensor(base["distribution_focal"][0]), loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.tensor(base["distribution_focal"][1]), grad, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------ dispatch
DISPATCH_TENSORS = {
    "quality_focal": {"scores": None},
    "varifocal": {"labels": torch.ones(4, 3)},
    "gaussian_focal": {},
    "asymmetric": {},
    "poly1_focal": {"alpha_pos": torch.ones(3), "alpha_neg": torch.ones(3)},
    "distribution_focal": {},
}


@pytest.mark.parametrize("op", ALL_OPS)
def test_auto_dispatch_picks_the_cpu_kernels(op):
    x, y = torch.randn(4, 3), torch.rand(4, 3)
    tensors = DISPATCH_TENSORS[op]
    assert resolve_backend(op, x, y, tensors) == "cpu"
    assert resolve_backend(op, x.half(), y, tensors) == "cpu"
    assert resolve_backend(op, x.double(), y.double(), tensors) == "torch"
    if op == "quality_focal":
        assert resolve_backend(op, x, torch.tensor([0, 3, 1, 2]), {"scores": torch.rand(4)}) == "cpu"


PUBLIC_CALLS = {
    "quality_focal": lambda x, y: focalkit.quality_focal_loss(x, y, 0.5, "sum"),
    "quality_focal_pair": lambda x, y: focalkit.quality_focal_loss(
        x, (torch.tensor([0, 3, -100, 2, 1, 0]), y[:, 0]), 2.0, "mean"),
    "varifocal": lambda x, y: focalkit.varifocal_loss(x, y, labels=y > 0.5, reduction="sum"),
    "gaussian_focal": lambda x, y: focalkit.gaussian_focal_loss(x, y, 2.0, 4.0, "sum"),
    "asymmetric": lambda x, y: focalkit.asymmetric_loss(x, y, reduction="sum"),
    "poly1_focal": lambda x, y: focalkit.poly1_focal_loss(x, y, 1.0, 0.25, 2.0, "sum"),
    "distribution_focal": lambda x, y: focalkit.distribution_focal_loss(x, y[:, 0] * 2, "sum"),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_CALLS))
def test_public_losses_agree_across_backends(name, monkeypatch):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(6, 3, generator=g) * 3
    y = torch.rand(6, 3, generator=g)
    results = {}
    for backend in ("cpu", "torch"):
        monkeypatch.setenv("FOCALKIT_BACKEND", backend)
        z = x.clone().requires_grad_(True)
        loss = PUBLIC_CALLS[name](z, y)
        (grad,) = torch.autograd.grad(loss, z)
        results[backend] = (loss.detach(), grad)
    assert_close(results["cpu"][0], results["torch"][0], torch.float32, 2.0)
    assert_close(results["cpu"][1], results["torch"][1], torch.float32, 2.0)
