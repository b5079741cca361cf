"""The segmentation family: ``dice_focal_loss`` / ``DiceFocalLoss``, ``focal_tversky_loss`` / ``FocalTverskyLoss``, and
the ``focal_loss(input, target, mode)`` entry point with segmentation_models_pytorch's modes.

Values and gradients against float64 references written below from the formulas (2-D and 3-D, sigmoid and softmax,
include_background both ways with per-class alpha and weight, every target form, ignore_index, batch Dice,
squared_pred, both reductions), float16 / bfloat16 computed in float32, gradcheck in float64, finiteness at |logit|
up to 1e4, exactness where the prediction is nearly perfect, empty inputs, typed errors; parity with MONAI's
``DiceFocalLoss`` and ``TverskyLoss`` and with smp's ``FocalLoss`` through their code transcribed below (always run)
and through the installed packages (skipped when absent), with one test per deliberate difference.
"""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import focalkit
from focalkit import InvalidArgumentError, InvalidTypeError

SHAPES = {"2d": (2, 4, 5, 6), "3d": (2, 3, 3, 4, 5)}
F32 = dict(rtol=1e-5, atol=1e-7)
F64 = dict(rtol=1e-10, atol=1e-12)


# ================================================================================ cases
def _case(shape, form: str, softmax: bool, *, seed: int = 0, scale: float = 2.0, ignore: bool = True):
    """Logits (float64), the target in the given form, its float64 one-hot / soft form and the valid-pixel mask.

    form: "index" (N, *spatial) with some ignored pixels (-100), "index1" (N, 1, *spatial), "onehot" (float of the
    logits' shape), "soft" (class probabilities for the softmax, independent values in [0, 1] for the sigmoid)."""
    g = torch.Generator().manual_seed(seed)
    n, c, *spatial = shape
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    index = torch.randint(0, c, (n, *spatial), generator=g)
    valid = torch.ones(n, *spatial, dtype=torch.bool)
    if form == "index" and ignore:
        valid = torch.rand(n, *spatial, generator=g) > 0.2
        index = torch.where(valid, index, torch.full_like(index, -100))
    onehot = F.one_hot(index.clamp(min=0), c).movedim(-1, 1).double() * valid.unsqueeze(1)
    if form == "index":
        return x, index, onehot, valid
    if form == "index1":
        return x, index.unsqueeze(1), onehot, valid
    if form == "onehot":
        return x, onehot.clone(), onehot, valid
    soft = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64) * 2, 1) if softmax else \
        torch.rand(shape, generator=g, dtype=torch.float64)
    return x, soft.clone(), soft, valid


def _kept_alpha(alpha, c: int, softmax: bool, include_background: bool):
    """The alpha each counted class gets (a list over the kept classes), or a number (sigmoid), or None."""
    first = 0 if include_background else 1
    if alpha is None:
        return None
    if isinstance(alpha, float):
        return ([1 - alpha] + [alpha] * (c - 1))[first:] if softmax else alpha
    return list(alpha)[first:] if len(alpha) == c else list(alpha)


def _kept_weight(weight, c: int, include_background: bool):
    first = 0 if include_background else 1
    if weight is None:
        return None
    return list(weight)[first:] if len(weight) == c else list(weight)


# ================================================================================ float64 references (the formulas)
def ref_dice_focal(x, g, valid, *, softmax, include_background, alpha, gamma, weight, lambda_dice=1.0,
                   lambda_focal=1.0, smooth_nr=1e-5, smooth_dr=1e-5, batch=False, squared_pred=False,
                   reduction="mean"):
    """Dice (Milletari) + focal (Lin) in float64; ``alpha`` / ``weight`` already over the kept classes."""
    x, g = x.double(), g.double()
    first = 0 if include_background else 1
    p = torch.softmax(x, 1) if softmax else torch.sigmoid(x)
    v = valid.unsqueeze(1).double()
    pk, gk = p[:, first:] * v, g[:, first:] * v
    kept = pk.shape[1]
    shape = [1, kept] + [1] * (x.ndim - 2)
    spatial = list(range(2, x.ndim))
    axes = [0, *spatial] if batch else spatial
    inter = (pk * gk).sum(axes)
    if squared_pred:
        denom = (pk * pk).sum(axes) + (gk * gk).sum(axes)
    else:
        denom = pk.sum(axes) + gk.sum(axes)
    dice = 1 - (2 * inter + smooth_nr) / (denom + smooth_dr)
    if weight is not None:
        dice = dice * torch.tensor(weight, dtype=torch.float64)
    dice = dice.mean() if reduction == "mean" else dice.sum()
    if softmax:
        logp = torch.log_softmax(x, 1)[:, first:]
        fl = -gk * (1 - p[:, first:]) ** gamma * logp
        if alpha is not None:
            fl = fl * torch.tensor(alpha, dtype=torch.float64).view(shape)
    else:
        xk, yk = x[:, first:], g[:, first:]
        pkk = torch.sigmoid(xk)
        pt = pkk * yk + (1 - pkk) * (1 - yk)
        fl = (1 - pt) ** gamma * F.binary_cross_entropy_with_logits(xk, yk, reduction="none")
        if alpha is not None:
            a = torch.tensor(alpha, dtype=torch.float64)
            a = a.view(shape) if a.ndim else a
            fl = fl * (a * yk + (1 - a) * (1 - yk))
        fl = fl * v
    if weight is not None:
        fl = fl * torch.tensor(weight, dtype=torch.float64).view(shape)
    counts = valid.reshape(x.shape[0], -1).sum(1).double()
    if reduction == "mean":
        focal = fl.sum() / max(float(counts.sum()) * kept, 1.0)
    else:
        focal = (fl.reshape(x.shape[0], -1).sum(1) / counts.clamp(min=1)).sum()
    return lambda_dice * dice + lambda_focal * focal


def ref_focal_tversky_terms(x, g, valid, *, softmax, include_background, alpha, beta, gamma, smooth, batch, weight):
    """Abraham & Khan (2019), eqs. (3)-(4): (1 - TI_c)^gamma per image (or batch) and class, float64."""
    x, g = x.double(), g.double()
    first = 0 if include_background else 1
    p = (torch.softmax(x, 1) if softmax else torch.sigmoid(x))[:, first:]
    v = valid.unsqueeze(1).double()
    gk = g[:, first:]
    spatial = list(range(2, x.ndim))
    axes = [0, *spatial] if batch else spatial
    tp = (p * gk * v).sum(axes)
    fn = ((1 - p) * gk * v).sum(axes)
    fp = (p * (1 - gk) * v).sum(axes)
    ti = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    terms = (1 - ti) ** gamma
    if weight is not None:
        terms = terms * torch.tensor(weight, dtype=torch.float64)
    return terms


def ref_focal_elements(x, y, alpha, gamma):
    """torchvision's sigmoid focal loss, element-wise, float64."""
    x, y = x.double(), y.double()
    p = torch.sigmoid(x)
    pt = p * y + (1 - p) * (1 - y)
    loss = (1 - pt) ** gamma * F.binary_cross_entropy_with_logits(x, y, reduction="none")
    if alpha is not None:
        a = torch.tensor(alpha, dtype=torch.float64)
        a = a.view(1, -1, *([1] * (x.ndim - 2))) if a.ndim else a
        loss = loss * (a * y + (1 - a) * (1 - y))
    return loss


