"""``dice_focal_loss``: a Dice term plus focalkit's focal loss, with the conventions of MONAI's ``DiceFocalLoss``."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import semantics
from .._checks import check_gamma, check_ignore_index, check_number, scalar_value
from ..errors import argument_error
from ..value_checks import value_checks_enabled
from ._segmentation import (
    VectorArg,
    check_channels,
    check_segmentation_input,
    class_probabilities,
    compute_dtype,
    kept_class_vector,
    one_hot,
    one_hot_indices,
    pixel_count,
    resolve_targets,
)
from ._segmentation_stats import kernel_supported, segmentation_statistics
from .sigmoid import sigmoid_focal_loss
from .softmax import softmax_focal_loss

__all__ = ["dice_focal_loss", "segmentation_alpha"]


def segmentation_alpha(alpha: VectorArg, input: Tensor, softmax: bool, include_background: bool) -> Tensor | float | None:
    """``alpha`` of the focal term over the classes that count.

    Sigmoid: ``None``, a number in [0, 1] (alpha for positives, 1 - alpha for negatives, every class) or per-class
    values. Softmax (MONAI's convention): ``None``; a number a gives the background (channel 0) 1 - a and every
    other class a; per-class values weigh each class' term. Per-class values have C entries, or C - 1 without the
    background (see :func:`focalkit.functional._segmentation.kept_class_vector`).
    """
    if alpha is None:
        return None
    value = scalar_value(alpha)
    if semantics.is_real_number(value):
        number = semantics.check_number("alpha", value, minimum=0.0, maximum=1.0)
        if not softmax:
            return number
        full = torch.full((input.shape[1],), number, dtype=compute_dtype(input), device=input.device)
        full[0] = 1.0 - number
        return full if include_background else full[1:]
    return kept_class_vector("alpha", value, input, include_background, unit_range=True)


def dice_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    softmax: bool = True,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    alpha: VectorArg = None,
    gamma: float = 2.0,
    weight: VectorArg = None,
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    squared_pred: bool = False,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    r"""Dice loss plus focal loss for segmentation, with the conventions of MONAI's ``DiceFocalLoss``.

    .. math::

        L = \lambda_\mathrm{dice}\, \mathrm{reduce}_{n,c}\, w_c \Big(1 - \frac{2 \sum_s p_{c} g_{c} + s_\mathrm{nr}}
        {\sum_s p_{c} + \sum_s g_{c} + s_\mathrm{dr}}\Big) + \lambda_\mathrm{focal}\, \mathrm{FL},

    with p = softmax(x) over the C channels (``softmax=True``, multi-class) or sigmoid(x) (``softmax=False``,
    multi-label), g the one-hot / soft target, sums over the pixels s of each image (and over the batch with
    ``batch=True``; with ``squared_pred=True`` the denominator sums p^2 and g^2). The Dice term is formed as
    (FP + FN + s_dr - s_nr) / (sum p + sum g + s_dr) with FN = sum g (1 - p), FP = sum p (1 - g), and 1 - p formed
    without cancellation, so a near-perfect prediction keeps its small loss exactly. FL is
    :func:`focalkit.softmax_focal_loss` (per pixel -sum_c alpha_c w_c g_c (1 - p_c)^gamma log p_c) or
    :func:`focalkit.sigmoid_focal_loss` (per element alpha_t w_c (1 - p_t)^gamma BCE), in MONAI's normalisation:
    ``"mean"`` divides its sum by N C' S (C' the classes that count, S the pixels; ignored pixels are not counted),
    ``"sum"`` averages over the pixels of each image and sums over images (and classes).

    On CPU float32 / float16 / bfloat16 logits both terms come from one fused kernel pass (per-(image, class) sums
    of the Dice term and per-image focal sums; :mod:`focalkit.functional._segmentation_stats`) and one more for the
    gradient, the formulas running in float64 on the (N, C) sums; float64 logits, other devices and
    ``torch.compile`` run the PyTorch formulation, with the same values. Under a softmax, the focal term of soft
    (not exactly one-hot) targets runs through :func:`focalkit.softmax_focal_loss` beside the kernel.

    ``include_background=False`` drops channel 0 *after* the softmax, from both terms; ``alpha`` and ``weight``
    stay aligned with the remaining classes (C values, entry 0 dropped, or C - 1 values).

    Where this differs from MONAI's ``DiceFocalLoss`` (each difference has a test in
    ``tests/test_segmentation_family.py``): without the background, MONAI's focal term takes its softmax over the
    C - 1 remaining channels (its Dice term over all C) and drops ``alpha``, while here both
    terms use the softmax over C and ``alpha`` weighs the remaining classes; for soft targets under a sigmoid the
    focal factor is (1 - p_t)^gamma with torchvision's p_t (MONAI: sigmoid(-x (2t - 1))^gamma; equal for 0/1
    targets); one channel with ``softmax=True``, ``include_background=False`` or class indices raises an error
    instead of a warning; there is no ``reduction="none"``, no activation-free mode, ``other_act`` or ``jaccard``;
    ``smooth_dr`` must be > 0; class indices may also be (N, *spatial) and carry ``ignore_index``.

    Args:
        input: logits of shape (N, C, *spatial), any spatial rank (2-D: (N, C, H, W), 3-D: (N, C, D, H, W)).
        target: class indices of shape (N, *spatial) or (N, 1, *spatial) (``ignore_index`` pixels are left out of
            both terms), or one-hot / multi-hot / soft targets of the input's shape with values in [0, 1].
        softmax: softmax over the channels (multi-class, C >= 2) or a sigmoid per channel (multi-label).
        include_background: keep channel 0 (the background) in both terms.
        to_onehot_y: ``None`` reads the target's form from its dtype and shape (integers not of the input's shape
            are class indices); ``True`` requires class indices (floats holding whole numbers accepted, as MONAI's
            labels); ``False`` requires targets of the input's shape.
        alpha: the focal term's alpha. Sigmoid: a number in [0, 1] for positives (1 - alpha for negatives) or per
            class. Softmax, MONAI's convention: a number a weighs the background's term by 1 - a and every other
            class' term by a; per-class values weigh each class' term. ``None`` (default): no alpha.
        gamma: focusing parameter of the focal term, >= 0.
        weight: per-class weights (a number, or C / C - 1 values >= 0) multiplying each class' Dice term and focal
            terms (not part of any denominator, as in MONAI).
        lambda_dice, lambda_focal: weights of the two terms, >= 0.
        smooth_nr, smooth_dr: the Dice term's smoothing of the numerator (>= 0) and of the denominator (> 0).
        batch: one Dice term per class over the whole batch instead of per image.
        squared_pred: squared predictions and targets in the Dice denominator (V-Net).
        reduction: ``"mean"`` or ``"sum"`` (see above).
        ignore_index: class index of pixels to leave out (class-index targets only).

    Returns:
        A scalar, float32 for float16 / bfloat16 input (computed in float32), else the input's dtype. Empty
        inputs give 0 with a gradient path.

    Example:
        >>> x = torch.tensor([[[[2.0, -1.0]], [[0.0, 1.0]]]])   # (N=1, C=2, H=1, W=2)
        >>> y = torch.tensor([[[0, 1]]])                         # class indices (N, H, W)
        >>> dice_focal_loss(x, y)
        tensor(0.1201)
        >>> dice_focal_loss(x, y, softmax=False, include_background=False, alpha=0.25)
        tensor(0.4125)

    Reference:
        F. Milletari et al., "V-Net", 3DV 2016 (Dice loss); T.-Y. Lin et al., "Focal Loss for Dense Object
        Detection", ICCV 2017; MONAI ``monai.losses.DiceFocalLoss`` (conventions).
    """
    input = check_segmentation_input(input)
    softmax = semantics.check_bool("softmax", softmax)
    include_background = semantics.check_bool("include_background", include_background)
    batch = semantics.check_bool("batch", batch)
    squared_pred = semantics.check_bool("squared_pred", squared_pred)
    gamma = check_gamma(gamma)
    lambda_dice = check_number("lambda_dice", lambda_dice, minimum=0.0)
    lambda_focal = check_number("lambda_focal", lambda_focal, minimum=0.0)
    smooth_nr = check_number("smooth_nr", smooth_nr, minimum=0.0)
    smooth_dr = check_number("smooth_dr", smooth_dr, minimum=0.0, strict=True)
    if reduction == "none":
        raise argument_error(
            "reduction",
            "'mean' or 'sum' (a per-class Dice term and a per-pixel focal term have no common unreduced shape)",
            repr(reduction),
        )
    reduction = semantics.check_reduction(reduction, ("mean", "sum"))
    ignore_index = check_ignore_index(ignore_index)
    check_channels(input, softmax, include_background)
    fused = input.numel() > 0 and kernel_supported(input) and (lambda_dice > 0 or lambda_focal > 0)
    # the fused kernel counts out-of-range class indices in its own pass (no separate scan of the target)
    targets = resolve_targets(input, target, to_onehot_y, ignore_index, scan_indices=not fused)
    weight_vector = kept_class_vector("weight", weight, input, include_background, unit_range=False)
    alpha_value = segmentation_alpha(alpha, input, softmax, include_background)

    out_dtype = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
    if input.numel() == 0:
        return (input.sum() * 0.0).to(out_dtype)
    if fused:
        total = _fused(input, targets, softmax, include_background, alpha_value, gamma, weight_vector, lambda_dice,
                       lambda_focal, smooth_nr, smooth_dr, batch, squared_pred, reduction, ignore_index)
        return total.to(out_dtype)
    dtype = compute_dtype(input)
    x = input.to(dtype)
    first = 0 if include_background else 1
    parts = []
    n, c = x.shape[:2]
    # exactly one-hot float targets (checked where value checks run) take the class-index paths: same values
    hard_index = targets.index if targets.index is not None else (
        one_hot_indices(targets.soft) if softmax else None)
    if lambda_dice > 0:
        valid = None
        if targets.index is not None:
            g = one_hot(targets.index.reshape(n, -1), c, dtype)
            # the valid-pixel mask is applied only when a pixel is ignored (known without a device sync on CPU)
            if not (value_checks_enabled(targets.valid) and bool(targets.valid.all())):
                valid = targets.valid.reshape(n, 1, -1).to(dtype)
        else:
            g = targets.soft.reshape(n, c, -1)
        dice = _dice_terms(x, g, valid, hard_index is not None, softmax, first, smooth_nr, smooth_dr, batch,
                           squared_pred)
        if weight_vector is not None:
            dice = dice * weight_vector
        parts.append(lambda_dice * (dice.mean() if reduction == "mean" else dice.sum()))
    if lambda_focal > 0:
        focal = _focal_term(x, targets, hard_index, softmax, first, alpha_value, gamma, weight_vector, reduction,
                            ignore_index)
        parts.append(lambda_focal * focal)
    total = sum(parts[1:], parts[0]) if parts else x.sum() * 0.0  # a gradient path when both lambdas are 0
    return total.to(out_dtype)


def _dice_terms(
    x: Tensor,
    g: Tensor,
    valid: Tensor | None,
    hard: bool,
    softmax: bool,
    first: int,
    smooth_nr: float,
    smooth_dr: float,
    batch: bool,
    squared_pred: bool,
) -> Tensor:
    """Per-(image, class) Dice losses (N, C') or per class (C',) with ``batch``.

    The numerator of the loss, FP + FN = sum p (1 - g) + sum (1 - p) g (or sum (p - g)^2 with ``squared_pred``), is
    summed from non-negative terms with 1 - p exact. For one-hot targets under a softmax, 1 - p at the target class
    is the sum of the other classes' p, i.e. the per-pixel sum of the false-positive terms (no extra pass)."""
    n, c = x.shape[:2]
    xs = x.reshape(n, c, -1)
    negative = 1.0 - g if valid is None else (1.0 - g) * valid  # 0 at ignored pixels (g is 0 there already)
    dims = (0, 2) if batch else (2,)
    if softmax and hard:
        p = torch.softmax(xs, 1)
        false_pos = p * negative  # p_c at pixels of another class
        miss = false_pos.sum(1, keepdim=True)  # 1 - p_t at each pixel, t its class: exact
        if squared_pred:
            numerator = (false_pos * false_pos)[:, first:].sum(dims) + (g * (miss * miss))[:, first:].sum(dims)
        else:
            numerator = false_pos[:, first:].sum(dims) + (g * miss)[:, first:].sum(dims)
    else:
        p, q = class_probabilities(xs, softmax)
        false_pos, misses = p * negative, q * g
        if squared_pred:
            difference = false_pos - misses  # p - g without cancellation
            numerator = (difference * difference)[:, first:].sum(dims)
        else:
            numerator = (false_pos + misses)[:, first:].sum(dims)
    p, g = p[:, first:], g[:, first:]
    if valid is not None:
        p = p * valid
    if squared_pred:
        denominator = (p * p).sum(dims) + (g * g).sum(dims)
    else:
        denominator = p.sum(dims) + g.sum(dims)
    return (numerator + (smooth_dr - smooth_nr)) / (denominator + smooth_dr)


