"""The fused CPU kernel of the segmentation losses (``backends/cpu/segmentation.py``, ``csrc/segmentation_cpu.c``).

``dice_focal_loss`` and ``focal_tversky_loss`` on float32 / float16 / bfloat16 CPU logits run through the kernel's
per-(image, class) statistics; float64 logits run the PyTorch formulation, which is the reference here. Values and
gradients agree across softmax and sigmoid, class-index / one-hot / soft targets, ignore_index, include_background,
per-class alpha and weight, batch, squared_pred, 2-D and 3-D inputs, and |logit| up to 1e4; results do not depend on
the thread count; the kernel is really called (a spy counts its calls), and the focal Tversky loss falls back to its
log-space formulation where the logits spread beyond float32's accurate range.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import focalkit
from focalkit.backends.cpu import library
from focalkit.backends.cpu import segmentation as kernel
from focalkit.functional import _segmentation_stats

from conftest import make_logits

pytestmark = pytest.mark.skipif(not library.available(), reason="the compiled CPU kernels are not available")

SHAPES = {"2d": (2, 4, 5, 6), "3d": (2, 3, 3, 4, 5), "odd": (3, 3, 67, 71)}


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the calls of the kernel's forward statistics."""
    calls = []
    original = kernel.statistics

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mode"))
        return original(*args, **kwargs)

    monkeypatch.setattr(kernel, "statistics", spy)
    return calls


def _targets(shape, form: str, seed: int = 3):
    """A target in the given form, and its float64 twin for the float64 (reference) call."""
    g = torch.Generator().manual_seed(seed)
    n, c, *spatial = shape
    index = torch.randint(0, c, (n, *spatial), generator=g)
    if form == "index":
        ignored = torch.rand(n, *spatial, generator=g) < 0.2
        index = torch.where(ignored, torch.full_like(index, 255), index)
        return index, index
    if form == "onehot":
        onehot = F.one_hot(index, c).movedim(-1, 1).float()
        return onehot, onehot.double()
    if form == "multihot":
        multi = (torch.rand(shape, generator=g) > 0.5).float()
        return multi, multi.double()
    soft = torch.softmax(torch.randn(shape, generator=g) * 2, 1)
    return soft, soft.double()


def _loss_and_grad(fn, x, target, **kwargs):
    leaf = x.detach().clone().requires_grad_(True)
    loss = fn(leaf, target, **kwargs)
    loss.sum().backward()
    return loss.detach().double(), leaf.grad.double()


def _check_against_float64(fn, x, target, target64, rtol=2e-5, grad_rtol=1e-4, **kwargs):
    loss, grad = _loss_and_grad(fn, x, target, **kwargs)
    loss64, grad64 = _loss_and_grad(fn, x.double(), target64, **kwargs)
    torch.testing.assert_close(loss, loss64, rtol=rtol, atol=1e-7)
    scale = float(grad64.abs().max())
    torch.testing.assert_close(grad, grad64, rtol=grad_rtol, atol=1e-5 * scale + 1e-12)


def _per_class(c: int, include_background: bool, start: float, step: float) -> list[float]:
    return [start + step * i for i in range(c - (0 if include_background else 1))]


DICE_OPTIONS = [
    dict(),
    dict(alpha=0.3, weight="kept", batch=True),
    dict(alpha="kept", squared_pred=True, gamma=0.5, reduction="sum"),
    dict(alpha="kept", weight="kept", gamma=0.0, lambda_dice=0.4, lambda_focal=1.5, smooth_nr=0.0),
]


def _dice_kwargs(options, c, include_background, softmax):
    kwargs = dict(options, softmax=softmax, include_background=include_background)
    if kwargs.get("alpha") == "kept":
        kwargs["alpha"] = _per_class(c, include_background, 0.9, -0.15)
    if kwargs.get("weight") == "kept":
        kwargs["weight"] = _per_class(c, include_background, 0.5, 0.5)
    return kwargs


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("form", ["index", "onehot", "soft", "multihot"])
def test_dice_focal_kernel_matches_float64(dims, softmax, include_background, form, kernel_calls):
    shape = SHAPES[dims]
    x = make_logits("random", shape, seed=7)
    target, target64 = _targets(shape, form)
    for options in DICE_OPTIONS:
        kwargs = _dice_kwargs(options, shape[1], include_background, softmax)
        _check_against_float64(focalkit.dice_focal_loss, x, target, target64, ignore_index=255, **kwargs)
    assert len(kernel_calls) == len(DICE_OPTIONS)  # the float32 calls; float64 runs the PyTorch formulation


