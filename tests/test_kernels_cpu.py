"""Fused CPU kernels (focalkit.backends.cpu.sigmoid / softmax) against the float64 reference.

Values and gradients are compared with :mod:`focalkit.reference` (gradients by float64 autograd through it), over odd
shapes (prime sizes, one row, empty, more classes than a 256-element chunk), non-contiguous inputs, background and
ignored rows, every dtype, and both builds of the library (AVX2 and baseline). No timing here: speed is measured by
``benchmarks/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import focalkit
from focalkit import reference
from focalkit.backends.cpu import library as cpu_lib

pytestmark = pytest.mark.skipif(not cpu_lib.available(), reason=f"CPU kernels not built: {cpu_lib.load_error()}")


def sigmoid_focal_forward(x, y, alpha_pos, alpha_neg, gamma, ignore_index, reduce_sum, *, compute_grad):
    """The ``sigmoid_focal`` contract function of the CPU back-end, with positional arguments."""
    from focalkit.backends.cpu import sigmoid

    return sigmoid.forward(x, y, alpha_pos=alpha_pos, alpha_neg=alpha_neg, gamma=gamma, ignore_index=ignore_index,
                           reduce_sum=reduce_sum, compute_grad=compute_grad)


def softmax_focal_forward(x, t, weight, alpha, gamma, ignore_index, reduce_sum, *, compute_grad):
    """The ``softmax_focal`` contract function of the CPU back-end, with positional arguments."""
    from focalkit.backends.cpu import softmax

    return softmax.forward(x, t, weight=weight, alpha=alpha, gamma=gamma, ignore_index=ignore_index,
                           reduce_sum=reduce_sum, compute_grad=compute_grad)

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Tolerance of the kernel output (rounded to the input dtype for gradients) vs the float64 reference evaluated on
# the already-rounded inputs.
TOL = {torch.float32: (2e-5, 1e-6), torch.float16: (2e-3, 1e-4), torch.bfloat16: (1.6e-2, 1e-3)}


def _close(actual, expected, dtype, what):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def _sigmoid_ref(x, y, alpha_pos, alpha_neg, gamma, ignore_index=None):
    """Per-element float64 loss and gradient; index targets expanded to one-hot (C = background, ignore = 0)."""
    x64 = x.detach().double().requires_grad_(True)
    if y.is_floating_point():
        y64, valid = y.double(), torch.ones_like(x64)
    else:
        c = x.shape[1]
        shape = [x.shape[0], 1, *x.shape[2:]]
        t = y.reshape(shape)
        classes = torch.arange(c).reshape([1, c] + [1] * (x.ndim - 2))
        y64 = (t == classes).double().expand_as(x64)
        valid = (t != ignore_index).double().expand_as(x64) if ignore_index is not None else torch.ones_like(x64)
    loss = reference.sigmoid_focal_loss(x64, y64, alpha=None, gamma=gamma)
    if alpha_pos is not None:
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        ap, an = alpha_pos.double().reshape(shape), alpha_neg.double().reshape(shape)
        loss = loss * (ap * y64 + an * (1 - y64))
    loss = loss * valid
    (grad,) = torch.autograd.grad(loss.sum(), x64) if x.numel() else (torch.zeros_like(x64),)
    return loss.detach(), grad


def _run_sigmoid(x, y, alpha_pos=None, alpha_neg=None, gamma=2.0, ignore_index=None, reduce_sum=False):
    return sigmoid_focal_forward(x, y, alpha_pos, alpha_neg, gamma, ignore_index, reduce_sum, compute_grad=True)


SIGMOID_SHAPES = [(1, 1), (7,), (13, 5), (1, 97), (3, 7, 11), (2, 3, 5, 7), (0, 4), (257, 3), (5, 1000)]


@pytest.mark.parametrize("shape", SIGMOID_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.3])
def test_sigmoid_float_targets_match_reference(shape, dtype, gamma):
    g = torch.Generator().manual_seed(hash((shape, gamma)) % 2**31)
    x = (torch.randn(shape, generator=g) * 4).to(dtype)
    y = (torch.rand(shape, generator=g) < 0.3).to(dtype)
    if len(shape) >= 2 and shape[0] > 1:
        y[1:2] = torch.rand(y[1:2].shape, generator=g).to(dtype)  # some soft rows
    loss, grad = _run_sigmoid(x, y, gamma=gamma)
    ref_loss, ref_grad = _sigmoid_ref(x.float(), y.float(), None, None, gamma)
    assert loss.dtype == torch.float32 and loss.shape == x.shape
    assert grad.dtype == dtype and grad.shape == x.shape
    _close(loss, ref_loss, dtype if dtype != torch.float32 else torch.float32, "loss")
    _close(grad, ref_grad.to(dtype), dtype, "grad")


@pytest.mark.parametrize("shape", [(13, 5), (1, 97), (3, 7, 11), (2, 3, 5, 7), (0, 4), (64, 300), (4, 2, 1)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_index_targets_background_ignore_alpha(shape, dtype):
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(shape, generator=g) * 3).to(dtype)
    c = shape[1]
    t = torch.randint(0, c + 1, (shape[0], *shape[2:]), generator=g)  # value c = background
    if t.numel() > 2:
        t.view(-1)[::3] = -100  # ignored columns
    alpha_pos = torch.rand(c, generator=g)
    alpha_neg = 1 - alpha_pos
    loss, grad = _run_sigmoid(x, t, alpha_pos, alpha_neg, gamma=2.0, ignore_index=-100)
    ref_loss, ref_grad = _sigmoid_ref(x.float(), t, alpha_pos, alpha_neg, 2.0, ignore_index=-100)
    _close(loss, ref_loss, dtype if dtype != torch.float32 else torch.float32, "loss")
    _close(grad, ref_grad.to(dtype), dtype, "grad")
    if t.numel() > 2:  # ignored columns are exactly zero
        ignored = (t == -100).unsqueeze(1).expand(x.shape)
        assert bool((loss[ignored] == 0).all()) and bool((grad[ignored] == 0).all())


@pytest.mark.parametrize("magnitude", [9.0, 12.0, 17.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_tail_relative_error_fp32(magnitude, gamma):
    x = torch.tensor([[magnitude, -magnitude, magnitude, -magnitude]])
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    loss, grad = _run_sigmoid(x, y, gamma=gamma)
    ref_loss, ref_grad = _sigmoid_ref(x, y, None, None, gamma)
    assert float(((loss.double() - ref_loss) / ref_loss).abs().max()) <= 1e-4
    assert float(((grad.double() - ref_grad) / ref_grad).abs().max()) <= 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_finite_at_huge_logits(dtype, gamma):
    x = torch.tensor([[1e4, -1e4, 1e4, -1e4, 100.0, -100.0]]).to(dtype)
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.5, 0.5]]).to(dtype)
    loss, grad = _run_sigmoid(x, y, gamma=gamma)
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad.float()).all())
    # confidently wrong predictions keep a gradient pushing back
    assert float(grad[0, 1]) < 0 and float(grad[0, 2]) > 0


def test_sigmoid_non_contiguous_inputs():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(40, 30, generator=g) * 3
    x = base.t()[:, ::2]  # (30, 20), non-contiguous
    y = (torch.rand(20, 30, generator=g) < 0.2).float().t()
    assert not x.is_contiguous() and not y.is_contiguous()
    loss, grad = _run_sigmoid(x, y)
    ref_loss, ref_grad = _run_sigmoid(x.contiguous(), y.contiguous())
    assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)


def test_sigmoid_sum_matches_elementwise_and_ignores_thread_count():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1000, 81, generator=g) * 3  # 81000 elements: several blocks, parallel path
    y = (torch.rand(1000, 81, generator=g) < 0.1).float()
    per_element, _ = _run_sigmoid(x, y)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        s1, g1 = _run_sigmoid(x, y, reduce_sum=True)
        torch.set_num_threads(max(2, threads))
        s2, g2 = _run_sigmoid(x, y, reduce_sum=True)
    finally:
        torch.set_num_threads(threads)
    assert s1.ndim == 0 and s1.dtype == torch.float32
    assert torch.equal(s1, s2) and torch.equal(g1, g2)  # deterministic whatever the thread count
    torch.testing.assert_close(s1.double(), per_element.double().sum(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("alpha", [False, True])
def test_sigmoid_kernel_counts_invalid_float_targets_per_chunk(alpha):
    """Only 256-element chunks with a target other than exactly 0 or 1 are scanned for invalid ones, so the count
    must still be exact: invalid targets (NaN, inf, below 0, above 1) in several chunks, beside valid soft targets,
    one-hot chunks and a short last chunk, with and without per-class alphas (the alpha loop finds the soft chunks)."""
    n, c = 700, 9  # 6300 elements: two blocks, 24 full chunks and a short one
    y = (torch.rand(n, c, generator=torch.Generator().manual_seed(3)) < 0.05).float()
    flat = y.view(-1)
    flat[[5, 300, 301]] = torch.tensor([0.5, float("nan"), 1.0 + 1e-6])  # chunks 0 and 1
    flat[[2600, 4100, 6299]] = torch.tensor([-1e-7, float("inf"), 2.0])  # chunk 10, the second block, the last chunk
    flat[[3000, 5000]] = torch.tensor([0.25, 0.75])  # soft but valid
    x = torch.randn(n, c, generator=torch.Generator().manual_seed(4))
    ap = torch.full((c,), 0.25) if alpha else None
    an = torch.full((c,), 0.75) if alpha else None
    sums = torch.zeros(2, dtype=torch.float64)
    lib = cpu_lib.lib()
    bad = lib.fk_sigmoid_focal(x.data_ptr(), 0, y.data_ptr(), 0, ap.data_ptr() if alpha else None,
                               an.data_ptr() if alpha else None, 2.0, 0.0, 0, 0, n, c, 1, 0, n * c, None, None,
                               sums.data_ptr(), 1, 0)
    assert bad == 5
    valid = y.clone()
    valid.view(-1)[[300, 301, 2600, 4100, 6299]] = 0.0
    assert lib.fk_sigmoid_focal(x.data_ptr(), 0, valid.data_ptr(), 0, None, None, 2.0, 0.0, 0, 0, n, c, 1, 0, n * c,
                                None, None, sums.data_ptr(), 1, 0) == 0


def test_sigmoid_cross_entropy_term_accurate_over_dense_grid():
    """gamma = 0 without alpha leaves the cross-entropy term max(x, 0) - x y + log1p(exp(-|x|)) (the kernel's exp and
    log1p polynomials): within 3e-7 relative of the float64 softplus at 600,001 logits in [-30, 30], either label
    (measured: 2.1e-7, about 3.5 float32 ulp)."""
    x = torch.linspace(-30, 30, 600001).view(-1, 1)
    for y in (0.0, 1.0):
        loss, _ = sigmoid_focal_forward(x, torch.full_like(x, y), None, None, 0.0, None, False, compute_grad=False)
        want = torch.nn.functional.softplus(x.double() * (1 - 2 * y))  # -log(1 - p) for y = 0, -log p for y = 1
        rel = ((loss.double() - want).abs() / want).max()
        assert rel < 3e-7, float(rel)


def test_sigmoid_no_grad_work_when_not_asked():
    x, y = torch.randn(10, 3), torch.zeros(10, 3)
    loss, grad = sigmoid_focal_forward(x, y, None, None, 2.0, None, False, compute_grad=False)
    assert grad is None and loss.shape == (10, 3)


def test_sigmoid_invalid_targets_detected_by_kernel():
    with pytest.raises(focalkit.InvalidArgumentError):
        _run_sigmoid(torch.zeros(2, 3), torch.tensor([[0.0, 1.5, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(focalkit.InvalidArgumentError):
        _run_sigmoid(torch.zeros(2, 3), torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(focalkit.InvalidArgumentError):
        _run_sigmoid(torch.zeros(2, 3), torch.tensor([1, 7]), ignore_index=-100)


def test_sigmoid_pos_weight_is_declared_missing():
    from focalkit.backends import missing_features

    assert missing_features("cpu", "sigmoid_focal", {"pos_weight": torch.ones(3)}) == ["it does not implement pos_weight"]


# ------------------------------------------------------------------------------------------------ softmax
def _softmax_ref(x, t, weight, gamma, ignore_index=-100):
    x64 = x.detach().double().requires_grad_(True)
    loss = reference.softmax_focal_loss(x64, t, alpha=None, gamma=gamma, weight=weight)
    loss = loss * (t != ignore_index)
    (grad,) = torch.autograd.grad(loss.sum(), x64) if x.numel() else (torch.zeros_like(x64),)
    return loss.detach(), grad


SOFTMAX_SHAPES = [((1, 2), (1,)), ((37, 5), (37,)), ((1, 300), (1,)), ((3, 7, 11, 13), (3, 11, 13)),
                  ((5, 3, 4097), (5, 4097)), ((0, 4), (0,)), ((2, 1), (2,)), ((513, 64), (513,)),
                  # (N, C) rows run in batches of library.row_batch(C) rows: 256 rows of 3 classes, 1 row of 9000
                  ((300, 3), (300,)), ((3, 9000), (3,))]


@pytest.mark.parametrize("shapes", SOFTMAX_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_matches_reference(shapes, dtype, gamma):
    shape, tshape = shapes
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(shape, generator=g) * 4).to(dtype)
    t = torch.randint(0, shape[1], tshape, generator=g)
    if t.numel() > 1:
        t.view(-1)[0] = -100
    weight = torch.rand(shape[1], generator=g) + 0.5
    loss, grad = softmax_focal_forward(x, t, weight, None, gamma, -100, False, compute_grad=True)
    ref_loss, ref_grad = _softmax_ref(x.float(), t, weight, gamma)
    if shape[1] == 1:  # one class: the loss is identically 0; float64 autograd of u^gamma at u = 0 gives NaN
        assert bool(torch.isnan(ref_grad).any()) or gamma != 0.5
        ref_grad = torch.zeros_like(ref_grad)
    assert loss.shape == t.shape and loss.dtype == torch.float32 and grad.dtype == dtype
    _close(loss, ref_loss, torch.float32, "loss")
    _close(grad, ref_grad.to(dtype), dtype, "grad")
    total, _ = softmax_focal_forward(x, t, weight, None, gamma, -100, True, compute_grad=False)
    torch.testing.assert_close(total.double(), ref_loss.sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_of_weight_zero_and_ignored_rows_in_a_batch(dtype):
    """A batch of (N, C) rows mixing weight-0 classes, ignored and valid rows: zero loss and gradient exactly where
    a row does not count, the reference elsewhere."""
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(260, 6, generator=g) * 3).to(dtype)
    t = torch.randint(0, 6, (260,), generator=g)
    t[::5] = -100
    weight = torch.rand(6, generator=g) + 0.5
    weight[2] = 0.0
    loss, grad = softmax_focal_forward(x, t, weight, None, 2.0, -100, False, compute_grad=True)
    silent = (t == -100) | (t == 2)
    assert bool((loss[silent] == 0).all()) and bool((grad[silent] == 0).all())
    ref_loss, ref_grad = _softmax_ref(x.float(), t, weight, 2.0)
    _close(loss, ref_loss, torch.float32, "loss")
    _close(grad, ref_grad.to(dtype), dtype, "grad")


def test_softmax_confident_rows_keep_relative_accuracy():
    """p_t close to 1: the loss (about u) must not come from log(S) - (x_t - m), which cancels."""
    x = torch.tensor([[12.0, 0.0, -3.0], [20.0, 1.0, 2.0], [9.0, 9.0, -9.0]])
    t = torch.tensor([0, 0, 1])
    for gamma in (0.0, 0.5, 2.0):
        loss, grad = softmax_focal_forward(x, t, None, None, gamma, None, False, compute_grad=True)
        ref_loss, ref_grad = _softmax_ref(x, t, None, gamma, ignore_index=-100)
        assert float(((loss.double() - ref_loss) / ref_loss).abs().max()) <= 1e-4
        assert float(((grad.double() - ref_grad).abs() / ref_grad.abs().clamp_min(1e-30)).max()) <= 1e-4


def test_softmax_finite_at_huge_logits():
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]])
    t = torch.tensor([0, 0])
    for gamma in (0.0, 0.5, 2.0):
        loss, grad = softmax_focal_forward(x, t, None, None, gamma, None, False, compute_grad=True)
        assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())
        assert float(grad[1, 0]) < 0  # the wrong row is pushed back


def test_softmax_non_contiguous_and_invalid_targets():
    x = torch.randn(8, 20).t()  # (20, 8) non-contiguous
    t = torch.randint(0, 8, (20,))
    a = softmax_focal_forward(x, t, None, None, 2.0, None, False, compute_grad=True)
    b = softmax_focal_forward(x.contiguous(), t, None, None, 2.0, None, False, compute_grad=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(focalkit.InvalidArgumentError):
        softmax_focal_forward(x, torch.full((20,), 8), None, None, 2.0, -100, False, compute_grad=False)


# ------------------------------------------------------------------------------------------------ builds
def test_loaded_build_matches_cpu_features():
    assert cpu_lib.isa() in ("avx512", "avx2", "base")
    if cpu_lib._cpu_has_avx512():
        assert cpu_lib.isa() == "avx512"
    elif cpu_lib._cpu_has_avx2_fma():
        assert cpu_lib.isa() == "avx2"


@pytest.mark.parametrize("forced", ["base", "avx2"])
def test_other_builds_agree_with_loaded_build(forced):
    """The baseline and the AVX2 libraries, forced with FOCALKIT_CPU_ISA in a fresh process, give the loaded build's
    numbers (on a CPU without AVX2 both runs load the baseline build)."""
    code = r"""
