"""Gradient modes: "recompute" (save the inputs, recompute the gradient in backward; the default) and "store" (save
the gradient computed in forward) give the same losses and gradients on every op and back-end; each saves what it
says; double backward works in "recompute" and raises a typed error in "store"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import focalkit
from focalkit import gradient_mode
from focalkit.backends.cpu import library

BACKENDS = ["torch", "cpu"] if library.available() else ["torch"]

torch.manual_seed(0)
X = 3 * torch.randn(40, 6)
Y = (torch.rand(40, 6) < 0.3).float()
T = torch.randint(0, 7, (40,))
T[::7] = -100
P = torch.softmax(torch.randn(40, 6), dim=1)

CALLS = {
    "sigmoid dense": lambda x: focalkit.sigmoid_focal_loss(x, Y, 0.25, 0.5, "sum"),
    "sigmoid index mean": lambda x: focalkit.sigmoid_focal_loss(x, T, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2.0, "mean"),
    "sigmoid none": lambda x: focalkit.sigmoid_focal_loss(x, Y, 0.25, 2.0, "none"),
    "sigmoid pos_weight": lambda x: focalkit.sigmoid_focal_loss(x, Y, 0.25, 2.0, "sum", pos_weight=torch.full((6,), 2.0)),
    "softmax": lambda x: focalkit.softmax_focal_loss(x, T.clamp(max=5), gamma=2.0),
    "softmax none": lambda x: focalkit.softmax_focal_loss(x, T.clamp(max=5), gamma=0.5, reduction="none"),
    "softmax probabilities": lambda x: focalkit.softmax_focal_loss(x, P, gamma=2.0),
    "softmax smoothing": lambda x: focalkit.softmax_focal_loss(x, T.clamp(max=5), gamma=2.0, label_smoothing=0.1),
    "star": lambda x: focalkit.sigmoid_focal_loss_star(x, Y, 2.0, 1.0, 0.25, "mean"),
    "binary": lambda x: focalkit.binary_focal_loss(torch.sigmoid(x), Y, 0.25, 2.0, "sum"),
}


@pytest.fixture(autouse=True)
def _restore_mode():
    yield
    focalkit.set_gradient_mode("recompute")


def _loss_and_grad(call, mode):
    focalkit.set_gradient_mode(mode)
    x = X.clone().requires_grad_(True)
    loss = call(x)
    weights = torch.arange(loss.numel(), dtype=loss.dtype).reshape(loss.shape) if loss.ndim else 1.0
    (loss * weights).sum().backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_modes_agree(monkeypatch, name, backend):
    monkeypatch.setenv("FOCALKIT_BACKEND", backend)
    loss_r, grad_r = _loss_and_grad(CALLS[name], "recompute")
    loss_s, grad_s = _loss_and_grad(CALLS[name], "store")
    torch.testing.assert_close(loss_s, loss_r, rtol=0, atol=0)
    torch.testing.assert_close(grad_s, grad_r, rtol=1e-6, atol=1e-9)


def _saved(fn):
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    return storages, loss


# above the small-input rule (gradient_mode.SMALL_INPUT_ELEMENTS)
X_LARGE = torch.randn(gradient_mode.SMALL_INPUT_ELEMENTS // 6 + 1, 6)
Y_LARGE = (torch.rand(X_LARGE.shape) < 0.3).float()


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_mode_saves_what_it_says(monkeypatch, backend):
    monkeypatch.setenv("FOCALKIT_BACKEND", backend)
    x = X_LARGE.clone().requires_grad_(True)
    focalkit.set_gradient_mode("recompute")
    storages, loss = _saved(lambda: focalkit.sigmoid_focal_loss(x, Y_LARGE, reduction="sum"))
    assert set(storages) == {x.untyped_storage().data_ptr(), Y_LARGE.untyped_storage().data_ptr()}
    loss.backward()
    focalkit.set_gradient_mode("store")
    storages, loss = _saved(lambda: focalkit.sigmoid_focal_loss(x, Y_LARGE, reduction="sum"))
    assert len(storages) == 1 and x.untyped_storage().data_ptr() not in storages
    assert sum(storages.values()) == x.numel() * x.element_size()  # the gradient, in the logits' dtype
    loss.backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_inputs_store_their_gradient_beside_the_inputs(monkeypatch, backend):
    """At most SMALL_INPUT_ELEMENTS logits: the forward pass computes the gradient and keeps it on the autograd
    context (not among the saved tensors, so that the first backward can hand the buffer itself on) beside the saved
    inputs in "recompute" mode, and double backward still works (from the inputs)."""
    monkeypatch.setenv("FOCALKIT_BACKEND", backend)
    focalkit.set_gradient_mode("recompute")
    x = X.clone().requires_grad_(True)
    storages, loss = _saved(lambda: focalkit.sigmoid_focal_loss(x, Y, reduction="sum"))
    assert set(storages) == {x.untyped_storage().data_ptr(), Y.untyped_storage().data_ptr()}
    kept = loss.grad_fn.small_grad
    assert kept.shape == x.shape and kept.untyped_storage().data_ptr() not in storages
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    (hvp,) = torch.autograd.grad(grad.sum(), x)
    monkeypatch.setenv("FOCALKIT_BACKEND", "torch")  # the float64 reference
    xr = X.double().requires_grad_(True)
    (grad_r,) = torch.autograd.grad(focalkit.sigmoid_focal_loss(xr, Y.double(), reduction="sum"), xr, create_graph=True)
    (hvp_r,) = torch.autograd.grad(grad_r.sum(), xr)
    torch.testing.assert_close(grad.double(), grad_r, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(hvp.double(), hvp_r, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_small_inputs_first_backward_hands_its_kept_gradient_on(monkeypatch, backend):
    """The buffer computed in the forward pass becomes ``.grad`` itself (no copy, a "sum" with ``backward()``) and
    the context drops it; a second backward through the retained graph recomputes the same gradient."""
    monkeypatch.setenv("FOCALKIT_BACKEND", backend)
    x = X.clone().requires_grad_(True)
    loss = focalkit.sigmoid_focal_loss(x, Y, reduction="sum")
    kept = loss.grad_fn.small_grad.data_ptr()
    loss.backward(retain_graph=True)
    assert x.grad.data_ptr() == kept and loss.grad_fn.small_grad is None
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)
    loss = focalkit.sigmoid_focal_loss(x, Y, reduction="mean")
    (mean,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(mean, first / X.numel())


@pytest.mark.parametrize("mode", ["recompute", "store"])
@pytest.mark.parametrize("name", ["sigmoid dense", "softmax"])
def test_returned_gradient_can_be_modified_in_place_with_a_retained_graph(mode, name):
    focalkit.set_gradient_mode(mode)
    x = X.clone().requires_grad_(True)
    loss = CALLS[name](x)
    (first,) = torch.autograd.grad(loss, x, retain_graph=True)
    expected = first.clone()
    first.mul_(2)
    (second,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(second, expected)


def test_double_backward_in_store_mode_raises_a_typed_error():
    focalkit.set_gradient_mode("store")
    x = X.clone().requires_grad_(True)
    loss = focalkit.sigmoid_focal_loss(x, Y, reduction="sum")
    with pytest.raises(focalkit.InvalidArgumentError, match="create_graph: expected gradient mode 'recompute'"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_compiled_store_mode_matches_eager():
    torch._dynamo.reset()
    focalkit.set_gradient_mode("store")
    f = lambda x: focalkit.sigmoid_focal_loss(x, Y, 0.25, 2.0, "mean") + focalkit.softmax_focal_loss(x, T.clamp(max=5))  # noqa: E731
    a, b = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    out = torch.compile(f, fullgraph=True)(a)
    out.backward()
    ref = f(b)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(a.grad, b.grad)


def test_mode_is_validated_and_read_from_the_environment():
    with pytest.raises(focalkit.InvalidArgumentError, match=r"mode: expected one of \('recompute', 'store'\), got 'fast'"):
        focalkit.set_gradient_mode("fast")
    code = "import focalkit; print(focalkit.get_gradient_mode())"
    env = dict(os.environ, FOCALKIT_GRADIENT_MODE="store")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "store", out.stderr
    env["FOCALKIT_GRADIENT_MODE"] = "sometimes"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0 and "FOCALKIT_GRADIENT_MODE: expected one of" in out.stderr
