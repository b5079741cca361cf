"""Runs every loss on every split (seed or fold) and collects metrics, per-class recall, calibration and curves."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .datasets import DataSplit, tail_classes
from .metrics import classification_metrics, per_class_recall, reliability_curve
from .training import TrainConfig, train_classifier

__all__ = ["LossRuns", "run_losses"]


@dataclass
class LossRuns:
    """All runs of one loss in one setting; lists are indexed by seed / fold."""

    name: str
    metrics: list[dict[str, float]] = field(default_factory=list)
    recall: list[np.ndarray] = field(default_factory=list)          # (C,) per run
    reliability: list[tuple] = field(default_factory=list)          # (counts, conf, acc) per run
    train_loss: list[np.ndarray] = field(default_factory=list)
    val_bacc: list[np.ndarray] = field(default_factory=list)
    diverged: list[bool] = field(default_factory=list)

    def values(self, metric: str) -> np.ndarray:
        return np.array([m[metric] for m in self.metrics])


def run_losses(splits: list[tuple[int, DataSplit]], losses: tuple[str, ...], config: TrainConfig,
               progress=None, loss_params: dict[str, dict] | None = None) -> dict[str, LossRuns]:
    """Train every loss on every (seed, split) pair. ``progress`` (optional) gets ``update(1)`` after each run.

    Tail classes are the ceil(C/3) rarest classes of each split's training set.
    """
    out = {name: LossRuns(name) for name in losses}
    for seed, split in splits:
        tail = tail_classes(split.train_counts)
        for name in losses:
            res = train_classifier(name, split.x_train, split.y_train, split.x_val, split.y_val, split.x_test,
                                   split.num_classes, seed, config, (loss_params or {}).get(name))
            runs = out[name]
            runs.metrics.append(classification_metrics(split.y_test, res.probs, tail))
            runs.recall.append(per_class_recall(split.y_test, res.probs.argmax(1), split.num_classes))
            runs.reliability.append(reliability_curve(res.probs, split.y_test))
            runs.train_loss.append(res.train_loss)
            runs.val_bacc.append(res.val_bacc)
            runs.diverged.append(res.diverged)
            if progress is not None:
                progress.update(1)
    return out
