"""The family of losses the demo compares, built from the focalkit core and :mod:`focalkit.adaptive`.

Every loss is reduced as a sum over the batch divided by the number of samples (= the number of positives, since each
sample has exactly one true class: RetinaNet's normalisation). Hyper-parameters are the papers' defaults, fixed before
any run and never tuned on the test data:

=================  =========================================================================================
name               definition
=================  =========================================================================================
``ce``             softmax cross-entropy
``alpha_ce``       softmax CE weighted by alpha_c proportional to 1 / n_c, normalised to sum to C (passed as
                   ``weight``: the core's multi-class ``alpha`` must lie in [0, 1])
``focal``          softmax focal loss, gamma = 2 (Lin et al. 2017)
``sigmoid_focal``  sigmoid focal loss over one-hot targets, alpha = 0.25, gamma = 2, prior bias pi = 0.01
``cb_focal``       softmax focal loss, gamma = 2, alpha = class-balanced weights with beta = 0.9999 (Cui et al.)
``flsd53``         FLSD-53 (Mukhoti et al. 2020)
``adafocal``       AdaFocal (Ghosh et al. 2022), 15 bins (fewer only when the validation set has fewer than
                   15 rows), gamma_0 = 1, lambda = 1, on the validation set
``automated``      automated focal loss (Weber et al. 2019), momentum 0.95
=================  =========================================================================================

``cb_sigmoid_focal`` (used by ``compare --tune``) is Cui et al.'s class-balanced sigmoid focal loss with free
``alpha``, ``gamma`` and ``beta``: loss_i = w_{y_i}(beta) * sum_c FL_sigmoid(x_ic, [c = y_i]; alpha, gamma).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "LossSpec", "DEFAULT_LOSSES", "make_loss", "probabilities"]


class _Static:
    """A stateless loss with the adaptive hooks as no-ops."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, target)

    def after_batch(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pass

    def after_epoch(self, val_logits: torch.Tensor, val_target: torch.Tensor) -> None:
        pass


@dataclass(frozen=True)
class LossSpec:
    """One member of the family: display label, output head ("softmax" or "sigmoid"), default parameters."""

    name: str
    label: str
    head: str
    defaults: dict[str, Any] = field(default_factory=dict)
    adaptive: bool = False


LOSSES: dict[str, LossSpec] = {s.name: s for s in [
    LossSpec("ce", "cross-entropy", "softmax"),
    LossSpec("alpha_ce", "alpha-balanced CE", "softmax"),
    LossSpec("focal", "softmax focal g=2", "softmax", {"gamma": 2.0}),
    LossSpec("sigmoid_focal", "sigmoid focal a=.25 g=2", "sigmoid", {"alpha": 0.25, "gamma": 2.0, "prior": 0.01}),
    LossSpec("cb_focal", "class-balanced focal", "softmax", {"gamma": 2.0, "beta": 0.9999}),
    LossSpec("flsd53", "FLSD-53", "softmax", adaptive=True),
    LossSpec("adafocal", "AdaFocal", "softmax", adaptive=True),
    LossSpec("automated", "automated focal", "softmax", adaptive=True),
    LossSpec("cb_sigmoid_focal", "tuned CB sigmoid focal", "sigmoid",
             {"alpha": 0.25, "gamma": 2.0, "beta": 0.9999, "prior": 0.01}),
]}

#: the losses ``demo`` and ``compare`` run by default, baseline first
DEFAULT_LOSSES = ("ce", "alpha_ce", "focal", "sigmoid_focal", "cb_focal", "flsd53", "adafocal", "automated")


def _inverse_frequency(counts: np.ndarray) -> torch.Tensor:
    inv = 1.0 / np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return torch.tensor(inv / inv.sum() * len(inv), dtype=torch.float32)


def make_loss(name: str, counts: np.ndarray, **overrides: Any):
    """Build the loss ``name`` for training counts ``counts`` (C,).

    Returns:
      (loss, init_bias): ``loss(logits (N, C), target (N,) int64) -> scalar`` with ``after_batch`` /
      ``after_epoch`` hooks; ``init_bias`` the constant for the classifier's last bias (None = default init).
    """
    import focalkit
    from focalkit import adaptive

    if name not in LOSSES:
        raise focalkit.InvalidArgumentError(f"loss: expected one of {sorted(LOSSES)}, got {name!r}")
    spec = LOSSES[name]
    p = {**spec.defaults, **overrides}
    counts = np.asarray(counts)
    num_classes = len(counts)

    def mean(loss_sum: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return loss_sum / max(logits.shape[0], 1)

    if name == "ce":
        return _Static(lambda x, t: F.cross_entropy(x, t)), None
    if name == "alpha_ce":
        alpha = _inverse_frequency(counts)
        return _Static(lambda x, t: mean(focalkit.softmax_focal_loss(x, t, weight=alpha, reduction="sum", gamma=0.0),
                                         x)), None
    if name == "focal":
        return _Static(lambda x, t: mean(focalkit.softmax_focal_loss(x, t, reduction="sum", gamma=p["gamma"]),
                                         x)), None
    if name == "cb_focal":
        alpha = focalkit.class_balanced_weights(torch.as_tensor(counts), beta=p["beta"])
        return _Static(lambda x, t: mean(focalkit.softmax_focal_loss(x, t, weight=alpha, reduction="sum",
                                                                     gamma=p["gamma"]), x)), None
    if name in ("sigmoid_focal", "cb_sigmoid_focal"):
        w = (focalkit.class_balanced_weights(torch.as_tensor(counts), beta=p["beta"])
             if name == "cb_sigmoid_focal" else None)

        def sigmoid_loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            onehot = F.one_hot(t, num_classes).to(x.dtype)
            per = focalkit.sigmoid_focal_loss(x, onehot, alpha=p["alpha"], gamma=p["gamma"], reduction="none")
            per = per.sum(1)
            if w is not None:
                per = per * w[t]
            return mean(per.sum(), x)

        return _Static(sigmoid_loss), focalkit.prior_bias(p["prior"])
    if name == "flsd53":
        return adaptive.FLSD53Loss(), None
    if name == "adafocal":
        return adaptive.AdaFocalLoss(num_bins=int(p.get("num_bins", 15))), None
    if name == "automated":
        return adaptive.AutomatedFocalLoss(), None
    raise AssertionError(name)  # pragma: no cover


def probabilities(logits: torch.Tensor, head: str) -> np.ndarray:
    """Class probabilities for metrics: softmax, or for sigmoid heads sigmoid(x) renormalised to sum to 1."""
    with torch.no_grad():
        if head == "softmax":
            return torch.softmax(logits.double(), 1).numpy()
        s = torch.sigmoid(logits.double())
        return (s / s.sum(1, keepdim=True).clamp_min(1e-300)).numpy()
