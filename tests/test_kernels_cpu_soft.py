"""Fused CPU soft-target softmax focal loss (focalkit.backends.cpu.softmax_soft) against the float64 reference.

Class probabilities and class indices with label smoothing, class weights, every dtype, odd shapes ((N, C) rows of
1 to 300 classes, (N, C, d1, ...) with spatial dims, empty inputs), confident and tied rows, non-finite logits,
invalid targets, the thread count, the dispatch that sends these calls to the kernel and the other builds of the
library. No timing here: speed is measured by ``benchmarks/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import focalkit
from focalkit import reference
from focalkit.backends import resolve_backend
from focalkit.backends.cpu import library as cpu_lib

pytestmark = pytest.mark.skipif(not cpu_lib.available(), reason=f"CPU kernels not built: {cpu_lib.load_error()}")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: (2e-5, 1e-6), torch.float16: (2e-3, 1e-4), torch.bfloat16: (1.6e-2, 1e-3)}
SHAPES = [(1, 2), (37, 5), (1, 300), (2, 1), (513, 64), (3, 7, 11), (2, 3, 5, 7), (0, 4), (4, 0)]


def soft_forward(x, t, *, class_weight=None, gamma=2.0, label_smoothing=0.0, ignore_index=None, reduce_sum=False,
                 compute_grad=True):
    """The ``softmax_focal_soft`` contract function of the CPU back-end."""
    from focalkit.backends.cpu import softmax_soft

    return softmax_soft.forward(x, t, class_weight=class_weight, gamma=gamma, label_smoothing=label_smoothing,
                                ignore_index=ignore_index, reduce_sum=reduce_sum, compute_grad=compute_grad)


def _smoothed(x, t, label_smoothing, ignore_index):
    """float64 targets q of the logits' shape: probabilities or one-hot, smoothed; 0 on ignored rows."""
    c = x.shape[1]
    if t.is_floating_point():
        return t.double() * (1 - label_smoothing) + (label_smoothing / c if c else 0.0)
    valid = (t != ignore_index) if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    one_hot = torch.nn.functional.one_hot(torch.where(valid, t, 0), c).double().movedim(-1, 1)
    return (one_hot * (1 - label_smoothing) + label_smoothing / c) * valid.unsqueeze(1)


def _reference(x, t, class_weight, gamma, label_smoothing=0.0, ignore_index=None):
    """float64 per-row loss (focalkit.reference.softmax_focal_loss on the smoothed targets) and its autograd gradient."""
    x64 = x.detach().double().requires_grad_(True)
    q = _smoothed(x, t, label_smoothing, ignore_index)
    loss = reference.softmax_focal_loss(x64, q, gamma=gamma, weight=class_weight)
    (grad,) = torch.autograd.grad(loss.sum(), x64) if x.numel() else (torch.zeros_like(x64),)
    return loss.detach(), grad


def _close(actual, expected, dtype, what):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def _inputs(shape, dtype, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 4).to(dtype)
    probs = torch.softmax(torch.randn(shape, generator=g) * 2, dim=1) if shape[1] else torch.zeros(shape)
    index = torch.randint(0, max(shape[1], 1), (shape[0], *shape[2:]), generator=g)
    if index.numel() > 1:
        index.view(-1)[0] = -100
    weight = torch.rand(shape[1], generator=g) + 0.5
    return x, probs, index, weight


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.3])
def test_probability_targets_match_reference(shape, dtype, gamma):
    x, probs, _, weight = _inputs(shape, dtype)
    for class_weight in (None, weight):
        loss, grad = soft_forward(x, probs, class_weight=class_weight, gamma=gamma)
        ref_loss, ref_grad = _reference(x.float(), probs, class_weight, gamma)
        if shape[1] == 1:  # one class: p = 1, the loss is identically 0; float64 autograd of u^0.5 at u = 0 is NaN
            ref_grad = torch.zeros_like(ref_grad)
        assert loss.shape == ref_loss.shape and loss.dtype == torch.float32 and grad.dtype == dtype
        _close(loss, ref_loss, torch.float32, "loss")
        _close(grad, ref_grad.to(dtype), dtype, "grad")
        total, none = soft_forward(x, probs, class_weight=class_weight, gamma=gamma, reduce_sum=True, compute_grad=False)
        assert none is None
        torch.testing.assert_close(total.double(), ref_loss.sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [shape for shape in SHAPES if shape[1] > 0])  # class indices need a class
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
def test_index_targets_with_label_smoothing_match_reference(shape, dtype, label_smoothing):
    x, _, index, weight = _inputs(shape, dtype, seed=7)
    loss, grad = soft_forward(x, index, class_weight=weight, gamma=2.0, label_smoothing=label_smoothing,
                              ignore_index=-100)
    ref_loss, ref_grad = _reference(x.float(), index, weight, 2.0, label_smoothing, -100)
    _close(loss, ref_loss, torch.float32, "loss")
    _close(grad, ref_grad.to(dtype), dtype, "grad")
    if index.numel() > 1:  # the ignored row: exactly 0
        assert float(loss.view(-1)[0]) == 0.0


