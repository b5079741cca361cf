"""Hostile inputs to the PyTorch core, one test per class of defect: empty batches, gradients with respect to soft
targets, tensor normalizers, weights that would enlarge the inputs, untyped errors, aliasing of returned gradients,
and the two documented decisions (one class column with integer targets; infinite logits)."""

from __future__ import annotations

import pytest
import torch

import focalkit
from focalkit import InvalidArgumentError, InvalidTypeError, reference
from focalkit.backends.cpu import library

BACKENDS = ["torch", "cpu"] if library.available() else ["torch"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setenv("FOCALKIT_BACKEND", request.param)
    return request.param


# ---------------------------------------------------------------------------------------- empty batches
EMPTY_CASES = {
    "softmax probabilities, no rows": lambda x: focalkit.softmax_focal_loss(x(0, 3), torch.zeros(0, 3)),
    "softmax probabilities, no classes": lambda x: focalkit.softmax_focal_loss(x(2, 0), torch.zeros(2, 0)),
    "softmax indices, no rows": lambda x: focalkit.softmax_focal_loss(x(0, 3), torch.zeros(0, dtype=torch.long)),
    "softmax smoothing, no rows": lambda x: focalkit.softmax_focal_loss(
        x(0, 3), torch.zeros(0, dtype=torch.long), label_smoothing=0.1),
    "softmax indices, no pixels": lambda x: focalkit.softmax_focal_loss(x(2, 3, 0), torch.zeros(2, 0, dtype=torch.long)),
    "softmax all ignored": lambda x: focalkit.softmax_focal_loss(x(2, 3), torch.full((2,), -100)),
    "sigmoid, no rows": lambda x: focalkit.sigmoid_focal_loss(x(0, 3), torch.zeros(0, 3), reduction="mean"),
    "sigmoid indices, no classes": lambda x: focalkit.sigmoid_focal_loss(x(2, 0), torch.zeros(2, dtype=torch.long),
                                                                         reduction="mean"),
    "sigmoid all ignored": lambda x: focalkit.sigmoid_focal_loss(x(2, 3), torch.full((2,), -100), reduction="mean"),
    "star, no rows": lambda x: focalkit.sigmoid_focal_loss_star(x(0, 3), torch.zeros(0, 3), reduction="mean"),
    "binary, no rows": lambda x: focalkit.binary_focal_loss(torch.sigmoid(x(0, 3)), torch.zeros(0, 3)),
}


@pytest.mark.parametrize("name", sorted(EMPTY_CASES))
def test_empty_batches_give_zero_with_a_gradient_path(name, backend, gradient_mode):
    leaves = []

    def make(*shape):
        leaf = torch.randn(*shape, requires_grad=True)
        leaves.append(leaf)
        return leaf

    loss = EMPTY_CASES[name](make)
    assert loss.ndim == 0 and float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert leaves[0].grad is not None and leaves[0].grad.shape == leaves[0].shape
    assert not bool(leaves[0].grad.ne(0).any())


def test_softmax_without_classes_and_index_targets_is_a_typed_error():
    with pytest.raises(InvalidArgumentError, match=r"input: expected at least one class"):
        focalkit.softmax_focal_loss(torch.zeros(2, 0), torch.zeros(2, dtype=torch.long))


# ---------------------------------------------------------------------------------------- gradients w.r.t. targets
TARGET_GRAD_CASES = {
    "sigmoid": (lambda x, y: focalkit.sigmoid_focal_loss(x, y, 0.25, 0.5, "sum"),
                lambda x, y: reference.sigmoid_focal_loss(x, y, 0.25, 0.5).sum()),
    "sigmoid per-class alpha, mean": (
        lambda x, y: focalkit.sigmoid_focal_loss(x, y, [0.1, 0.5, 0.9], 2.0, "mean"),
        lambda x, y: reference.sigmoid_focal_loss(x, y, [0.1, 0.5, 0.9], 2.0).mean()),
    "star": (lambda x, y: focalkit.sigmoid_focal_loss_star(x, y, 2.0, 1.0, 0.25, "sum"),
             lambda x, y: reference.sigmoid_focal_loss_star(x, y, 2.0, 1.0, 0.25).sum()),
    "binary": (lambda x, y: focalkit.binary_focal_loss(torch.sigmoid(x), y, 0.25, 2.0, "sum"),
               lambda x, y: reference.binary_focal_loss(torch.sigmoid(x), y, 0.25, 2.0).sum()),
    "softmax probabilities": (lambda x, y: focalkit.softmax_focal_loss(x, y / y.sum(1, keepdim=True), gamma=2.0),
                              lambda x, y: reference.softmax_focal_loss(x, y / y.sum(1, keepdim=True), gamma=2.0).mean()),
}


@pytest.mark.parametrize("only_targets", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(TARGET_GRAD_CASES))
def test_soft_targets_are_differentiated_exactly(name, dtype, only_targets, backend):
    if backend == "cpu" and dtype == torch.float64:
        pytest.skip("a forced CPU back-end refuses float64 logits (tested in test_dispatch)")
    ours, ref = TARGET_GRAD_CASES[name]
    torch.manual_seed(0)
    x0 = 4 * torch.randn(6, 3, dtype=torch.float64)
    y0 = torch.rand(6, 3, dtype=torch.float64).clamp(0.02, 0.98)
    y0[0] = torch.tensor([0.0, 1.0, 1.0])  # hard values too
    x = x0.to(dtype).clone().requires_grad_(not only_targets)
    y = y0.to(dtype).clone().requires_grad_(True)
    loss = ours(x, y)
    assert loss.grad_fn is not None
    loss.backward()
    xr, yr = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    ref(xr, yr).backward()
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(y.grad.double(), yr.grad, **tol)
    if not only_targets:
        torch.testing.assert_close(x.grad.double(), xr.grad, **tol)


def test_target_gradients_pass_gradcheck():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(4, 3, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: focalkit.sigmoid_focal_loss(a, b, 0.25, 0.5, "sum"), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: focalkit.sigmoid_focal_loss_star(a, b, 1.5, 0.5, 0.25, "sum"), (x, y))


# ---------------------------------------------------------------------------------------- tensor normalizers
@pytest.mark.parametrize("bad,match", [
    (float("nan"), "normalizer: expected a finite number, got nan"),
    (float("inf"), "normalizer: expected a finite number, got inf"),
    (-4.0, r"normalizer: expected a number >= 0.0, got -4.0"),
])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_bad_normalizers_raise_as_numbers_and_as_cpu_tensors(bad, match, as_tensor):
    x, y = torch.randn(4, 3), torch.rand(4, 3).round()
    value = torch.tensor(bad) if as_tensor else bad
    with pytest.raises(InvalidArgumentError, match=match):
        focalkit.sigmoid_focal_loss(x, y, reduction="mean", normalizer=value)
    with pytest.raises(InvalidArgumentError, match=match):
        focalkit.softmax_focal_loss(x, torch.tensor([0, 1, 2, 0]), normalizer=value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -4.0])
