"""``poly1_cross_entropy`` and ``poly1_focal_loss``: the Poly-1 losses of PolyLoss (Leng et al. 2022), on logits."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._autograd import focal_loss_op
from .._checks import check_floating, check_gamma, check_ignore_index, check_number, class_vector, describe, scalar_value
from ..errors import argument_error, type_error
from ..semantics import check_label_smoothing, check_reduction
from ._alpha import AlphaArg, sigmoid_alpha
from ._detection import check_dense_targets, check_loss_weight, dense_target_scan
from ._reduction import check_normalizer, finish_reduction, reduce_elementwise, weighted_loss
from .softmax import _check_target, _index_value_scan

__all__ = ["poly1_cross_entropy", "poly1_focal_loss"]


def _check_epsilon(epsilon: object) -> float:
    """The Poly-1 coefficient: a finite number >= -1 (the paper's domain: the leading coefficient 1 + epsilon of the
    polynomial expansion stays >= 0)."""
    return check_number("epsilon", epsilon, minimum=-1.0)


def poly1_cross_entropy(
    input: Tensor,
    target: Tensor,
    epsilon: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Poly-1 cross-entropy (Leng et al. 2022, PolyLoss) with the signature and conventions of ``F.cross_entropy``.

    .. math::

        L_n = \sum_c w_c\, q_{n,c} \left[-\log p_{n,c} + \epsilon\, (1 - p_{n,c})\right],
        \qquad p_n = \mathrm{softmax}(x_n),

    where q is the one-hot target (class indices), the given class probabilities, or either smoothed as
    q (1 - label_smoothing) + label_smoothing / C, and w the per-class ``weight``. Without ``weight`` and for targets
    summing to 1 this is the paper's CE + epsilon (1 - p_t) with p_t = sum_c q_c p_c, the smoothed p_t of the paper's
    code (and of timm's ``PolyCrossEntropy``): label smoothing enters both terms. With ``epsilon=0`` it equals
    ``F.cross_entropy`` for every combination of ``weight``, ``ignore_index``, ``label_smoothing`` and ``reduction``
    (except an empty or fully ignored batch, where ``F.cross_entropy`` returns NaN and focalkit 0). Computed in log
    space (fp16 / bf16 in fp32); for epsilon < 0 the loss is evaluated as a sum of non-negative terms, accurate also
    where -log p_t and epsilon (1 - p_t) nearly cancel (p_t -> 1, epsilon = -1). Class indices without label
    smoothing run on the fused kernels (CPU, Triton: one pass of the softmax focal loss' kernel, loss and gradient);
    probability targets and ``label_smoothing > 0`` are computed by the PyTorch back-end's closed form.

    Args:
        input: logits of shape (N, C) or (N, C, d1, ...), or (C,) for a single sample.
        target: class indices of shape (N,) / (N, d1, ...) in [0, C) or ``ignore_index``, or class probabilities of
            the input's shape.
        epsilon: the Poly-1 coefficient, a finite number >= -1 (the paper's domain; 1 by default, 2 in the paper's
            ImageNet experiments); 0 gives the cross-entropy.
        weight: per-class rescaling weight of length C, as in ``F.cross_entropy`` (it weighs both terms of a class
            and is part of the mean's denominator).
        ignore_index: class index whose rows contribute nothing and are not counted (index targets only).
        reduction: ``"none"`` (per-row losses) | ``"mean"`` | ``"sum"``. "mean" divides by the sum of
            ``weight[target]`` over non-ignored rows (their number without ``weight``), or by the number of rows
            for probability targets, as ``F.cross_entropy``.
        label_smoothing: amount of smoothing in [0, 1], as in ``F.cross_entropy``.

    Returns:
        Per-row losses of shape (N, d1, ...) in the input's dtype for ``"none"``; otherwise a scalar (float32 for
        fp16 / bf16 input).

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> poly1_cross_entropy(x, torch.tensor([0, 2]), epsilon=1.0)
        tensor(0.3346)
        >>> poly1_cross_entropy(x, torch.tensor([0, 2]), epsilon=0.0)  # F.cross_entropy
        tensor(0.1755)

    Reference:
        Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov, "PolyLoss: A Polynomial Expansion
        Perspective of Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
    """
    input = check_floating("input", input)
    if input.ndim == 1:  # one sample: (C,) logits with a () class index or (C,) probabilities, as F.cross_entropy
        batched = target.unsqueeze(0) if isinstance(target, Tensor) else target
        return poly1_cross_entropy(
            input.unsqueeze(0), batched, epsilon, weight, ignore_index, reduction, label_smoothing
        ).squeeze(0)
    if input.ndim == 0:
        raise argument_error("input", "logits of shape (C,), (N, C) or (N, C, d1, ...)", describe(input))
    epsilon = _check_epsilon(epsilon)
    reduction = check_reduction(reduction)
    label_smoothing = check_label_smoothing(scalar_value(label_smoothing))
    ignore_index = check_ignore_index(ignore_index)
    target = _check_target(input, target, ignore_index, scan_values=False)
    weight_vector = None if weight is None else class_vector("weight", weight, input, check_unit_range=False)
    probabilities = target.is_floating_point()
    scan_targets = _index_value_scan(input, target, ignore_index, label_smoothing)

    loss = focal_loss_op(
        "poly1_cross_entropy", input, target, tensors={"class_weight": weight_vector},
        scalars={"epsilon": epsilon, "label_smoothing": label_smoothing},
        ignore_index=None if probabilities else ignore_index, reduce_sum=reduction != "none",
        scan_targets=scan_targets,
    )
    if reduction == "none":
        return loss.to(input.dtype)

    def mean_denominator() -> Tensor:
        if probabilities:
            rows = input.shape[0] * math.prod(input.shape[2:])
            return torch.tensor(float(rows), device=input.device)
        valid = target != ignore_index
        if weight_vector is None:
            return valid.sum().to(torch.float32)
        return (weight_vector[torch.where(valid, target, torch.zeros_like(target))] * valid).sum()

    return finish_reduction(loss, reduction, mean_denominator, None, False, input.dtype)


