"""AdaFocal of Ghosh, Schaaf and Gormley (2022): per-confidence-bin gamma driven by validation calibration.

After each epoch the validation samples are sorted by confidence (top softmax probability) and split into
``num_bins`` (15) equal-mass bins. For bin b with mean confidence :math:`C_b` and accuracy :math:`A_b`:

.. math::

    \\gamma_b \\leftarrow \\begin{cases}
        \\gamma_b \\exp(\\lambda (C_b - A_b))  & \\gamma_b > 0 \\\\
        \\gamma_b \\exp(-\\lambda (C_b - A_b)) & \\gamma_b < 0
    \\end{cases}

An over-confident bin (:math:`C_b > A_b`) gets a larger focal gamma (or a smaller inverse-focal magnitude). When
:math:`|\\gamma_b|` falls below the switch point :math:`S_{th} = 0.2` the bin switches regime: a positive gamma becomes
:math:`-S_{th}` (inverse focal loss :math:`-(1 + p_t)^{|\\gamma|} \\log p_t`), a negative one becomes :math:`+S_{th}`.
Gamma is finally clipped to [-2, 20]. Defaults: :math:`\\gamma_0 = 1`, :math:`\\lambda = 1`. A training sample uses the
gamma of the bin its true-class probability :math:`p_t` falls in (bin edges from the last validation pass; uniform
edges before the first).

References:
  A. Ghosh, T. Schaaf, M. Gormley. AdaFocal: Calibration-aware Adaptive Focal Loss. NeurIPS 2022
  (arXiv:2211.11838).
"""

from __future__ import annotations

import math

import torch

from focalkit.errors import argument_error
from focalkit.semantics import check_number

from ._base import AdaptiveFocalLoss
from ._per_sample import _check

__all__ = ["AdaFocalLoss", "equal_mass_bins"]


def equal_mass_bins(confidence: torch.Tensor, correct: torch.Tensor, num_bins: int):
    """Split samples sorted by confidence into ``num_bins`` bins of (almost) equal size.

    Args:
      confidence: (M,) float; correct: (M,) bool/0-1; num_bins <= M.

    Returns:
      (edges, mean_confidence, accuracy): edges (num_bins + 1,) with edges[0] = 0, edges[-1] = 1 and interior edges
      midway between neighbouring bins; the other two (num_bins,) float64.
    """
    order = torch.argsort(confidence.double())
    conf = confidence.double()[order]
    corr = correct.double()[order]
    chunks_c = torch.tensor_split(conf, num_bins)
    chunks_a = torch.tensor_split(corr, num_bins)
    mean_conf = torch.stack([c.mean() for c in chunks_c])
    acc = torch.stack([a.mean() for a in chunks_a])
    interior = [0.5 * (float(chunks_c[b - 1][-1]) + float(chunks_c[b][0])) for b in range(1, num_bins)]
    edges = torch.tensor([0.0, *interior, 1.0], dtype=torch.float64)
    return edges, mean_conf, acc


class AdaFocalLoss(AdaptiveFocalLoss):
    """AdaFocal loss module (softmax, class-index targets).

    Args:
      num_bins: number of equal-mass validation bins (15).
      gamma_init: initial gamma of every bin (1).
      lam: lambda of the update rule (1).
      switch_point: |gamma| below which the regime switches (0.2).
      gamma_min, gamma_max: clipping range (-2, 20).
      weight, reduction: as in :class:`~focalkit.adaptive.FLSD53Loss`.

    Attributes:
      gammas: (num_bins,) float64 tensor, current per-bin gamma.
      edges: (num_bins + 1,) float64 tensor, current bin edges on the p_t axis.

    Example:
      >>> import torch
      >>> loss = AdaFocalLoss(num_bins=2)
      >>> conf_logits = torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 0.1], [0.0, 0.1]])
      >>> loss.after_epoch(conf_logits, torch.tensor([1, 1, 1, 1]))   # bin of the 0.98s: all wrong
      >>> loss.gammas[1].item() > 1.0
      True
    """

    def __init__(self, num_bins: int = 15, gamma_init: float = 1.0, lam: float = 1.0, switch_point: float = 0.2,
                 gamma_min: float = -2.0, gamma_max: float = 20.0, *, weight: torch.Tensor | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(weight=weight, reduction=reduction)
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
            raise argument_error("num_bins", "an int >= 1", repr(num_bins))
        self.lam = check_number("lam", lam)
        self.switch_point = check_number("switch_point", switch_point, minimum=0.0, strict=True)
        self.gamma_min = check_number("gamma_min", gamma_min)
        self.gamma_max = check_number("gamma_max", gamma_max)
        if not self.gamma_min < self.gamma_max:
            raise argument_error("gamma_min, gamma_max", "gamma_min < gamma_max", f"{gamma_min!r}, {gamma_max!r}")
        gamma_init = check_number("gamma_init", gamma_init, minimum=self.gamma_min, maximum=self.gamma_max)
        self.num_bins = num_bins
        self.gammas = torch.full((num_bins,), gamma_init, dtype=torch.float64)
        self.edges = torch.linspace(0.0, 1.0, num_bins + 1, dtype=torch.float64)
        self.history: list[list[float]] = [self.gammas.tolist()]

    def update_rule(self, gamma: float, gap: float) -> float:
        """One AdaFocal step for one bin: multiplicative update, regime switch, clipping."""
        if gamma > 0:
            new = gamma * math.exp(self.lam * gap)
        else:
            new = gamma * math.exp(-self.lam * gap)
        if abs(new) < self.switch_point:
            new = -self.switch_point if new > 0 else self.switch_point
        return min(max(new, self.gamma_min), self.gamma_max)

    def bin_index(self, p_t: torch.Tensor) -> torch.Tensor:
        """Bin of each p_t: bin b holds edges[b] <= p_t < edges[b+1] (the last bin includes 1)."""
        return torch.bucketize(p_t.double(), self.edges[1:-1], right=True)

    def gamma_for(self, p_t: torch.Tensor) -> torch.Tensor:
        return self.gammas[self.bin_index(p_t)].float()

    def after_epoch(self, val_logits: torch.Tensor, val_target: torch.Tensor) -> None:
        """Recompute equal-mass bins on the validation set and update every bin's gamma."""
        _check(val_logits, val_target)
        if val_logits.shape[0] < self.num_bins:
            raise argument_error("val_logits", f"at least num_bins={self.num_bins} rows", val_logits.shape[0])
        with torch.no_grad():
            probs = torch.softmax(val_logits.float(), 1)
            conf, pred = probs.max(1)
            edges, mean_conf, acc = equal_mass_bins(conf, pred == val_target, self.num_bins)
        gaps = (mean_conf - acc).tolist()
        self.gammas = torch.tensor([self.update_rule(float(g), gap) for g, gap in zip(self.gammas, gaps)],
                                   dtype=torch.float64)
        self.edges = edges
        self.history.append(self.gammas.tolist())
