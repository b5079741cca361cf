"""Every error path of ``focalkit compare``: typed, naming argument / expected / received, nothing written."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

import focalkit
from focalkit_app.demo import cli
from focalkit_app.demo.tabular import load_table, validate_table


def _args(argv):
    parser = argparse.ArgumentParser(prog="focalkit")
    cli.add_compare_arguments(parser)
    return parser.parse_args([*argv, "--no-progress"])


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": np.arange(n) % 2})


def _run_expect_error(tmp_path, capsys, argv, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.run_compare(_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("focalkit compare: error: ")
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created
    return err


def test_missing_file(tmp_path, capsys):
    _run_expect_error(tmp_path, capsys, ["--data", str(tmp_path / "nope.csv"), "--target", "label",
                                         "--out", str(tmp_path / "r")], "--data: expected an existing file")


def test_unsupported_suffix(tmp_path, capsys):
    f = tmp_path / "d.xlsx"
    f.write_text("x")
    _run_expect_error(tmp_path, capsys, ["--data", str(f), "--target", "label"], "--data: expected a file ending in")


def test_missing_column(tmp_path, capsys):
    f = tmp_path / "d.csv"
    _frame().to_csv(f, index=False)
    err = _run_expect_error(tmp_path, capsys, ["--data", str(f), "--target", "klass", "--out", str(tmp_path / "r")],
                            "--target: expected a column of d.csv (columns: a, b, label), got 'klass'")
    assert "Traceback" not in err


def test_missing_target_argument_for_csv(tmp_path, capsys):
    f = tmp_path / "d.csv"
    _frame().to_csv(f, index=False)
    _run_expect_error(tmp_path, capsys, ["--data", str(f)], "--target: expected the name of the label column")


def test_single_class(tmp_path, capsys):
    f = tmp_path / "d.csv"
    d = _frame()
    d["label"] = "cat"
    d.to_csv(f, index=False)
    _run_expect_error(tmp_path, capsys, ["--data", str(f), "--target", "label"],
                      "--target: expected at least 2 classes, got 1 (every label is 'cat')")


def test_class_smaller_than_folds(tmp_path, capsys):
    f = tmp_path / "d.csv"
    d = _frame()
    d.loc[:2, "label"] = 7  # class 7 has 3 rows
    d.to_csv(f, index=False)
    _run_expect_error(tmp_path, capsys, ["--data", str(f), "--target", "label", "--folds", "5"],
                      "--folds: expected every class to have at least 5 samples for folds=5, got classes with "
                      "fewer: '7' (3)")


def test_nan_features_name_columns(tmp_path, capsys):
    f = tmp_path / "d.csv"
    d = _frame()
    d.loc[3, "b"] = np.nan
    d.to_csv(f, index=False)
    _run_expect_error(tmp_path, capsys, ["--data", str(f), "--target", "label"],
                      "--data: expected finite feature values, got NaN or infinite values in columns: b")


def test_non_numeric_features_name_columns(tmp_path, capsys):
    f = tmp_path / "d.parquet"
    d = _frame()
    d["colour"] = "red"
    d.to_parquet(f)
    _run_expect_error(tmp_path, capsys, ["--data", str(f), "--target", "label"],
                      "--data: expected numeric feature columns, got non-numeric columns: colour")


def test_existing_out_folder_refused_without_force(tmp_path, capsys):
    f = tmp_path / "d.csv"
    _frame().to_csv(f, index=False)
    out = tmp_path / "r"
    out.mkdir()
    _run_expect_error(tmp_path, capsys, ["--data", str(f), "--target", "label", "--out", str(out)],
                      "--out: expected a folder that does not exist yet (or pass --force")
    assert list(out.iterdir()) == []


def test_npz_errors(tmp_path, capsys):
    f = tmp_path / "d.npz"
    np.savez(f, features=np.zeros((4, 2)), y=np.zeros(4))
    _run_expect_error(tmp_path, capsys, ["--data", str(f)], "--data: expected an array named 'X' in d.npz")
    g = tmp_path / "e.npz"
    np.savez(g, X=np.zeros((4, 2)), y=np.zeros(4))
    _run_expect_error(tmp_path, capsys, ["--data", str(g), "--target", "labels"],
                      "--target: expected an array of e.npz (X, y), got 'labels'")
    h = tmp_path / "h.npz"
    x = np.zeros((4, 3))
    x[1, 2] = np.nan
    np.savez(h, X=x, y=np.array([0, 1, 0, 1]))
    _run_expect_error(tmp_path, capsys, ["--data", str(h)], "NaN or infinite values in columns: X[:, 2]")


def test_exception_types_and_input_untouched(tmp_path):
    f = tmp_path / "d.csv"
    d = _frame()
    d["name"] = "x"
    d.to_csv(f, index=False)
    before = f.read_bytes()
    with pytest.raises(focalkit.InvalidTypeError) as info:
        load_table(f, "label")
    assert isinstance(info.value, TypeError) and isinstance(info.value, focalkit.FocalKitError)
    assert f.read_bytes() == before
    g = tmp_path / "ok.csv"
    _frame().to_csv(g, index=False)
    table = load_table(g, "label")
    with pytest.raises(focalkit.InvalidArgumentError) as info2:
        validate_table(table, folds=1)
    assert isinstance(info2.value, ValueError)
    # folds=2 needs 4 samples per class (2 in every training part for the inner validation split)
    small = type(table)(table.x[:6], np.array([0, 0, 0, 1, 1, 1]), ("p", "q"), table.feature_names)
    with pytest.raises(focalkit.InvalidArgumentError, match="at least 4 samples for folds=2"):
        validate_table(small, folds=2)
