"""``focal_tversky_loss``: the Focal Tversky loss of Abraham & Khan (2019), exact in log space."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import semantics
from .._checks import check_gamma, check_ignore_index, check_number
from ._segmentation import (
    VectorArg,
    check_channels,
    check_segmentation_input,
    class_log_probabilities,
    compute_dtype,
    finite_logsumexp,
    kept_class_vector,
    log_weighted_sum,
    one_hot,
    resolve_targets,
)
from ._segmentation_stats import kernel_supported, segmentation_statistics

__all__ = ["focal_tversky_loss"]


def focal_tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    softmax: bool = True,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    alpha: float = 0.7,
    beta: float = 0.3,
    gamma: float = 0.75,
    smooth: float = 1e-5,
    batch: bool = False,
    weight: VectorArg = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    r"""Focal Tversky loss (Abraham & Khan 2019) on logits.

    .. math::

        \mathrm{TI}_c = \frac{\mathrm{TP}_c + s}{\mathrm{TP}_c + \alpha\, \mathrm{FN}_c + \beta\, \mathrm{FP}_c + s},
        \qquad L = \sum_c w_c\, (1 - \mathrm{TI}_c)^{\gamma},

    with TP_c = sum_s p_c g_c, FN_c = sum_s (1 - p_c) g_c, FP_c = sum_s p_c (1 - g_c) over the pixels s of each
    image (over the whole batch with ``batch=True``), p = softmax(x) over the channels (``softmax=True``) or
    sigmoid(x). ``alpha`` weighs the false negatives and ``beta`` the false positives, as in the paper (MONAI's
    ``TverskyLoss`` names them the other way round: its ``alpha`` weighs false positives). The exponent is the
    paper's gamma = 0.75 applied directly; implementations that write (1 - TI)^(1/gamma) use gamma = 4/3 for the
    same loss. gamma = 1 gives the Tversky loss, and alpha = beta = 0.5 with gamma = 1 the Dice loss.

    1 - TI_c is formed as (alpha FN + beta FP) / (TP + alpha FN + beta FP + s) from the logarithms of the three
    sums (each a log-sum-exp of log p or log(1 - p)), so it is exact where the prediction is nearly perfect, and
    the gradient is finite for every gamma > 0 at any logit (the factor (1 - TI)^(gamma - 1), infinite at a perfect
    prediction, is never formed; the gradient there is its limit, 0).

    On CPU float32 / float16 / bfloat16 logits, TP, FN and FP are float64 sums of float32 probabilities from one
    fused kernel pass (and one more for the gradient; :mod:`focalkit.functional._segmentation_stats`), and the
    formula above runs on them in float64; where a pixel's logits spread beyond 50 (probabilities below e^-50 lose
    float32's relative accuracy, and gamma < 1 magnifies them), and for float64 logits, other devices and
    ``torch.compile``, the log-space formulation runs.

    Args:
        input: logits of shape (N, C, *spatial), any spatial rank.
        target: class indices of shape (N, *spatial) or (N, 1, *spatial) (``ignore_index`` pixels are left out),
            or one-hot / multi-hot / soft targets of the input's shape in [0, 1].
        softmax: softmax over the channels (C >= 2) or a sigmoid per channel.
        include_background: keep channel 0; ``False`` drops it after the softmax.
        to_onehot_y: as in :func:`focalkit.dice_focal_loss` (``None``: read from the target).
        alpha: weight of the false negatives, >= 0 (paper: 0.7).
        beta: weight of the false positives, >= 0 (paper: 0.3).
        gamma: the exponent, > 0 (paper: 0.75).
        smooth: added to the numerator and the denominator, > 0.
        batch: one term per class over the whole batch instead of per image.
        weight: per-class weights (a number, or C / C - 1 values >= 0) multiplying each class' term.
        reduction: ``"none"``: the terms w_c (1 - TI_c)^gamma, shape (N, C') or (C',) with ``batch``;
            ``"mean"``: their mean (MONAI's reduction); ``"sum"``: their sum (the paper's loss summed over images).
        ignore_index: class index of pixels to leave out (class-index targets only).

    Returns:
        The terms or a scalar, float32 for float16 / bfloat16 input (computed in float32), else the input's dtype.
        Empty inputs give 0 with a gradient path.

    Example:
        >>> x = torch.tensor([[[[2.0, -1.0]], [[0.0, 1.0]]]])   # (N=1, C=2, H=1, W=2)
        >>> y = torch.tensor([[[0, 1]]])
        >>> focal_tversky_loss(x, y)
        tensor(0.2029)
        >>> focal_tversky_loss(x, y, reduction="none")
        tensor([[0.2029, 0.2029]])

    Reference:
        N. Abraham and N. M. Khan, "A Novel Focal Tversky Loss Function with Improved Attention U-Net for Lesion
        Segmentation", ISBI 2019, arXiv:1810.07842, eqs. (3)-(4).
    """
    input = check_segmentation_input(input)
    softmax = semantics.check_bool("softmax", softmax)
    include_background = semantics.check_bool("include_background", include_background)
    batch = semantics.check_bool("batch", batch)
    alpha = check_number("alpha", alpha, minimum=0.0)
    beta = check_number("beta", beta, minimum=0.0)
    gamma = check_gamma(gamma, strict=True)
    smooth = check_number("smooth", smooth, minimum=0.0, strict=True)
    reduction = semantics.check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    check_channels(input, softmax, include_background)
    fused = input.numel() > 0 and kernel_supported(input)
    # the fused kernel counts out-of-range class indices in its own pass (no separate scan of the target)
    targets = resolve_targets(input, target, to_onehot_y, ignore_index, scan_indices=not fused)
    weight_vector = kept_class_vector("weight", weight, input, include_background, unit_range=False)

    out_dtype = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
    n, c = input.shape[:2]
    first = 0 if include_background else 1
    if input.numel() == 0:
        shape = (c - first,) if batch else (n, c - first)
        terms = (input.sum() * 0.0).to(out_dtype).expand(shape)
        return terms if reduction == "none" else terms.sum()
    terms = None
    if fused:
        terms = _fused_terms(input, targets, softmax, first, alpha, beta, gamma, smooth, batch, ignore_index)
    if terms is None:
        terms = _log_space_terms(input, targets, softmax, first, alpha, beta, gamma, smooth, batch)
    if weight_vector is not None:
        terms = terms * weight_vector.to(terms.dtype)
    terms = terms.to(out_dtype)
    if reduction == "none":
        return terms
    return terms.mean() if reduction == "mean" else terms.sum()


def _fused_terms(
    input: Tensor,
    targets,
    softmax: bool,
    first: int,
    alpha: float,
    beta: float,
    gamma: float,
    smooth: float,
    batch: bool,
    ignore_index: int,
) -> Tensor | None:
    """(1 - TI)^gamma (N, C') or (C',) in float64 from TP, FN, FP of the fused CPU kernel
    (:mod:`._segmentation_stats`), or None when a pixel's logits spread beyond the range where float32
    probabilities keep their relative accuracy (the log-space formulation then runs)."""
    target = targets.index if targets.index is not None else targets.soft
    stats, _, _, extreme = segmentation_statistics(input, target, softmax=softmax, mode="tversky",
                                                   ignore_index=ignore_index, focal=None, gamma=gamma)
    if extreme:
        return None
    stats = stats[:, first:]
    if batch:
        stats = stats.sum(0)
    tp, fn, fp = stats.unbind(-1)
    error = alpha * fn + beta * fp
    has_error = error > 0
    # (E / (TP + E + s))^gamma through logarithms: finite, with a zero gradient where E = 0
    log_ratio = torch.log(torch.where(has_error, error, torch.ones_like(error))) - torch.log(tp + error + smooth)
    return torch.where(has_error, torch.exp(gamma * log_ratio), torch.zeros_like(error))


def _log_space_terms(
    input: Tensor,
    targets,
    softmax: bool,
    first: int,
    alpha: float,
    beta: float,
    gamma: float,
    smooth: float,
    batch: bool,
) -> Tensor:
    """(1 - TI)^gamma (N, C') or (C',) from the logarithms of TP, FN, FP (any dtype and device, any finite logit)."""
    n, c = input.shape[:2]
    x = input.to(compute_dtype(input)).reshape(n, c, -1)
    log_p, log_q = class_log_probabilities(x, softmax)
    if targets.index is not None:
        g = one_hot(targets.index.reshape(n, -1), c, x.dtype)
    else:
        g = targets.soft.reshape(n, c, -1)
    log_p, log_q, g = log_p[:, first:], log_q[:, first:], g[:, first:]
    positive, negative = g, 1.0 - g
    if targets.valid is not None:
        valid = targets.valid.reshape(n, 1, -1).to(x.dtype)
        positive, negative = positive * valid, negative * valid
    dims = (0, 2) if batch else (2,)
    log_tp = log_weighted_sum(log_p, positive, dims)
    errors = []
    if alpha > 0:
        errors.append(log_weighted_sum(log_q, positive, dims) + math.log(alpha))
    if beta > 0:
        errors.append(log_weighted_sum(log_p, negative, dims) + math.log(beta))
    if errors:
        log_error, has_error = finite_logsumexp(errors)  # log(alpha FN + beta FP), -inf where it is 0
        log_denominator, _ = finite_logsumexp([log_tp, log_error, torch.full_like(log_tp, math.log(smooth))])
        safe = torch.where(has_error, log_error - log_denominator, torch.zeros_like(log_tp))
        terms = torch.where(has_error, torch.exp(gamma * safe), torch.zeros_like(log_tp))
    else:  # alpha = beta = 0: TI = 1 everywhere
        terms = torch.zeros_like(log_tp) + x.sum() * 0.0
    return terms