def poly1_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    epsilon: float = 1.0,
    alpha: AlphaArg = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
    *,
    weight: Tensor | None = None,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Poly-1 focal loss (Leng et al. 2022, PolyLoss) on logits, with the conventions of
    ``torchvision.ops.sigmoid_focal_loss``.

    .. math::

        L = \alpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(p, y) + \epsilon\, (1 - p_t)^{\gamma + 1},\qquad
        p = \sigma(x),\ 1 - p_t = p (1 - y) + (1 - p) y,

    the focal loss of :func:`focalkit.sigmoid_focal_loss` plus epsilon times the leading polynomial term. The poly
    term is not alpha-weighted, as in the paper's code (timm's ``PolyBinaryCrossEntropy`` weighs both terms by
    alpha_t). Computed in log space (fp16 / bf16 in fp32) with a closed-form gradient that has no
    (1 - p_t)^(gamma - 1) factor: loss and gradient are finite at any logit for every gamma >= 0. With
    ``epsilon < 0`` the loss can be negative (the paper uses epsilon = -1 for detection).

    Args:
        inputs: logits of any shape.
        targets: float targets in [0, 1] of the inputs' shape (binary, multi-label or soft).
        epsilon: the Poly-1 coefficient, a finite number >= -1 (the paper's domain); 0 gives the focal loss.
        alpha: weight of positives in [0, 1] (negatives get 1 - alpha) in the focal term; ``None`` or a negative
            number disables it; a sequence / tensor of length C gives a per-class alpha along dim 1.
        gamma: focusing parameter >= 0.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``; "mean" divides the sum by the number of elements, or by
            ``normalizer``.
        weight: a tensor broadcastable to the inputs multiplying each element's loss.
        normalizer: with ``reduction="mean"``, divide the sum by this instead (e.g. the number of positive
            anchors); 0 is replaced by 1.

    Returns:
        Per-element losses of the inputs' shape and dtype for ``"none"``; otherwise a scalar (float32 for fp16 /
        bf16 inputs).

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]])
        >>> y = torch.tensor([[1.0, 0.0, 1.0]])
        >>> poly1_focal_loss(x, y, epsilon=1.0, reduction="sum")
        tensor(0.1093)
        >>> poly1_focal_loss(x, y, epsilon=0.0, reduction="sum")  # sigmoid_focal_loss
        tensor(0.0343)

    Reference:
        Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions", ICLR 2022,
        arXiv:2204.12511 (Poly-1 focal loss and its code).
    """
    inputs = check_floating("inputs", inputs)
    epsilon = _check_epsilon(epsilon)
    gamma = check_gamma(gamma)
    reduction = check_reduction(reduction)
    if isinstance(targets, Tensor) and not targets.is_floating_point():
        raise type_error("targets", "float targets in [0, 1] of the inputs' shape", describe(targets))
    targets = check_dense_targets("targets", targets, inputs, "float targets in [0, 1]", scan_values=False)
    alpha_pos, alpha_neg = sigmoid_alpha(alpha, inputs)
    weight = check_loss_weight(weight, inputs, [tuple(inputs.shape)])
    check_normalizer(normalizer, reduction, False, inputs)

    loss = weighted_loss(
        "poly1_focal", inputs, targets, reduction, weight, tensors={"alpha_pos": alpha_pos, "alpha_neg": alpha_neg},
        scalars={"gamma": gamma, "epsilon": epsilon}, scan_targets=dense_target_scan("targets", targets),
    )
    return reduce_elementwise(loss, reduction, inputs, targets, None, normalizer)
