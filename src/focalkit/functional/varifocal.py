"""``varifocal_loss``: the Varifocal Loss of VarifocalNet (Zhang et al. 2021), on logits; mmdetection's and the
YOLO-style (explicit labels) conventions from one function."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import (
    check_floating,
    check_gamma,
    check_number,
    check_same_device,
    check_tensor,
    check_unit_interval_values,
    describe,
)
from ..errors import argument_error, type_error
from ..semantics import check_bool, check_reduction
from ._detection import check_dense_targets, check_loss_weight
from ._reduction import check_normalizer, reduce_elementwise, weighted_loss

__all__ = ["varifocal_loss"]


def _check_labels(labels: object, inputs: Tensor) -> Tensor | None:
    if labels is None:
        return None
    labels = check_tensor("labels", labels)
    check_same_device("labels", labels, inputs, "inputs")
    if labels.is_complex():
        raise type_error("labels", "a bool, integer or float tensor of 0/1 labels", describe(labels))
    if labels.shape != inputs.shape:
        raise argument_error("labels", f"labels of the inputs' shape {tuple(inputs.shape)}", describe(labels))
    if labels.dtype != torch.bool:
        check_unit_interval_values("labels", labels)
    return labels.detach()


def varifocal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = 0.75,
    gamma: float = 2.0,
    iou_weighted: bool = True,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    normalizer: Tensor | float | None = None,
    labels: Tensor | None = None,
) -> Tensor:
    r"""Varifocal Loss (Zhang et al. 2021, VarifocalNet) on logits, following mmdetection's ``VarifocalLoss``
    (``use_sigmoid=True``) and, with ``labels``, the YOLO-style ``VarifocalLoss`` (YOLOv6 / RT-DETR / ultralytics).

    .. math::

        \mathrm{VFL}(p, q) = \begin{cases} q\, \mathrm{BCE}(p, q) & q > 0 \\
            \alpha\, p^\gamma\, \mathrm{BCE}(p, 0) & q = 0 \end{cases},\qquad p = \sigma(x),

    with weight 1 instead of q on positives when ``iou_weighted=False``. With ``labels`` the positives are the
    elements labelled 1 instead of q > 0 and the loss is the YOLO form
    (alpha p^gamma (1 - label) + q label) BCE(p, q) (labels between 0 and 1 interpolate linearly). The two
    conventions differ only where a label disagrees with q > 0 (a positive of IoU 0 gets no loss in the YOLO form;
    a q > 0 labelled 0 is a negative with BCE(p, q)). Computed in log space from the logits: p^gamma is
    exp(-gamma softplus(-x)) and the gradient has no p^(gamma - 1) factor, so both are finite at any logit for
    every gamma >= 0.

    Args:
        inputs: logits of any shape.
        targets: float target scores q in [0, 1] of the inputs' shape (the IoU with the ground truth at a
            positive's class, 0 elsewhere). Constants for the loss' positive / negative split; a target tensor that
            requires grad is differentiated through BCE and the weight q.
        alpha: weight of the negatives' term, a finite number >= 0 (0.75 in the paper).
        gamma: exponent of p on negatives, a finite number >= 0 (2 in the paper).
        iou_weighted: weigh positives by q (True, the paper) or by 1.
        reduction: ``"none"`` | ``"mean"`` (over all elements, or by ``normalizer``) | ``"sum"``.
        weight: a tensor broadcastable to the inputs multiplying each element's loss (mmdetection's ``weight``).
        normalizer: with ``reduction="mean"``, the denominator instead (mmdetection's ``avg_factor``, e.g. the
            number of positives); 0 is replaced by 1.
        labels: None (positives are q > 0, mmdetection), or a bool / integer / float tensor of the inputs' shape
            with values in [0, 1] (the YOLO-style one-hot label); treated as a constant.

    Returns:
        Per-element losses of the inputs' shape and dtype for ``"none"``; otherwise a scalar (float32 for fp16 /
        bf16 inputs).

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]])
        >>> q = torch.tensor([[0.8, 0.0, 0.0]])
        >>> varifocal_loss(x, q, reduction="sum")
        tensor(0.7216)
        >>> varifocal_loss(x, q, reduction="sum", labels=q > 0)  # the YOLO form, here the same labels
        tensor(0.7216)

    Reference:
        H. Zhang, Y. Wang, F. Dayoub, N. Sunderhauf, "VarifocalNet: An IoU-aware Dense Object Detector", CVPR 2021,
        arXiv:2008.13367, eq. (2); mmdetection ``mmdet/models/losses/varifocal_loss.py``.
    """
    inputs = check_floating("inputs", inputs)
    reduction = check_reduction(reduction)
    alpha = check_number("alpha", alpha, minimum=0.0)
    gamma = check_gamma(gamma)
    iou_weighted = check_bool("iou_weighted", iou_weighted)
    targets = check_dense_targets("targets", targets, inputs, "float target scores in [0, 1]")
    labels = _check_labels(labels, inputs)
    weight = check_loss_weight(weight, inputs, [tuple(inputs.shape)])
    check_normalizer(normalizer, reduction, False, inputs)

    loss = weighted_loss(
        "varifocal", inputs, targets, reduction, weight, tensors={"labels": labels}, scalars={"alpha": alpha, "gamma": gamma, "iou_weighted": 1.0 if iou_weighted else 0.0},
    )
    return reduce_elementwise(loss, reduction, inputs, targets, None, normalizer)
