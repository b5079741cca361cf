"""Long-tailed versions of scikit-learn's bundled handwritten digits (no download).

Long-tail profile (Cui et al. 2019):

.. math::

    n_c = \\left\\lfloor n_{\\max} \\left(\\tfrac{1}{\\mathrm{IF}}\\right)^{c / (C - 1)} + \\tfrac12 \\right\\rfloor,
    \\quad c = 0, \\dots, C - 1,

rounded to the nearest integer and at least 1, so class 0 keeps ``n_max`` samples and class C-1 about n_max / IF.

References:
  Y. Cui, M. Jia, T.-Y. Lin, Y. Song, S. Belongie. Class-Balanced Loss Based on Effective Number of Samples.
  CVPR 2019 (arXiv:1901.05555).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DataSplit", "long_tail_counts", "long_tail_subsample", "digits_long_tail", "tail_classes"]


def _err():
    import focalkit

    return focalkit.InvalidArgumentError


def long_tail_counts(n_max: int, num_classes: int, imbalance: float) -> np.ndarray:
    """Per-class counts n_c = round(n_max (1/IF)^(c/(C-1))), at least 1; shape (C,), int64.

    Example:
      >>> long_tail_counts(100, 10, 100).tolist()
      [100, 60, 36, 22, 13, 8, 5, 3, 2, 1]
    """
    err = _err()
    if not isinstance(n_max, (int, np.integer)) or n_max < 1:
        raise err(f"n_max: expected an int >= 1, got {n_max!r}")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise err(f"num_classes: expected an int >= 2, got {num_classes!r}")
    if not imbalance >= 1.0:
        raise err(f"imbalance: expected a float >= 1, got {imbalance!r}")
    c = np.arange(num_classes, dtype=np.float64)
    counts = np.floor(n_max * (1.0 / imbalance) ** (c / (num_classes - 1)) + 0.5).astype(np.int64)
    return np.maximum(counts, 1)


def long_tail_subsample(labels: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a random subset of ``labels`` holding exactly ``counts[c]`` samples of class c (sorted)."""
    labels = np.asarray(labels)
    picked = []
    for c, n in enumerate(np.asarray(counts)):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n:
            raise _err()(f"counts: expected at most {len(idx)} samples available for class {c}, got {int(n)}")
        picked.append(rng.choice(idx, size=int(n), replace=False))
    return np.sort(np.concatenate(picked))


def tail_classes(counts: np.ndarray) -> np.ndarray:
    """The ceil(C/3) classes with the fewest training samples (ties broken by class index), sorted."""
    counts = np.asarray(counts)
    k = int(np.ceil(len(counts) / 3))
    order = np.lexsort((-np.arange(len(counts)), counts))
    return np.sort(order[:k])


@dataclass(frozen=True)
class DataSplit:
    """Arrays of one train / validation / test split. Features float32 (N, D), labels int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.y_train, minlength=self.num_classes)


def digits_long_tail(imbalance: float, seed: int, *, n_max: int = 100, test_per_class: int = 50,
                     val_per_class: int = 15) -> DataSplit:
    """Long-tailed digits: balanced test and validation sets, long-tailed training set.

    Per class, ``test_per_class`` and ``val_per_class`` samples are drawn first (balanced held-out sets); the training
    set is then drawn from the remaining samples with the profile :func:`long_tail_counts` (class 0 = head, 9 = tail).
    Features are pixel intensities / 16 (in [0, 1]). The seed fixes every draw, so all losses of one seed see the
    same data.

    Returns:
      :class:`DataSplit` with 10 classes; train (sum of counts, 64), val (10 * val_per_class, 64),
      test (10 * test_per_class, 64).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    num_classes = 10
    rng = np.random.default_rng(seed)
    test_idx, val_idx, pool_idx = [], [], []
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        test_idx.append(idx[:test_per_class])
        val_idx.append(idx[test_per_class:test_per_class + val_per_class])
        pool_idx.append(idx[test_per_class + val_per_class:])
    pool = np.concatenate(pool_idx)
    counts = long_tail_counts(n_max, num_classes, imbalance)
    train = pool[long_tail_subsample(y[pool], counts, rng)]
    test = np.concatenate(test_idx)
    val = np.concatenate(val_idx)
    return DataSplit(x[train], y[train], x[val], y[val], x[test], y[test], num_classes,
                     tuple(str(c) for c in range(num_classes)))
