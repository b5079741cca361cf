"""Helpers for class imbalance: class-balanced weights and the prior-probability bias initialisation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import check_number, describe
from .errors import argument_error, type_error

__all__ = ["class_balanced_weights", "prior_bias", "init_prior_bias_"]


def class_balanced_weights(counts: Sequence[int] | Tensor, beta: float = 0.9999) -> Tensor:
    r"""Class-balanced weights from the effective number of samples (Cui et al. 2019), normalised to sum to C.

    .. math:: w_c = \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad w \leftarrow C\, w / \textstyle\sum_c w_c

    beta = 0 gives equal weights; beta -> 1 approaches inverse class frequency.

    Args:
        counts: number of training samples per class, length C, each >= 1.
        beta: hyper-parameter in [0, 1).

    Returns:
        float32 tensor of shape (C,) summing to C; pass it as ``weight`` to :func:`softmax_focal_loss` or as per-class
        ``alpha``-like weights.

    Example:
        >>> class_balanced_weights([1000, 100, 10], beta=0.999)
        tensor([0.0422, 0.2800, 2.6778])

    Reference:
        Y. Cui, M. Jia, T.-Y. Lin, Y. Song, S. Belongie, "Class-Balanced Loss Based on Effective Number of Samples",
        CVPR 2019, eq. (8)-(9).
    """
    if isinstance(counts, Tensor):
        if counts.is_floating_point() and not bool((counts == counts.round()).all()):
            raise argument_error("counts", "whole numbers of samples per class", describe(counts))
        values = counts.detach().to(torch.float64).cpu().flatten()
    elif isinstance(counts, Sequence) and not isinstance(counts, str):
        if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in counts):
            raise type_error("counts", "a sequence of sample counts", repr(counts))
        values = torch.tensor([float(c) for c in counts], dtype=torch.float64)
    else:
        raise type_error("counts", "a sequence or tensor of per-class sample counts", type(counts).__name__)
    if values.numel() == 0:
        raise argument_error("counts", "at least one class", "an empty sequence")
    if not bool(torch.isfinite(values).all()):
        raise argument_error("counts", "finite sample counts", values.tolist())
    if bool((values < 1).any()):
        raise argument_error("counts", "counts >= 1 for every class", values.tolist())
    beta = check_number("beta", beta, minimum=0.0)
    if beta >= 1:
        raise argument_error("beta", "a number in [0, 1)", beta)
    effective = -torch.expm1(values * math.log(beta)) if beta > 0 else torch.ones_like(values)  # 1 - beta^n
    weights = (1.0 - beta) / effective if beta > 0 else effective
    weights = weights * values.numel() / weights.sum()
    return weights.to(torch.float32)


def prior_bias(pi: float = 0.01) -> float:
    r"""Bias that makes a sigmoid classifier start by predicting probability pi: b = -log((1 - pi) / pi).

    Lin et al. (section 3.3) initialise the last classification layer's bias so that every anchor starts at
    foreground probability pi = 0.01; without it, the loss of the many background anchors dominates the first
    iterations and training diverges.

    Example:
        >>> round(prior_bias(0.01), 4)
        -4.5951

    Reference:
        T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, section 3.3 (Initialization).
    """
    pi = check_number("pi", pi, minimum=0.0, strict=True)
    if pi >= 1:
        raise argument_error("pi", "a probability in (0, 1)", pi)
    return math.log(pi) - math.log1p(-pi)  # = -log((1 - pi) / pi) without overflow of 1 / pi for tiny pi


def init_prior_bias_(layer: nn.Module | Tensor, pi: float = 0.01) -> nn.Module | Tensor:
    """Set a layer's bias (or a bias tensor) to :func:`prior_bias` in place, without tracking gradients.

    Example:
        >>> head = torch.nn.Conv2d(8, 9, 3)
        >>> _ = init_prior_bias_(head, pi=0.01)
    """
    bias = layer if isinstance(layer, Tensor) else getattr(layer, "bias", None)
    if not isinstance(bias, Tensor):
        raise type_error("layer", "a tensor or a module with a bias", type(layer).__name__)
    with torch.no_grad():
        bias.fill_(prior_bias(pi))
    return layer
