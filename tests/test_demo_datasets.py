"""Data preparation of the demo: the long-tail profile and the digits split."""

from __future__ import annotations

import numpy as np
import pytest

import focalkit
from focalkit_app.demo.datasets import digits_long_tail, long_tail_counts, long_tail_subsample, tail_classes


@pytest.mark.parametrize("imbalance", [10, 50, 100])
def test_long_tail_profile_follows_formula(imbalance):
    counts = long_tail_counts(100, 10, imbalance)
    want = [max(1, int(np.floor(100 * (1 / imbalance) ** (c / 9) + 0.5))) for c in range(10)]
    assert counts.tolist() == want
    assert counts[0] == 100
    assert counts[-1] == round(100 / imbalance)
    assert np.all(np.diff(counts) <= 0)


def test_long_tail_profile_exact_values():
    assert long_tail_counts(100, 10, 100).tolist() == [100, 60, 36, 22, 13, 8, 5, 3, 2, 1]
    assert long_tail_counts(100, 10, 10).tolist() == [100, 77, 60, 46, 36, 28, 22, 17, 13, 10]
    assert long_tail_counts(5, 3, 1).tolist() == [5, 5, 5]


def test_long_tail_profile_errors():
    with pytest.raises(focalkit.InvalidArgumentError, match="imbalance"):
        long_tail_counts(100, 10, 0.5)
    with pytest.raises(focalkit.InvalidArgumentError, match="num_classes"):
        long_tail_counts(100, 1, 10)
    with pytest.raises(ValueError, match="n_max"):
        long_tail_counts(0, 10, 10)


def test_subsample_counts_and_error():
    labels = np.repeat(np.arange(3), 10)
    idx = long_tail_subsample(labels, np.array([10, 4, 1]), np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [10, 4, 1]
    with pytest.raises(focalkit.InvalidArgumentError, match="class 2"):
        long_tail_subsample(labels, np.array([1, 1, 11]), np.random.default_rng(0))


@pytest.mark.parametrize("imbalance", [10, 100])
def test_digits_split_counts_balanced_held_out_and_determinism(imbalance):
    s = digits_long_tail(imbalance, seed=3)
    assert s.train_counts.tolist() == long_tail_counts(100, 10, imbalance).tolist()
    assert np.bincount(s.y_test).tolist() == [50] * 10
    assert np.bincount(s.y_val).tolist() == [15] * 10
    assert s.x_train.shape[1] == 64 and s.x_train.dtype == np.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    again = digits_long_tail(imbalance, seed=3)
    assert np.array_equal(again.x_train, s.x_train) and np.array_equal(again.x_test, s.x_test)
    other = digits_long_tail(imbalance, seed=4)
    assert not np.array_equal(other.x_test, s.x_test)


def test_digits_split_sets_are_disjoint():
    from sklearn.datasets import load_digits

    data = load_digits()
    s = digits_long_tail(10, seed=0)
    # identify rows by their position in the original data (image + label; duplicates would only merge keys)
    keys = {tuple(r.astype(int).tolist()) + (int(y),): i for i, (r, y) in enumerate(zip(data.data, data.target))}
    def ids(x, y):
        return {keys[tuple(np.round(r * 16).astype(int).tolist()) + (int(t),)] for r, t in zip(x, y)}
    a, b, c = ids(s.x_train, s.y_train), ids(s.x_val, s.y_val), ids(s.x_test, s.y_test)
    assert not (a & b) and not (a & c) and not (b & c)


def test_tail_classes_are_the_rarest_third():
    assert tail_classes(np.array([100, 60, 36, 22, 13, 8, 5, 3, 2, 1])).tolist() == [6, 7, 8, 9]
    assert tail_classes(np.array([5, 50, 7])).tolist() == [0]
