"""``asymmetric_loss`` and ``asymmetric_loss_single_label``: the Asymmetric Loss (ASL, Ridnik, Ben-Baruch et al. 2021)
for multi-label classification on logits, and the authors' single-label (softmax) variant."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import semantics
from .._autograd import focal_loss_op
from .._checks import check_floating, check_ignore_index, check_number, check_tensor, describe, scalar_value
from ..errors import argument_error, type_error
from ..semantics import check_bool, check_label_smoothing, check_reduction
from ._detection import check_dense_targets, check_loss_weight, dense_target_scan
from ._reduction import check_normalizer, finish_reduction, reduce_elementwise, weighted_loss
from .softmax import _check_target

__all__ = ["asymmetric_loss", "asymmetric_loss_single_label"]


def _check_clip(clip: object) -> float:
    """The probability margin: None (no shift) or a number in [0, 1]."""
    if clip is None:
        return 0.0
    return semantics.check_number("clip", scalar_value(clip), minimum=0.0, maximum=1.0)


def asymmetric_loss(
    inputs: Tensor,
    targets: Tensor,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float | None = 0.05,
    reduction: str = "mean",
    *,
    detach_focal_weight: bool = False,
    weight: Tensor | None = None,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Asymmetric Loss (ASL) for multi-label classification on logits (Ridnik, Ben-Baruch et al. 2021), the loss of
    the authors' ``AsymmetricLoss`` / ``AsymmetricLossOptimized`` and timm's ``AsymmetricLossMultiLabel``.

    .. math::

        L = -y\,(1 - p)^{\gamma_+} \log p - (1 - y)\, p_m^{\gamma_-} \log(1 - p_m),\qquad
        p = \sigma(x),\ p_m = \max(p - m, 0),

    with the probability margin m = ``clip`` (the "probability shifting" that discards easy negatives; 0 or None
    disables it). Soft targets y in [0, 1] interpolate the two terms linearly. Everything is computed in log space
    from the logits (fp16 / bf16 in fp32): (1 - p)^gamma_pos = exp(-gamma_pos softplus(x)), -log p = softplus(-x),
    1 - p_m = sigmoid(-x) + m, so there is no clamp of probabilities at 1e-8 as in the authors' code: the loss is
    exact at any logit (-log p = 25 at x = -25, where the authors' clamp gives 18.42 and no gradient), never NaN in
    half precision, and the gradient is the closed form, finite for every gamma >= 0 (gamma < 1 included).

    Args:
        inputs: logits of any shape, typically (N, C).
        targets: float targets in [0, 1] of the inputs' shape (multi-hot, or soft).
        gamma_pos: focusing exponent of the positive term, a finite number >= 0 (0 in the paper's experiments).
        gamma_neg: focusing exponent of the negative term, a finite number >= 0 (4 in the paper).
        clip: the probability margin m in [0, 1] (0.05 in the paper), or None / 0 for no shift.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. "mean" divides the sum by the number of elements (N C for
            (N, C) logits), or by ``normalizer``. The authors' code returns ``-loss.sum()``: that is
            ``reduction="sum"`` here (and "mean" times N C).
        detach_focal_weight: treat the focusing weights (1 - p)^gamma_pos and p_m^gamma_neg as constants in the
            gradient (the authors' ``disable_torch_grad_focal_loss=True``); the loss value is the same, the gradient
            is exactly that of the detached weights (also for double backward). False (the default): the exact
            gradient of the loss.
        weight: a tensor broadcastable to the inputs multiplying each element's loss (e.g. per-class weights (C,)).
        normalizer: with ``reduction="mean"``, divide the sum by this number or one-element tensor instead (e.g.
            the batch size N for timm's ``reduction="batchmean"``); 0 is replaced by 1.

    Returns:
        Per-element losses of the inputs' shape and dtype for ``"none"``; otherwise a scalar (float32 for fp16 /
        bf16 inputs).

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]])
        >>> y = torch.tensor([[1.0, 0.0, 0.0]])
        >>> asymmetric_loss(x, y, reduction="sum")
        tensor(0.2187)
        >>> asymmetric_loss(x, y, gamma_neg=0.0, clip=None, reduction="sum")  # gamma = 0, no shift: the BCE
        tensor(1.4143)

    Reference:
        T. Ridnik, E. Ben-Baruch, N. Zamir, A. Noy, I. Friedman, M. Protter, L. Zelnik-Manor, "Asymmetric Loss For
        Multi-Label Classification", ICCV 2021, arXiv:2009.14119; code: github.com/Alibaba-MIIL/ASL
        (``src/loss_functions/losses.py``).
    """
    inputs = check_floating("inputs", inputs)
    reduction = check_reduction(reduction)
    gamma_pos = check_number("gamma_pos", gamma_pos, minimum=0.0)
    gamma_neg = check_number("gamma_neg", gamma_neg, minimum=0.0)
    clip = _check_clip(clip)
    detach_focal_weight = check_bool("detach_focal_weight", detach_focal_weight)
    if isinstance(targets, Tensor) and not targets.is_floating_point():
        raise type_error("targets", "float targets in [0, 1] of the inputs' shape (multi-hot or soft)", describe(targets))
    targets = check_dense_targets("targets", targets, inputs, "float targets in [0, 1]", scan_values=False)
    weight = check_loss_weight(weight, inputs, [tuple(inputs.shape)])
    check_normalizer(normalizer, reduction, False, inputs)

    loss = weighted_loss(
        "asymmetric", inputs, targets, reduction, weight, scalars={"gamma_pos": gamma_pos, "gamma_neg": gamma_neg, "clip": clip, "detach_focal_weight": 1.0 if detach_focal_weight else 0.0},
        scan_targets=dense_target_scan("targets", targets),
    )
    return reduce_elementwise(loss, reduction, inputs, targets, None, normalizer)


