"""Automated focal loss of Weber et al. (2019): gamma from a running estimate of the true-class probability.

.. math::

    \\hat p \\leftarrow m\\,\\hat p + (1 - m)\\,\\overline{p_t}^{\\,\\text{batch}}, \\qquad
    \\gamma = -\\log \\hat p, \\qquad \\mathrm{FL}(p_t) = -(1 - p_t)^{\\gamma} \\log p_t

As training makes the model confident (:math:`\\hat p \\to 1`) gamma tends to 0 and the loss to cross-entropy; early on
(:math:`\\hat p \\approx 1/C`) gamma is about :math:`\\log C`. The running mean is updated by :meth:`after_batch`
(momentum ``m``; the first call sets :math:`\\hat p` to the batch mean). Before any update gamma is
:math:`-\\log(\\text{p\\_init})`, with ``p_init`` defaulting to :math:`1/C` once C is seen.

References:
  M. Weber, M. Fürst, J. M. Zöllner. Automated Focal Loss for Image based Object Detection. IEEE IV 2020
  (arXiv:1904.09048).
"""

from __future__ import annotations

import math

import torch

from focalkit.errors import argument_error
from focalkit.semantics import check_number

from ._base import AdaptiveFocalLoss
from ._per_sample import _check

__all__ = ["AutomatedFocalLoss"]


class AutomatedFocalLoss(AdaptiveFocalLoss):
    """Automated focal loss module.

    Args:
      momentum: weight m of the old estimate in the running mean (0.95; our choice, the paper does not fix it for
        this setting).
      p_init: initial estimate of p_hat; None -> 1 / C at the first forward.
      weight, reduction: as in :class:`~focalkit.adaptive.FLSD53Loss`.

    Example:
      >>> import torch
      >>> loss = AutomatedFocalLoss(momentum=0.0)
      >>> loss.after_batch(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))   # p_t = 0.5
      >>> round(loss.gamma, 4)   # -log(0.5)
      0.6931
    """

    def __init__(self, momentum: float = 0.95, p_init: float | None = None, *,
                 weight: torch.Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(weight=weight, reduction=reduction)
        momentum = check_number("momentum", momentum)
        if not 0.0 <= momentum < 1.0:
            raise argument_error("momentum", "a number in [0, 1)", momentum)
        if p_init is not None:
            p_init = check_number("p_init", p_init)
            if not 0.0 < p_init <= 1.0:
                raise argument_error("p_init", "a number in (0, 1]", p_init)
        self.momentum = momentum
        self.p_hat: float | None = p_init
        self.updates = 0

    @property
    def gamma(self) -> float:
        """Current gamma = -log(p_hat) (0 when p_hat is 1); NaN before p_hat is known."""
        if self.p_hat is None:
            return float("nan")
        return max(0.0, -math.log(max(self.p_hat, 1e-12)))

    def gamma_for(self, p_t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(p_t, self.gamma, dtype=torch.float32)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.p_hat is None:
            _check(logits, target)
            self.p_hat = 1.0 / logits.shape[1]
        return super().forward(logits, target)

    def after_batch(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Update the running mean of p_t with this batch (call once per optimiser step)."""
        _check(logits, target)
        with torch.no_grad():
            batch_mean = float(torch.softmax(logits.float(), 1).gather(1, target[:, None]).mean())
        if self.updates == 0 and (self.p_hat is None or self.momentum == 0.0):
            self.p_hat = batch_mean
        else:
            self.p_hat = self.momentum * float(self.p_hat) + (1.0 - self.momentum) * batch_mean
        self.updates += 1