# ================================================================================ MONAI and smp, transcribed
def monai_dice_focal(input, target, *, include_background=True, sigmoid=False, softmax=False, gamma=2.0, weight=None,
                     lambda_dice=1.0, lambda_focal=1.0, alpha=None, smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                     squared_pred=False, reduction="mean"):
    """MONAI's ``DiceFocalLoss.forward`` (``to_onehot_y=False``, targets of the input's shape), transcribed from
    ``monai/losses/dice.py`` (DiceLoss) and ``monai/losses/focal_loss.py`` (FocalLoss, softmax_focal_loss,
    sigmoid_focal_loss) of MONAI 1.4, in the input's dtype (MONAI's FocalLoss casts to float32)."""
    # DiceLoss: activation on all C channels, then the background is dropped
    p = input
    if sigmoid:
        p = torch.sigmoid(p)
    if softmax and p.shape[1] > 1:
        p = torch.softmax(p, 1)
    t = target
    if not include_background and p.shape[1] > 1:
        t, p = t[:, 1:], p[:, 1:]
    axes = list(range(2, p.ndim))
    if batch:
        axes = [0, *axes]
    inter = torch.sum(t * p, dim=axes)
    tt, pp = (t ** 2, p ** 2) if squared_pred else (t, p)
    f = 1.0 - (2.0 * inter + smooth_nr) / (tt.sum(axes) + pp.sum(axes) + smooth_dr)
    if weight is not None and t.shape[1] != 1:
        f = f * torch.as_tensor(weight, dtype=f.dtype)
    dice = torch.mean(f) if reduction == "mean" else torch.sum(f)
    # FocalLoss: the background is dropped *before* the (log-)softmax
    x, t = input, target
    if not include_background and x.shape[1] > 1:
        t, x = t[:, 1:], x[:, 1:]
    a = alpha
    if softmax:
        if not include_background and a is not None:
            a = None  # "`include_background=False`, `alpha` ignored when using softmax."
        ls = x.log_softmax(1)
        loss = -(1 - ls.exp()).pow(gamma) * ls * t
        if a is not None:
            fac = torch.tensor([1 - a] + [a] * (t.shape[1] - 1), dtype=loss.dtype)
            loss = fac.view([-1] + [1] * len(t.shape[2:])) * loss
    else:
        loss = x - x * t - F.logsigmoid(x)
        invprobs = F.logsigmoid(-x * (t * 2 - 1))
        loss = (invprobs * gamma).exp() * loss
        if a is not None:
            loss = (t * a + (1 - t) * (1 - a)) * loss
    if weight is not None and t.shape[1] != 1:
        cw = torch.as_tensor(weight, dtype=loss.dtype)
        loss = cw.view([-1] + [1] * len(t.shape[2:])) * loss
    if reduction == "sum":
        focal = loss.mean(dim=list(range(2, t.ndim))).sum()
    else:
        focal = loss.mean()
    return lambda_dice * dice + lambda_focal * focal


def monai_tversky_scores(input, target, *, include_background=True, sigmoid=False, softmax=False, alpha=0.5,
                         beta=0.5, smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    """MONAI's ``TverskyLoss.forward`` with ``reduction="none"``, transcribed (its alpha weighs false positives)."""
    p = torch.sigmoid(input) if sigmoid else input
    if softmax:
        p = torch.softmax(p, 1)
    t = target
    if not include_background:
        t, p = t[:, 1:], p[:, 1:]
    axes = list(range(2, p.ndim))
    if batch:
        axes = [0, *axes]
    p0, p1, g0, g1 = p, 1 - p, t, 1 - t
    tp = torch.sum(p0 * g0, axes)
    fp = alpha * torch.sum(p0 * g1, axes)
    fn = beta * torch.sum(p1 * g0, axes)
    return 1.0 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr)


def smp_focal(y_pred, y_true, mode, *, alpha=None, gamma=2.0, ignore_index=None, reduction="mean", normalized=False,
              reduced_threshold=None, factor_sum_dtype=torch.float32):
    """smp's ``FocalLoss.forward`` and ``focal_loss_with_logits`` (segmentation_models_pytorch 0.3), transcribed.
    smp sums the normalized loss' factors in float32 (``factor_sum_dtype``)."""

    def focal_with_logits(output, target):
        target = target.type(output.type())
        logpt = F.binary_cross_entropy_with_logits(output, target, reduction="none")
        pt = torch.exp(-logpt)
        if reduced_threshold is None:
            focal_term = (1.0 - pt).pow(gamma)
        else:
            focal_term = ((1.0 - pt) / reduced_threshold).pow(gamma)
            focal_term[pt < reduced_threshold] = 1
        loss = focal_term * logpt
        if alpha is not None:
            loss *= alpha * target + (1 - alpha) * (1 - target)
        if normalized:
            norm_factor = focal_term.sum(dtype=factor_sum_dtype).clamp_min(1e-6)
            loss /= norm_factor
        return loss.mean() if reduction == "mean" else loss.sum()

    if mode in ("binary", "multilabel"):
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        if ignore_index is not None:
            keep = y_true != ignore_index
            y_pred, y_true = y_pred[keep], y_true[keep]
        return focal_with_logits(y_pred, y_true)
    loss = 0
    not_ignored = y_true != ignore_index if ignore_index is not None else None
    for cls in range(y_pred.size(1)):
        cls_y_true, cls_y_pred = (y_true == cls).long(), y_pred[:, cls, ...]
        if not_ignored is not None:
            cls_y_true, cls_y_pred = cls_y_true[not_ignored], cls_y_pred[not_ignored]
        loss += focal_with_logits(cls_y_pred, cls_y_true)
    return loss


def _with_grad(fn, x, *args, **kwargs):
    x = x.detach().clone().requires_grad_(True)
    loss = fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


# ================================================================================ dice_focal_loss vs reference
OPTION_SETS = [
    dict(alpha=None, weight=None),
    dict(alpha="scalar", weight="C", batch=True),
    dict(alpha="C", weight="kept", squared_pred=True),
    dict(alpha="kept", weight="C", gamma=0.5, lambda_dice=0.3, lambda_focal=1.7, smooth_nr=0.0, smooth_dr=1e-3),
]


