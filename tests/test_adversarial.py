"""Adversarial, property-based tests of the PyTorch core: odd-but-valid inputs must give the float64 reference's
value and gradient (finite wherever the reference is), and bad inputs must raise a typed focalkit error that names
the argument, never a raw framework error or a silent wrong value.

Inputs generated (hypothesis):

- shapes: N in 0..4, C in 1..5, 0-2 spatial dims of size 0..3; non-contiguous (transposed) logits;
- dtypes float16, bfloat16, float32, float64; logits from the body (|x| < 8), the tails (|x| up to 100, the float32
  limits of exp) and the extremes (+-1e4, 0);
- targets: hard and soft floats, class indices with background (C) and ``ignore_index`` rows, probabilities;
- alpha: None, negative (disabled), a number in [0, 1], a per-class list or tensor; gamma in [0, 5]; every reduction;
  ``normalizer`` as a number or a tensor; ``weight`` and ``pos_weight``; label smoothing;
- bad values for one argument at a time: wrong types (str, None, list of str, numpy arrays, bool / complex / integer /
  float8 tensors), wrong shapes, NaN / inf / negative / out-of-range numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import focalkit
from focalkit import FocalKitError, reference

pytestmark = pytest.mark.slow
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
# value tolerance (relative, absolute) of each dtype's result against the float64 reference on the rounded inputs
TOL = {torch.float16: (2e-3, 1e-5), torch.bfloat16: (1e-2, 1e-5), torch.float32: (1e-4, 1e-6), torch.float64: (1e-9, 1e-12)}


@st.composite
def logits_st(draw, min_classes=1):
    n = draw(st.integers(0, 4))
    c = draw(st.integers(min_classes, 5))
    spatial = draw(st.lists(st.integers(0, 3), min_size=0, max_size=2))
    dtype = draw(st.sampled_from(DTYPES))
    shape = (n, c, *spatial)
    numel = math.prod(shape)
    band = draw(st.sampled_from(["body", "tail", "extreme"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if band == "body":
        x = 8 * (2 * torch.rand(numel, generator=gen, dtype=torch.float64) - 1)
    elif band == "tail":
        x = 100 * (2 * torch.rand(numel, generator=gen, dtype=torch.float64) - 1)
    else:
        x = torch.tensor([1e4, -1e4, 0.0, 17.0, -17.0], dtype=torch.float64)[torch.randint(0, 5, (numel,), generator=gen)]
    x = x.reshape(shape).to(dtype)
    if draw(st.booleans()) and len(shape) >= 2 and shape[0] > 1:
        x = x.transpose(0, -1).contiguous().transpose(0, -1)  # same values, non-contiguous strides
    return x, gen


def _alpha(draw, c):
    kind = draw(st.sampled_from(["none", "negative", "number", "list", "tensor"]))
    if kind == "none":
        return None
    if kind == "negative":
        return -1.0
    if kind == "number":
        return draw(st.floats(0, 1))
    values = [draw(st.floats(0, 1)) for _ in range(c)]
    return values if kind == "list" else torch.tensor(values)


def _close(got, want, dtype, what):
    rtol, atol = TOL[dtype]
    finite = torch.isfinite(want)
    assert bool(torch.isfinite(got[finite]).all()), f"{what}: non-finite where the reference is finite"
    torch.testing.assert_close(got[finite].double(), want[finite], rtol=rtol, atol=atol * max(1.0, float(want[finite].abs().max()) if finite.any() else 1.0), msg=what)


def _reference_sigmoid(x64, y64, alpha, gamma, valid=None):
    loss = reference.sigmoid_focal_loss(x64, y64, alpha, gamma)
    return loss if valid is None else loss * valid


@SETTINGS
@given(data=st.data())
def test_sigmoid_focal_loss_matches_the_reference_on_odd_inputs(data):
    x, gen = data.draw(logits_st())
    n, c = x.shape[0], x.shape[1]
    dtype = x.dtype
    target_kind = data.draw(st.sampled_from(["hard", "soft", "index"]))
    alpha = _alpha(data.draw, c)
    gamma = data.draw(st.floats(0, 5))
    reduction = data.draw(st.sampled_from(["none", "sum", "mean"]))
    x64 = x.detach().double().clone()
    if target_kind == "index":
        if c == 1:
            return  # refused on purpose (see test_hostile_core)
        t = torch.randint(0, c + 1, (n, *x.shape[2:]), generator=gen)
        t[torch.rand(t.shape, generator=gen) < 0.2] = -100
        valid = (t != -100).unsqueeze(1).double()
        y64 = torch.nn.functional.one_hot(t.clamp(0, c), c + 1)[..., :c].movedim(-1, 1).double() * valid
        targets = t
    else:
        y64 = torch.rand(x.shape, generator=gen, dtype=torch.float64)
        if target_kind == "hard":
            y64 = y64.round()
        valid = None
        targets = y64.to(dtype)
        y64 = targets.double()
    xr = x.clone().requires_grad_(True)
    loss = focalkit.sigmoid_focal_loss(xr, targets, alpha, gamma, reduction)
    ref_el = _reference_sigmoid(x64.requires_grad_(True), y64, alpha if not isinstance(alpha, torch.Tensor) else alpha.double(), gamma, valid)
    if reduction == "none":
        want = ref_el
    elif reduction == "sum":
        want = ref_el.sum()
    else:
        count = float(valid.sum() * c) if valid is not None else float(x.numel())
        want = ref_el.sum() / (count if count > 0 else 1.0)
    _close(loss.detach().reshape(-1), want.detach().reshape(-1), dtype if reduction == "none" else torch.float32 if dtype != torch.float64 else dtype, "loss")
    weights = torch.rand(loss.shape, generator=gen, dtype=torch.float64)
    (loss * weights.to(loss.dtype)).sum().backward()
    (g_ref,) = torch.autograd.grad((want * weights).sum(), x64)
    assert xr.grad is not None and xr.grad.shape == x.shape
    _close(xr.grad.reshape(-1), g_ref.reshape(-1), dtype, "gradient")


@SETTINGS
@given(data=st.data())
def test_softmax_focal_loss_matches_the_reference_on_odd_inputs(data):
    x, gen = data.draw(logits_st())
    n, c = x.shape[0], x.shape[1]
    dtype = x.dtype
    gamma = data.draw(st.floats(0, 5))
    use_probs = data.draw(st.booleans())
    alpha_kind = data.draw(st.sampled_from(["none", "number", "list"]))
    alpha = None if alpha_kind == "none" else data.draw(st.floats(0, 1)) if alpha_kind == "number" else [
        data.draw(st.floats(0, 1)) for _ in range(c)]
    x64 = x.detach().double().clone().requires_grad_(True)
    if use_probs:
        q = torch.softmax(torch.randn(x.shape, generator=gen, dtype=torch.float64), dim=1).to(dtype)
        target, target64 = q, q.double()
        rows = n * math.prod(x.shape[2:])
    else:
        t = torch.randint(0, c, (n, *x.shape[2:]), generator=gen)
        t[torch.rand(t.shape, generator=gen) < 0.2] = -100
        target, target64 = t, t
        rows = int((t != -100).sum())
    xr = x.clone().requires_grad_(True)
    loss = focalkit.softmax_focal_loss(xr, target, gamma=gamma, alpha=alpha)
    ref_alpha = alpha if alpha_kind != "list" else torch.tensor(alpha, dtype=torch.float64)
    want = reference.softmax_focal_loss(x64, target64, alpha=ref_alpha, gamma=gamma).sum() / max(rows, 1)
    _close(loss.detach().reshape(1), want.detach().reshape(1), torch.float32 if dtype != torch.float64 else dtype, "loss")
    loss.backward()
    (g_ref,) = torch.autograd.grad(want, x64)
    _close(xr.grad.reshape(-1), g_ref.reshape(-1), dtype, "gradient")


# ---------------------------------------------------------------------------------------- bad arguments
BAD_VALUES = {
    "str": "abc",
    "none": None,
    "list of str": ["a", "b"],
    "numpy": np.ones((4, 3), dtype=np.float32),
    "bool tensor": torch.ones(4, 3, dtype=torch.bool),
    "complex tensor": torch.ones(4, 3, dtype=torch.complex64),
    "int tensor": torch.ones(4, 3, dtype=torch.int32),
    "nan": float("nan"),
    "inf": float("inf"),
    "negative": -3.0,
    "large": 7.5,
    "wrong shape tensor": torch.ones(5, 2),
    "empty list": [],
    "dict": {"a": 1},
}
if hasattr(torch, "float8_e4m3fn"):
    BAD_VALUES["float8 tensor"] = torch.zeros(4, 3).to(torch.float8_e4m3fn)

X = torch.randn(4, 3)
Y = torch.rand(4, 3).round()
T = torch.tensor([0, 1, 2, 0])
P = torch.softmax(torch.randn(4, 3), dim=1)

CALLS = {
    # name -> (function, valid keyword arguments, arguments whose bad values are checked, values valid for each)
    "sigmoid_focal_loss": (focalkit.sigmoid_focal_loss, dict(inputs=X, targets=Y, alpha=0.25, gamma=2.0,
                                                              reduction="mean")),
    "sigmoid_focal_loss index": (focalkit.sigmoid_focal_loss, dict(inputs=X, targets=T, alpha=0.25, gamma=2.0,
                                                                    reduction="mean", ignore_index=-100)),
    "softmax_focal_loss": (focalkit.softmax_focal_loss, dict(input=X, target=T, gamma=2.0, reduction="mean",
                                                              label_smoothing=0.0, ignore_index=-100)),
    "softmax_focal_loss probabilities": (focalkit.softmax_focal_loss, dict(input=X, target=P, gamma=2.0)),
    "binary_focal_loss": (focalkit.binary_focal_loss, dict(probs=torch.sigmoid(X), targets=Y, alpha=0.25, gamma=2.0,
                                                            reduction="mean")),
    "sigmoid_focal_loss_star": (focalkit.sigmoid_focal_loss_star, dict(inputs=X, targets=Y, gamma=2.0, beta=1.0,
                                                                        alpha=0.25, reduction="mean")),
    "quality_focal_loss": (focalkit.quality_focal_loss, dict(inputs=X, targets=0.7 * Y, beta=2.0, reduction="mean",
                                                              normalizer=2.0)),
    "varifocal_loss": (focalkit.varifocal_loss, dict(inputs=X, targets=0.6 * Y, alpha=0.75, gamma=2.0,
                                                      iou_weighted=True, reduction="mean")),
    "gaussian_focal_loss": (focalkit.gaussian_focal_loss, dict(inputs=X, targets=torch.rand(4, 3) * (1 - Y) + Y,
                                                                alpha=2.0, beta=4.0, reduction="mean", from_logits=True)),
    "asymmetric_loss": (focalkit.asymmetric_loss, dict(inputs=X, targets=Y, gamma_pos=0.0, gamma_neg=4.0, clip=0.05,
                                                        reduction="mean")),
    "asymmetric_loss_single_label": (focalkit.asymmetric_loss_single_label, dict(
        input=X, target=T, gamma_pos=0.0, gamma_neg=4.0, reduction="mean", label_smoothing=0.1, ignore_index=-100)),
    "poly1_cross_entropy": (focalkit.poly1_cross_entropy, dict(input=X, target=T, epsilon=1.0, reduction="mean",
                                                                label_smoothing=0.0, ignore_index=-100)),
    "poly1_focal_loss": (focalkit.poly1_focal_loss, dict(inputs=X, targets=Y, epsilon=1.0, alpha=0.25, gamma=2.0,
                                                          reduction="mean")),
    "distribution_focal_loss": (focalkit.distribution_focal_loss, dict(inputs=torch.randn(4, 5),
                                                                        targets=torch.tensor([0.0, 1.5, 3.9, 4.0]),
                                                                        reduction="mean")),
}
# values that are valid for an argument although they look odd (skipped as "bad")
VALID_FOR = {
    ("alpha", "none"), ("alpha", "negative"),  # None / negative disable alpha in the sigmoid family
    ("beta", "large"),  # FL*'s shift, QFL's and the Gaussian loss' exponents may be any large number
    ("sigmoid_focal_loss_star", "beta", "negative"),  # any finite shift
    ("gamma", "large"),  # gamma may be any finite number >= 0
    ("gaussian_focal_loss", "alpha", "large"),  # a power, any number >= 0
}
VALID_FOR |= {
    ("normalizer", "none"), ("normalizer", "large"),  # None is the default; any finite number >= 0 is a denominator
    ("varifocal_loss", "alpha", "large"),  # VarifocalNet's alpha weighs negatives: any number >= 0
    ("gamma_pos", "large"), ("gamma_neg", "large"), ("epsilon", "large"),  # exponents and the poly weight
    ("clip", "none"),  # None disables the probability shift
}


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
@pytest.mark.parametrize("call", sorted(CALLS))
def test_one_bad_argument_raises_a_typed_error_naming_it(call, bad):
    fn, valid = CALLS[call]
    for name in valid:
        if (name, bad) in VALID_FOR or (call, name, bad) in VALID_FOR or (call.startswith("softmax") and name == "alpha"):
            continue
        if (name, bad) == ("alpha", "none") or (name, bad) == ("alpha", "negative"):
            if call in ("varifocal_loss", "gaussian_focal_loss"):
                pass  # not a sigmoid-family alpha: these must be refused
            else:
                continue
        kwargs = dict(valid, **{name: BAD_VALUES[bad]})
        try:
            out = fn(**kwargs)
        except FocalKitError as err:
            # a shape mismatch between logits and targets may be reported on either of the two
            named = (name,) if bad != "wrong shape tensor" else tuple(valid)
            head = str(err).split(":")[0].split("[")[0]  # "targets[0] (labels)" names an element of a pair
            assert head.strip() in named, (call, name, bad, str(err))
            assert isinstance(err, (ValueError, TypeError))
            continue
        except Exception as err:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{call}({name}={bad}): raw {type(err).__name__}: {err}") from None
        raise AssertionError(f"{call}({name}={bad}) was accepted and returned {out}")


@SETTINGS
@given(alpha=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3), st.none(),
                       st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4)),
       gamma=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3), st.booleans()),
       reduction=st.one_of(st.sampled_from(["none", "mean", "sum"]), st.text(max_size=5)))
def test_modules_validate_at_construction_or_call(alpha, gamma, reduction):
    """Every module either raises a typed error naming the argument, or computes a finite loss."""
    for cls in (focalkit.SigmoidFocalLoss, focalkit.SoftmaxFocalLoss, focalkit.BinaryFocalLoss):
        try:
            module = cls(alpha=alpha, gamma=gamma, reduction=reduction)
            if cls is focalkit.SoftmaxFocalLoss:
                out = module(X, T)
            elif cls is focalkit.BinaryFocalLoss:
                out = module(torch.sigmoid(X), Y)
            else:
                out = module(X, Y)
        except FocalKitError as err:
            assert str(err).split(":")[0] in ("alpha", "gamma", "reduction"), str(err)
            continue
        except Exception as err:  # noqa: BLE001
            raise AssertionError(f"{cls.__name__}(alpha={alpha!r}, gamma={gamma!r}, reduction={reduction!r}): raw "
                                 f"{type(err).__name__}: {err}") from None
        assert bool(torch.isfinite(out).all()), (cls.__name__, alpha, gamma, reduction)


@SETTINGS
@given(counts=st.one_of(st.lists(st.one_of(st.integers(-3, 10**6), st.floats(allow_nan=True, allow_infinity=True)),
                                 max_size=5), st.text(max_size=3), st.none()),
       beta=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=2)))
def test_class_balanced_weights_are_finite_or_a_typed_error(counts, beta):
    try:
        w = focalkit.class_balanced_weights(counts, beta=beta)
    except FocalKitError as err:
        assert str(err).split(":")[0] in ("counts", "beta"), str(err)
        return
    except Exception as err:  # noqa: BLE001
        raise AssertionError(f"class_balanced_weights({counts!r}, {beta!r}): raw {type(err).__name__}: {err}") from None
    assert bool(torch.isfinite(w).all()) and abs(float(w.sum()) - len(counts)) < 1e-3 * len(counts)


@SETTINGS
@given(pi=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=2), st.none()))
def test_prior_bias_is_finite_or_a_typed_error(pi):
    try:
        b = focalkit.prior_bias(pi)
    except FocalKitError as err:
        assert str(err).startswith("pi:"), str(err)
        return
    want = math.log(pi) - math.log1p(-pi)  # -log((1 - pi) / pi), written so that 1 / pi cannot overflow
    assert math.isfinite(b) and abs(b - want) <= 1e-12 * max(1.0, abs(want))
    if pi > 1e-300:  # sigmoid(b) = pi (exp(-b) overflows for smaller pi)
        assert abs(1 / (1 + math.exp(-b)) - pi) <= 1e-12 * pi
