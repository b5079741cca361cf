"""Every bad input gets a typed error before any compute, naming the argument, the expectation and what was received."""

from __future__ import annotations

import pytest
import torch

import focalkit
from focalkit import InvalidArgumentError, InvalidTypeError

X = torch.randn(4, 3)
Y = torch.rand(4, 3).round()


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: focalkit.sigmoid_focal_loss(X, torch.rand(4, 2)), InvalidArgumentError, r"targets: expected float targets of the inputs' shape \(4, 3\), got Tensor\(shape=\(4, 2\)"),
        (lambda: focalkit.sigmoid_focal_loss(X, torch.tensor([0, 1, 2])), InvalidArgumentError, r"targets: expected class indices of shape \(4,\)"),
        (lambda: focalkit.sigmoid_focal_loss(X, torch.tensor([0, 1, 4, 2])), InvalidArgumentError, r"targets: expected class indices in \[0, 3\] or ignore_index=-100, got 4"),
        (lambda: focalkit.sigmoid_focal_loss(X, torch.tensor([0, 1, -1, 2])), InvalidArgumentError, r"got -1"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, gamma=-1.0), InvalidArgumentError, r"gamma: expected a number >= 0.0, got -1.0"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, gamma="2"), InvalidTypeError, r"gamma: expected a real number, got '2'"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, gamma=float("nan")), InvalidArgumentError, r"gamma: expected a finite number"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, alpha=1.5), InvalidArgumentError, r"alpha: expected a number in \[0, 1\], None or a negative number to disable it, got 1.5"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, alpha=[0.1, 0.2]), InvalidArgumentError, r"alpha: expected 3 per-class values"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, alpha=[0.1, 0.2, 1.2]), InvalidArgumentError, r"alpha: expected per-class values in \[0, 1\]"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, reduction="avg"), InvalidArgumentError, r"reduction: expected one of \('none', 'mean', 'sum'\), got 'avg'"),
        (lambda: focalkit.sigmoid_focal_loss(torch.randint(0, 2, (4, 3)), Y), InvalidTypeError, r"inputs: expected a floating-point tensor"),
        (lambda: focalkit.sigmoid_focal_loss(X.numpy(), Y), InvalidTypeError, r"inputs: expected a torch.Tensor, got ndarray"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y.bool()), InvalidTypeError, r"targets: expected float targets in \[0, 1\] or integer class indices"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y * 2), InvalidArgumentError, r"targets: expected values in \[0, 1\], got values in \[0, 2\]"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, reduction="sum", normalizer=3), InvalidArgumentError, r"normalizer: expected reduction=\"mean\""),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, reduction="mean", normalizer=-1), InvalidArgumentError, r"normalizer: expected a number >= 0.0"),
        (lambda: focalkit.sigmoid_focal_loss(X, Y, weight=torch.ones(5)), InvalidArgumentError, r"weight: expected a tensor broadcastable to \(4, 3\)"),
        (lambda: focalkit.sigmoid_focal_loss(torch.randn(4), torch.tensor([0, 1, 0, 1])), InvalidArgumentError, r"integer class indices need inputs with a class dimension"),
        (lambda: focalkit.softmax_focal_loss(X, torch.tensor([0, 1, 3, 2])), InvalidArgumentError, r"target: expected class indices in \[0, 2\] or ignore_index=-100, got 3"),
        (lambda: focalkit.softmax_focal_loss(X, torch.rand(4, 2)), InvalidArgumentError, r"target: expected class probabilities of the input's shape"),
        (lambda: focalkit.softmax_focal_loss(X, torch.tensor([0, 1, 1, 2]), weight=[1.0, 2.0]), InvalidArgumentError, r"weight: expected 3 per-class values"),
        (lambda: focalkit.softmax_focal_loss(X, torch.tensor([0, 1, 1, 2]), weight=[1.0, -2.0, 1.0]), InvalidArgumentError, r"weight: expected non-negative per-class values"),
        (lambda: focalkit.softmax_focal_loss(X, torch.tensor([0, 1, 1, 2]), label_smoothing=1.5), InvalidArgumentError, r"label_smoothing: expected a number in \[0, 1\], got 1.5"),
        (lambda: focalkit.softmax_focal_loss(X, torch.tensor([0, 1, 1, 2]), alpha=2.0), InvalidArgumentError, r"alpha: expected a number in \[0, 1\]"),
        (lambda: focalkit.softmax_focal_loss(X, torch.tensor([0, 1, 1, 2]), gamma=-0.5), InvalidArgumentError, r"gamma: expected a number >= 0.0"),
        (lambda: focalkit.binary_focal_loss(torch.rand(4, 3) + 1.0, Y), InvalidArgumentError, r"probs: expected values in \[0, 1\]"),
        (lambda: focalkit.binary_focal_loss(torch.rand(4, 3), Y.long()), InvalidTypeError, r"targets: expected float targets in \[0, 1\] of the probabilities' shape"),
        (lambda: focalkit.sigmoid_focal_loss_star(X, Y, gamma=0.0), InvalidArgumentError, r"gamma: expected a number > 0.0, got 0.0"),
        (lambda: focalkit.sigmoid_focal_loss_star(X, Y, beta=float("inf")), InvalidArgumentError, r"beta: expected a finite number"),
        (lambda: focalkit.class_balanced_weights([10, 0, 3]), InvalidArgumentError, r"counts: expected counts >= 1 for every class"),
        (lambda: focalkit.class_balanced_weights([10, 3], beta=1.0), InvalidArgumentError, r"beta: expected a number in \[0, 1\), got 1.0"),
        (lambda: focalkit.class_balanced_weights("10"), InvalidTypeError, r"counts: expected a sequence or tensor"),
        (lambda: focalkit.prior_bias(1.5), InvalidArgumentError, r"pi: expected a probability in \(0, 1\), got 1.5"),
        (lambda: focalkit.set_value_checks("sometimes"), InvalidArgumentError, r"mode: expected one of"),
        (lambda: focalkit.FocalLoss("bce"), InvalidTypeError, r"loss_fcn: expected an nn.BCEWithLogitsLoss to wrap"),
        (lambda: focalkit.FocalLoss(3)(torch.randn(2, 4), torch.tensor([0, 1])), InvalidArgumentError, r"inputs: expected logits with 3 classes in dim 1"),
        (lambda: focalkit.SigmoidFocalLoss(gamma=-2), InvalidArgumentError, r"gamma: expected a number >= 0.0"),
    ],
)
def test_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_errors_subclass_builtin_exceptions():
    assert issubclass(InvalidArgumentError, ValueError) and issubclass(InvalidTypeError, TypeError)
    assert issubclass(InvalidArgumentError, focalkit.FocalKitError) and issubclass(InvalidTypeError, focalkit.FocalKitError)


