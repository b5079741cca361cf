"""``softmax_focal_loss``: focal loss over a softmax, with the conventions of ``torch.nn.functional.cross_entropy``."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._autograd import focal_loss_op
from ..backends.pytorch import softmax as torch_softmax
from .._checks import (
    FLOAT_DTYPES,
    check_class_indices,
    check_ignore_index,
    check_floating,
    check_gamma,
    check_same_device,
    check_tensor,
    check_unit_interval_values,
    class_vector,
    describe,
    scalar_value,
)
from ..errors import argument_error, type_error
from ..semantics import check_bool, check_label_smoothing, check_reduced_threshold, check_reduction
from ._alpha import AlphaArg, softmax_alpha
from ._reduction import NORMALIZED_MIN_DENOMINATOR, check_normalizer, finish_reduction

__all__ = ["softmax_focal_loss"]


def _index_value_scan(input: Tensor, target: Tensor, ignore_index: int, label_smoothing: float
                      ) -> Callable[[], None] | None:
    """The scan that class-index targets lie in [0, C - 1] (or are ``ignore_index``), for ``focal_loss_op``'s
    ``scan_targets`` (skipped there when the back-end chosen counts invalid indices in its own pass and raises the
    same error). With label smoothing it runs here, now (None returned). Probability targets: None (checked by
    :func:`_check_target`)."""
    if target.is_floating_point():
        return None

    def scan() -> None:
        check_class_indices("target", target, 0, input.shape[1] - 1, ignore_index)

    if label_smoothing != 0:
        scan()
        return None
    return scan


def _check_target(input: Tensor, target: object, ignore_index: int, *, scan_values: bool) -> Tensor:
    target = check_tensor("target", target)
    check_same_device("target", target, input, "input")
    if target.is_floating_point():
        if target.dtype not in FLOAT_DTYPES:
            raise type_error("target", "class probabilities (float16, bfloat16, float32 or float64) or class indices", describe(target))
        if target.shape != input.shape:
            raise argument_error("target", f"class probabilities of the input's shape {tuple(input.shape)}", describe(target))
        check_unit_interval_values("target", target)
        return target
    if target.dtype == torch.bool or target.is_complex():
        raise type_error("target", "integer class indices or float class probabilities", describe(target))
    if input.shape[1] == 0:
        raise argument_error("input", "at least one class (C = input.shape[1] >= 1) for class-index targets", describe(input))
    expected = (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise argument_error("target", f"class indices of shape {expected} (the input's shape without dim 1)", describe(target))
    if scan_values:
        check_class_indices("target", target, 0, input.shape[1] - 1, ignore_index)
    return target.long()


def softmax_focal_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    alpha: AlphaArg = None,
    gamma: float = 2.0,
    normalizer: Tensor | float | None = None,
    sync_normalizer: bool = False,
    normalized: bool = False,
    reduced_threshold: float | None = None,
) -> Tensor:
    r"""Softmax focal loss with the signature and conventions of ``F.cross_entropy``.

    .. math::

        L_n = -\sum_c q_{n,c}\, \alpha_c\, w_c\, (1 - p_{n,c})^\gamma \log p_{n,c}, \qquad p_n = \mathrm{softmax}(x_n),

    where q is the one-hot target (class indices), the given class probabilities, or either smoothed as
    q (1 - label_smoothing) + label_smoothing / C. With ``gamma=0`` and ``alpha=None`` this equals
    ``F.cross_entropy`` for every combination of ``weight``, ``ignore_index``, ``label_smoothing`` and ``reduction``
    (except where ``F.cross_entropy`` returns NaN for an empty or fully ignored batch; focalkit returns 0 there).

    Args:
        input: logits of shape (N, C) or (N, C, d1, ...), or (C,) for a single sample.
        target: class indices of shape (N,) / (N, d1, ...) in [0, C) or ``ignore_index``, or class probabilities of
            the input's shape.
        weight: per-class rescaling weight of length C (as in ``F.cross_entropy``; part of the mean's denominator).
        ignore_index: class index whose rows contribute nothing and are not counted (index targets only).
        reduction: ``"none"`` (per-row losses) | ``"mean"`` | ``"sum"``. "mean" divides by the sum of
            ``weight[target]`` over non-ignored rows (their number without ``weight``; the number of rows for
            probability targets), or by ``normalizer``.
        label_smoothing: amount of smoothing in [0, 1], as in ``F.cross_entropy``.
        alpha: ``None``; a float in [0, 1] multiplying every term (as mmcv and Keras do); or a per-class sequence /
            tensor of length C (not part of the mean's denominator).
        gamma: focusing parameter >= 0.
        normalizer: with ``reduction="mean"``, divide the sum by this instead (0 is replaced by 1).
        sync_normalizer: average the denominator over ``torch.distributed`` processes when initialised.
        normalized: the normalized focal loss: every row's loss divided by the sum over the rows that count of
            sum_c q_c (1 - p_c)^gamma ((1 - p_t)^gamma for class indices), at least 1e-6, a denominator autograd
            differentiates, applied before the reduction.
        reduced_threshold: the reduced focal loss: the factor of each term becomes ((1 - p_c) / reduced_threshold)
            ^gamma where p_c >= reduced_threshold and 1 below; a number in (0, 1], or None (off).

    Returns:
        Per-row losses of shape (N, d1, ...) in the input's dtype for ``"none"``; otherwise a scalar (float32 for
        fp16 / bf16 input).

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> softmax_focal_loss(x, torch.tensor([0, 2]), gamma=2.0)
        tensor(0.0061)

    Reference:
        T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (the softmax extension is noted in
        section 3.2 and evaluated in the appendix).
    """
    input = check_floating("input", input)
    if input.ndim == 1:  # one sample: (C,) logits with a () class index or (C,) probabilities, as F.cross_entropy
        batched_target = target.unsqueeze(0) if isinstance(target, Tensor) else target
        return softmax_focal_loss(
            input.unsqueeze(0), batched_target, weight, ignore_index, reduction, label_smoothing,
            alpha=alpha, gamma=gamma, normalizer=normalizer, sync_normalizer=sync_normalizer, normalized=normalized,
            reduced_threshold=reduced_threshold,
        ).squeeze(0)
    if input.ndim == 0:
        raise argument_error("input", "logits of shape (C,), (N, C) or (N, C, d1, ...)", describe(input))
    reduction = check_reduction(reduction)
    gamma = check_gamma(gamma)
    normalized = check_bool("normalized", normalized)
    threshold = check_reduced_threshold(scalar_value(reduced_threshold))
    label_smoothing = check_label_smoothing(scalar_value(label_smoothing))
    ignore_index = check_ignore_index(ignore_index)
    target = _check_target(input, target, ignore_index, scan_values=False)
    weight_vector = None if weight is None else class_vector("weight", weight, input, check_unit_range=False)
    alpha_value = softmax_alpha(alpha, input)
    alpha_vector = alpha_value if isinstance(alpha_value, Tensor) or alpha_value is None else input.new_full(
        (input.shape[1],), alpha_value, dtype=torch.promote_types(input.dtype, torch.float32)
    )
    fused_op = not (target.is_floating_point() or label_smoothing > 0)
    tensors = {"weight": weight_vector, "alpha": alpha_vector}
    scan_targets = _index_value_scan(input, target, ignore_index, label_smoothing)
    check_normalizer(normalizer, reduction, sync_normalizer, input)

    if not fused_op:
        class_weight = weight_vector
        if alpha_vector is not None:
            class_weight = alpha_vector if class_weight is None else class_weight * alpha_vector
        loss = focal_loss_op(
            "softmax_focal_soft",
            input,
            target,
            tensors={"class_weight": class_weight},
            scalars={"gamma": gamma, "label_smoothing": label_smoothing, "reduced_threshold": threshold},
            ignore_index=None if target.is_floating_point() else ignore_index,
            reduce_sum=reduction != "none",
        )
    else:
        loss = focal_loss_op(
            "softmax_focal",
            input,
            target,
            tensors=tensors,
            scalars={"gamma": gamma, "reduced_threshold": threshold},
            ignore_index=ignore_index,
            reduce_sum=reduction != "none",
            scan_targets=scan_targets,
        )
    if normalized:  # a scalar divisor commutes with the sum, so the fused sum stays fused
        factors = torch_softmax.modulating_factor(
            input, target, gamma=gamma, ignore_index=None if target.is_floating_point() else ignore_index,
            label_smoothing=label_smoothing, reduced_threshold=threshold)
        loss = loss / factors.sum().clamp_min(NORMALIZED_MIN_DENOMINATOR)
    if reduction == "none":
        return loss.to(input.dtype)

    def mean_denominator() -> Tensor:
        if target.is_floating_point():
            rows = input.shape[0] * math.prod(input.shape[2:])  # the number of rows, also when C = 0
            return torch.tensor(float(rows), device=input.device)
        valid = target != ignore_index
        if weight_vector is None:
            return valid.sum().to(torch.float32)
        return (weight_vector[torch.where(valid, target, torch.zeros_like(target))] * valid).sum()

    return finish_reduction(loss, reduction, mean_denominator, normalizer, sync_normalizer, input.dtype)
