"""Dense, NMS-free average precision of a per-class sigmoid detection head.

For class c, every non-ignored anchor is one scored example: its score is the logit x_{a,c}, its label is 1 when the
anchor is foreground of class c. AP is the area under the step precision-recall curve,

.. math::

    \\mathrm{AP}_c = \\sum_n (R_n - R_{n-1}) P_n

over the distinct score thresholds in descending order (scikit-learn's ``average_precision_score``, written out
here so that one evaluation of ~10^5 anchors stays cheap). The reported AP is the mean over the C classes (mAP), so
the rare classes of the long tail weigh as much as the frequent one.
"""

from __future__ import annotations

import numpy as np

from .detection_task import IGNORE

__all__ = ["average_precision", "mean_average_precision"]


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP of binary ``labels`` (N,) ranked by ``scores`` (N,); NaN when there is no positive.

    Example:
      >>> average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
      0.8333333333333333
    """
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]   # last index of each distinct score
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """mAP over classes and the per-class APs.

    Args:
      logits: (B, C, A, S, S) scores; labels: (B, A, S, S) class indices, C = background, ``IGNORE`` excluded.
    Returns:
      (mean over classes of the finite APs, array (C,) of per-class APs).
    """
    num_classes = logits.shape[1]
    kept = labels != IGNORE
    per_class = np.array([average_precision(labels[kept] == c, logits[:, c][kept]) for c in range(num_classes)])
    finite = per_class[np.isfinite(per_class)]
    return (float(finite.mean()) if len(finite) else float("nan")), per_class