TVERSKY_OPTIONS = [
    dict(),
    dict(alpha=0.5, beta=0.5, gamma=1.0, smooth=1.0, batch=True, weight="kept", reduction="sum"),
    dict(alpha=1.0, beta=0.0, gamma=2.0, smooth=1e-3, reduction="none"),
    dict(alpha=0.0, beta=0.6, gamma=0.3, batch=True, reduction="none"),
]


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("form", ["index", "onehot", "soft"])
def test_focal_tversky_kernel_matches_float64(dims, softmax, include_background, form, kernel_calls):
    shape = SHAPES[dims]
    x = make_logits("random", shape, seed=8)
    target, target64 = _targets(shape, form)
    for options in TVERSKY_OPTIONS:
        kwargs = dict(options, softmax=softmax, include_background=include_background)
        if kwargs.get("weight") == "kept":
            kwargs["weight"] = _per_class(shape[1], include_background, 0.5, 0.5)
        _check_against_float64(focalkit.focal_tversky_loss, x, target, target64, ignore_index=255, **kwargs)
    assert kernel_calls == ["tversky"] * len(TVERSKY_OPTIONS)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("softmax", [True, False])
def test_half_precision_inputs_run_the_kernel_in_float32(dtype, softmax, kernel_calls):
    shape = SHAPES["2d"]
    x = make_logits("random", shape, seed=9).to(dtype)
    index, _ = _targets(shape, "index")
    for fn, kwargs in [(focalkit.dice_focal_loss, dict(alpha=0.25, weight=[1.0, 2.0, 0.5, 1.0])),
                       (focalkit.focal_tversky_loss, dict())]:
        loss, grad = _loss_and_grad(fn, x, index, softmax=softmax, ignore_index=255, **kwargs)
        loss64, grad64 = _loss_and_grad(fn, x.double(), index, softmax=softmax, ignore_index=255, **kwargs)
        leaf = x.clone().requires_grad_(True)
        out = fn(leaf, index, softmax=softmax, ignore_index=255, **kwargs)
        out.backward()
        assert out.dtype == torch.float32 and leaf.grad.dtype == dtype
        torch.testing.assert_close(loss, loss64, rtol=2e-5, atol=1e-7)
        torch.testing.assert_close(grad, grad64.to(dtype).double(), rtol=2e-2, atol=1e-4 * float(grad64.abs().max()))
    assert len(kernel_calls) == 4


@pytest.mark.parametrize("softmax", [True, False])
def test_one_and_two_threads_give_identical_results(softmax):
    shape = (4, 3, 100, 100)  # enough pixels to be split over two threads
    x = make_logits("random", shape, seed=10)
    index, _ = _targets(shape, "index")
    soft, _ = _targets(shape, "soft")
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            run = []
            for fn, target, kwargs in [(focalkit.dice_focal_loss, index, dict(alpha=0.25, squared_pred=True)),
                                       (focalkit.dice_focal_loss, soft, dict(batch=True)),
                                       (focalkit.focal_tversky_loss, index, dict(reduction="none"))]:
                run.append(_loss_and_grad(fn, x, target, softmax=softmax, ignore_index=255, **kwargs))
            results.append(run)
    finally:
        torch.set_num_threads(previous)
    for (loss1, grad1), (loss2, grad2) in zip(*results):
        assert torch.equal(loss1, loss2) and torch.equal(grad1, grad2)


@pytest.mark.parametrize("softmax", [True, False])
def test_extreme_logits_are_finite_and_match_float64(softmax):
    """|logit| up to 1e4: the Dice + focal kernel path stays finite and exact; the focal Tversky loss leaves the
    kernel's statistics for its log-space formulation there (float32 probabilities underflow)."""
    g = torch.Generator().manual_seed(11)
    shape = (2, 3, 6, 7)
    magnitudes = torch.tensor([1e4, -1e4, 95.0, -95.0, 30.0, -30.0, 0.0, 3.0])
    x = magnitudes[torch.randint(0, len(magnitudes), shape, generator=g)]
    index, _ = _targets(shape, "index")
    for gamma, squared_pred in itertools.product((0.0, 0.5, 2.0), (False, True)):
        kwargs = dict(softmax=softmax, gamma=gamma, alpha=0.25, squared_pred=squared_pred, ignore_index=255)
        loss, grad = _loss_and_grad(focalkit.dice_focal_loss, x, index, **kwargs)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
        _check_against_float64(focalkit.dice_focal_loss, x, index, index, **kwargs)
    for gamma in (0.05, 0.75, 2.0):
        loss, grad = _loss_and_grad(focalkit.focal_tversky_loss, x, index, softmax=softmax, gamma=gamma,
                                    ignore_index=255, reduction="none")
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all()


def test_focal_tversky_falls_back_to_log_space_for_saturated_logits(kernel_calls):
    """Correct predictions at logit 100: 1 - p = e^-100 underflows in float32; the loss still matches float64."""
    index = torch.randint(0, 3, (2, 4, 5), generator=torch.Generator().manual_seed(12))
    onehot = F.one_hot(index, 3).movedim(-1, 1).bool()
    x = torch.where(onehot, 50.0, -50.0)
    loss = focalkit.focal_tversky_loss(x, index, gamma=0.05)
    loss64 = focalkit.focal_tversky_loss(x.double(), index, gamma=0.05)
    assert kernel_calls == ["tversky"] and float(loss64) > 0
    torch.testing.assert_close(loss.double(), loss64, rtol=2e-6, atol=0)


