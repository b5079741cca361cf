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


def _run_one(task):
    """One (split, loss) training run; top level so that a spawned worker process can import it."""
    seed, split, name, config, params, threads = task
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    res = train_classifier(name, split.x_train, split.y_train, split.x_val, split.y_val, split.x_test,
                           split.num_classes, seed, config, params)
    tail = tail_classes(split.train_counts)
    return (classification_metrics(split.y_test, res.probs, tail),
            per_class_recall(split.y_test, res.probs.argmax(1), split.num_classes),
            reliability_curve(res.probs, split.y_test), res.train_loss, res.val_bacc, res.diverged)


def run_losses(splits: list[tuple[int, DataSplit]], losses: tuple[str, ...], config: TrainConfig,
               progress=None, loss_params: dict[str, dict] | None = None, workers: int = 1) -> dict[str, LossRuns]:
    """Train every loss on every (seed, split) pair. ``progress`` (optional) gets ``update(1)`` after each run.

    ``workers`` > 1 runs them in that many spawned processes of one torch thread each (results are identical to a
    serial run: every run is seeded on its own); if the processes cannot start (e.g. a script without an
    ``if __name__ == "__main__":`` guard) the runs fall back to serial. Tail classes are the ceil(C/3) rarest classes
    of each split's training set.
    """
    tasks = [(seed, split, name, config, (loss_params or {}).get(name), 1 if workers > 1 else None)
             for seed, split in splits for name in losses]
    results: dict[int, tuple] = {}
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_run_one, t): k for k, t in enumerate(tasks)}
                for f in as_completed(futures):
                    results[futures[f]] = f.result()
                    if progress is not None:
                        progress.update(1)
        except BrokenProcessPool:
            results = {}
    for k, t in enumerate(tasks):
        if k not in results:
            results[k] = _run_one(t)
            if progress is not None:
                progress.update(1)
    out = {name: LossRuns(name) for name in losses}
    for k, (seed, split, name, *_rest) in enumerate(tasks):
        metrics, recall, reliability, train_loss, val_bacc, diverged = results[k]
        runs = out[name]
        runs.metrics.append(metrics)
        runs.recall.append(recall)
        runs.reliability.append(reliability)
        runs.train_loss.append(train_loss)
        runs.val_bacc.append(val_bacc)
        runs.diverged.append(diverged)
    return out
