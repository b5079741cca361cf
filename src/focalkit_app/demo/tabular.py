"""Loading and validating a user's data file for ``focalkit compare`` (CSV, Parquet via pandas, or .npz).

Every check runs before any training or writing; each failure raises :class:`focalkit.InvalidArgumentError` (a
``ValueError``) or :class:`focalkit.InvalidTypeError` (a ``TypeError``) naming the argument, what was expected and what
was received. The file is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Table", "load_table", "validate_table"]

_SUFFIXES = (".csv", ".parquet", ".pq", ".npz")


@dataclass(frozen=True)
class Table:
    """Features (N, D) float32, labels (N,) int64 in [0, C), class names (C,) and feature names (D,)."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]


def _errors():
    import focalkit

    return focalkit.InvalidArgumentError, focalkit.InvalidTypeError


def _frame_to_arrays(frame, target: str, path: Path):
    import pandas as pd

    invalid_arg, invalid_type = _errors()
    if target not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:20])) + (", ..." if len(frame.columns) > 20 else "")
        raise invalid_arg(f"--target: expected a column of {path.name} (columns: {cols}), got {target!r}")
    labels = frame[target]
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise invalid_arg(f"--data: expected at least one feature column besides {target!r}, got none")
    non_numeric = [f"{c} ({features[c].dtype})" for c in features.columns
                   if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))]
    if non_numeric:
        raise invalid_type(f"--data: expected numeric feature columns, got non-numeric columns: "
                           f"{', '.join(non_numeric)}")
    x = features.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = [str(c) for c, ok in zip(features.columns, np.isfinite(x).all(0)) if not ok]
    if bad:
        raise invalid_arg(f"--data: expected finite feature values, got NaN or infinite values in columns: "
                          f"{', '.join(bad)}")
    if labels.isna().any():
        raise invalid_arg(f"--target: expected a label in every row, got {int(labels.isna().sum())} missing labels "
                          f"in column {target!r}")
    return x, labels.to_numpy(), tuple(str(c) for c in features.columns)


def load_table(data: str | Path, target: str | None) -> Table:
    """Read ``data`` and split it into features and integer-encoded labels.

    CSV (``.csv``) and Parquet (``.parquet`` / ``.pq``) are read with pandas; ``target`` names the label column and is
    required. ``.npz`` files hold a 2-d feature array ``X`` and a label array named ``target`` (default ``y``).
    Labels may be of any type; they are encoded in sorted order of their values.
    """
    invalid_arg, invalid_type = _errors()
    path = Path(data)
    if path.suffix.lower() not in _SUFFIXES:
        raise invalid_arg(f"--data: expected a file ending in {', '.join(_SUFFIXES)}, got {str(path)!r}")
    if not path.is_file():
        raise invalid_arg(f"--data: expected an existing file, got {str(path)!r} (not found)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        key = target or "y"
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if "X" not in names:
                raise invalid_arg(f"--data: expected an array named 'X' in {path.name}, got arrays {names}")
            if key not in names:
                raise invalid_arg(f"--target: expected an array of {path.name} ({', '.join(names)}), got {key!r}")
            x_raw = npz["X"]
            y_raw = npz[key]
        if x_raw.ndim != 2:
            raise invalid_arg(f"--data: expected X of shape (N, D), got shape {x_raw.shape}")
        if y_raw.shape != (x_raw.shape[0],):
            raise invalid_arg(f"--target: expected labels of shape ({x_raw.shape[0]},), got {y_raw.shape}")
        if not np.issubdtype(x_raw.dtype, np.number) and x_raw.dtype != bool:
            raise invalid_type(f"--data: expected numeric X, got dtype {x_raw.dtype}")
        x = x_raw.astype(np.float64)
        bad = [f"X[:, {j}]" for j in np.flatnonzero(~np.isfinite(x).all(0))]
        if bad:
            raise invalid_arg(f"--data: expected finite feature values, got NaN or infinite values in columns: "
                              f"{', '.join(bad[:20])}")
        labels = y_raw
        feature_names = tuple(f"x{j}" for j in range(x.shape[1]))
    else:
        import pandas as pd

        if target is None:
            raise invalid_arg("--target: expected the name of the label column, got nothing")
        try:
            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except (ValueError, OSError, ImportError) as exc:
            raise invalid_arg(f"--data: expected a readable {suffix[1:]} file, got {str(path)!r} ({exc})") from None
        x, labels, feature_names = _frame_to_arrays(frame, target, path)
    if x.shape[0] == 0:
        raise invalid_arg(f"--data: expected at least one row, got 0 in {str(path)!r}")
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    return Table(x.astype(np.float32), y.astype(np.int64), tuple(str(c) for c in classes), feature_names)


def validate_table(table: Table, folds: int) -> None:
    """Check that the labels allow stratified ``folds``-fold cross-validation with an inner validation split.

    Raises if there is a single class, if ``folds`` < 2, or if some class has fewer than max(folds,
    ceil(2 folds / (folds - 1))) samples (one per test fold and two in every training part).
    """
    invalid_arg, _ = _errors()
    if folds < 2:
        raise invalid_arg(f"--folds: expected an integer >= 2, got {folds}")
    counts = np.bincount(table.y, minlength=len(table.class_names))
    if len(table.class_names) < 2:
        raise invalid_arg(f"--target: expected at least 2 classes, got 1 (every label is "
                          f"{table.class_names[0]!r})")
    # each class needs one sample per test fold and two in every training part (stratified inner validation)
    need = max(folds, int(np.ceil(2 * folds / (folds - 1))))
    small = [f"{name!r} ({int(n)})" for name, n in zip(table.class_names, counts) if n < need]
    if small:
        raise invalid_arg(f"--folds: expected every class to have at least {need} samples for folds={folds}, got "
                          f"classes with fewer: {', '.join(small)}")