def _focal_term(
    x: Tensor,
    targets,
    hard_index: Tensor | None,
    softmax: bool,
    first: int,
    alpha: Tensor | float | None,
    gamma: float,
    weight: Tensor | None,
    reduction: str,
    ignore_index: int,
) -> Tensor:
    """The focal term in MONAI's normalisation ("mean": sum / (N C' S); "sum": per-image pixel means, summed)."""
    n, c = x.shape[:2]
    kept = c - first
    pixels = pixel_count(x)
    # per-image sums are needed only for "sum" with ignored pixels (each image has its own pixel count)
    per_image = reduction == "sum" and targets.index is not None
    inner = "none" if per_image else "sum"
    if softmax:
        class_weight = weight
        if first:  # the background's term is dropped after the softmax
            class_weight = torch.ones(kept, dtype=x.dtype, device=x.device) if weight is None else weight
            class_weight = torch.cat([class_weight.new_zeros(1), class_weight])
        class_alpha = alpha
        if first and isinstance(alpha, Tensor):
            class_alpha = torch.cat([alpha.new_ones(1), alpha])
        target = hard_index if hard_index is not None else targets.soft
        loss = softmax_focal_loss(x, target, class_weight, ignore_index, inner, alpha=class_alpha, gamma=gamma)
    else:
        logits = x[:, first:]
        if targets.index is not None:
            y = one_hot(targets.index, c, x.dtype)[:, first:]
        else:
            y = targets.soft[:, first:]
        element_weight = None
        if weight is not None:
            element_weight = weight.view(1, kept, *([1] * (x.ndim - 2)))
        if targets.valid is not None:
            valid = targets.valid.unsqueeze(1).to(x.dtype)
            element_weight = valid if element_weight is None else valid * element_weight
        loss = sigmoid_focal_loss(logits, y, alpha, gamma, inner, weight=element_weight)
    if targets.valid is not None:
        counts = targets.valid.reshape(n, -1).sum(1).to(x.dtype)
    else:
        counts = torch.full((n,), float(pixels), dtype=x.dtype, device=x.device)
    if per_image:
        sums = loss.reshape(n, -1).sum(1).to(x.dtype)
        return (sums / counts.clamp(min=1.0)).sum()
    loss = loss.to(x.dtype)
    if reduction == "sum":
        return loss / pixels
    return loss / (counts.sum() * kept).clamp(min=1.0)


