"""Per-class metrics of hard segmentations: Dice and boundary recall, pooled over a batch of class maps.

For a class c, let P and G be the sets of pixels predicted as c and labelled c over all images of the batch.

Dice:

.. math::

    \\mathrm{Dice}_c = \\frac{2 |P \\cap G|}{|P| + |G|}\\qquad (\\text{NaN when } |P| + |G| = 0).

Boundary recall. The boundary of a binary mask M is the set of its pixels with at least one 4-neighbour outside M
(pixels beyond the image border count as outside, so a mask touching the border has a boundary there):
:math:`\\partial M = \\{p \\in M : N_4(p) \\not\\subseteq M\\}`. With tolerance t (pixels, Chebyshev distance),

.. math::

    \\mathrm{BR}_c(t) = \\frac{\\big|\\{p \\in \\partial G : \\exists q \\in \\partial P,\\
    \\max(|p_y - q_y|, |p_x - q_x|) \\le t\\}\\big|}{|\\partial G|}
    \\qquad (\\text{NaN when } \\partial G = \\emptyset),

boundaries taken per image (a predicted boundary never matches a true boundary of another image) and the counts
summed over the batch: the fraction of the class' true boundary pixels that lie within t pixels of a predicted
boundary of that class. It is the recall half of the boundary F-measure of Csurka et al. (BMVC 2013), with a square
(Chebyshev) tolerance window.

Reference:
  G. Csurka, D. Larlus, F. Perronnin. What is a good evaluation measure for semantic segmentation? BMVC 2013.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mask_boundary", "dice_score", "boundary_recall"]


def _class_maps(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import focalkit

    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim not in (2, 3):
        raise focalkit.InvalidArgumentError(
            f"pred, truth: expected two class maps of the same shape (H, W) or (B, H, W), got {pred.shape} and "
            f"{truth.shape}")
    if pred.ndim == 2:
        pred, truth = pred[None], truth[None]
    return pred, truth


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary of binary masks (B, H, W) or (H, W): the mask's pixels with a 4-neighbour outside the mask (outside
    the image counts as outside).

    Example:
      >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
      >>> int(mask_boundary(m).sum())   # a 3 x 3 square: all but its centre
      8
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)], constant_values=False)
    interior = (padded[..., :-2, 1:-1] & padded[..., 2:, 1:-1] & padded[..., 1:-1, :-2] & padded[..., 1:-1, 2:])
    return mask & ~interior


def _dilate(mask: np.ndarray, tolerance: int) -> np.ndarray:
    """Pixels within Chebyshev distance ``tolerance`` of a True pixel of each (H, W) map of (B, H, W)."""
    t = tolerance
    padded = np.pad(mask, [(0, 0), (t, t), (t, t)], constant_values=False)
    h, w = mask.shape[-2:]
    out = np.zeros_like(mask)
    for dy in range(2 * t + 1):
        for dx in range(2 * t + 1):
            out |= padded[:, dy:dy + h, dx:dx + w]
    return out


def dice_score(pred: np.ndarray, truth: np.ndarray, cls: int) -> float:
    """Dice of class ``cls`` between predicted and true class maps ((H, W) or (B, H, W)), pooled over the batch.

    Example:
      >>> t = np.zeros((4, 4), int); t[:2, :2] = 2
      >>> p = np.zeros((4, 4), int); p[:2, :1] = 2
      >>> round(dice_score(p, t, 2), 4)   # 2 * 2 / (2 + 4)
      0.6667
    """
    pred, truth = _class_maps(pred, truth)
    p, g = pred == cls, truth == cls
    denominator = int(p.sum() + g.sum())
    return float(2 * np.sum(p & g) / denominator) if denominator else float("nan")


def boundary_recall(pred: np.ndarray, truth: np.ndarray, cls: int, tolerance: int = 1) -> float:
    """Fraction of the true boundary pixels of class ``cls`` within ``tolerance`` pixels (Chebyshev) of a predicted
    boundary pixel of that class, pooled over the batch (see the module docstring); NaN without a true boundary.

    Args:
      pred, truth: class maps of the same shape, (H, W) or (B, H, W), integer class indices.
      cls: the class.
      tolerance: t >= 0 in pixels (0: the boundaries must coincide).

    Example:
      >>> t = np.zeros((6, 6), int); t[1:4, 1:4] = 2          # true 3 x 3 square: 8 boundary pixels
      >>> p = np.zeros((6, 6), int); p[1:4, 2:5] = 2          # predicted one pixel to the right
      >>> boundary_recall(p, t, 2, tolerance=0), boundary_recall(p, t, 2, tolerance=1)
      (0.5, 1.0)
    """
    import focalkit

    if not isinstance(tolerance, (int, np.integer)) or isinstance(tolerance, bool) or tolerance < 0:
        raise focalkit.InvalidArgumentError(f"tolerance: expected an int >= 0, got {tolerance!r}")
    pred, truth = _class_maps(pred, truth)
    true_boundary = mask_boundary(truth == cls)
    total = int(true_boundary.sum())
    if total == 0:
        return float("nan")
    near = _dilate(mask_boundary(pred == cls), int(tolerance))
    return float(np.sum(true_boundary & near) / total)
