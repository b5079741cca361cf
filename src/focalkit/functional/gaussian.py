"""``gaussian_focal_loss``: the heatmap focal loss of CornerNet / CenterNet, from logits or probabilities."""

from __future__ import annotations

import torch
from torch import Tensor

from .._autograd import focal_loss_op
from .._checks import check_floating, check_number, check_unit_interval_values
from ..semantics import check_bool, check_reduction
from ._detection import check_dense_targets
from ._reduction import check_normalizer, finish_reduction

__all__ = ["gaussian_focal_loss"]


def gaussian_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = 2.0,
    beta: float = 4.0,
    reduction: str = "mean",
    *,
    from_logits: bool = True,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Gaussian focal loss of heatmap heads (CornerNet, CenterNet; mmdetection ``GaussianFocalLoss``, whose
    ``alpha = 2`` and ``gamma = 4`` are ``alpha`` and ``beta`` here, CenterNet's names).

    .. math::

        L = \begin{cases} -(1 - p)^\alpha \log p & y = 1 \\
            -(1 - y)^\beta\, p^\alpha \log(1 - p) & y < 1 \end{cases},\qquad
        \text{"mean"} = \frac{\sum L}{\#\{y = 1\}}.

    Peaks are the elements whose target is exactly 1 (the Gaussian's centre); every other element is a negative
    down-weighted by (1 - y)^beta near a peak (CenterNet's ``neg_inds = gt.lt(1)``: a peak never gets the negative
    term, also for beta = 0).

    ``from_logits=True`` (default) takes logits and computes everything exactly in log space
    (log p = -softplus(-x), (1 - p)^alpha = exp(-alpha softplus(x))), finite with a finite gradient at any logit.
    ``from_logits=False`` takes probabilities, as CenterNet's code does after its sigmoid; where a probability has
    underflowed to 0 (or 1 - p to 0) it is clamped at the dtype's smallest normal number, as
    :func:`binary_focal_loss` does, so the loss saturates at -log(tiny) (87.3 in fp32, 9.7 in fp16) with a finite
    gradient instead of inf / NaN. This replaces CenterNet's clamp of p to [1e-4, 1 - 1e-4] (which caps the loss
    at 9.2 and zeroes the gradient beyond it) and mmdetection's log(p + 1e-12): between those clamps the values
    are the same. Pass logits when you have them.

    Args:
        inputs: logits (``from_logits=True``) or probabilities in [0, 1], any shape.
        targets: float heatmap targets in [0, 1] of the inputs' shape, 1 exactly at the peaks.
        alpha: exponent of (1 - p) on peaks and of p elsewhere, a finite number >= 0 (2).
        beta: exponent of (1 - y) on negatives, a finite number >= 0 (4).
        reduction: ``"none"`` | ``"mean"`` (the sum divided by the number of peaks, 1 when there is none, as
            CenterNet and mmdetection's ``avg_factor = max(1, #peaks)``; or by ``normalizer``) | ``"sum"``.
        from_logits: whether ``inputs`` are logits (True) or probabilities.
        normalizer: with ``reduction="mean"``, the denominator instead; 0 is replaced by 1.

    Returns:
        Per-element losses of the inputs' shape and dtype for ``"none"``; otherwise a scalar (float32 for fp16 /
        bf16 inputs).

    Example:
        >>> x = torch.tensor([[2.0, -1.0, -3.0]]); y = torch.tensor([[1.0, 0.5, 0.0]])
        >>> gaussian_focal_loss(x, y)  # one peak: the sum
        tensor(0.0033)
        >>> gaussian_focal_loss(torch.sigmoid(x), y, from_logits=False)
        tensor(0.0033)

    Reference:
        H. Law, J. Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018, eq. (1); X. Zhou, D. Wang,
        P. Krahenbuhl, "Objects as Points", arXiv:1904.07850, eq. (1); mmdetection
        ``mmdet/models/losses/gaussian_focal_loss.py``.
    """
    inputs = check_floating("inputs", inputs)
    reduction = check_reduction(reduction)
    alpha = check_number("alpha", alpha, minimum=0.0)
    beta = check_number("beta", beta, minimum=0.0)
    from_logits = check_bool("from_logits", from_logits)
    if not from_logits:
        check_unit_interval_values("inputs", inputs)
    targets = check_dense_targets("targets", targets, inputs, "float heatmap targets in [0, 1]")
    check_normalizer(normalizer, reduction, False, inputs)
    loss = focal_loss_op(
        "gaussian_focal" if from_logits else "gaussian_focal_probs", inputs, targets,
        scalars={"alpha": alpha, "beta": beta}, reduce_sum=reduction != "none",
    )
    if reduction == "none":
        return loss.to(inputs.dtype)
    return finish_reduction(
        loss, reduction, lambda: (targets == 1).sum().to(torch.float32), normalizer, False, inputs.dtype
    )
