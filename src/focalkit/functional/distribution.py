"""``distribution_focal_loss``: the Distribution Focal Loss of Generalized Focal Loss (Li et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import FLOAT_DTYPES, check_floating, check_same_device, check_tensor, describe
from ..errors import argument_error, type_error
from ..semantics import check_reduction
from ..value_checks import value_checks_enabled
from ._detection import check_loss_weight
from ._reduction import check_normalizer, finish_reduction, weighted_loss

__all__ = ["distribution_focal_loss"]


def _check_targets(targets: object, inputs: Tensor) -> Tensor:
    targets = check_tensor("targets", targets)
    check_same_device("targets", targets, inputs, "inputs")
    if targets.dtype not in FLOAT_DTYPES:
        raise type_error("targets", "float distances in bins (float16, bfloat16, float32 or float64)", describe(targets))
    expected = (inputs.shape[0], *inputs.shape[2:])
    if tuple(targets.shape) != expected:
        raise argument_error("targets", f"targets of shape {expected} (the inputs' shape without dim 1)", describe(targets))
    n = inputs.shape[1] - 1
    if value_checks_enabled(targets) and targets.numel() > 0:
        low, high = torch.aminmax(targets.detach())  # NaN propagates into both and fails the test
        if not (bool(low >= 0) and bool(high <= n)):
            raise argument_error(
                "targets", f"values in [0, {n}] (n = inputs.shape[1] - 1)",
                f"values in [{float(low):.6g}, {float(high):.6g}] ({describe(targets)})",
            )
    return targets


def distribution_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Distribution Focal Loss (Li et al. 2020, Generalized Focal Loss) over n + 1 bins, as mmdetection's
    ``DistributionFocalLoss`` and YOLOv8's ``DFLoss``.

    .. math::

        \mathrm{DFL}(S, y) = (y_r - y)\, \mathrm{CE}(x, y_l) + (y - y_l)\, \mathrm{CE}(x, y_r),\qquad
        y_l = \lfloor y \rfloor,\ y_r = y_l + 1,

    with CE the softmax cross-entropy of the row's bin logits. The targets are clamped to [0, n - 0.01] first, as
    YOLOv8 does (``reg_max - 1 - 0.01`` with ``reg_max = n + 1`` bins): a box side at exactly n (the largest
    distance the head can express) then stays representable, split 0.01 / 0.99 between bins n - 1 and n, instead of
    indexing a bin n + 1 that does not exist. mmdetection requires y < n in the loss (its GFL head clamps the
    distances to n - 0.1 before calling it); for every y < n - 0.01 the two agree. A target outside [0, n] is an
    error (``InvalidArgumentError``) when value checks run; unchecked (accelerator) values are clamped as YOLOv8
    clamps them, and a NaN target gives a NaN loss. The cross-entropy is computed with log S = log1p(sum of the
    non-maximal terms), accurate when one bin dominates.

    Args:
        inputs: bin logits (N, n + 1) or (N, n + 1, d1, ...), n >= 1 (mmdetection's ``reg_max + 1`` bins, YOLOv8's
            ``reg_max``).
        targets: float distances in bin units, shape (N, d1, ...), values in [0, n]. A target tensor that requires
            grad is differentiated too (the weights w_l, w_r are linear in it).
        reduction: ``"none"`` (per-row losses (N, d1, ...)) | ``"mean"`` (over rows, or by ``normalizer``) |
            ``"sum"``.
        weight: a tensor broadcastable to the targets' shape multiplying each row's loss (mmdetection's
            ``weight``).
        normalizer: with ``reduction="mean"``, the denominator instead (mmdetection's ``avg_factor``, YOLOv8's
            ``target_scores_sum``); 0 is replaced by 1.

    Returns:
        Per-row losses of the targets' shape in the inputs' dtype for ``"none"``; otherwise a scalar (float32 for
        fp16 / bf16 inputs).

    Example:
        >>> x = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, -1.0]])
        >>> distribution_focal_loss(x, torch.tensor([1.25, 0.0]), reduction="none")
        tensor([0.7395, 0.4076])

    Reference:
        X. Li et al., "Generalized Focal Loss", NeurIPS 2020, arXiv:2006.04388, eq. (6); mmdetection
        ``mmdet/models/losses/gfocal_loss.py``; ultralytics ``ultralytics/utils/loss.py`` (``DFLoss``).
    """
    inputs = check_floating("inputs", inputs)
    reduction = check_reduction(reduction)
    if inputs.ndim < 2 or inputs.shape[1] < 2:
        raise argument_error("inputs", "bin logits (N, n + 1, ...) with at least 2 bins in dim 1", describe(inputs))
    targets = _check_targets(targets, inputs)
    weight = check_loss_weight(weight, inputs, [tuple(targets.shape)])
    check_normalizer(normalizer, reduction, False, inputs)

    loss = weighted_loss("distribution_focal", inputs, targets, reduction, weight, scalars={})
    if reduction == "none":
        return loss.to(inputs.dtype)
    return finish_reduction(
        loss, reduction, lambda: torch.tensor(float(targets.numel()), device=inputs.device), normalizer, False,
        inputs.dtype,
    )
