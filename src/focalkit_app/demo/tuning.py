"""``compare --tune``: Optuna search of alpha, gamma and the class-balancing beta, measured by nested CV.

Searched loss: Cui et al.'s class-balanced sigmoid focal loss (``cb_sigmoid_focal`` in :mod:`focalkit_app.demo.losses`)

.. math::

    \\ell_i = w_{y_i}(\\beta) \\sum_c \\mathrm{FL}(x_{ic}, [c = y_i]; \\alpha, \\gamma), \\qquad
    w_c(\\beta) \\propto \\frac{1 - \\beta}{1 - \\beta^{n_c}}, \\ \\sum_c w_c = C

with alpha in [0.05, 0.95], gamma in [0, 5] and 1 - beta log-uniform in [1e-4, 1] (beta = 0: no class balancing).
The objective is the balanced accuracy on the inner validation split of each outer training fold; the outer test fold
is never seen by the search. The measured gain is that of the whole procedure (search + retrain) over cross-entropy,
paired by fold. The recommended configuration comes from one more search on the full data (its own performance is
estimated by the nested measurement, not measured separately).

References:
  Y. Cui et al. Class-Balanced Loss Based on Effective Number of Samples. CVPR 2019.
  T. Akiba et al. Optuna: A Next-generation Hyperparameter Optimization Framework. KDD 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import DataSplit
from .metrics import classification_metrics
from .datasets import tail_classes
from .training import TrainConfig, train_classifier

__all__ = ["TuneResult", "search", "nested_tuning"]


@dataclass
class TuneResult:
    best_params: list[dict]        # per outer fold
    tuned_bacc: np.ndarray         # per outer fold, outer test balanced accuracy of the retrained best config
    tuned_metrics: list[dict]


def _params(trial) -> dict:
    return {
        "alpha": trial.suggest_float("alpha", 0.05, 0.95),
        "gamma": trial.suggest_float("gamma", 0.0, 5.0),
        "beta": 1.0 - trial.suggest_float("one_minus_beta", 1e-4, 1.0, log=True),
    }


def search(split: DataSplit, config: TrainConfig, trials: int, seed: int) -> dict:
    """Optuna TPE search on ``split``'s train -> validation; returns the best {alpha, gamma, beta}."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        p = _params(trial)
        res = train_classifier("cb_sigmoid_focal", split.x_train, split.y_train, split.x_val, split.y_val,
                               split.x_val, split.num_classes, seed, config, p)
        return classification_metrics(split.y_val, res.probs, tail_classes(split.train_counts))["balanced_accuracy"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    bp = study.best_params
    return {"alpha": bp["alpha"], "gamma": bp["gamma"], "beta": 1.0 - bp["one_minus_beta"]}


def nested_tuning(splits: list[tuple[int, DataSplit]], config: TrainConfig, trials: int, progress=None) -> TuneResult:
    """Per outer fold: search on its inner split, retrain the best config on the inner training part, score on the
    outer test fold."""
    params, baccs, mets = [], [], []
    for seed, split in splits:
        p = search(split, config, trials, seed)
        res = train_classifier("cb_sigmoid_focal", split.x_train, split.y_train, split.x_val, split.y_val,
                               split.x_test, split.num_classes, seed, config, p)
        m = classification_metrics(split.y_test, res.probs, tail_classes(split.train_counts))
        params.append(p)
        baccs.append(m["balanced_accuracy"])
        mets.append(m)
        if progress is not None:
            progress.update(1)
    return TuneResult(params, np.asarray(baccs), mets)
