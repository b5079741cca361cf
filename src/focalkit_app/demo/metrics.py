"""Evaluation metrics of the demo (scikit-learn where it has them).

- balanced accuracy: mean per-class recall (``sklearn.metrics.balanced_accuracy_score``);
- tail recall: mean recall over the tail classes (:func:`focalkit_app.demo.datasets.tail_classes`);
- macro-F1 (``f1_score(average="macro")``);
- macro AP: mean over classes of one-vs-rest average precision (``average_precision_score(average="macro")``);
- ECE: expected calibration error of the top-label confidence with 15 equal-width bins (Guo et al. 2017):

.. math::

    \\mathrm{ECE} = \\sum_b \\frac{|B_b|}{N} \\left| \\mathrm{acc}(B_b) - \\mathrm{conf}(B_b) \\right|
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "classification_metrics", "expected_calibration_error", "reliability_curve", "per_class_recall"]

#: metric key -> (label, higher is better)
METRICS = {
    "balanced_accuracy": ("balanced accuracy", True),
    "tail_recall": ("tail-class recall", True),
    "macro_f1": ("macro-F1", True),
    "macro_ap": ("macro AP", True),
    "ece": ("ECE", False),
}


def reliability_curve(probs: np.ndarray, y_true: np.ndarray, num_bins: int = 15):
    """Equal-width bins of top-label confidence -> (bin_counts, mean_confidence, accuracy), each (num_bins,).

    Empty bins have count 0 and NaN confidence / accuracy.
    """
    conf = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(np.float64)
    bins = np.minimum((conf * num_bins).astype(np.int64), num_bins - 1)
    counts = np.bincount(bins, minlength=num_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=conf, minlength=num_bins) / counts
        acc = np.bincount(bins, weights=correct, minlength=num_bins) / counts
    return counts, mean_conf, acc


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, num_bins: int = 15) -> float:
    """ECE in [0, 1] of (N, C) probabilities against (N,) labels, 15 equal-width bins."""
    counts, conf, acc = reliability_curve(probs, y_true, num_bins)
    mask = counts > 0
    return float(np.sum(counts[mask] / counts.sum() * np.abs(acc[mask] - conf[mask])))


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall of every class, shape (C,); NaN for a class absent from ``y_true``."""
    from sklearn.metrics import recall_score

    present = np.bincount(y_true, minlength=num_classes) > 0
    rec = recall_score(y_true, y_pred, labels=np.arange(num_classes), average=None, zero_division=0.0)
    return np.where(present, rec, np.nan)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, tail: np.ndarray) -> dict[str, float]:
    """All demo metrics for (N, C) probabilities (rows sum to 1) and (N,) int labels.

    Returns:
      dict with the keys of :data:`METRICS`; values in [0, 1].
    """
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score

    y_true = np.asarray(y_true)
    num_classes = probs.shape[1]
    y_pred = probs.argmax(1)
    labels = np.arange(num_classes)
    rec = per_class_recall(y_true, y_pred, num_classes)
    onehot = (y_true[:, None] == labels[None, :]).astype(np.int64)
    present = onehot.sum(0) > 0
    ap = average_precision_score(onehot[:, present], probs[:, present], average="macro")
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "tail_recall": float(np.nanmean(rec[np.asarray(tail)])),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels[present], average="macro", zero_division=0.0)),
        "macro_ap": float(ap),
        "ece": expected_calibration_error(probs, y_true),
    }