def test_unchecked_bad_normalizer_gives_nan_not_a_plausible_value(bad):
    """What an accelerator tensor (never read on the host) does, reproduced with value checks off."""
    x, y = torch.randn(4, 3), torch.rand(4, 3).round()
    focalkit.set_value_checks("never")
    try:
        loss = focalkit.sigmoid_focal_loss(x, y, reduction="mean", normalizer=torch.tensor(bad))
    finally:
        focalkit.set_value_checks("auto")
    assert torch.isnan(loss)


def test_zero_normalizer_still_gives_the_sum():
    x, y = torch.randn(4, 3), torch.rand(4, 3).round()
    got = focalkit.sigmoid_focal_loss(x, y, reduction="mean", normalizer=torch.tensor(0.0))
    torch.testing.assert_close(got, focalkit.sigmoid_focal_loss(x, y, reduction="sum"))


# ---------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("shape", [(2, 4, 3), (4, 4), (1, 4, 3), (4, 3, 1)])
def test_weight_that_would_enlarge_the_inputs_is_refused(shape):
    with pytest.raises(InvalidArgumentError, match=r"weight: expected a tensor broadcastable to \(4, 3\)"):
        focalkit.sigmoid_focal_loss(torch.randn(4, 3), torch.rand(4, 3).round(), weight=torch.ones(shape))


@pytest.mark.parametrize("shape", [(3,), (4, 1), (1, 3), (4, 3), ()])
def test_weight_broadcastable_to_the_inputs_is_accepted(shape):
    x, y, w = torch.randn(4, 3), torch.rand(4, 3).round(), torch.rand(shape)
    got = focalkit.sigmoid_focal_loss(x, y, reduction="none", weight=w)
    torch.testing.assert_close(got, focalkit.sigmoid_focal_loss(x, y, reduction="none") * w)


# ---------------------------------------------------------------------------------------- typed errors
X = torch.randn(4, 3)
Y = torch.rand(4, 3).round()
T = torch.tensor([0, 1, 2, 0])
FP8 = [d for d in (getattr(torch, n, None) for n in ("float8_e4m3fn", "float8_e5m2")) if d is not None]


