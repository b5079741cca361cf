"""Loading and validating a user's data file for ``focalkit compare`` (CSV, Parquet via pandas, or .npz).

Every check runs before any training or writing; each failure raises :class:`focalkit.InvalidArgumentError` (a
``ValueError``) or :class:`focalkit.InvalidTypeError` (a ``TypeError``) naming the argument, what was expected and what
was received, on one line. The file is only read. Checked: the path (a readable, non-empty regular file with a known
suffix), the format (a parse error of pandas, a .npz that is not a zip archive, object arrays, which are never
unpickled), the shape (rows, feature columns), the feature types (real numbers or booleans), the feature values
(finite in float64 and in float32, the dtype used for training, naming the columns) and the labels (present in every
row, comparable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Table", "load_table", "validate_table"]

_SUFFIXES = (".csv", ".parquet", ".pq", ".npz")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive with members / an empty one
_MAX_LISTED = 20  # column names listed in one message at most


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


def _listed(names) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:_MAX_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _check_features(x: np.ndarray, names) -> np.ndarray:
    """``x`` (float64) as float32, the dtype used for training; raises naming the columns that are not finite in
    float64 or overflow float32."""
    invalid_arg, _ = _errors()
    bad = [n for n, ok in zip(names, np.isfinite(x).all(0)) if not ok]
    if bad:
        raise invalid_arg(f"--data: expected finite feature values, got NaN or infinite values in columns: "
                          f"{_listed(bad)}")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    bad = [n for n, ok in zip(names, np.isfinite(x32).all(0)) if not ok]
    if bad:
        limit = float(np.finfo(np.float32).max)
        raise invalid_arg(f"--data: expected feature values within the float32 range used for training (|value| <= "
                          f"{limit:.4g}), got larger values in columns: {_listed(bad)}")
    return x32


def _check_path(path: Path) -> None:
    """A readable, non-empty regular file (its suffix already checked)."""
    invalid_arg, _ = _errors()
    try:
        if path.is_dir():
            raise invalid_arg(f"--data: expected a file, got a folder {str(path)!r}")
        if not path.exists():
            raise invalid_arg(f"--data: expected an existing file, got {str(path)!r} (not found)")
        if not path.is_file():
            raise invalid_arg(f"--data: expected a regular file, got {str(path)!r} (not a regular file)")
        if path.stat().st_size == 0:
            raise invalid_arg(f"--data: expected a non-empty file, got an empty file {str(path)!r}")
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise invalid_arg(f"--data: expected a readable file, got {str(path)!r} "
                          f"({exc.strerror or _one_line(exc)})") from None


def _npz_member(npz, name: str, path: Path) -> np.ndarray:
    invalid_arg, _ = _errors()
    try:
        value = npz[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise invalid_arg(f"--data: expected numeric or string arrays in {path.name}, got an object array "
                              f"{name!r} (object arrays are never loaded: unpickling can run code)") from None
        raise invalid_arg(f"--data: expected a readable .npz file, got {str(path)!r} (array {name!r}: "
                          f"{_one_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - zip / zlib / npy format errors of a damaged file
        raise invalid_arg(f"--data: expected a readable .npz file, got {str(path)!r} (array {name!r}: "
                          f"{type(exc).__name__}: {_one_line(exc)})") from None
    if not isinstance(value, np.ndarray):
        raise invalid_arg(f"--data: expected {name!r} in {path.name} to be a .npy array, got a member that is not one")
    return value


def _load_npz(path: Path, key: str):
    """Features (N, D) float64 and labels (N,) of a .npz file."""
    invalid_arg, invalid_type = _errors()
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic not in _ZIP_MAGIC:
        raise invalid_arg(f"--data: expected a .npz file (a zip archive of .npy arrays, as numpy.savez writes), got "
                          f"{str(path)!r} (not a zip archive)")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged zip archive
        raise invalid_arg(f"--data: expected a readable .npz file, got {str(path)!r} ({type(exc).__name__}: "
                          f"{_one_line(exc)})") from None
    with npz:
        names = list(npz.files)
        if "X" not in names:
            raise invalid_arg(f"--data: expected an array named 'X' in {path.name}, got arrays {names}")
        if key not in names:
            raise invalid_arg(f"--target: expected an array of {path.name} ({', '.join(names)}), got {key!r}")
        x_raw = _npz_member(npz, "X", path)
        y_raw = _npz_member(npz, key, path)
    if x_raw.dtype != bool and not (np.issubdtype(x_raw.dtype, np.number)
                                    and not np.issubdtype(x_raw.dtype, np.complexfloating)):
        raise invalid_type(f"--data: expected real numeric X, got dtype {x_raw.dtype}")
    if x_raw.ndim != 2:
        raise invalid_arg(f"--data: expected X of shape (N, D), got shape {x_raw.shape}")
    if x_raw.shape[1] == 0:
        raise invalid_arg(f"--data: expected at least one feature column in X, got shape {x_raw.shape}")
    if y_raw.shape != (x_raw.shape[0],):
        raise invalid_arg(f"--target: expected labels of shape ({x_raw.shape[0]},), got {y_raw.shape}")
    if y_raw.dtype.kind not in "biufUS":
        raise invalid_type(f"--target: expected labels that are integers, reals, booleans or strings, got dtype "
                           f"{y_raw.dtype}")
    if y_raw.dtype.kind == "f" and np.isnan(y_raw).any():
        raise invalid_arg(f"--target: expected a label in every row, got {int(np.isnan(y_raw).sum())} NaN labels "
                          f"in array {key!r}")
    return x_raw.astype(np.float64), y_raw


def _frame_to_arrays(frame, target: str, path: Path):
    import pandas as pd

    invalid_arg, invalid_type = _errors()
    if target not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:20])) + (", ..." if len(frame.columns) > 20 else "")
        raise invalid_arg(f"--target: expected a column of {path.name} (columns: {cols}), got {target!r}")
    if len(frame) == 0:
        raise invalid_arg(f"--data: expected at least one row, got 0 in {str(path)!r}")
    labels = frame[target]
    if isinstance(labels, pd.DataFrame):
        raise invalid_arg(f"--target: expected one column named {target!r}, got {labels.shape[1]} columns of that name")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise invalid_arg(f"--data: expected at least one feature column besides {target!r}, got none")
    non_numeric = [f"{c} ({features.iloc[:, j].dtype})" for j, c in enumerate(features.columns)
                   if not ((pd.api.types.is_numeric_dtype(features.iloc[:, j])
                            and not pd.api.types.is_complex_dtype(features.iloc[:, j]))
                           or pd.api.types.is_bool_dtype(features.iloc[:, j]))]
    if non_numeric:
        raise invalid_type(f"--data: expected numeric feature columns, got non-numeric columns: "
                           f"{_listed(non_numeric)}")
    x = features.to_numpy(dtype=np.float64, na_value=np.nan)
    _check_features(x, [str(c) for c in features.columns])
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
    _check_path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        key = target or "y"
        x, labels = _load_npz(path, key)
        feature_names = tuple(f"X[:, {j}]" for j in range(x.shape[1]))
        _check_features(x, feature_names)
        feature_names = tuple(f"x{j}" for j in range(x.shape[1]))
    else:
        import pandas as pd

        if target is None:
            raise invalid_arg("--target: expected the name of the label column, got nothing")
        try:
            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except (ValueError, TypeError, NotImplementedError, OSError, ImportError) as exc:  # parse errors
            raise invalid_arg(f"--data: expected a readable {suffix[1:]} file, got {str(path)!r} "
                              f"({_one_line(exc)})") from None
        x, labels, feature_names = _frame_to_arrays(frame, target, path)
    if x.shape[0] == 0:
        raise invalid_arg(f"--data: expected at least one row, got 0 in {str(path)!r}")
    values = np.asarray(labels)
    if values.dtype == object:  # e.g. a Parquet column of lists or structs
        import datetime
        import numbers

        odd = next((v for v in values if not isinstance(v, (str, bytes, numbers.Number, np.generic, datetime.date))),
                   None)
        if odd is not None:
            raise invalid_type(f"--target: expected labels that are numbers or strings, got a value of type "
                               f"{type(odd).__name__}")
    try:
        classes, y = np.unique(values, return_inverse=True)
    except (TypeError, ValueError) as exc:  # e.g. mixed types
        raise invalid_type(f"--target: expected labels of one comparable type (numbers or strings), got values that "
                           f"cannot be sorted ({_one_line(exc)})") from None
    return Table(x.astype(np.float32), y.reshape(-1).astype(np.int64), tuple(str(c) for c in classes),
                 feature_names)


def validate_table(table: Table, folds: int) -> None:
    """Check that the labels allow stratified ``folds``-fold cross-validation with an inner validation split.

    Raises if there is a single class, if ``folds`` < 2, or if some class has fewer than max(folds,
    ceil(2 folds / (folds - 1))) samples (one per test fold and two in every training part).
    """
    invalid_arg, _ = _errors()
    if folds < 2:
        raise invalid_arg(f"--folds: expected an integer >= 2, got {folds}")
    x = np.asarray(table.x)
    if x.ndim != 2 or x.shape[1] == 0 or x.shape[0] != len(table.y):
        raise invalid_arg(f"--data: expected features of shape ({len(table.y)}, D) with D >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        bad = [n for n, ok in zip(table.feature_names, np.isfinite(x).all(0)) if not ok]
        raise invalid_arg(f"--data: expected finite feature values in float32 (the dtype used for training), got "
                          f"NaN or infinite values in columns: {_listed(bad)}")
    counts = np.bincount(table.y, minlength=len(table.class_names))
    if len(table.class_names) == 0:
        raise invalid_arg("--target: expected at least 2 classes, got 0 (no rows)")
    if len(table.class_names) < 2:
        raise invalid_arg(f"--target: expected at least 2 classes, got 1 (every label is "
                          f"{table.class_names[0]!r})")
    # each class needs one sample per test fold and two in every training part (stratified inner validation)
    need = max(folds, int(np.ceil(2 * folds / (folds - 1))))
    small = [f"{name!r} ({int(n)})" for name, n in zip(table.class_names, counts) if n < need]
    if small:
        raise invalid_arg(f"--folds: expected every class to have at least {need} samples for folds={folds}, got "
                          f"classes with fewer: {_listed(small)}")
