"""Adaptive focal losses: gamma chosen per sample or per training step from the model's own statistics.

- :class:`FLSD53Loss` (Mukhoti et al. 2020): gamma 5 where p_t < 0.2, else 3.
- :class:`AdaFocalLoss` (Ghosh et al. 2022): per-confidence-bin gamma updated from validation calibration.
- :class:`AutomatedFocalLoss` (Weber et al. 2019): gamma = -log(running mean of p_t).
- :class:`EqualizedFocalLoss` (Li et al. 2022): sigmoid, a gamma per class from that class' accumulated
  positive-to-negative gradient ratio, updated during backward (it needs neither hook below).

The first three share :func:`per_sample_focal_loss`, a log-space focal term (finite values and gradients) and two training-loop
hooks, ``after_batch(logits, target)`` and ``after_epoch(val_logits, val_target)``; see
:class:`focalkit.adaptive._base.AdaptiveFocalLoss` for the loop.
"""

from ._base import AdaptiveFocalLoss
from ._per_sample import per_sample_focal_loss, true_class_probability
from .adafocal import AdaFocalLoss, equal_mass_bins
from .automated import AutomatedFocalLoss
from .equalized import EqualizedFocalLoss, equalized_focal_statistics
from .flsd import FLSD53Loss

__all__ = ["AdaFocalLoss", "AdaptiveFocalLoss", "AutomatedFocalLoss", "EqualizedFocalLoss", "FLSD53Loss",
           "equal_mass_bins", "equalized_focal_statistics", "per_sample_focal_loss", "true_class_probability"]