@pytest.mark.parametrize("call,error,match", [
    *[(lambda d=d: focalkit.sigmoid_focal_loss(X.to(d), Y), InvalidTypeError, "inputs: expected a floating-point")
      for d in FP8],
    *[(lambda d=d: focalkit.softmax_focal_loss(X.to(d), T), InvalidTypeError, "input: expected a floating-point")
      for d in FP8],
    (lambda: focalkit.sigmoid_focal_loss(X, torch.tensor([0, 1, 3, 2]), ignore_index=None), InvalidTypeError,
     "ignore_index: expected an integer class index, got None"),
    (lambda: focalkit.softmax_focal_loss(X, T, ignore_index="a"), InvalidTypeError, "ignore_index: expected an integer"),
    (lambda: focalkit.softmax_focal_loss(X, T, ignore_index=1.5), InvalidTypeError, "ignore_index: expected an integer"),
    (lambda: focalkit.sigmoid_focal_loss_star(X, Y, ignore_index=True), InvalidTypeError, "ignore_index"),
    (lambda: focalkit.SigmoidFocalLoss(alpha=[0.1, "a", 0.3]), InvalidTypeError, "alpha: expected a sequence of real"),
    (lambda: focalkit.SigmoidFocalLoss(alpha=[0.1, 1.5, 0.3]), InvalidArgumentError, r"alpha: expected per-class values in \[0, 1\]"),
    (lambda: focalkit.SigmoidFocalLoss(alpha=1.5), InvalidArgumentError, "alpha: expected a number in"),
    (lambda: focalkit.SoftmaxFocalLoss(alpha=2.0), InvalidArgumentError, r"alpha: expected a number in \[0, 1\] or None"),
    (lambda: focalkit.SoftmaxFocalLoss(weight="abc"), InvalidTypeError, "weight: expected a sequence or 1-d tensor"),
    (lambda: focalkit.SoftmaxFocalLoss(weight=[1.0, float("nan")]), InvalidArgumentError, "weight: expected finite"),
    (lambda: focalkit.SigmoidFocalLoss(pos_weight="abc"), InvalidTypeError, "pos_weight: expected a sequence"),
    (lambda: focalkit.SigmoidFocalLoss(ignore_index=None), InvalidTypeError, "ignore_index"),
    (lambda: focalkit.sigmoid_focal_loss(X, Y, pos_weight="abc"), InvalidTypeError, "pos_weight"),
    (lambda: focalkit.softmax_focal_loss(X, T, weight="abc"), InvalidTypeError, "weight"),
    (lambda: focalkit.sigmoid_focal_loss(X, Y, weight=torch.ones(4, 3, dtype=torch.bool)), InvalidTypeError, "weight"),
    (lambda: focalkit.sigmoid_focal_loss(X, Y, reduction="mean", normalizer=torch.ones(2)), InvalidArgumentError,
     "normalizer: expected a number or a one-element real tensor"),
    (lambda: focalkit.class_balanced_weights([10, float("nan")]), InvalidArgumentError, "counts: expected finite"),
    (lambda: focalkit.class_balanced_weights(torch.tensor([10.0, float("inf")])), InvalidArgumentError, "counts"),
])
def test_bad_arguments_raise_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------------------- aliasing
@pytest.mark.parametrize("call", [
    lambda x: focalkit.sigmoid_focal_loss(x, Y, reduction="sum"),
    lambda x: focalkit.softmax_focal_loss(x, T, reduction="sum"),
    lambda x: focalkit.sigmoid_focal_loss_star(x, Y, reduction="sum"),
])
def test_returned_gradient_is_the_callers_to_modify(call, backend, gradient_mode):
    x = X.clone().requires_grad_(True)
    loss = call(x)
    (g,) = torch.autograd.grad(loss, x, retain_graph=True)
    expected = g.clone()
    g.mul_(2)  # built-in losses allow this; a second backward must neither raise nor see the change
    (g2,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g2, expected)


# ---------------------------------------------------------------------------------------- decisions
def test_integer_targets_with_one_class_column_are_refused():
    """(N, 1) logits with integer 0/1 labels would read label 1 as background (inverted): refused, with a pointer
    to float targets."""
    with pytest.raises(InvalidArgumentError, match=r"targets: expected float 0/1 targets .* one class column"):
        focalkit.sigmoid_focal_loss(torch.randn(4, 1), torch.tensor([0, 1, 1, 0]))
    focalkit.sigmoid_focal_loss(torch.randn(4, 1), torch.tensor([[0.0], [1.0], [1.0], [0.0]]))  # the float form works


def test_infinite_logits_are_not_checked_and_give_nan_as_documented():
    """Non-finite logits are not scanned (that would cost a pass over the data); as in torchvision they give NaN,
    also on the correct side where the limit is 0. Finite logits of any size give finite values."""
    loss = focalkit.sigmoid_focal_loss(torch.tensor([float("inf")]), torch.tensor([1.0]), reduction="sum")
    assert torch.isnan(loss)
    finite = focalkit.sigmoid_focal_loss(torch.tensor([3e38, -3e38]), torch.tensor([1.0, 0.0]), reduction="sum")
    assert torch.isfinite(finite)