def asymmetric_loss_single_label(
    input: Tensor,
    target: Tensor,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    reduction: str = "mean",
    *,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    r"""Single-label Asymmetric Loss over a softmax, the loss of the ASL authors' ``ASLSingleLabel`` (timm's
    ``AsymmetricLossSingleLabel``), with the class-index conventions of ``F.cross_entropy``.

    .. math::

        L_n = -\sum_c q_c\, w_c \log p_c,\qquad p = \mathrm{softmax}(x_n),\quad
        w_t = (1 - p_t)^{\gamma_+},\ w_c = p_c^{\gamma_-}\ (c \ne t),

    where t is the row's target class and q the one-hot target smoothed as q (1 - label_smoothing) +
    label_smoothing / C (the focusing weights use the unsmoothed target, as the authors' code). Without label
    smoothing the other classes have q_c = 0, so ``gamma_neg`` has no effect and the loss is the softmax focal loss
    with gamma = ``gamma_pos``; the authors' default smoothing is 0.1, focalkit's is 0 (as ``F.cross_entropy``).
    log p and log(1 - p_t) are computed in log space (fp16 / bf16 in fp32) and the gradient in closed form, finite
    for every gamma >= 0.

    Args:
        input: logits (N, C) or (N, C, d1, ...), or (C,) for one sample.
        target: integer class indices (N,) / (N, d1, ...) in [0, C) or ``ignore_index``.
        gamma_pos: exponent of 1 - p_t on the target class, a finite number >= 0 (0 in the authors' default).
        gamma_neg: exponent of p_c on the other classes, a finite number >= 0 (4 in the authors' default).
        reduction: ``"none"`` (per-row losses (N, d1, ...)) | ``"mean"`` | ``"sum"``. "mean" divides the sum by the
            number of rows that are not ignored, as the authors' ``loss.mean()`` over the rows (which has no
            ``ignore_index``); an all-ignored batch gives 0.
        label_smoothing: amount of smoothing in [0, 1] (the authors' ``eps``).
        ignore_index: class index whose rows contribute nothing and are not counted.

    Returns:
        Per-row losses in the input's dtype for ``"none"``; otherwise a scalar (float32 for fp16 / bf16 input).

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> asymmetric_loss_single_label(x, torch.tensor([0, 2]), label_smoothing=0.1)
        tensor(0.1638)

    Reference:
        T. Ridnik, E. Ben-Baruch et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021,
        arXiv:2009.14119; ``ASLSingleLabel`` in github.com/Alibaba-MIIL/ASL ``src/loss_functions/losses.py``.
    """
    input = check_floating("input", input)
    if input.ndim == 1:  # one sample: (C,) logits with a () class index, as F.cross_entropy
        batched = target.unsqueeze(0) if isinstance(target, Tensor) else target
        return asymmetric_loss_single_label(
            input.unsqueeze(0), batched, gamma_pos, gamma_neg, reduction,
            label_smoothing=label_smoothing, ignore_index=ignore_index,
        ).squeeze(0)
    if input.ndim == 0:
        raise argument_error("input", "logits of shape (C,), (N, C) or (N, C, d1, ...)", describe(input))
    reduction = check_reduction(reduction)
    gamma_pos = check_number("gamma_pos", gamma_pos, minimum=0.0)
    gamma_neg = check_number("gamma_neg", gamma_neg, minimum=0.0)
    label_smoothing = check_label_smoothing(scalar_value(label_smoothing))
    ignore_index = check_ignore_index(ignore_index)
    target = check_tensor("target", target)
    if target.is_floating_point():
        raise type_error("target", "integer class indices (the asymmetric weights need the target class)", describe(target))
    target = _check_target(input, target, ignore_index, scan_values=True)

    loss = focal_loss_op(
        "asymmetric_single_label", input, target,
        scalars={"gamma_pos": gamma_pos, "gamma_neg": gamma_neg, "label_smoothing": label_smoothing},
        ignore_index=ignore_index, reduce_sum=reduction != "none",
    )
    if reduction == "none":
        return loss.to(input.dtype)
    return finish_reduction(
        loss, reduction, lambda: (target != ignore_index).sum().to(torch.float32), None, False, input.dtype
    )