import json, torch
from focalkit.backends.cpu import library as cpu_lib, sigmoid, softmax
g = torch.Generator().manual_seed(0)
x = torch.randn(300, 7, generator=g) * 5; y = (torch.rand(300, 7, generator=g) < 0.2).float()
t = torch.randint(0, 7, (300,), generator=g)
a = sigmoid.forward(x, y, gamma=0.5, ignore_index=None, reduce_sum=False, compute_grad=True)
b = softmax.forward(x, t, gamma=2.0, ignore_index=None, reduce_sum=False, compute_grad=True)
h = sigmoid.forward(x.half(), y.half(), gamma=2.0, ignore_index=None, reduce_sum=False, compute_grad=True)
print(json.dumps({"isa": cpu_lib.isa(), "sig": a[0].tolist(), "sig_grad": a[1].tolist(), "sm": b[0].tolist(),
                  "sm_grad": b[1].tolist(), "sig16": h[0].tolist(), "sig16_grad": h[1].float().tolist()}))
"""
    env = dict(os.environ, FOCALKIT_CPU_ISA=forced)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    base = json.loads(out.stdout.strip().splitlines()[-1])
    assert base["isa"] == (forced if forced == "base" or cpu_lib._cpu_has_avx2_fma() else "base")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 7, generator=g) * 5
    y = (torch.rand(300, 7, generator=g) < 0.2).float()
    t = torch.randint(0, 7, (300,), generator=g)
    a = sigmoid_focal_forward(x, y, None, None, 0.5, None, False, compute_grad=True)
    b = softmax_focal_forward(x, t, None, None, 2.0, None, False, compute_grad=True)
    for got, want in ((base["sig"], a[0]), (base["sig_grad"], a[1]), (base["sm"], b[0]), (base["sm_grad"], b[1])):
        torch.testing.assert_close(torch.tensor(got), want, rtol=1e-5, atol=1e-7)
    # float16 logits: the baseline build converts element by element, the vector builds 8 values per F16C instruction
    h = sigmoid_focal_forward(x.half(), y.half(), None, None, 2.0, None, False, compute_grad=True)
    torch.testing.assert_close(torch.tensor(base["sig16"]), h[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.tensor(base["sig16_grad"]).half(), h[1], rtol=1e-3, atol=1e-7)


# ------------------------------------------------------------------------------------------------ threads
def test_per_thread_scratch_regions_start_on_their_own_cache_line():
    """Two threads' scratch regions never share a 64-byte line (a shared line is rewritten by both on every row)."""
    for floats in (1, 15, 16, 17, 34, 20, 256, 16200):
        stride = cpu_lib.scratch_stride(floats)
        assert stride >= floats and stride % 16 == 0 and stride - floats < 16


