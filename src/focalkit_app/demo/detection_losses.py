"""The rows compared by ``focalkit demo --task detection`` and the classification loss each row trains with.

Every loss is summed over all (class, anchor) sigmoids of the non-ignored anchors and divided by the number of
foreground anchors in the batch (RetinaNet section 4.1; mmdetection's ``avg_factor``):

.. math::

    L = \\frac{1}{\\max(1, N_{fg})} \\sum_{a \\notin \\mathrm{ignored}} \\sum_{c=0}^{C-1} \\ell(x_{a,c}, y_{a,c}),

with y_{a,c} = 1 when anchor a is foreground of class c, and for

- ``ce`` / ``fl``: focal loss -alpha_t (1 - p_t)^gamma log p_t (gamma 0 = alpha-balanced CE, no alpha = plain CE);
- ``fl_star``: FL* = -alpha_t log sigmoid(gamma x_t + beta) / gamma (Appendix A);
- ``qfl``: Quality Focal Loss |q - p|^beta BCE(p, q) with q the anchor's IoU with its box (Generalized Focal Loss);
- ``vfl``: Varifocal Loss, q BCE(p, q) on foreground, alpha p^gamma BCE(p, 0) on background (VarifocalNet).

Logits come as (B, C, A, S, S), targets as class indices (B, A, S, S) with C = background and ``IGNORE``.

References:
  T.-Y. Lin et al., Focal Loss for Dense Object Detection, ICCV 2017 (arXiv:1708.02002), Table 1 and Appendix A.
  X. Li et al., Generalized Focal Loss, NeurIPS 2020 (arXiv:2006.04388).
  H. Zhang et al., VarifocalNet: An IoU-aware Dense Object Detector, CVPR 2021 (arXiv:2008.13367).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .detection_task import IGNORE

__all__ = ["LossConfig", "default_grid", "quick_grid", "detection_loss", "dense_quality_targets"]

KINDS = ("ce", "fl", "fl_star", "qfl", "vfl")


@dataclass(frozen=True)
class LossConfig:
    """One row. kind: one of ``KINDS``; alpha None = no alpha weighting; beta: FL*'s shift or QFL's exponent;
    prior: start the last bias at focalkit.prior_bias(0.01) (otherwise 0)."""

    label: str
    kind: str
    gamma: float = 0.0
    alpha: float | None = None
    beta: float = 0.0
    prior: bool = True
    group: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            import focalkit

            raise focalkit.InvalidArgumentError(f"kind: expected one of {KINDS}, got {self.kind!r}")


CE_NO_PRIOR = LossConfig("CE, no prior init", "ce", prior=False, group="baseline")
CE_PRIOR = LossConfig("CE, prior init", "ce", group="baseline")
QFL = LossConfig("QFL b=2", "qfl", beta=2.0, group="detection family")
VFL = LossConfig("VFL a=.75 g=2", "vfl", gamma=2.0, alpha=0.75, group="detection family")
FL_STAR = LossConfig("FL* g=2 b=1", "fl_star", gamma=2.0, beta=1.0, alpha=0.25, group="Appendix A")


def _alpha_ce(a: float) -> LossConfig:
    return LossConfig(f"alpha-CE a={a:g}", "ce", alpha=a, group="Table 1a (gamma 0)")


def _fl(g: float, a: float) -> LossConfig:
    return LossConfig(f"FL g={g:g} a={a:g}", "fl", gamma=g, alpha=a, group="Table 1b")


def default_grid() -> tuple[LossConfig, ...]:
    """The full run's rows: CE with and without the prior, Table 1a at alpha in {.25, .75} (of .10 .. .999; .75 is
    the paper's best alpha at gamma 0, .25 its alpha for gamma 2), Table 1b at (gamma, alpha) in {(1, .25),
    (2, .25)} (of 0 .. 5), FL* (2, 1), QFL (beta 2) and VFL (alpha .75, gamma 2)."""
    return (CE_NO_PRIOR, CE_PRIOR, _alpha_ce(0.25), _alpha_ce(0.75), _fl(1.0, 0.25), _fl(2.0, 0.25), FL_STAR, QFL,
            VFL)


def quick_grid() -> tuple[LossConfig, ...]:
    """``--quick`` rows: CE with and without the prior, alpha-CE .75, FL (2, .25), QFL, VFL."""
    return (CE_NO_PRIOR, CE_PRIOR, _alpha_ce(0.75), _fl(2.0, 0.25), QFL, VFL)


def dense_quality_targets(labels: torch.Tensor, quality: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, A, S, S) labels and qualities -> (B, C, A, S, S) scores: the quality at the labelled class, 0 elsewhere
    (background and ignored anchors are all 0)."""
    fg = (labels >= 0) & (labels < num_classes)
    onehot = torch.nn.functional.one_hot(torch.where(fg, labels, num_classes), num_classes + 1)[..., :num_classes]
    return onehot.movedim(-1, 1).to(quality.dtype) * quality.unsqueeze(1)


def detection_loss(logits: torch.Tensor, labels: torch.Tensor, quality: torch.Tensor,
                   cfg: LossConfig) -> torch.Tensor:
    """The row's loss, summed over the non-ignored anchors' C sigmoids and divided by max(1, #foreground).

    Args:
      logits: (B, C, A, S, S); labels: (B, A, S, S) int64 (C = background, ``IGNORE``); quality: (B, A, S, S).
    """
    import focalkit

    num_classes = logits.shape[1]
    num_fg = ((labels >= 0) & (labels < num_classes)).sum().clamp_min(1).to(logits.dtype)
    alpha = -1.0 if cfg.alpha is None else cfg.alpha
    if cfg.kind == "fl_star":
        return focalkit.sigmoid_focal_loss_star(logits, labels, gamma=cfg.gamma, beta=cfg.beta, alpha=alpha,
                                                reduction="mean", ignore_index=IGNORE, normalizer=num_fg)
    if cfg.kind == "qfl":
        return focalkit.quality_focal_loss(logits, (labels, quality), beta=cfg.beta, reduction="mean",
                                           ignore_index=IGNORE, normalizer=num_fg)
    if cfg.kind == "vfl":
        kept = (labels != IGNORE).unsqueeze(1).to(logits.dtype)
        scores = dense_quality_targets(labels, quality, num_classes)
        return focalkit.varifocal_loss(logits, scores, alpha=cfg.alpha, gamma=cfg.gamma, reduction="mean",
                                       weight=kept, normalizer=num_fg)
    return focalkit.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=cfg.gamma, reduction="mean",
                                       ignore_index=IGNORE, normalizer=num_fg)
