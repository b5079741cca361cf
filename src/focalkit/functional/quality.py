"""``quality_focal_loss``: the Quality Focal Loss of Generalized Focal Loss (Li et al. 2020), on logits."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import (
    FLOAT_DTYPES,
    check_class_indices,
    check_floating,
    check_ignore_index,
    check_number,
    check_same_device,
    check_tensor,
    check_unit_interval_values,
    describe,
)
from ..errors import argument_error, type_error
from ..semantics import check_reduction
from ._detection import check_dense_targets, check_loss_weight
from ._reduction import check_normalizer, reduce_elementwise, weighted_loss

__all__ = ["quality_focal_loss"]

QualityTargets = Tensor | tuple[Tensor, Tensor]

_DENSE = "float quality targets in [0, 1]"


def _check_pair(inputs: Tensor, targets: object, ignore_index: int) -> tuple[Tensor, Tensor]:
    """mmdetection's (labels, scores): integer labels (N, d1, ...) in [0, C] or ignore_index, float scores alike."""
    if len(targets) != 2:  # type: ignore[arg-type]
        raise argument_error("targets", "a float tensor or a (labels, scores) pair", f"a sequence of length {len(targets)}")  # type: ignore[arg-type]
    labels = check_tensor("targets[0] (labels)", targets[0])  # type: ignore[index]
    scores = check_tensor("targets[1] (scores)", targets[1])  # type: ignore[index]
    for name, tensor in (("targets[0] (labels)", labels), ("targets[1] (scores)", scores)):
        check_same_device(name, tensor, inputs, "inputs")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise type_error("targets[0] (labels)", "integer class indices (C = background)", describe(labels))
    if inputs.ndim < 2:
        raise argument_error("inputs", "logits with a class dimension (N, C, ...) for (labels, scores) targets", describe(inputs))
    expected = (inputs.shape[0], *inputs.shape[2:])
    if tuple(labels.shape) != expected:
        raise argument_error("targets[0] (labels)", f"class indices of shape {expected} (the inputs' shape without dim 1)", describe(labels))
    if scores.dtype not in FLOAT_DTYPES:
        raise type_error("targets[1] (scores)", "float quality scores (float16, bfloat16, float32 or float64)", describe(scores))
    if scores.shape != labels.shape:
        raise argument_error("targets[1] (scores)", f"quality scores of the labels' shape {tuple(labels.shape)}", describe(scores))
    check_class_indices("targets[0] (labels)", labels, 0, inputs.shape[1], ignore_index)
    check_unit_interval_values("targets[1] (scores)", scores)
    return labels.long(), scores.detach()


def quality_focal_loss(
    inputs: Tensor,
    targets: QualityTargets,
    beta: float = 2.0,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    normalizer: Tensor | float | None = None,
    ignore_index: int = -100,
) -> Tensor:
    r"""Quality Focal Loss (Li et al. 2020, Generalized Focal Loss) on logits, following mmdetection's
    ``QualityFocalLoss`` (``use_sigmoid=True``).

    .. math::

        \mathrm{QFL}(p, y) = |y - p|^\beta\, \mathrm{BCE}(p, y),\qquad p = \sigma(x),\ y \in [0, 1].

    mmdetection writes positives as |y - p|^beta BCE(p, y) and negatives as p^beta BCE(p, 0): the same formula with
    y = 0, which is what focalkit computes everywhere. The loss is evaluated in log space from the logits (|y - p|
    in closed form for hard targets, fp16 / bf16 in fp32); loss and gradient are finite at any logit for every
    beta >= 0. For beta < 1 the true derivative is unbounded as p -> y (a cusp at the minimum): the gradient is 0 at
    p == y exactly and saturates at the dtype's largest finite value rather than overflow.

    Args:
        inputs: logits (N, C, d1, ...) (any shape for dense targets).
        targets: either dense quality targets (float, the inputs' shape, values in [0, 1]: the IoU of a positive's
            class, 0 elsewhere), or mmdetection's ``(labels, scores)`` pair: ``labels`` integer class indices of
            shape (N, d1, ...) with C = background and ``ignore_index`` rows excluded (zero loss, not counted),
            ``scores`` float qualities of the same shape (the IoU of each positive's class column; treated as
            constants, as mmdetection computes them under ``detach``).
        beta: the exponent of |y - p|, a finite number >= 0 (2 in the paper; 0 gives the BCE).
        reduction: ``"none"`` (per-element losses of the inputs' shape) | ``"mean"`` | ``"sum"``. "mean" divides
            the sum by the number of elements that count (every element for dense targets, C per non-ignored row
            for the pair) or by ``normalizer``.
        weight: a tensor broadcastable to the inputs multiplying each element's loss; with the pair form also a
            tensor of the labels' shape (N, d1, ...), one weight per row as mmdetection's (a weight of exactly the
            labels' shape is always read per row, also when N == C would let it broadcast along the classes).
        normalizer: with ``reduction="mean"``, the denominator instead (mmdetection's ``avg_factor``, e.g. the
            number of positives); 0 is replaced by 1.
        ignore_index: label value of rows to ignore (pair form only).

    Returns:
        Per-element losses of the inputs' shape and dtype for ``"none"``; otherwise a scalar (float32 for fp16 /
        bf16 inputs).

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]])
        >>> quality_focal_loss(x, torch.tensor([[0.9, 0.0, 0.0]]), reduction="sum")
        tensor(0.4002)
        >>> quality_focal_loss(x, (torch.tensor([0]), torch.tensor([0.9])), reduction="sum")  # the same, as a pair
        tensor(0.4002)

    Reference:
        X. Li et al., "Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes for Dense Object
        Detection", NeurIPS 2020, arXiv:2006.04388, eq. (5); mmdetection ``mmdet/models/losses/gfocal_loss.py``.
    """
    inputs = check_floating("inputs", inputs)
    reduction = check_reduction(reduction)
    beta = check_number("beta", beta, minimum=0.0)
    ignore_index = check_ignore_index(ignore_index)
    scores = None
    if isinstance(targets, (tuple, list)):
        targets, scores = _check_pair(inputs, targets, ignore_index)
        weight_shapes = [tuple(inputs.shape), tuple(targets.shape)]
    else:
        if isinstance(targets, Tensor) and not targets.is_floating_point():
            raise type_error("targets", f"{_DENSE} of the inputs' shape or a (labels, scores) pair", describe(targets))
        targets = check_dense_targets("targets", targets, inputs, _DENSE)
        weight_shapes = [tuple(inputs.shape)]
    weight = check_loss_weight(weight, inputs, weight_shapes)
    if weight is not None and scores is not None and weight.shape == targets.shape and weight.ndim > 0:
        weight = weight.unsqueeze(1)  # one weight per row (mmdetection), broadcast along the classes
    check_normalizer(normalizer, reduction, False, inputs)
    index_ignore = None if scores is None else ignore_index

    loss = weighted_loss(
        "quality_focal", inputs, targets, reduction, weight, tensors={"scores": scores}, scalars={"beta": beta}, ignore_index=index_ignore,
    )
    return reduce_elementwise(loss, reduction, inputs, targets, index_ignore, normalizer)