def _options(option_set, c, include_background, softmax):
    options = dict(option_set)
    kept = c - (0 if include_background else 1)
    alpha, weight = options.pop("alpha"), options.pop("weight")
    alphas = {None: None, "scalar": 0.3, "C": [0.2 + 0.15 * i for i in range(c)],
              "kept": [0.9 - 0.2 * i for i in range(kept)]}
    weights = {None: None, "C": [0.5 + 0.5 * i for i in range(c)], "kept": [2.0 - 0.4 * i for i in range(kept)]}
    return alphas[alpha], weights[weight], options


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("form", ["index", "index1", "onehot", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_dice_focal_matches_reference(dims, softmax, include_background, form, reduction):
    shape = SHAPES[dims]
    c = shape[1]
    x, target, g, valid = _case(shape, form, softmax)
    for option_set in OPTION_SETS:
        alpha, weight, options = _options(option_set, c, include_background, softmax)
        kwargs = dict(softmax=softmax, include_background=include_background, alpha=alpha, weight=weight,
                      reduction=reduction, **options)
        ref_kwargs = dict(kwargs, alpha=_kept_alpha(alpha, c, softmax, include_background),
                          weight=_kept_weight(weight, c, include_background))
        ref_kwargs.setdefault("gamma", 2.0)
        ours, ours_grad = _with_grad(focalkit.dice_focal_loss, x, target, **kwargs)
        ref, ref_grad = _with_grad(ref_dice_focal, x, g, valid, **ref_kwargs)
        torch.testing.assert_close(ours, ref, **F64, msg=str(option_set))
        torch.testing.assert_close(ours_grad, ref_grad, **F64, msg=str(option_set))
        ours32, ours32_grad = _with_grad(focalkit.dice_focal_loss, x.float(),
                                         target.float() if target.is_floating_point() else target, **kwargs)
        assert ours32.dtype == torch.float32
        torch.testing.assert_close(ours32.double(), ref, **F32, msg=str(option_set))
        torch.testing.assert_close(ours32_grad.double(), ref_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("softmax", [True, False])
def test_half_precision_is_computed_in_float32(dtype, softmax):
    x, target, g, valid = _case(SHAPES["2d"], "index", softmax)
    xh = x.to(dtype)
    for fn, ref in [
        (lambda a: focalkit.dice_focal_loss(a, target, softmax=softmax, alpha=0.25, weight=[1.0, 2.0, 0.5, 1.0]),
         lambda a: ref_dice_focal(a, g, valid, softmax=softmax, include_background=True,
                                  alpha=_kept_alpha(0.25, 4, softmax, True), gamma=2.0, weight=[1.0, 2.0, 0.5, 1.0])),
        (lambda a: focalkit.focal_tversky_loss(a, target, softmax=softmax),
         lambda a: ref_focal_tversky_terms(a, g, valid, softmax=softmax, include_background=True, alpha=0.7, beta=0.3,
                                           gamma=0.75, smooth=1e-5, batch=False, weight=None).mean()),
    ]:
        ours, ours_grad = _with_grad(fn, xh)
        expected, expected_grad = _with_grad(ref, xh.double())
        assert ours.dtype == torch.float32 and ours_grad.dtype == dtype
        torch.testing.assert_close(ours.double(), expected, **F32)
        torch.testing.assert_close(ours_grad.double(), expected_grad.to(dtype).double(), rtol=2e-2, atol=1e-4)


# ================================================================================ focal_tversky_loss vs reference
@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("form", ["index", "onehot", "soft"])
def test_focal_tversky_matches_reference(dims, softmax, include_background, form):
    shape = SHAPES[dims]
    c = shape[1]
    x, target, g, valid = _case(shape, form, softmax)
    grid = [
        dict(alpha=0.7, beta=0.3, gamma=0.75, smooth=1e-5, batch=False, weight=None, reduction="mean"),
        dict(alpha=0.5, beta=0.5, gamma=1.0, smooth=1.0, batch=True, weight="C", reduction="sum"),
        dict(alpha=1.0, beta=0.0, gamma=2.0, smooth=1e-3, batch=False, weight="kept", reduction="none"),
        dict(alpha=0.0, beta=0.6, gamma=0.3, smooth=1e-5, batch=True, weight=None, reduction="none"),
    ]
    for params in grid:
        params = dict(params)
        weight = {None: None, "C": [1.0 + i for i in range(c)],
                  "kept": [0.5 + i for i in range(c - (0 if include_background else 1))]}[params.pop("weight")]
        reduction = params.pop("reduction")
        kwargs = dict(softmax=softmax, include_background=include_background, weight=weight, **params)
        terms = ref_focal_tversky_terms(x, g, valid, **dict(kwargs, weight=_kept_weight(weight, c, include_background)))
        expected = {"none": terms, "mean": terms.mean(), "sum": terms.sum()}[reduction]
        got = focalkit.focal_tversky_loss(x, target, reduction=reduction, **kwargs)
        torch.testing.assert_close(got, expected, **F64, msg=str(params))
        got32 = focalkit.focal_tversky_loss(x.float(), target.float() if target.is_floating_point() else target,
                                            reduction=reduction, **kwargs)
        torch.testing.assert_close(got32.double(), expected, **F32, msg=str(params))
        ours_grad = _with_grad(focalkit.focal_tversky_loss, x, target, reduction=reduction, **kwargs)[1]
        ref_grad = _with_grad(lambda a: ref_focal_tversky_terms(
            a, g, valid, **dict(kwargs, weight=_kept_weight(weight, c, include_background))), x)[1]
        if reduction == "mean":
            ref_grad = ref_grad / terms.numel()
        torch.testing.assert_close(ours_grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_focal_tversky_special_cases():
    """gamma = 1 is the Tversky loss; alpha = beta = 0.5 with gamma = 1 is the Dice loss with s_nr = s_dr = s."""
    x, target, g, valid = _case(SHAPES["2d"], "onehot", True)
    tversky = focalkit.focal_tversky_loss(x, target, alpha=0.5, beta=0.5, gamma=1.0, smooth=1e-5, reduction="none")
    scores = monai_tversky_scores(x, g, softmax=True, alpha=0.5, beta=0.5)
    torch.testing.assert_close(tversky, scores, **F64)
    # 2 TP / (2 TP + FN + FP) with the smoothing halved: the Dice score with s_nr = s_dr = 2 s
    dice = focalkit.dice_focal_loss(x, target, lambda_focal=0.0, smooth_nr=2e-5, smooth_dr=2e-5)
    torch.testing.assert_close(tversky.mean(), dice, **F64)


# ================================================================================ exactness, extremes, empty inputs
def test_near_perfect_prediction_keeps_its_small_loss():
    """1 - p is exp(-40)-small: a 1 - softmax / 1 - sigmoid formulation rounds it to 0 in float32 (loss 0, and
    0^0.75 with an infinite derivative); here it matches the closed form in both dtypes."""
    q = 1.0 / (1.0 + math.exp(40.0))  # 1 - sigmoid(40), 1 - softmax((40, 0))_0
    pixels = 6
    alpha, smooth, gamma = 0.7, 1e-5, 0.75
    tp, fn = pixels * (1 - q), pixels * q
    tversky_term = (alpha * fn / (tp + alpha * fn + smooth)) ** gamma
    for dtype in (torch.float32, torch.float64):
        x = torch.full((1, 1, 2, 3), 40.0, dtype=dtype, requires_grad=True)
        y = torch.ones(1, 1, 2, 3, dtype=dtype)
        got = focalkit.focal_tversky_loss(x, y, softmax=False, reduction="sum")
        assert math.isclose(float(got.detach()), tversky_term, rel_tol=1e-6)
        got.backward()
        assert torch.isfinite(x.grad).all() and bool((x.grad < 0).all())
        two = torch.stack([torch.full((2, 3), 40.0), torch.zeros(2, 3)]).unsqueeze(0).to(dtype)
        got = focalkit.focal_tversky_loss(two, torch.zeros(1, 2, 3, dtype=torch.long), include_background=True,
                                          reduction="none")
        assert math.isclose(float(got[0, 0]), tversky_term, rel_tol=1e-6)
        dice = focalkit.dice_focal_loss(x.detach(), y, softmax=False, lambda_focal=0.0, smooth_nr=0.0,
                                        smooth_dr=1e-5)
        expected = (fn + 1e-5) / (pixels * (1 - q) + pixels + 1e-5)
        assert math.isclose(float(dice), expected, rel_tol=1e-6)


SATURATED = {
    "tversky softmax": lambda a, t, oh: focalkit.focal_tversky_loss(a, t),
    "tversky sigmoid, gamma 0.3": lambda a, t, oh: focalkit.focal_tversky_loss(a, t, softmax=False, gamma=0.3),
    "tversky batch": lambda a, t, oh: focalkit.focal_tversky_loss(a, t, batch=True, gamma=0.5, weight=[1, 2, 3]),
    "dice_focal softmax": lambda a, t, oh: focalkit.dice_focal_loss(a, t),
    "dice_focal softmax, one-hot": lambda a, t, oh: focalkit.dice_focal_loss(a, oh.to(a.dtype), reduction="sum"),
    "dice_focal softmax, no background": lambda a, t, oh: focalkit.dice_focal_loss(a, t, include_background=False),
    "dice_focal sigmoid, squared": lambda a, t, oh: focalkit.dice_focal_loss(a, t, softmax=False, squared_pred=True),
    "dice_focal sigmoid, multi-hot": lambda a, t, oh: focalkit.dice_focal_loss(a, oh, softmax=False, alpha=0.25),
}


@pytest.mark.parametrize("name", sorted(SATURATED))
def test_saturated_logits_float32_matches_float64(name):
    """Correct predictions at |logit| 20..60: 1 - p is 1e-9..1e-26, lost to 1 - p in float32; the losses
    (1e-22..1e-3) and their gradients in float32 agree with float64 to 2e-6 relative."""
    g = torch.Generator().manual_seed(0)
    index = torch.randint(0, 3, (2, 4, 5), generator=g)
    onehot = F.one_hot(index, 3).movedim(-1, 1).bool()
    magnitude = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64) * 40 + 20
    x = torch.where(onehot, magnitude, -magnitude)
    results = []
    for dtype in (torch.float32, torch.float64):
        leaf = x.to(dtype).requires_grad_(True)
        loss = SATURATED[name](leaf, index, onehot)
        loss.backward()
        results.append((loss.detach().double(), leaf.grad.double()))
    (loss32, grad32), (loss64, grad64) = results
    assert 0 < float(loss64) < 1e-2
    torch.testing.assert_close(loss32, loss64, rtol=2e-6, atol=0)
    torch.testing.assert_close(grad32, grad64, rtol=0, atol=2e-6 * float(grad64.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("softmax", [True, False])
def test_extreme_logits_give_finite_losses_and_gradients(dtype, softmax):
    g = torch.Generator().manual_seed(5)
    shape = (2, 3, 4, 5)
    magnitudes = torch.tensor([1e4, -1e4, 95.0, -95.0, 104.0, -104.0, 750.0, -750.0, 30.0, 0.0])
    x = magnitudes[torch.randint(0, len(magnitudes), shape, generator=g)].to(dtype)
    index = torch.randint(0, 3, (2, 4, 5), generator=g)
    index[0, 0] = -100
    # predictions that agree with the targets at 1e4 too (perfect pixels)
    perfect = torch.where(F.one_hot(index.clamp(min=0), 3).movedim(-1, 1).bool(), 1e4, -1e4).to(dtype)
    calls = []
    for gamma in (0.0, 0.5, 2.0):
        calls.append(lambda a, gamma=gamma: focalkit.dice_focal_loss(a, index, softmax=softmax, gamma=gamma,
                                                                     alpha=0.25, squared_pred=gamma == 0.5))
    for gamma in (0.05, 0.75, 2.0):
        for batch in (False, True):
            calls.append(lambda a, gamma=gamma, batch=batch: focalkit.focal_tversky_loss(
                a, index, softmax=softmax, gamma=gamma, batch=batch, smooth=1e-8))
    calls.append(lambda a: focalkit.focal_loss(a, index, "multiclass", ignore_index=-100, alpha=0.25, gamma=0.5))
    calls.append(lambda a: focalkit.focal_loss(a, (index > 0).to(a.dtype).unsqueeze(1).expand_as(a), "multilabel"))
    for logits in (x, perfect, x * 0.0 + perfect * 1e-2):
        for call in calls:
            leaf = logits.clone().requires_grad_(True)
            loss = call(leaf)
            assert torch.isfinite(loss).all()
            loss.sum().backward()
            assert torch.isfinite(leaf.grad).all()


EMPTY = {
    "dice_focal, no images": lambda make: focalkit.dice_focal_loss(make(0, 3, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long)),
    "dice_focal, no pixels": lambda make: focalkit.dice_focal_loss(make(2, 3, 0, 4), torch.zeros(2, 3, 0, 4),
                                                                   softmax=False, reduction="sum"),
    "dice_focal, all ignored": lambda make: focalkit.dice_focal_loss(make(2, 3, 2, 2), torch.full((2, 2, 2), -100),
                                                                     reduction="sum"),
    "dice_focal, all ignored, mean": lambda make: focalkit.dice_focal_loss(make(2, 3, 2, 2),
                                                                           torch.full((2, 2, 2), -100)),
    "tversky, no images": lambda make: focalkit.focal_tversky_loss(make(0, 3, 4), torch.zeros(0, 4, dtype=torch.long)),
    "tversky, no pixels": lambda make: focalkit.focal_tversky_loss(make(2, 3, 0), torch.zeros(2, 0, dtype=torch.long),
                                                                   batch=True),
    "tversky, all ignored": lambda make: focalkit.focal_tversky_loss(make(2, 3, 5), torch.full((2, 5), -100)),
    "focal_loss multiclass, all ignored": lambda make: focalkit.focal_loss(make(2, 3, 5), torch.full((2, 5), 7),
                                                                           "multiclass", ignore_index=7),
    "focal_loss binary, no pixels": lambda make: focalkit.focal_loss(make(2, 1, 0), torch.zeros(2, 0), "binary"),
    "focal_loss multilabel, all ignored": lambda make: focalkit.focal_loss(make(2, 3), torch.full((2, 3), -1.0),
                                                                           "multilabel", ignore_index=-1),
}


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_empty_inputs_give_zero_with_a_gradient_path(name):
    leaves = []

    def make(*shape):
        leaves.append(torch.randn(*shape, requires_grad=True))
        return leaves[-1]

    loss = EMPTY[name](make)
    assert loss.ndim == 0 and float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert leaves[0].grad is not None and not bool(leaves[0].grad.ne(0).any())


# ================================================================================ gradcheck (float64)
def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([[[0, 2, 1], [1, -100, 2]], [[2, 2, 0], [0, 1, 1]]])
    soft = torch.softmax(torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64), 1)
    multi = (torch.rand(2, 3, 2, 3, generator=g) > 0.5).double()
    checks = [
        lambda a: focalkit.dice_focal_loss(a, index, alpha=[0.2, 0.5, 0.8], weight=[1.0, 2.0, 0.5]),
        lambda a: focalkit.dice_focal_loss(a, soft, include_background=False, alpha=0.25, batch=True, reduction="sum"),
        lambda a: focalkit.dice_focal_loss(a, multi, softmax=False, squared_pred=True, gamma=0.5, alpha=[0.3, 0.6],
                                           include_background=False),
        lambda a: focalkit.focal_tversky_loss(a, index),
        lambda a: focalkit.focal_tversky_loss(a, multi, softmax=False, gamma=1.5, batch=True, weight=[1.0, 0.5, 2.0]),
        lambda a: focalkit.focal_tversky_loss(a, soft, include_background=False, gamma=0.5, reduction="none"),
        lambda a: focalkit.focal_loss(a, index, "multiclass", ignore_index=-100, alpha=0.25),
        lambda a: focalkit.focal_loss(a, index, "multiclass", ignore_index=-100, one_vs_rest=False, gamma=1.5),
        lambda a: focalkit.focal_loss(a, multi, "multilabel", alpha=[0.2, 0.4, 0.6], reduction="sum"),
        lambda a: focalkit.focal_loss(a[:, :1], multi[:, 0], "binary", gamma=0.5),
    ]
    for check in checks:
        assert torch.autograd.gradcheck(check, (x,))


# ================================================================================ focal_loss (smp modes)
@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_focal_loss_modes_match_smp(dims, ignore_index, reduction):
    shape = SHAPES[dims]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    n, c, *spatial = shape
    index = torch.randint(0, c, (n, *spatial), generator=g)
    multi = (torch.rand(shape, generator=g) > 0.6).double()
    binary = (torch.rand(n, *spatial, generator=g) > 0.5).double()
    if ignore_index is not None:
        index[0, 0] = ignore_index
        multi[0, 0, 0] = ignore_index
        binary[1, 0] = ignore_index
    settings = [(None, 2.0, False, None), (0.25, 0.5, False, None), (0.8, 0.0, False, None),
                (None, 2.0, True, None), (0.25, 2.0, False, 0.5), (None, 1.5, True, 0.3)]
    for alpha, gamma, normalized, threshold in settings:
        common = dict(alpha=alpha, gamma=gamma, ignore_index=ignore_index, reduction=reduction, normalized=normalized,
                      reduced_threshold=threshold)
        for mode, xx, yy in [("multiclass", x, index), ("multilabel", x, multi), ("binary", x[:, :1], binary),
                             ("binary", x[:, :1], binary.unsqueeze(1))]:
            ours, ours_grad = _with_grad(focalkit.focal_loss, xx, yy, mode, **common)
            theirs, theirs_grad = _with_grad(smp_focal, xx, yy, mode, **common, factor_sum_dtype=torch.float64)
            torch.testing.assert_close(ours, theirs, **F64, msg=f"{mode} {alpha} {gamma} {normalized} {threshold}")
            torch.testing.assert_close(ours_grad, theirs_grad, **F64)
            ours32 = focalkit.focal_loss(xx.float(), yy.float() if yy.is_floating_point() else yy, mode, **common)
            torch.testing.assert_close(ours32.double(), smp_focal(xx, yy, mode, **common), **F32)


def test_focal_loss_none_and_softmax_form_against_the_formulas():
    x, index, g, valid = _case(SHAPES["2d"], "index", True)
    index = torch.where(valid, index, torch.full_like(index, 9))
    elements = focalkit.focal_loss(x, index, "multiclass", ignore_index=9, alpha=[0.2, 0.4, 0.6, 0.8], reduction="none")
    expected = ref_focal_elements(x, g, [0.2, 0.4, 0.6, 0.8], 2.0) * valid.unsqueeze(1)
    torch.testing.assert_close(elements, expected, **F64)
    rows = focalkit.focal_loss(x, index, "multiclass", ignore_index=9, one_vs_rest=False, reduction="none")
    expected = (-g * (1 - torch.softmax(x, 1)) ** 2 * torch.log_softmax(x, 1)).sum(1)
    torch.testing.assert_close(rows, expected, **F64)
    mean = focalkit.focal_loss(x, index, "multiclass", ignore_index=9, one_vs_rest=False)
    torch.testing.assert_close(mean, expected.sum() / valid.sum(), **F64)
    y = (torch.rand(2, 1, 5, 6) > 0.5).double()
    torch.testing.assert_close(focalkit.focal_loss(x[:, :1], y, "binary", reduction="none"),
                               ref_focal_elements(x[:, :1], y, None, 2.0), **F64)


# ================================================================================ modules
def test_modules_call_the_functions():
    x, index, g, valid = _case(SHAPES["3d"], "index", True)
    x = x.float()
    module = focalkit.DiceFocalLoss(alpha=[0.1, 0.5, 0.9], weight=[1.0, 2.0, 3.0], include_background=False,
                                    batch=True, gamma=1.5, lambda_focal=0.5)
    assert {"alpha", "weight"} <= dict(module.named_buffers()).keys()
    torch.testing.assert_close(module(x, index), focalkit.dice_focal_loss(
        x, index, alpha=[0.1, 0.5, 0.9], weight=[1.0, 2.0, 3.0], include_background=False, batch=True, gamma=1.5,
        lambda_focal=0.5))
    module = focalkit.DiceFocalLoss(softmax=False, alpha=0.25, weight=2.0, reduction="sum")
    torch.testing.assert_close(module(x, g.float()), focalkit.dice_focal_loss(x, g.float(), softmax=False, alpha=0.25,
                                                                              weight=2.0, reduction="sum"))
    module = focalkit.FocalTverskyLoss(alpha=0.6, beta=0.4, gamma=0.5, weight=[1.0, 0.5, 2.0], reduction="none")
    torch.testing.assert_close(module(x, index), focalkit.focal_tversky_loss(x, index, alpha=0.6, beta=0.4, gamma=0.5,
                                                                             weight=[1.0, 0.5, 2.0], reduction="none"))
    assert "gamma=0.5" in repr(module) and "softmax=True" in repr(focalkit.DiceFocalLoss())
    for bad in (lambda: focalkit.DiceFocalLoss(gamma=-1.0), lambda: focalkit.FocalTverskyLoss(smooth=0.0),
                lambda: focalkit.DiceFocalLoss(weight=[1.0, -1.0]), lambda: focalkit.FocalTverskyLoss(reduction="x")):
        with pytest.raises(InvalidArgumentError):
            bad()


# ================================================================================ typed errors
X = torch.randn(2, 3, 4, 4)
IDX = torch.randint(0, 3, (2, 4, 4))
ONEHOT = F.one_hot(IDX, 3).movedim(-1, 1).float()


@pytest.mark.parametrize("call,error,match", [
    (lambda: focalkit.dice_focal_loss(X.long(), IDX), InvalidTypeError, "input: expected a floating-point"),
    (lambda: focalkit.dice_focal_loss(X[0, 0, 0], IDX), InvalidArgumentError, r"input: expected logits of shape"),
    (lambda: focalkit.dice_focal_loss(X, IDX, softmax=1), InvalidTypeError, "softmax: expected a bool"),
    (lambda: focalkit.dice_focal_loss(X, IDX, batch="yes"), InvalidTypeError, "batch: expected a bool"),
    (lambda: focalkit.dice_focal_loss(X, IDX, gamma=-1.0), InvalidArgumentError, "gamma: expected a number >= 0"),
    (lambda: focalkit.dice_focal_loss(X, IDX, lambda_dice=-1.0), InvalidArgumentError, "lambda_dice"),
    (lambda: focalkit.dice_focal_loss(X, IDX, lambda_focal=float("nan")), InvalidArgumentError, "lambda_focal"),
    (lambda: focalkit.dice_focal_loss(X, IDX, smooth_dr=0.0), InvalidArgumentError, r"smooth_dr: expected a number > 0"),
    (lambda: focalkit.dice_focal_loss(X, IDX, smooth_nr=-1e-5), InvalidArgumentError, "smooth_nr"),
    (lambda: focalkit.dice_focal_loss(X, IDX, reduction="none"), InvalidArgumentError, "reduction: expected 'mean' or"),
    (lambda: focalkit.dice_focal_loss(X, IDX, reduction="avg"), InvalidArgumentError, "reduction"),
    (lambda: focalkit.dice_focal_loss(X, IDX, ignore_index=1.5), InvalidTypeError, "ignore_index"),
    (lambda: focalkit.dice_focal_loss(X, IDX, alpha=1.5), InvalidArgumentError, r"alpha: expected a number in \[0, 1\]"),
    (lambda: focalkit.dice_focal_loss(X, IDX, alpha="a"), InvalidTypeError, "alpha"),
    (lambda: focalkit.dice_focal_loss(X, IDX, alpha=[0.1, 0.2]), InvalidArgumentError, "alpha: expected 3 per-class"),
    (lambda: focalkit.dice_focal_loss(X, IDX, alpha=[0.1], include_background=False), InvalidArgumentError,
     r"alpha: expected 3 per-class values .* or 2"),
    (lambda: focalkit.dice_focal_loss(X, IDX, alpha=[0.1, 1.2, 0.3]), InvalidArgumentError, r"values in \[0, 1\]"),
    (lambda: focalkit.dice_focal_loss(X, IDX, weight=[1.0, -2.0, 1.0]), InvalidArgumentError, "weight: expected non-neg"),
    (lambda: focalkit.dice_focal_loss(X, IDX, weight=torch.ones(3, 1)), InvalidTypeError, "weight"),
    (lambda: focalkit.dice_focal_loss(X, IDX, weight=[1.0, float("inf"), 1.0]), InvalidArgumentError, "weight: expected fin"),
    (lambda: focalkit.dice_focal_loss(X[:, :1], IDX), InvalidArgumentError, "input: expected at least 2 channels"),
    (lambda: focalkit.dice_focal_loss(X[:, :1], ONEHOT[:, :1], softmax=False, include_background=False),
     InvalidArgumentError, "include_background: expected True when the input has one channel"),
    (lambda: focalkit.dice_focal_loss(X[:, :1], IDX, softmax=False), InvalidArgumentError, "target: expected one-hot / binary"),
    (lambda: focalkit.dice_focal_loss(X, IDX + 1), InvalidArgumentError, r"target: expected class indices in \[0, 2\]"),
    (lambda: focalkit.dice_focal_loss(X, IDX[:, :2]), InvalidArgumentError, r"target: expected class indices of shape"),
    (lambda: focalkit.dice_focal_loss(X, IDX, to_onehot_y=False), InvalidArgumentError, "for class indices pass integer"),
    (lambda: focalkit.dice_focal_loss(X, IDX.float().unsqueeze(1)), InvalidArgumentError, "or to_onehot_y=True"),
    (lambda: focalkit.dice_focal_loss(X, IDX.float() + 0.5, to_onehot_y=True), InvalidArgumentError, "whole-number"),
    (lambda: focalkit.dice_focal_loss(X, ONEHOT * 2), InvalidArgumentError, r"target: expected values in \[0, 1\]"),
    (lambda: focalkit.dice_focal_loss(X, ONEHOT.bool(), to_onehot_y=True), InvalidTypeError, "target: expected integer"),
    (lambda: focalkit.dice_focal_loss(X, ONEHOT.to(torch.complex64)), InvalidTypeError, "target: expected a real"),
    (lambda: focalkit.dice_focal_loss(X, IDX, to_onehot_y=1), InvalidTypeError, "to_onehot_y: expected a bool"),
    (lambda: focalkit.dice_focal_loss(X, [0, 1]), InvalidTypeError, "target: expected a torch.Tensor"),
    (lambda: focalkit.focal_tversky_loss(X, IDX, gamma=0.0), InvalidArgumentError, r"gamma: expected a number > 0"),
    (lambda: focalkit.focal_tversky_loss(X, IDX, alpha=-0.1), InvalidArgumentError, "alpha: expected a number >= 0"),
    (lambda: focalkit.focal_tversky_loss(X, IDX, beta=float("inf")), InvalidArgumentError, "beta: expected a finite"),
    (lambda: focalkit.focal_tversky_loss(X, IDX, smooth=0.0), InvalidArgumentError, "smooth: expected a number > 0"),
    (lambda: focalkit.focal_tversky_loss(X, IDX, alpha=None), InvalidTypeError, "alpha: expected a real number"),
    (lambda: focalkit.focal_tversky_loss(X, IDX, weight=[1.0, 2.0]), InvalidArgumentError, "weight: expected 3"),
    (lambda: focalkit.focal_tversky_loss(X, IDX, reduction="batchmean"), InvalidArgumentError, "reduction"),
    (lambda: focalkit.focal_loss(X, IDX, "segmentation"), InvalidArgumentError, "mode: expected one of"),
    (lambda: focalkit.focal_loss(X, IDX, "multiclass", reduced_threshold=0.0), InvalidArgumentError,
     r"reduced_threshold: expected None or a number in \(0, 1\]"),
    (lambda: focalkit.focal_loss(X, IDX, "multiclass", reduced_threshold=1.5), InvalidArgumentError,
     r"reduced_threshold: expected None or a number in \(0, 1\]"),
    (lambda: focalkit.focal_loss(X, IDX, "multiclass", reduced_threshold="0.5"), InvalidTypeError,
     "reduced_threshold: expected a real number"),
    (lambda: focalkit.focal_loss(X, IDX, "multiclass", reduction="batchwise_mean"), InvalidArgumentError, "reduction"),
    (lambda: focalkit.focal_loss(X, IDX, "multiclass", normalized=1), InvalidTypeError, "normalized: expected a bool"),
    (lambda: focalkit.focal_loss(X, ONEHOT, "multiclass"), InvalidTypeError, "target: expected integer class indices"),
    (lambda: focalkit.focal_loss(X, IDX + 1, "multiclass"), InvalidArgumentError, r"class indices in \[0, 2\]"),
    (lambda: focalkit.focal_loss(X, IDX, "multilabel"), InvalidArgumentError, "target: expected targets of the input"),
    (lambda: focalkit.focal_loss(X, ONEHOT * 3, "multilabel"), InvalidArgumentError, r"values in \[0, 1\]"),
    (lambda: focalkit.focal_loss(X, ONEHOT, "multilabel", one_vs_rest=False), InvalidArgumentError, "one_vs_rest"),
    (lambda: focalkit.focal_loss(X[:, :1], IDX, "binary", alpha=[0.5]), InvalidTypeError, "alpha: expected None or"),
    (lambda: focalkit.focal_loss(X, ONEHOT, "multilabel", alpha=2.0), InvalidArgumentError, "alpha"),
    (lambda: focalkit.focal_loss(X, ONEHOT, "multilabel", gamma=-2.0), InvalidArgumentError, "gamma"),
    (lambda: focalkit.focal_loss(X, ONEHOT, "multilabel", ignore_index="x"), InvalidTypeError, "ignore_index"),
])
def test_bad_arguments_raise_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ================================================================================ MONAI parity (transcribed code)
def _monai_setting(softmax, include_background, c, with_alpha, with_weight):
    kept = c - (0 if include_background else 1)
    weight = [1.5 - 0.25 * i for i in range(kept)] if with_weight else None
    alpha = 0.3 if with_alpha else None
    return alpha, weight


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("softmax,include_background", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("batch,squared_pred,reduction", [(False, False, "mean"), (True, True, "sum")])
def test_monai_dice_focal_agrees_where_the_definitions_agree(dims, softmax, include_background, batch, squared_pred,
                                                             reduction):
    """Hard one-hot targets; softmax with the background kept, or sigmoid either way; scalar alpha and per-class
    weight (MONAI 1.4's forms). focalkit's class-index targets give the same value."""
    shape = SHAPES[dims]
    x, index, g, valid = _case(shape, "index", softmax, ignore=False)
    for with_alpha, with_weight in [(False, False), (True, True)]:
        alpha, weight = _monai_setting(softmax, include_background, shape[1], with_alpha, with_weight)
        common = dict(include_background=include_background, gamma=2.0, weight=weight, alpha=alpha,
                      batch=batch, squared_pred=squared_pred, reduction=reduction, lambda_dice=0.7, lambda_focal=1.3)
        theirs = monai_dice_focal(x, g, sigmoid=not softmax, softmax=softmax, **common)
        for target in (g, index, index.unsqueeze(1)):
            ours = focalkit.dice_focal_loss(x, target, softmax=softmax, **common)
            torch.testing.assert_close(ours, theirs, **F64)
            ours32 = focalkit.dice_focal_loss(x.float(), target.float() if target.is_floating_point() else target,
                                              softmax=softmax, **common)
            torch.testing.assert_close(ours32.double(), theirs, **F32)


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_monai_tversky_based_focal_tversky_agrees(dims, softmax, include_background, batch):
    """MONAI's TverskyLoss(alpha=beta, beta=alpha) per image and class, raised to gamma, reduced: the same loss;
    gamma = 1 is MONAI's TverskyLoss itself."""
    x, target, g, valid = _case(SHAPES[dims], "onehot", softmax)
    c = SHAPES[dims][1]
    weight = [0.5 + 0.5 * i for i in range(c - (0 if include_background else 1))]
    for alpha, beta, gamma in [(0.7, 0.3, 0.75), (0.3, 0.7, 1.0), (0.5, 0.5, 4 / 3)]:
        scores = monai_tversky_scores(x, g, include_background=include_background, sigmoid=not softmax,
                                      softmax=softmax, alpha=beta, beta=alpha, batch=batch)
        theirs = (scores.clamp(min=0) ** gamma * torch.tensor(weight, dtype=torch.float64)).mean()
        ours = focalkit.focal_tversky_loss(x, target, softmax=softmax, include_background=include_background,
                                           alpha=alpha, beta=beta, gamma=gamma, batch=batch, weight=weight)
        torch.testing.assert_close(ours, theirs, **F64)
        ours32 = focalkit.focal_tversky_loss(x.float(), target.float(), softmax=softmax, alpha=alpha, beta=beta,
                                             include_background=include_background, gamma=gamma, batch=batch,
                                             weight=weight)
        torch.testing.assert_close(ours32.double(), theirs, **F32)


# ---------------------------------------------------------------------------- deliberate differences from MONAI
def test_difference_softmax_without_background_uses_the_full_softmax_in_the_focal_term():
    """MONAI's FocalLoss drops channel 0 before its log-softmax (a softmax over C - 1 channels, not the one its Dice
    term uses); focalkit drops it after the softmax over all C channels, in both terms."""
    x, index, g, valid = _case(SHAPES["2d"], "index", True, ignore=False)
    common = dict(include_background=False, lambda_dice=0.0)
    ours = focalkit.dice_focal_loss(x, index, **common)
    theirs = monai_dice_focal(x, g, softmax=True, **common)
    assert not torch.allclose(ours, theirs, rtol=1e-3)
    expected = ref_dice_focal(x, g, valid, softmax=True, include_background=False, alpha=None, gamma=2.0, weight=None,
                              lambda_dice=0.0)
    torch.testing.assert_close(ours, expected, **F64)
    # the Dice terms agree (MONAI's DiceLoss applies the softmax before dropping the background)
    torch.testing.assert_close(focalkit.dice_focal_loss(x, index, include_background=False, lambda_focal=0.0),
                               monai_dice_focal(x, g, softmax=True, include_background=False, lambda_focal=0.0), **F64)


def test_difference_alpha_is_not_dropped_without_background():
    """MONAI: softmax + include_background=False silently ignores alpha. focalkit applies it to the
    remaining classes: a scalar a weighs each of them by a, per-class values stay aligned with them."""
    x, index, g, valid = _case(SHAPES["2d"], "index", True, ignore=False)
    no_alpha = focalkit.dice_focal_loss(x, index, include_background=False, lambda_dice=0.0)
    scalar = focalkit.dice_focal_loss(x, index, include_background=False, lambda_dice=0.0, alpha=0.25)
    torch.testing.assert_close(scalar, 0.25 * no_alpha, **F64)
    full = focalkit.dice_focal_loss(x, index, include_background=False, alpha=[0.9, 0.1, 0.2, 0.3])
    kept = focalkit.dice_focal_loss(x, index, include_background=False, alpha=[0.1, 0.2, 0.3])
    torch.testing.assert_close(full, kept, rtol=0, atol=0)
    weighted = focalkit.dice_focal_loss(x, index, include_background=False, weight=[5.0, 1.0, 2.0, 3.0],
                                        alpha=[0.1, 0.2, 0.3])
    torch.testing.assert_close(weighted, focalkit.dice_focal_loss(x, index, include_background=False,
                                                                  weight=[1.0, 2.0, 3.0], alpha=[0.9, 0.1, 0.2, 0.3]),
                               rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # focalkit warns about nothing here
        focalkit.dice_focal_loss(x, index, include_background=False, alpha=0.25)


def test_difference_sigmoid_soft_targets_use_torchvisions_p_t():
    """MONAI's sigmoid focal factor is sigmoid(-x (2t - 1))^gamma, which is not (1 - p_t)^gamma for soft t;
    focalkit uses p_t = p t + (1 - p)(1 - t) (torchvision's). Equal for 0/1 targets (tested above)."""
    x, soft, g, valid = _case(SHAPES["2d"], "soft", False)
    ours = focalkit.dice_focal_loss(x, soft, softmax=False, lambda_dice=0.0)
    theirs = monai_dice_focal(x, soft, sigmoid=True, lambda_dice=0.0)
    assert not torch.allclose(ours, theirs, rtol=1e-3)
    torch.testing.assert_close(ours, ref_focal_elements(x, soft, None, 2.0).mean(), **F64)


def test_difference_one_channel_is_an_error_not_a_warning():
    """MONAI warns and ignores softmax=True / include_background=False / to_onehot_y=True for one channel (its Dice
    term then reads the raw logits as probabilities); focalkit raises."""
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(InvalidArgumentError, match="at least 2 channels"):
        focalkit.dice_focal_loss(x, torch.ones(2, 1, 4, 4))
    with pytest.raises(InvalidArgumentError, match="include_background"):
        focalkit.dice_focal_loss(x, torch.ones(2, 1, 4, 4), softmax=False, include_background=False)
    with pytest.raises(InvalidArgumentError, match="one-hot / binary targets"):
        focalkit.dice_focal_loss(x, torch.ones(2, 1, 4, 4, dtype=torch.long), softmax=False, to_onehot_y=True)
    # an integer 0/1 mask of the input's shape is a binary target
    mask = (torch.rand(2, 1, 4, 4) > 0.5).long()
    torch.testing.assert_close(focalkit.dice_focal_loss(x, mask, softmax=False),
                               focalkit.dice_focal_loss(x, mask.float(), softmax=False))


def test_difference_reduction_none_smooth_dr_zero_and_activation():
    """MONAI's reduction="none" broadcasts (N, C, 1, ..) Dice terms against (N, C, *spatial) focal terms; focalkit
    offers "mean" and "sum". smooth_dr = 0 (0/0 for a class absent from an image) is refused. There is no
    "no activation" mode (MONAI's default sigmoid=False, softmax=False) and no other_act / jaccard."""
    x, index, g, valid = _case(SHAPES["2d"], "index", True)
    with pytest.raises(InvalidArgumentError, match="reduction"):
        focalkit.dice_focal_loss(x, index, reduction="none")
    with pytest.raises(InvalidArgumentError, match="smooth_dr"):
        focalkit.dice_focal_loss(x, index, smooth_dr=0.0)
    with pytest.raises(TypeError):
        focalkit.dice_focal_loss(x, index, jaccard=True)
    with pytest.raises(TypeError):
        focalkit.dice_focal_loss(x, index, sigmoid=True)


def test_difference_class_indices_and_ignore_index():
    """MONAI takes class indices only as (N, 1, *spatial) with to_onehot_y=True and has no ignore_index; focalkit
    also reads (N, *spatial) integer targets and leaves ignore_index pixels out of both terms and their counts."""
    x, index, g, valid = _case(SHAPES["3d"], "index", True)
    assert not bool(valid.all())
    ours = focalkit.dice_focal_loss(x, index)
    expected = ref_dice_focal(x, g, valid, softmax=True, include_background=True, alpha=None, gamma=2.0, weight=None)
    torch.testing.assert_close(ours, expected, **F64)
    as_float = torch.where(valid, index, torch.full_like(index, -100)).double().unsqueeze(1)
    torch.testing.assert_close(focalkit.dice_focal_loss(x, as_float, to_onehot_y=True), ours, **F64)


def test_difference_near_perfect_predictions_in_float32():
    """At logits of +-40 MONAI's 1 - p rounds to 0 in float32 (Dice and Tversky scores of exactly 0, and
    (score)^gamma with gamma < 1 has a NaN gradient there, or NaN itself when rounding makes the score negative);
    focalkit keeps the exact small values and finite gradients."""
    x = torch.tensor([[[[40.0, -40.0]], [[-40.0, 40.0]]]], requires_grad=True)  # (1, 2, 1, 2), correct everywhere
    y = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    score = monai_tversky_scores(x, y, softmax=True, alpha=0.3, beta=0.7)
    their_loss = (score ** 0.75).mean()
    their_loss.backward()
    assert float(their_loss.detach()) == 0.0 and bool(torch.isnan(x.grad).all())
    x.grad = None
    ours = focalkit.focal_tversky_loss(x, y)
    ours.backward()
    q = 1.0 / (1.0 + math.exp(80.0))  # 1 - p at every pixel; TP = 1 - q, FN = FP = q per class
    assert math.isclose(float(ours.detach()), (q / (1.0 + 1e-5)) ** 0.75, rel_tol=1e-5)
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().max()) > 0
    dice = focalkit.dice_focal_loss(x.detach(), y, lambda_focal=0.0)
    assert float(monai_dice_focal(x.detach(), y, softmax=True, lambda_focal=0.0)) == 0.0
    assert math.isclose(float(dice), 2 * q / (2.0 + 1e-5), rel_tol=1e-5)


def _monai_dice_args(common: dict) -> dict:
    return {k: common[k] for k in ("include_background", "weight", "batch", "squared_pred", "reduction")}


def _monai_dice_plus_focal(monai_losses, x, g, softmax: bool, common: dict):
    """lambda_dice DiceLoss + lambda_focal FocalLoss of the installed MONAI, with the focal term's activation chosen
    explicitly (``use_softmax=softmax``): the combination MONAI's DiceFocalLoss documents."""
    dice = monai_losses.DiceLoss(**_monai_dice_args(common), sigmoid=not softmax, softmax=softmax)(x, g)
    focal = monai_losses.FocalLoss(include_background=common["include_background"], gamma=common["gamma"],
                                   weight=common["weight"], alpha=common["alpha"], reduction=common["reduction"],
                                   use_softmax=softmax)(x, g)
    return common["lambda_dice"] * dice + common["lambda_focal"] * focal


@pytest.mark.parametrize("dims", sorted(SHAPES))
def test_installed_monai_agrees(dims):
    """Against the installed MONAI (skipped when absent): the cases where the definitions agree, to 1e-5 relative in
    float32, and the transcription above equal to MONAI on the cases where focalkit differs."""
    monai_losses = pytest.importorskip("monai.losses", minversion=None)
    monai = pytest.importorskip("monai", minversion="1.4")
    del monai
    shape = SHAPES[dims]
    c = shape[1]
    x, index, g, valid = _case(shape, "index", True, ignore=False)
    x, g = x.float(), g.float()
    settings = []
    for softmax, include_background in [(True, True), (False, True), (False, False)]:
        for batch, squared_pred, reduction in [(False, False, "mean"), (True, True, "sum")]:
            for with_extras in (False, True):
                alpha, weight = _monai_setting(softmax, include_background, c, with_extras, with_extras)
                settings.append((softmax, include_background, dict(
                    include_background=include_background, gamma=2.0, weight=weight, alpha=alpha, batch=batch,
                    squared_pred=squared_pred, reduction=reduction, lambda_dice=0.7, lambda_focal=1.3)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for softmax, include_background, common in settings:
            theirs = _monai_dice_plus_focal(monai_losses, x, g, softmax, common)
            torch.testing.assert_close(focalkit.dice_focal_loss(x, index, softmax=softmax, **common), theirs, **F32)
            torch.testing.assert_close(focalkit.dice_focal_loss(x, index.unsqueeze(1).float(), to_onehot_y=True,
                                                                softmax=softmax, **common), theirs, **F32)
            torch.testing.assert_close(monai_dice_focal(x, g, sigmoid=not softmax, softmax=softmax, **common), theirs,
                                       **F32)
            combined = monai_losses.DiceFocalLoss(sigmoid=not softmax, softmax=softmax, **common)(x, g)
            if not softmax:
                torch.testing.assert_close(combined, theirs, **F32)
                labels = monai_losses.DiceFocalLoss(sigmoid=True, to_onehot_y=True, **common)
                torch.testing.assert_close(labels(x, index.unsqueeze(1).float()), theirs, **F32)
            else:
                # MONAI's DiceFocalLoss(softmax=True) builds its FocalLoss without use_softmax in some releases
                # (1.6.1 among them): its focal term is then the sigmoid one. focalkit uses the softmax throughout.
                sigmoid_focal = monai_losses.FocalLoss(
                    include_background=include_background, gamma=common["gamma"], weight=common["weight"],
                    alpha=common["alpha"], reduction=common["reduction"])(x, g)
                dice = monai_losses.DiceLoss(**_monai_dice_args(common), softmax=True)(x, g)
                with_sigmoid = common["lambda_dice"] * dice + common["lambda_focal"] * sigmoid_focal
                assert any(torch.allclose(combined, ref, rtol=1e-5, atol=1e-6) for ref in (theirs, with_sigmoid))
        # the differences: the transcription reproduces MONAI where focalkit differs
        for extra in [dict(alpha=0.25), dict(lambda_dice=0.0)]:
            common = dict(include_background=False, gamma=2.0, weight=None, alpha=None, batch=False,
                          squared_pred=False, reduction="mean", lambda_dice=1.0, lambda_focal=1.0) | extra
            theirs = _monai_dice_plus_focal(monai_losses, x, g, True, common)
            torch.testing.assert_close(monai_dice_focal(x, g, softmax=True, **common), theirs, **F32)
            assert not torch.allclose(focalkit.dice_focal_loss(x, index, softmax=True, **common), theirs)
        soft = torch.rand(shape, generator=torch.Generator().manual_seed(3))
        theirs = monai_losses.DiceFocalLoss(sigmoid=True, lambda_dice=0.0)(x, soft)
        torch.testing.assert_close(monai_dice_focal(x, soft, sigmoid=True, lambda_dice=0.0), theirs, **F32)
        for softmax, include_background, batch in itertools.product([True, False], [True, False], [False, True]):
            tversky = monai_losses.TverskyLoss(include_background=include_background, sigmoid=not softmax,
                                               softmax=softmax, alpha=0.3, beta=0.7, reduction="none", batch=batch)
            scores = tversky(x, g).reshape(-1)
            kept = c - (0 if include_background else 1)
            ours = focalkit.focal_tversky_loss(x, index, softmax=softmax, include_background=include_background,
                                               batch=batch, gamma=1.0, reduction="none").reshape(-1)
            torch.testing.assert_close(ours, scores, **F32)
            weight = [1.0 + i for i in range(kept)]
            expected = (scores.reshape(-1, kept).clamp(min=0) ** 0.75 * torch.tensor(weight)).mean()
            torch.testing.assert_close(focalkit.focal_tversky_loss(x, index, softmax=softmax, batch=batch,
                                                                   include_background=include_background,
                                                                   weight=weight), expected, **F32)


def test_installed_monai_per_class_alpha_where_supported():
    """Per-class alpha (MONAI >= 1.6 accepts a sequence): the kept classes' values; equal to MONAI with the softmax,
    and with the sigmoid equal once MONAI's negatives get focalkit's weight 1 - alpha_c. Skipped when MONAI is absent
    or refuses a sequence."""
    monai_losses = pytest.importorskip("monai.losses")
    x, index, g, valid = _case(SHAPES["2d"], "index", True, ignore=False)
    x, g = x.float(), g.float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            monai_losses.FocalLoss(use_softmax=True, alpha=[0.1, 0.2, 0.3, 0.4])(x, g)
        except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
            pytest.skip(f"this MONAI refuses a per-class alpha: {exc}")
        for softmax, include_background in [(True, True), (False, True), (False, False)]:
            alpha = [0.1, 0.2, 0.3, 0.4][(0 if include_background else 1):]
            common = dict(include_background=include_background, alpha=alpha, gamma=2.0, batch=False,
                          squared_pred=False, reduction="mean", lambda_dice=1.0, lambda_focal=1.0,
                          weight=[1.0 + i for i in range(len(alpha))])
            theirs = _monai_dice_plus_focal(monai_losses, x, g, softmax, common)
            ours = focalkit.dice_focal_loss(x, index, softmax=softmax, **common)
            if softmax:
                torch.testing.assert_close(ours, theirs, **F32)
                continue
            # sigmoid: MONAI weighs a class' negatives by 1 where focalkit (torchvision's per-class convention) uses
            # 1 - alpha_c; MONAI's unweighted terms re-weighted that way give focalkit's value
            assert not torch.allclose(ours, theirs, rtol=1e-3)
            terms = monai_losses.FocalLoss(include_background=include_background, gamma=2.0, weight=common["weight"],
                                           reduction="none")(x, g)
            kept = g if include_background else g[:, 1:]
            a = torch.tensor(alpha).view(1, -1, 1, 1)
            focal = (terms * (kept * a + (1 - kept) * (1 - a))).mean()
            dice = monai_losses.DiceLoss(**_monai_dice_args(common), sigmoid=True)(x, g)
            torch.testing.assert_close(ours, dice + focal, **F32)


# ---------------------------------------------------------------------------- deliberate differences from smp
def test_smp_difference_soft_targets():
    """smp's p_t is exp(-BCE), which for soft targets is not p t + (1 - p)(1 - t); focalkit uses the latter (the
    same for 0/1 targets, tested above)."""
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    soft = torch.rand(2, 3, 4, dtype=torch.float64)
    ours = focalkit.focal_loss(x, soft, "multilabel")
    assert not torch.allclose(ours, smp_focal(x, soft, "multilabel"), rtol=1e-3)
    torch.testing.assert_close(ours, ref_focal_elements(x, soft, None, 2.0).mean(), **F64)


def test_smp_difference_none_shape_empty_mean_and_out_of_range_classes():
    """smp's "none" returns the kept elements flattened (summed over classes in multiclass mode); focalkit returns
    them in the logits' shape with 0 where ignored. smp's mean of a fully ignored batch is NaN (focalkit: 0). smp
    reads a class index >= C as 'no class'; focalkit raises."""
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    t = torch.tensor([[0, 1, 2, 9], [2, 2, 1, 0]])
    elements = focalkit.focal_loss(x, t, "multiclass", ignore_index=9, reduction="none")
    assert elements.shape == x.shape and bool((elements[0, :, 3] == 0).all())
    assert torch.isnan(smp_focal(x, torch.full_like(t, 9), "multiclass", ignore_index=9))
    assert float(focalkit.focal_loss(x, torch.full_like(t, 9), "multiclass", ignore_index=9)) == 0.0
    with pytest.raises(InvalidArgumentError, match="class indices"):
        focalkit.focal_loss(x, t, "multiclass")
    assert torch.isfinite(smp_focal(x, t, "multiclass"))


def test_installed_smp_agrees():
    smp = pytest.importorskip("segmentation_models_pytorch")
    x, index, g, valid = _case(SHAPES["2d"], "index", True, ignore=False)
    x = x.float()
    index[0, 0, 0] = 255
    multi = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    for mode, target in [("multiclass", index), ("multilabel", multi), ("binary", multi[:, :1])]:
        for alpha, gamma, reduction in [(None, 2.0, "mean"), (0.25, 1.0, "sum")]:
            criterion = smp.losses.FocalLoss(mode, alpha=alpha, gamma=gamma, ignore_index=255, reduction=reduction)
            logits = x if mode != "binary" else x[:, :1]
            torch.testing.assert_close(focalkit.focal_loss(logits, target, mode, alpha=alpha, gamma=gamma,
                                                           ignore_index=255, reduction=reduction),
                                       criterion(logits, target), **F32)
