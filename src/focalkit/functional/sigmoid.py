"""``sigmoid_focal_loss``: the paper's focal loss on logits, a drop-in for ``torchvision.ops.sigmoid_focal_loss``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..backends.pytorch import sigmoid as torch_sigmoid
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
from ..semantics import check_bool, check_reduced_threshold, check_reduction
from ._alpha import AlphaArg, sigmoid_alpha
from ._reduction import NORMALIZED_MIN_DENOMINATOR, check_normalizer, reduce_elementwise, weighted_loss

__all__ = ["sigmoid_focal_loss", "check_sigmoid_targets", "check_sigmoid_target_values"]


def check_sigmoid_target_values(inputs: Tensor, targets: Tensor, ignore_index: int) -> None:
    """Float targets in [0, 1], or class indices in [0, C] (C = background) or ``ignore_index`` (when value checks run)."""
    if targets.is_floating_point():
        check_unit_interval_values("targets", targets)
    else:
        check_class_indices("targets", targets, 0, inputs.shape[1], ignore_index)


def check_sigmoid_targets(inputs: Tensor, targets: object, ignore_index: int, *, scan_values: bool = True) -> Tensor:
    """Validate float targets (logits' shape, values in [0, 1]) or class indices (logits' shape without dim 1).

    With ``scan_values=False`` only metadata is checked (the caller scans the values, or leaves it to a back-end that
    counts invalid targets in its own pass). Returns the targets as given (float) or as int64 class indices.
    """
    targets = check_tensor("targets", targets)
    check_same_device("targets", targets, inputs, "inputs")
    if targets.is_floating_point():
        if targets.dtype not in FLOAT_DTYPES:
            raise type_error("targets", "float targets (float16, bfloat16, float32 or float64) or class indices", describe(targets))
        if targets.shape != inputs.shape:
            raise argument_error("targets", f"float targets of the inputs' shape {tuple(inputs.shape)}", describe(targets))
        if scan_values:
            check_sigmoid_target_values(inputs, targets, ignore_index)
        return targets
    if targets.dtype == torch.bool or targets.is_complex():
        raise type_error("targets", "float targets in [0, 1] or integer class indices", describe(targets))
    if inputs.ndim < 2:
        raise argument_error(
            "targets", "float targets (integer class indices need inputs with a class dimension: (N, C, ...))", describe(targets)
        )
    if inputs.shape[1] == 1:  # index 1 would be the background: 0/1 labels would be read inverted
        raise argument_error(
            "targets",
            "float 0/1 targets of the inputs' shape for one class column (C = 1, where class index 1 means "
            "background, so integer 0/1 labels would be read inverted)",
            describe(targets),
        )
    expected = (inputs.shape[0], *inputs.shape[2:])
    if tuple(targets.shape) != expected:
        raise argument_error(
            "targets", f"class indices of shape {expected} (the inputs' shape without dim 1)", describe(targets)
        )
    if scan_values:
        check_sigmoid_target_values(inputs, targets, ignore_index)
    return targets.long()


def sigmoid_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: AlphaArg = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
    *,
    ignore_index: int = -100,
    pos_weight: Tensor | list[float] | None = None,
    weight: Tensor | None = None,
    normalizer: Tensor | float | None = None,
    sync_normalizer: bool = False,
    normalized: bool = False,
    reduced_threshold: float | None = None,
) -> Tensor:
    r"""Focal loss on logits (Lin et al. 2017), a drop-in for ``torchvision.ops.sigmoid_focal_loss``.

    .. math::

        \mathrm{FL}(p_t) = -\alpha_t (1 - p_t)^\gamma \log p_t, \qquad p = \sigma(x),\
        p_t = p y + (1 - p)(1 - y),\ \alpha_t = \alpha y + (1 - \alpha)(1 - y).

    For soft targets y in [0, 1] the log term is the binary cross-entropy -y log p - (1 - y) log(1 - p), exactly as
    torchvision computes it. Everything is computed in log space from the logits (fp16 / bf16 in fp32), and the
    gradient is the closed form of Appendix B without the (1 - p_t)^(gamma - 1) factor, so loss and gradient are
    finite for every gamma >= 0 (gamma = 0.5 included) at any logit.

    Args:
        inputs: logits of any shape; (N, C, d1, ...) when the targets are class indices.
        targets: either a float tensor of the inputs' shape (binary, multi-label or soft targets in [0, 1]), or
            integer class indices of shape (N, d1, ...) (the inputs' shape without dim 1): index c marks column c
            positive; the value C marks an all-negative (background) row; ``ignore_index`` rows contribute nothing
            and are not counted in the mean.
        alpha: weight of positives in [0, 1] (negatives get 1 - alpha); ``None`` or a negative number disables it;
            a sequence / tensor of length C gives a per-class alpha along dim 1.
        gamma: focusing parameter >= 0; 0 gives the alpha-balanced cross-entropy.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. "mean" divides the sum by the number of elements that count
            (all of them for float targets, C per non-ignored row for index targets), or by ``normalizer``.
        ignore_index: class-index value of rows to ignore (index targets only).
        pos_weight: per-class weight of the positive cross-entropy term, as in ``nn.BCEWithLogitsLoss``.
        weight: a tensor broadcastable to the inputs multiplying each element's loss, as in ``nn.BCEWithLogitsLoss``.
        normalizer: with ``reduction="mean"``, divide the sum by this number or one-element tensor instead (e.g. the
            number of positive anchors, as RetinaNet does). A denominator of 0 is replaced by 1.
        sync_normalizer: average the denominator over ``torch.distributed`` processes when initialised.
        normalized: the normalized focal loss (segmentation_models_pytorch's ``normalized=True``): every element's
            loss divided by the sum of the modulating factors (1 - p_t)^gamma over the elements that count (at least
            1e-6), a denominator autograd differentiates (it is not detached), applied before the reduction.
        reduced_threshold: the reduced focal loss (Sergievskiy & Ponamarev 2019): the modulating factor becomes
            ((1 - p_t) / reduced_threshold)^gamma where p_t >= reduced_threshold and 1 below (plain cross-entropy
            for the hard examples); a number in (0, 1], or None (off).

    Returns:
        Per-element losses of the inputs' shape and dtype for ``"none"``; otherwise a scalar (float32 for fp16 / bf16
        inputs, else the inputs' dtype).

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]])
        >>> y = torch.tensor([[1.0, 0.0, 1.0]])
        >>> sigmoid_focal_loss(x, y, reduction="sum")
        tensor(0.0343)
        >>> sigmoid_focal_loss(x, torch.tensor([2]), reduction="mean")  # class index 2 is the positive column
        tensor(0.4238)

    Reference:
        T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, arXiv:1708.02002, eqs. (4)-(5) and
        Appendix B. Reduced focal loss: N. Sergievskiy, A. Ponamarev, "Reduced Focal Loss: 1st Place Solution to
        xView object detection in Satellite Imagery", arXiv:1903.01347, 2019.
    """
    inputs = check_floating("inputs", inputs)
    reduction = check_reduction(reduction)
    gamma = check_gamma(gamma)
    normalized = check_bool("normalized", normalized)
    threshold = check_reduced_threshold(scalar_value(reduced_threshold))
    ignore_index = check_ignore_index(ignore_index)
    targets = check_sigmoid_targets(inputs, targets, ignore_index, scan_values=False)
    alpha_pos, alpha_neg = sigmoid_alpha(alpha, inputs)
    pos_weight_vector = None
    if pos_weight is not None:
        pos_weight_vector = class_vector("pos_weight", pos_weight, inputs, check_unit_range=False)
    tensors = {"alpha_pos": alpha_pos, "alpha_neg": alpha_neg, "pos_weight": pos_weight_vector}
    if weight is not None:
        weight = check_tensor("weight", weight)
        check_same_device("weight", weight, inputs, "inputs")
        if weight.dtype == torch.bool or weight.is_complex():
            raise type_error("weight", "a real tensor broadcastable to the inputs", describe(weight))
        try:
            broadcast = torch.broadcast_shapes(weight.shape, inputs.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != inputs.shape:  # broadcastable *to* the inputs: never enlarging them
            raise argument_error("weight", f"a tensor broadcastable to {tuple(inputs.shape)}", describe(weight))
    check_normalizer(normalizer, reduction, sync_normalizer, inputs)
    index_ignore = None if targets.is_floating_point() else ignore_index

    loss = weighted_loss(
        "sigmoid_focal", inputs, targets, reduction, weight, tensors=tensors,
        scalars={"gamma": gamma, "reduced_threshold": threshold}, ignore_index=index_ignore,
        scan_targets=lambda: check_sigmoid_target_values(inputs, targets, ignore_index),
    )
    if normalized:  # a scalar divisor commutes with the sum, so the fused sum stays fused
        factors = torch_sigmoid.modulating_factor(inputs, targets, gamma=gamma, ignore_index=index_ignore,
                                                  reduced_threshold=threshold)
        loss = loss / factors.sum().clamp_min(NORMALIZED_MIN_DENOMINATOR)
    return reduce_elementwise(loss, reduction, inputs, targets, index_ignore, normalizer, sync_normalizer)
