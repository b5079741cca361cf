"""FLSD-53: sample-dependent focal loss of Mukhoti et al. (2020).

.. math::

    \\gamma(p_t) = \\begin{cases} 5 & p_t < 0.2 \\\\ 3 & p_t \\ge 0.2 \\end{cases}, \\qquad
    \\mathrm{FL}(p_t) = -(1 - p_t)^{\\gamma(p_t)} \\log p_t

Mukhoti et al. derive the threshold and the two gammas from a comparison of the focal-loss gradient with
cross-entropy's; the values here are theirs.
Stateless: both training-loop hooks are no-ops.

References:
  J. Mukhoti, V. Kulharia, A. Sanyal, S. Golodetz, P. Torr, P. Dokania. Calibrating Deep Neural Networks using Focal
  Loss. NeurIPS 2020 (arXiv:2002.09437).
"""

from __future__ import annotations

import torch

from focalkit.errors import argument_error
from focalkit.semantics import check_number

from ._base import AdaptiveFocalLoss

__all__ = ["FLSD53Loss"]


class FLSD53Loss(AdaptiveFocalLoss):
    """FLSD-53 loss module (softmax, class-index targets).

    Args:
      threshold: p_t below which ``gamma_low`` applies (0.2).
      gamma_low: gamma for hard samples, p_t < threshold (5).
      gamma_high: gamma for the others (3).
      weight: optional (C,) per-class weight.
      reduction: "mean" (sum / N), "sum" or "none".

    Example:
      >>> import torch
      >>> loss = FLSD53Loss()
      >>> loss.gamma_for(torch.tensor([0.1, 0.2, 0.9])).tolist()
      [5.0, 3.0, 3.0]
    """

    def __init__(self, threshold: float = 0.2, gamma_low: float = 5.0, gamma_high: float = 3.0, *,
                 weight: torch.Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(weight=weight, reduction=reduction)
        threshold = check_number("threshold", threshold)
        if not 0.0 < threshold < 1.0:
            raise argument_error("threshold", "a number in (0, 1)", threshold)
        self.threshold = threshold
        self.gamma_low = check_number("gamma_low", gamma_low, minimum=0.0)
        self.gamma_high = check_number("gamma_high", gamma_high, minimum=0.0)

    def gamma_for(self, p_t: torch.Tensor) -> torch.Tensor:
        return torch.where(p_t < self.threshold, self.gamma_low, self.gamma_high).float()