def test_probability_targets_in_half_precision_and_float64():
    x, probs, _, _ = _inputs((29, 6), torch.float32)
    want = soft_forward(x, probs.half().float())
    for dtype in (torch.float16, torch.float64):
        got = soft_forward(x, probs.to(dtype))
        expected = want if dtype == torch.float16 else soft_forward(x, probs)
        torch.testing.assert_close(got[0], expected[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got[1], expected[1], rtol=1e-6, atol=1e-7)


def test_matches_pytorch_back_end_closed_form():
    from focalkit.backends.pytorch.softmax import forward_soft

    x, probs, index, weight = _inputs((300, 9), torch.float32)
    for t, ls, ign in ((probs, 0.05, None), (index, 0.2, -100)):
        a = soft_forward(x, t, class_weight=weight, gamma=1.5, label_smoothing=ls, ignore_index=ign)
        b = forward_soft(x, t, class_weight=weight, gamma=1.5, label_smoothing=ls, ignore_index=ign, reduce_sum=False,
                         compute_grad=True)
        torch.testing.assert_close(a[0], b[0], rtol=2e-5, atol=1e-6)
        torch.testing.assert_close(a[1], b[1], rtol=2e-5, atol=1e-6)


def test_confident_and_tied_rows_keep_relative_accuracy():
    """p close to 1: the loss (about u) must not come from log S - (x - m), which cancels; tied maxima."""
    x = torch.tensor([[12.0, 0.0, -3.0], [20.0, 1.0, 2.0], [9.0, 9.0, -9.0], [30.0, 30.0, 30.0]])
    q = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    for gamma in (0.0, 0.5, 2.0):
        loss, grad = soft_forward(x, q, gamma=gamma)
        ref_loss, ref_grad = _reference(x, q, None, gamma)
        assert float(((loss.double() - ref_loss) / ref_loss).abs().max()) <= 1e-4
        big = ref_grad.abs() > 1e-30
        assert float(((grad.double() - ref_grad).abs()[big] / ref_grad.abs()[big]).max()) <= 1e-4


def test_non_finite_logits():
    """A NaN logit makes its row NaN; -inf on a class with target 0 adds nothing; huge logits stay finite."""
    x = torch.tensor([[float("nan"), 1.0, 2.0], [float("-inf"), 0.0, 1.0], [1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]])
    q = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    loss, grad = soft_forward(x, q, gamma=2.0)
    assert bool(torch.isnan(loss[0])) and bool(torch.isnan(grad[0]).all())
    assert bool(torch.isfinite(loss[1:]).all()) and bool(torch.isfinite(grad[1:]).all())
    ref_loss, ref_grad = _reference(x[1:2, 1:], q[1:2, 1:], None, 2.0)  # class 0 has p = 0 and target 0
    torch.testing.assert_close(loss[1:2].double(), ref_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad[1, 1:].double(), ref_grad[0], rtol=1e-5, atol=1e-7)
    assert float(grad[1, 0]) == 0.0
    assert float(grad[3, 0]) < 0  # the wrong row is pushed back


def test_non_contiguous_inputs_and_thread_count():
    x = torch.randn(12, 700).t()  # (700, 12) non-contiguous
    q = torch.softmax(torch.randn(12, 700), 0).t()
    a = soft_forward(x, q)
    b = soft_forward(x.contiguous(), q.contiguous())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    big = torch.randn(20000, 12)
    qb = torch.softmax(torch.randn(20000, 12), 1)
    threads = torch.get_num_threads()
    try:
        sums = []
        for n in (1, 2):
            torch.set_num_threads(n)
            sums.append(soft_forward(big, qb, reduce_sum=True, compute_grad=False)[0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(sums[0], sums[1])
    per_row = soft_forward(big, qb, compute_grad=False)[0]
    torch.testing.assert_close(sums[0].double(), per_row.double().sum(), rtol=1e-6, atol=0)


def test_invalid_class_indices_raise_or_count_as_zero():
    from focalkit.value_checks import get_value_checks, set_value_checks

    x = torch.randn(6, 4)
    t = torch.tensor([0, 1, 4, 2, -1, 3])
    with pytest.raises(focalkit.InvalidArgumentError, match="target"):
        soft_forward(x, t, label_smoothing=0.1, ignore_index=-100)
    mode = get_value_checks()
    set_value_checks("never")
    try:
        loss, grad = soft_forward(x, t, label_smoothing=0.1, ignore_index=-100)
    finally:
        set_value_checks(mode)
    assert float(loss[2]) == 0.0 and float(loss[4]) == 0.0 and bool((grad[[2, 4]] == 0).all())


def test_dispatch_sends_soft_targets_to_the_kernel():
    x = torch.randn(16, 5)
    probs = torch.softmax(x, 1)
    assert resolve_backend("softmax_focal_soft", x, probs) == "cpu"
    assert resolve_backend("softmax_focal_soft", x, torch.zeros(16, dtype=torch.long)) == "cpu"
    assert resolve_backend("softmax_focal_soft", x, probs, {"reduced_threshold": 0.5}) == "torch"
    assert resolve_backend("softmax_focal_soft", x.double(), probs.double()) == "torch"


def test_public_loss_with_soft_targets_matches_the_pytorch_back_end(monkeypatch):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 7, generator=g, requires_grad=True)
    probs = torch.softmax(torch.randn(64, 7, generator=g), 1)
    index = torch.randint(0, 7, (64,), generator=g)
    results = {}
    for backend in ("cpu", "torch"):
        monkeypatch.setenv("FOCALKIT_BACKEND", backend)
        for name, kwargs in (("probs", {"target": probs}), ("smoothed", {"target": index, "label_smoothing": 0.1})):
            loss = focalkit.softmax_focal_loss(x, alpha=[0.5] * 7, gamma=2.0, reduction="mean", **kwargs)
            (grad,) = torch.autograd.grad(loss, x)
            results[backend, name] = (loss.detach(), grad)
    for name in ("probs", "smoothed"):
        torch.testing.assert_close(results["cpu", name][0], results["torch", name][0], rtol=2e-5, atol=1e-7)
        torch.testing.assert_close(results["cpu", name][1], results["torch", name][1], rtol=2e-5, atol=1e-8)


def test_inputs_are_not_modified():
    x, probs, index, weight = _inputs((40, 6), torch.float32)
    copies = [v.clone() for v in (x, probs, index, weight)]
    soft_forward(x, probs, class_weight=weight)
    soft_forward(x, index, class_weight=weight, label_smoothing=0.1, ignore_index=-100)
    for before, after in zip(copies, (x, probs, index, weight)):
        assert torch.equal(before, after)


@pytest.mark.parametrize("forced", ["base", "avx2"])
def test_other_builds_agree_with_loaded_build(forced):
    """The baseline and AVX2 libraries (forced with FOCALKIT_CPU_ISA in a fresh process) give the loaded build's
    numbers."""
    code = r"""
import json, torch
from focalkit.backends.cpu import softmax_soft
g = torch.Generator().manual_seed(0)
x = torch.randn(300, 7, generator=g) * 5; q = torch.softmax(torch.randn(300, 7, generator=g), 1)
a = softmax_soft.forward(x, q, gamma=0.5, label_smoothing=0.1, ignore_index=None, reduce_sum=False, compute_grad=True)
print(json.dumps({"loss": a[0].tolist(), "grad": a[1].tolist()}))
"""
    env = dict(os.environ, FOCALKIT_CPU_ISA=forced)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    other = json.loads(out.stdout.strip().splitlines()[-1])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 7, generator=g) * 5
    q = torch.softmax(torch.randn(300, 7, generator=g), 1)
    loss, grad = soft_forward(x, q, gamma=0.5, label_smoothing=0.1)
    torch.testing.assert_close(torch.tensor(other["loss"]), loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.tensor(other["grad"]), grad, rtol=1e-5, atol=1e-7)
