"""Metrics wiring and the comparison rule."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score

import focalkit
from focalkit_app.demo.metrics import classification_metrics, expected_calibration_error, reliability_curve
from focalkit_app.demo.stats import mean_std, paired_comparison


def _probs(seed=0, n=200, c=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    y = rng.integers(0, c, n)
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


def test_metrics_match_sklearn():
    p, y = _probs()
    m = classification_metrics(y, p, tail=np.array([2, 3]))
    pred = p.argmax(1)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    onehot = np.eye(4)[y]
    assert m["macro_ap"] == pytest.approx(average_precision_score(onehot, p, average="macro"))
    rec = [np.mean(pred[y == c] == c) for c in (2, 3)]
    assert m["tail_recall"] == pytest.approx(np.mean(rec))


def test_ece_known_value_and_perfect_calibration():
    # every prediction has confidence 0.8; half are right -> ECE = |0.5 - 0.8| = 0.3
    p = np.tile([0.8, 0.2], (10, 1))
    y = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(p, y) == pytest.approx(0.3)
    # confidence 1 and always right -> 0
    assert expected_calibration_error(np.tile([1.0, 0.0], (4, 1)), np.zeros(4, dtype=int)) == 0.0
    counts, conf, acc = reliability_curve(p, y)
    assert counts.sum() == 10 and counts[12] == 10  # 0.8 * 15 = 12
    assert np.isnan(conf[0]) and acc[12] == pytest.approx(0.5)


def test_perfect_predictions():
    y = np.array([0, 1, 2, 2])
    p = np.eye(3)[y]
    m = classification_metrics(y, p, tail=np.array([2]))
    assert m == {"balanced_accuracy": 1.0, "tail_recall": 1.0, "macro_f1": 1.0, "macro_ap": 1.0, "ece": 0.0}


def test_paired_comparison_verdicts():
    base = np.array([0.70, 0.72, 0.71, 0.69, 0.70])
    assert paired_comparison(base + 0.05, base).verdict == "better"
    assert paired_comparison(base - 0.05, base).verdict == "worse"
    noisy = base + np.array([0.03, -0.03, 0.02, -0.02, 0.001])
    assert paired_comparison(noisy, base).verdict == "within noise"
    # lower-is-better metrics flip the direction
    assert paired_comparison(base - 0.05, base, higher_is_better=False).verdict == "better"
    c = paired_comparison(base + 0.05, base)
    assert c.mean_diff == pytest.approx(0.05) and c.ci_half_width == pytest.approx(0.0, abs=1e-12)
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2)))
    with pytest.raises(focalkit.InvalidArgumentError, match="candidate, baseline"):
        paired_comparison([1.0, 2.0], [1.0])