def _fused(
    input: Tensor,
    targets,
    softmax: bool,
    include_background: bool,
    alpha: Tensor | float | None,
    gamma: float,
    weight: Tensor | None,
    lambda_dice: float,
    lambda_focal: float,
    smooth_nr: float,
    smooth_dr: float,
    batch: bool,
    squared_pred: bool,
    reduction: str,
    ignore_index: int,
) -> Tensor:
    """Both terms from the fused CPU kernel's statistics (:mod:`._segmentation_stats`), in float64 on the small
    (N, C, 3) tensors; the focal term of soft (not one-hot) targets under a softmax runs through
    :func:`focalkit.softmax_focal_loss` beside it. Same values as the PyTorch formulation."""
    n, c = input.shape[:2]
    first = 0 if include_background else 1
    kept = c - first
    # exactly one-hot float targets take the class-index path under a softmax (same values); such indices have no
    # ignored pixel, so an ignore_index that no class can match is passed with them
    hard_index = targets.index
    kernel_ignore = ignore_index
    if softmax and hard_index is None:
        hard_index = one_hot_indices(targets.soft)
        kernel_ignore = -1
    target = hard_index if hard_index is not None else targets.soft
    focal = None
    if lambda_focal > 0 and (not softmax or hard_index is not None):
        focal = _focal_weights(input, softmax, first, alpha, weight)
    stats, focal_sums, counts, _ = segmentation_statistics(
        input, target, softmax=softmax, mode="dice_squared" if squared_pred else "dice",
        ignore_index=kernel_ignore, focal=focal, gamma=gamma)
    parts = []
    if lambda_dice > 0:
        kept_stats = stats[:, first:]
        if batch:
            kept_stats = kept_stats.sum(0)
        numerator, predicted, target_sum = kept_stats.unbind(-1)
        dice = (numerator + (smooth_dr - smooth_nr)) / (predicted + target_sum + smooth_dr)
        if weight is not None:
            dice = dice * weight.to(dice.dtype)
        parts.append(lambda_dice * (dice.mean() if reduction == "mean" else dice.sum()))
    if lambda_focal > 0:
        if focal is None:  # soft targets under a softmax
            x = input.to(compute_dtype(input))
            term = _focal_term(x, targets, None, softmax, first, alpha, gamma, weight, reduction, ignore_index)
        elif reduction == "mean":
            term = focal_sums.sum() / (counts.sum() * kept).clamp(min=1.0)
        elif targets.index is not None:
            term = (focal_sums / counts.clamp(min=1.0)).sum()
        else:
            term = focal_sums.sum() / pixel_count(input)
        parts.append(lambda_focal * term)
    return sum(parts[1:], parts[0])


def _focal_weights(
    input: Tensor, softmax: bool, first: int, alpha: Tensor | float | None, weight: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """The kernel's per-class focal weights over all C channels (0 for a dropped background): softmax
    (alpha_c weight_c, None); sigmoid (the weights of positives alpha_c weight_c and of negatives
    (1 - alpha_c) weight_c)."""
    c = input.shape[1]
    ones = torch.ones(c - first, dtype=torch.float32)
    w = ones if weight is None else weight.to(torch.float32)
    if softmax:
        a = ones if alpha is None else alpha.to(torch.float32)
        positive, negative = a * w, None
    elif alpha is None:
        positive, negative = w, w
    else:
        a = alpha.to(torch.float32) if isinstance(alpha, Tensor) else torch.full_like(ones, float(alpha))
        positive, negative = a * w, (1.0 - a) * w
    if first:
        positive = torch.cat([positive.new_zeros(1), positive])
        negative = None if negative is None else torch.cat([negative.new_zeros(1), negative])
    return positive, negative