def test_kernel_statistics_match_their_pytorch_formulation():
    shape = (2, 4, 9, 11)
    x = make_logits("random", shape, seed=13)
    for softmax, mode, form in itertools.product((True, False), ("dice", "dice_squared", "tversky"),
                                                 ("index", "soft")):
        target, _ = _targets(shape, form)
        focal = None
        if form == "index" or not softmax:
            positive = torch.tensor([0.5, 1.0, 1.5, 2.0])
            focal = (positive, None) if softmax else (positive, positive.flip(0))
        options = dict(softmax=softmax, mode=mode, ignore_index=255, focal=focal, gamma=2.0)
        out = kernel.statistics(x, target, **options)
        stats, focal_sums = _segmentation_stats.torch_statistics(x.double(), target, **options)
        torch.testing.assert_close(out.stats, stats, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.focal, focal_sums, rtol=1e-5, atol=1e-6)
        valid = (target != 255).reshape(2, -1).sum(1) if form == "index" else torch.full((2,), 99)
        assert torch.equal(out.counts, valid.double())


def test_double_backward_differentiates_the_pytorch_formulation():
    shape = (2, 3, 4, 5)
    x = make_logits("random", shape, seed=14).requires_grad_(True)
    index, _ = _targets(shape, "index")
    loss = focalkit.dice_focal_loss(x, index, ignore_index=255)
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    (second,) = torch.autograd.grad(grad.square().sum(), x)
    x64 = x.detach().double().requires_grad_(True)
    loss64 = focalkit.dice_focal_loss(x64, index, ignore_index=255)
    (grad64,) = torch.autograd.grad(loss64, x64, create_graph=True)
    (second64,) = torch.autograd.grad(grad64.square().sum(), x64)
    torch.testing.assert_close(grad.double(), grad64, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(second.double(), second64, rtol=1e-3, atol=1e-6 * float(second64.abs().max()))


def test_inputs_are_not_modified():
    shape = SHAPES["3d"]
    x = make_logits("random", shape, seed=15).requires_grad_(True)
    soft, _ = _targets(shape, "soft")
    x_before, soft_before = x.detach().clone(), soft.clone()
    focalkit.dice_focal_loss(x, soft, softmax=False).backward()
    focalkit.focal_tversky_loss(x, soft).backward()
    assert torch.equal(x.detach(), x_before) and torch.equal(soft, soft_before)


def test_focalkit_backend_torch_selects_the_pytorch_formulation(monkeypatch, kernel_calls):
    shape = SHAPES["2d"]
    x = make_logits("random", shape, seed=16)
    index, _ = _targets(shape, "index")
    fused = [_loss_and_grad(fn, x, index, ignore_index=255)
             for fn in (focalkit.dice_focal_loss, focalkit.focal_tversky_loss)]
    assert kernel_calls == ["dice", "tversky"]
    monkeypatch.setenv("FOCALKIT_BACKEND", "torch")
    for fn, (loss, grad) in zip((focalkit.dice_focal_loss, focalkit.focal_tversky_loss), fused):
        torch_loss, torch_grad = _loss_and_grad(fn, x, index, ignore_index=255)
        torch.testing.assert_close(loss, torch_loss, rtol=2e-5, atol=1e-7)
        torch.testing.assert_close(grad, torch_grad, rtol=1e-4, atol=1e-5 * float(torch_grad.abs().max()))
    assert kernel_calls == ["dice", "tversky"]


@pytest.mark.parametrize("fn", [focalkit.dice_focal_loss, focalkit.focal_tversky_loss])
@pytest.mark.parametrize("bad", [4, -1, 1000])
def test_the_kernel_counts_invalid_class_indices_and_the_public_error_is_raised(fn, bad, kernel_calls):
    x = make_logits("random", (2, 4, 8, 8), seed=5)
    t = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(5))
    t[1, 3, 2] = bad
    t[0, 0, 0] = -100  # ignored: not counted
    counted = kernel.statistics(x, t, softmax=True, mode="dice", ignore_index=-100, focal=None, gamma=2.0)
    assert counted.invalid == 1
    assert kernel.statistics(x, t.clamp(0, 3), softmax=True, mode="dice", ignore_index=-100, focal=None,
                             gamma=2.0).invalid == 0
    with pytest.raises(focalkit.InvalidArgumentError, match=rf"target: expected class indices in \[0, 3\] or "
                                                             rf"ignore_index=-100, got {bad}"):
        fn(x, t)
    assert kernel_calls, "the kernel ran and raised (no separate scan of the target before it)"
