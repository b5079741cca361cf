"""Multi-label digit mosaics with a long tail of label frequencies, built from scikit-learn's bundled digits.

Each sample is a 2 x 2 mosaic (16 x 16 pixels, 256 features in [0, 1]) of 8 x 8 digit tiles. Every tile holds a
digit with probability ``fill`` and is blank otherwise; the labels are the digits present (10 labels, multi-hot).
In the training set the digit of a filled tile is drawn with the long-tail profile of
:func:`focalkit_app.demo.datasets.long_tail_counts`,

.. math::

    P(\\text{digit} = c) \\propto (1 / \\mathrm{IF})^{c / 9},\\qquad
    P(\\text{label } c \\text{ present}) = 1 - (1 - \\mathrm{fill}\\, P(c))^4,

so digit 0 is the most frequent label and digit 9 the rarest (at IF = 100 and fill = 0.75, label 0 is present in
about 76 % of the training mosaics and label 9 in about 1.2 %). The test set draws the digits uniformly (every label
in about 27 % of the mosaics), so that every label's average precision rests on enough positives. The digit images
are split per class into two disjoint halves, one for the training mosaics and one for the test mosaics, so no test
tile was seen in training. A seed fixes every draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import tail_classes

__all__ = ["MultiLabelSplit", "digit_mosaics", "label_probabilities"]

TILE = 8
GRID = 2


@dataclass(frozen=True)
class MultiLabelSplit:
    """Features float32 (N, 256) and multi-hot labels float32 (N, 10) of the training and test mosaics."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_labels(self) -> int:
        return self.y_train.shape[1]

    @property
    def train_counts(self) -> np.ndarray:
        """Number of training mosaics holding each label, shape (10,), int64."""
        return self.y_train.sum(0).astype(np.int64)

    @property
    def rare_labels(self) -> np.ndarray:
        """The ceil(10 / 3) = 4 labels with the fewest training positives (sorted label indices)."""
        return tail_classes(self.train_counts)


def label_probabilities(imbalance: float, num_labels: int = 10) -> np.ndarray:
    """P(digit = c) of a filled training tile, proportional to (1 / IF)^(c / (C - 1)); shape (C,), sums to 1.

    Example:
      >>> label_probabilities(100.0).round(3)[[0, 9]].tolist()
      [0.403, 0.004]
    """
    import focalkit

    if not isinstance(imbalance, (int, float, np.floating)) or not 1.0 <= imbalance < float("inf"):
        raise focalkit.InvalidArgumentError(f"imbalance: expected a finite number >= 1, got {imbalance!r}")
    # the profile of the single-label demo's counts (long_tail_counts), before rounding
    weights = (1.0 / float(imbalance)) ** (np.arange(num_labels) / (num_labels - 1))
    return weights / weights.sum()


def _mosaics(pools: list[np.ndarray], images: np.ndarray, probs: np.ndarray, n: int, fill: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((n, GRID * TILE, GRID * TILE), dtype=np.float32)
    y = np.zeros((n, len(pools)), dtype=np.float32)
    filled = rng.random((n, GRID * GRID)) < fill
    digits = rng.choice(len(pools), size=(n, GRID * GRID), p=probs)
    for i in range(n):
        for k in range(GRID * GRID):
            if not filled[i, k]:
                continue
            c = digits[i, k]
            r, col = divmod(k, GRID)
            x[i, r * TILE:(r + 1) * TILE, col * TILE:(col + 1) * TILE] = images[rng.choice(pools[c])]
            y[i, c] = 1.0
    return x.reshape(n, -1), y


def digit_mosaics(imbalance: float, seed: int, *, n_train: int = 1200, n_test: int = 600,
                  fill: float = 0.75) -> MultiLabelSplit:
    """Long-tailed training mosaics and balanced test mosaics (see the module docstring).

    Args:
      imbalance: IF >= 1, ratio of the most to the least frequent digit among filled training tiles.
      seed: fixes the split of the digit images and every draw.
      n_train, n_test: numbers of mosaics.
      fill: probability that a tile holds a digit, in (0, 1].

    Returns:
      :class:`MultiLabelSplit`: x (N, 256) float32 in [0, 1], y (N, 10) float32 multi-hot.
    """
    import focalkit
    from sklearn.datasets import load_digits

    if not 0.0 < fill <= 1.0:
        raise focalkit.InvalidArgumentError(f"fill: expected a probability in (0, 1], got {fill!r}")
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise focalkit.InvalidArgumentError(f"{name}: expected an int >= 1, got {n!r}")
    probs = label_probabilities(imbalance)
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    train_pools, test_pools = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(data.target == c))
        half = len(idx) // 2
        train_pools.append(idx[:half])
        test_pools.append(idx[half:])
    x_train, y_train = _mosaics(train_pools, images, probs, n_train, fill, rng)
    x_test, y_test = _mosaics(test_pools, images, np.full(10, 0.1), n_test, fill, rng)
    return MultiLabelSplit(x_train, y_train, x_test, y_test)
