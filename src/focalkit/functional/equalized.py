"""``equalized_focal_loss``: the Equalized Focal Loss of Li et al. (2022) on logits, stateless (per-class factors
given); the stateful module that maintains the factors from gradient statistics is
:class:`focalkit.nn.EqualizedFocalLoss`."""

from __future__ import annotations

from torch import Tensor

from .._autograd import focal_loss_op
from .._checks import check_floating, check_ignore_index, class_vector
from ..errors import argument_error, type_error
from ..semantics import check_reduction, is_real_number
from ._alpha import AlphaArg, sigmoid_alpha
from ._reduction import check_normalizer, reduce_elementwise
from .sigmoid import check_sigmoid_targets

__all__ = ["equalized_focal_loss"]


def _factors(name: str, value: object, inputs: Tensor) -> Tensor:
    """A per-class vector of C finite values >= 0 in the compute dtype (a single number is refused: it is a class
    vector, so that a forgotten per-class factor is not silently broadcast)."""
    if value is None or is_real_number(value):
        raise type_error(name, f"a sequence or 1-d tensor of {inputs.shape[1]} per-class values (C = inputs.shape[1])",
                         repr(value))
    return class_vector(name, value, inputs, check_unit_range=False)


def equalized_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    gamma: Tensor | list[float],
    weight: Tensor | list[float] | None = None,
    alpha: AlphaArg = 0.25,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    normalizer: Tensor | float | None = None,
    sync_normalizer: bool = False,
) -> Tensor:
    r"""Equalized Focal Loss (Li et al. 2022) with given per-class focusing and weighting factors.

    .. math::

        \mathrm{EFL}(p_t) = -\alpha_t\, w_j\, (1 - p_t)^{\gamma_j} \log p_t, \qquad p = \sigma(x),\
        p_t = p y + (1 - p)(1 - y),\ \alpha_t = \alpha y + (1 - \alpha)(1 - y),

    where j is the element's class (its index along dim 1). In the paper gamma_j = gamma_b + s (1 - g_j) and
    w_j = gamma_j / gamma_b, with g_j the accumulated positive-to-negative gradient ratio of class j; this function
    takes gamma and w as given (the module :class:`focalkit.nn.EqualizedFocalLoss` maintains them), so with every
    gamma_j = gamma and w_j = 1 it is :func:`focalkit.sigmoid_focal_loss`. For soft targets y in [0, 1] the log term
    is the binary cross-entropy, as there. Computed in log space from the logits (fp16 / bf16 in fp32) with a
    closed-form gradient that has no (1 - p_t)^(gamma_j - 1) factor: loss and gradient are finite at any logit for
    every gamma_j >= 0.

    Args:
        inputs: logits of shape (N, C, d1, ...).
        targets: float targets of the inputs' shape (values in [0, 1]), or integer class indices of shape
            (N, d1, ...): index c marks column c positive, C marks an all-negative (background) row,
            ``ignore_index`` rows contribute nothing and are not counted in the mean.
        gamma: the focusing factors gamma_j >= 0, a sequence or tensor of C values (on the inputs' device).
        weight: the weighting factors w_j >= 0 (C values), or None for 1.
        alpha: weight of positives in [0, 1] (negatives get 1 - alpha); ``None`` or a negative number disables it;
            a sequence / tensor of length C gives a per-class alpha.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. "mean" divides the sum by the number of elements that count
            (all of them for float targets, C per non-ignored row for index targets), or by ``normalizer``.
        ignore_index: class-index value of rows to ignore (index targets only).
        normalizer: with ``reduction="mean"``, divide the sum by this number or one-element tensor instead (the
            number of positives, as the authors' code does); 0 is replaced by 1.
        sync_normalizer: average the denominator over ``torch.distributed`` processes when initialised.

    Returns:
        Per-element losses of the inputs' shape and dtype for ``"none"``; otherwise a scalar (float32 for fp16 /
        bf16 inputs, else the inputs' dtype).

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]])
        >>> y = torch.tensor([[1.0, 0.0, 1.0]])
        >>> equalized_focal_loss(x, y, gamma=[2.0, 2.0, 2.0], reduction="sum")  # = sigmoid_focal_loss
        tensor(0.0343)
        >>> gamma = torch.tensor([2.0, 6.0, 10.0])  # gamma_b = 2, s = 8, g = (1, 0.5, 0)
        >>> equalized_focal_loss(x, y, gamma, weight=gamma / 2.0, reduction="sum")
        tensor(0.0008)

    Reference:
        B. Li, Y. Yao, J. Tan, G. Zhang, F. Yu, J. Lu, Y. Luo. "Equalized Focal Loss for Dense Long-Tailed Object
        Detection", CVPR 2022, arXiv:2201.02593 (code: ModelTC EOD / United-Perception ``EqualizedFocalLoss``).
    """
    inputs = check_floating("inputs", inputs)
    if inputs.ndim < 2:
        raise argument_error("inputs", "logits with a class dimension: (N, C, d1, ...)", f"shape {tuple(inputs.shape)}")
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    targets = check_sigmoid_targets(inputs, targets, ignore_index)
    gamma_vector = _factors("gamma", gamma, inputs)
    weight_vector = None if weight is None else _factors("weight", weight, inputs)
    alpha_pos, alpha_neg = sigmoid_alpha(alpha, inputs)
    check_normalizer(normalizer, reduction, sync_normalizer, inputs)
    index_ignore = None if targets.is_floating_point() else ignore_index
    loss = focal_loss_op(
        "equalized_focal",
        inputs,
        targets,
        tensors={"gamma": gamma_vector, "weight": weight_vector, "alpha_pos": alpha_pos, "alpha_neg": alpha_neg},
        scalars={},
        ignore_index=index_ignore,
        reduce_sum=reduction != "none",
    )
    return reduce_elementwise(loss, reduction, inputs, targets, index_ignore, normalizer, sync_normalizer)