def test_device_mismatch_is_reported():
    meta_targets = torch.empty(4, 3, device="meta")
    with pytest.raises(InvalidArgumentError, match=r"targets: expected a tensor on inputs's device cpu, got Tensor\(shape=\(4, 3\), dtype=torch.float32, device=meta\)"):
        focalkit.sigmoid_focal_loss(X, meta_targets)
    with pytest.raises(InvalidArgumentError, match=r"weight: expected a tensor on input's device cpu"):
        focalkit.softmax_focal_loss(X, torch.tensor([0, 1, 1, 2]), weight=torch.ones(3, device="meta"))


def test_value_checks_modes():
    bad = torch.tensor([0, 1, 7, 2])
    try:
        focalkit.set_value_checks("never")
        assert focalkit.get_value_checks() == "never"
        focalkit.sigmoid_focal_loss(X, bad)  # skipped on request: no error (out-of-range rows count as background)
        focalkit.set_value_checks("always")
        with pytest.raises(InvalidArgumentError):
            focalkit.sigmoid_focal_loss(X, bad)
    finally:
        focalkit.set_value_checks("auto")


def test_no_compute_on_error_and_inputs_untouched():
    x = torch.randn(4, 3, requires_grad=True)
    before = x.detach().clone()
    with pytest.raises(InvalidArgumentError):
        focalkit.sigmoid_focal_loss(x, torch.rand(4, 3), gamma=-1)
    assert x.grad is None and torch.equal(x.detach(), before)