def test_kernels_share_torchs_openmp_runtime():
    """On Linux the OpenMP build resolves libgomp.so.1 to the copy torch's wheel ships and loaded: no second
    libgomp.so.1 is mapped, and the kernels' pieces run on torch's runtime. (Other libraries may map runtimes of their
    own under other names, as scikit-learn does; the kernels do not use those.)"""
    torch_gomp = (Path(torch.__file__).parent / "lib" / "libgomp.so.1").resolve()
    runtimes = cpu_lib._openmp_runtimes()
    if runtimes is None or not torch_gomp.exists() or not cpu_lib.lib().fk_openmp():
        pytest.skip("no /proc/self/maps, a torch without its own libgomp.so.1, or a build without OpenMP")
    gomp = {Path(p).resolve() for p in runtimes if Path(p).name == "libgomp.so.1"}
    assert gomp == {torch_gomp}, runtimes
    expected = "pool" if os.environ.get("FOCALKIT_CPU_THREADS", "").lower() == "pool" else "openmp"
    assert cpu_lib.threads_backend() == expected


_SPLIT_CODE = r"""
import json, torch
import focalkit
from focalkit.backends.cpu import library as cpu_lib
torch.set_num_threads(2)
g = torch.Generator().manual_seed(3)
x = torch.randn(300000, 2, generator=g) * 3; y = (torch.rand(300000, 2, generator=g) < 0.1).float()
xs = torch.randn(70000, 5, generator=g) * 3; ts = torch.randint(0, 5, (70000,), generator=g)
xg = torch.randn(2, 3, 300, 300, generator=g); tg = torch.randint(0, 3, (2, 300, 300), generator=g)
qs = torch.softmax(torch.randn(70000, 5, generator=g), 1)
xd = torch.randn(70000, 17, generator=g); td = torch.rand(70000, generator=g) * 15.9
out = {"threads": cpu_lib.threads_backend()}
for name, (inp, fn) in {
    "sigmoid": (x, lambda v: focalkit.sigmoid_focal_loss(v, y, reduction="sum")),
    "softmax": (xs, lambda v: focalkit.softmax_focal_loss(v, ts, reduction="sum")),
    "softmax_soft": (xs, lambda v: focalkit.softmax_focal_loss(v, qs, reduction="sum")),
    "distribution": (xd, lambda v: focalkit.distribution_focal_loss(v, td, reduction="sum")),
    "dice_focal": (xg, lambda v: focalkit.dice_focal_loss(v, tg)),
}.items():
    v = inp.clone().requires_grad_(True)
    loss = fn(v)
    loss.backward()
    out[name] = [loss.item(), v.grad.double().sum().item(), v.grad.abs().double().sum().item()]
print(json.dumps(out))
"""


def test_openmp_and_python_pool_give_identical_results():
    """The same calls at 2 threads, pieces on OpenMP threads vs on focalkit's Python pool (FOCALKIT_CPU_THREADS=pool,
    a fresh process each): bit-identical losses and gradients (per-block partial sums added in order)."""
    results = {}
    for mode in ("default", "pool"):
        env = dict(os.environ)
        env.pop("FOCALKIT_CPU_THREADS", None)
        if mode == "pool":
            env["FOCALKIT_CPU_THREADS"] = "pool"
        out = subprocess.run([sys.executable, "-c", _SPLIT_CODE], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    assert results["pool"]["threads"] == "pool"
    for name in ("sigmoid", "softmax", "softmax_soft", "distribution", "dice_focal"):
        assert results["default"][name] == results["pool"][name], name
