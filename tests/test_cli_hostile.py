"""Hostile input to every ``focalkit`` sub-command: one line on stderr, ``NAME: expected ..., got ...``, exit status 2,
no traceback, nothing written, and no work started.

The commands run in-process through ``focalkit_app.cli.main.main(argv)``. The ``no_work`` fixture replaces the long
computations (training, benchmark timing, plotting) with a function that fails the test, so every case here also
checks that the input and the output location are rejected before any long computation.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import focalkit
from focalkit_app.bench import _runner
from focalkit_app.cli import checks, curves
from focalkit_app.cli.main import main
from focalkit_app.demo import classification, compare, detection
from focalkit_app.demo.compare import CompareConfig, make_folds, run_compare_table
from focalkit_app.demo.tabular import Table, load_table, validate_table


def _work_started(*args, **kwargs):
    raise AssertionError("a long computation started on bad input")


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    monkeypatch.setattr(compare, "run_losses", _work_started)
    monkeypatch.setattr(classification, "_run", _work_started)
    monkeypatch.setattr(detection, "_run", _work_started)
    monkeypatch.setattr(curves, "loss_table", _work_started)
    monkeypatch.setattr(_runner, "run_op", _work_started)


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _snapshot(root: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _fails(argv, capsys, expected: str, root: pathlib.Path | None = None) -> str:
    """Run ``focalkit argv``; assert exit 2, one line naming ``expected``, no traceback, nothing written in root."""
    before = _snapshot(root) if root is not None else None
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        status = exc.code
    captured = capsys.readouterr()
    err = captured.err
    assert status == 2, (status, err)
    assert "Traceback" not in err and "Traceback" not in captured.out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    command = argv[0] if argv and argv[0] in ("curves", "demo", "compare", "bench") else None
    assert lines[0].startswith(f"focalkit {command}: error: " if command else "focalkit: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert ": expected " in lines[0] and ", got " in lines[0], lines[0]
    if root is not None:
        assert _snapshot(root) == before
    return lines[0]


def _csv(path: pathlib.Path, n: int = 40, **columns) -> pathlib.Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": np.arange(n) % 2})
    for name, value in columns.items():
        frame[name] = value
    frame.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------------------ usage errors
@pytest.mark.parametrize("argv, expected", [
    ([], "COMMAND: expected one of curves, demo, compare, bench, got nothing"),
    (["nope"], "COMMAND: expected one of curves, demo, compare, bench, got 'nope'"),
    (["--out", "x"], "COMMAND: expected one of"),
    (["curves", "--bogus"], "arguments: expected the options listed by 'focalkit curves --help', got unrecognized "
                            "--bogus"),
    (["curves", "--out"], "--out: expected one value, got none"),
    (["curves", "--pt"], "--pt: expected one or more values, got none"),
    (["curves", "--pt", "abc"], "--pt: expected a number, got 'abc'"),
    (["demo", "--task", "tracking"], "--task: expected one of 'classification', 'detection', 'multilabel', "
                                     "'segmentation', got 'tracking'"),
    (["demo", "--quick=yes"], "--quick: expected no value (a flag), got 'yes'"),
    (["demo", "--imbalance", "abc"], "--imbalance: expected a number, got 'abc'"),
    (["compare", "--target", "y"], "--data: expected a value (required), got nothing"),
    (["compare", "--data", "d.csv", "extra"], "got unrecognized extra"),
    (["bench", "--op", "tanh"], "--op: expected one of 'sigmoid', 'softmax', 'all', 'family', got 'tanh'"),
    (["bench", "--dtypes", "fp8"], "--dtypes: expected one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
    (["bench", "--modes", "sideways"], "--modes: expected one of"),
])
def test_usage_errors_are_one_line(argv, expected, capsys, cwd):
    _fails(argv, capsys, expected, cwd)


# ------------------------------------------------------------------------------------------------ counts and sizes
@pytest.mark.parametrize("argv, expected", [
    (["demo", "--seeds", "0"], "--seeds: expected an integer in [1, 100], got 0"),
    (["demo", "--seeds", "-3"], "--seeds: expected an integer in [1, 100], got -3"),
    (["demo", "--seeds", "two"], "--seeds: expected an integer in [1, 100], got 'two'"),
    (["demo", "--seeds", "1e30"], "--seeds: expected an integer in [1, 100], got '1e30'"),
    (["demo", "--seeds", "100000000000000000000"], "--seeds: expected an integer in [1, 100]"),
    (["demo", "--seeds", "1"], "--seeds: expected at least 2 (for a spread), got 1"),
    (["demo", "--threads", "0"], "--threads: expected an integer in [1, "),
    (["demo", "--threads", "100000"], "--threads: expected an integer in [1, "),
    (["demo", "--imbalance", "0.5"], "--imbalance: expected factors >= 1, got [0.5]"),
    (["demo", "--imbalance", "nan"], "--imbalance: expected finite factors, got [nan]"),
    (["demo", "--imbalance", "inf"], "--imbalance: expected finite factors, got [inf]"),
    (["demo", "--imbalance", "10", "10.0000001"], "--imbalance: expected distinct factors"),
    (["demo", "--task", "detection", "--imbalance", "10"], "--imbalance: expected only with --task classification"),
    (["demo", "--task", "detection", "--max-budget", "1000"],
     "--max-budget: expected the first budget 64 times a power of two (128, 256, 512, ...), got 1000"),
    (["demo", "--task", "detection", "--max-budget", "64"], "--max-budget: expected the first budget 64 times"),
    (["demo", "--task", "detection", "--quick", "--max-budget", "96"], "--max-budget: expected the first budget 32 "),
    (["demo", "--task", "detection", "--max-budget", "0"], "--max-budget: expected an integer >= 1, got 0"),
    (["demo", "--task", "detection", "--optimizers", "adam", "adam"],
     "--optimizers: expected one or both of 'sgd', 'adam', each once, got ['adam', 'adam']"),
    (["demo", "--task", "detection", "--optimizers", "rmsprop"], "--optimizers: "),
    (["demo", "--max-budget", "128"], "--max-budget: expected only with --task detection, got 128 with --task "
                                      "classification"),
    (["demo", "--task", "segmentation", "--optimizers", "sgd"], "--optimizers: expected only with --task detection"),
    (["compare", "--data", "d.csv", "--folds", "1"], "--folds: expected an integer >= 2, got 1"),
    (["compare", "--data", "d.csv", "--folds", "-2"], "--folds: expected an integer >= 2, got -2"),
    (["compare", "--data", "d.csv", "--folds", "five"], "--folds: expected an integer >= 2, got 'five'"),
    (["compare", "--data", "d.csv", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["compare", "--data", "d.csv", "--trials", "-1"], "--trials: expected an integer >= 1, got -1"),
    (["compare", "--data", "d.csv", "--seed", "-1"], "--seed: expected an integer in [0, 2147483647], got -1"),
    (["compare", "--data", "d.csv", "--seed", "99999999999"], "--seed: expected an integer in [0, 2147483647]"),
    (["compare", "--data", "d.csv", "--threads", "100000"], "--threads: expected an integer in [1, "),
    (["curves", "--pt", "0"], "--pt: expected probabilities in (0, 1], got 0.0"),
    (["curves", "--pt", "nan"], "--pt: expected probabilities in (0, 1], got nan"),
    (["curves", "--pt", "1.5"], "--pt: expected probabilities in (0, 1], got 1.5"),
    (["curves", "--gammas", "-1"], "--gammas: expected finite values >= 0, got -1.0"),
    (["curves", "--gammas", "inf"], "--gammas: expected finite values >= 0, got inf"),
    (["curves", "--gammas", "nan"], "--gammas: expected finite values >= 0, got nan"),
    (["bench", "--sizes", "0"], "--sizes: expected whole numbers of logits >= 1 (e.g. 10000 or 1e6), got '0'"),
    (["bench", "--sizes", "-5"], "--sizes: expected whole numbers of logits >= 1"),
    (["bench", "--sizes", "abc"], "--sizes: expected whole numbers of logits >= 1"),
    (["bench", "--sizes", "nan"], "--sizes: expected whole numbers of logits >= 1"),
    (["bench", "--sizes", "inf"], "--sizes: expected whole numbers of logits >= 1"),
    (["bench", "--sizes", "1.5"], "--sizes: expected whole numbers of logits >= 1"),
    (["bench", "--sizes", "1e15"], "--sizes: expected sizes whose inputs (8 bytes per logit) fit in --memory-budget-gb"),
    (["bench", "--min-reps", "0"], "--min-reps: expected an integer >= 1, got 0"),
    (["bench", "--max-reps", "x"], "--max-reps: expected an integer >= 1, got 'x'"),
    (["bench", "--min-reps", "5", "--max-reps", "2"], "--max-reps: expected an integer >= --min-reps (5), got 2"),
    (["bench", "--min-time", "-1"], "--min-time: expected a finite number >= 0, got -1"),
    (["bench", "--min-time", "nan"], "--min-time: expected a finite number >= 0, got nan"),
    (["bench", "--memory-budget-gb", "0"], "--memory-budget-gb: expected a finite number > 0, got 0"),
    (["bench", "--memory-budget-gb", "inf"], "--memory-budget-gb: expected a finite number > 0, got inf"),
    (["bench", "--impls", "nope"], "--impls: expected names of sigmoid / softmax implementations"),
    (["bench", "--name", ""], "--name: expected a file name stem without a folder part, got ''"),
    (["bench", "--name", "a/b"], "--name: expected a file name stem without a folder part, got 'a/b'"),
    (["bench", "--name", ".."], "--name: expected a file name stem without a folder part"),
])
def test_bad_counts_sizes_and_values(argv, expected, capsys, cwd):
    _csv(cwd / "d.csv")
    out = cwd / "out"
    if argv[0] in ("curves", "bench"):
        argv = [*argv, "--out", str(out)]
    _fails(argv, capsys, expected, cwd)


def test_bench_script_entry_point_is_one_line_too(capsys, cwd):
    assert _runner.main(["--min-reps", "5", "--max-reps", "2", "--out", str(cwd / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--max-reps: expected an integer >= --min-reps (5), got 2" in err
    with pytest.raises(SystemExit) as info:
        _runner.main(["--sizes", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--sizes: expected whole numbers of logits >= 1" in err
    assert list(cwd.iterdir()) == []


# ------------------------------------------------------------------------------------------------ output folder
def _command(name: str, cwd: pathlib.Path) -> list[str]:
    return {
        "curves": ["curves"],
        "demo": ["demo", "--quick", "--no-progress"],
        "detection": ["demo", "--task", "detection", "--quick", "--no-progress"],
        "compare": ["compare", "--data", str(_csv(cwd / "d.csv")), "--target", "label", "--epochs", "1",
                    "--folds", "2", "--no-progress"],
        "bench": ["bench", "--quick", "--op", "sigmoid", "--no-memory", "--no-first-call"],
    }[name]


COMMANDS = ["curves", "demo", "detection", "compare", "bench"]


@pytest.mark.parametrize("name", COMMANDS)
def test_out_is_a_file_or_under_a_file_or_empty(name, capsys, cwd):
    argv = _command(name, cwd)
    (cwd / "afile").write_text("keep")
    _fails([*argv, "--out", "afile"], capsys, "--out: expected a folder path, got an existing file 'afile'", cwd)
    _fails([*argv, "--out", "afile/sub"], capsys,
           "--out: expected a folder path whose parents are folders, got 'afile/sub', under the file 'afile'", cwd)
    _fails([*argv, "--out", "afile/sub/deeper"], capsys, "under the file 'afile'", cwd)
    _fails([*argv, "--out", ""], capsys, "--out: expected a folder path, got ''", cwd)
    _fails([*argv, "--out", "x" * 300], capsys, "--out: expected a usable folder path, got 'xxx", cwd)
    assert (cwd / "afile").read_text() == "keep"


@pytest.mark.parametrize("name", COMMANDS)
def test_out_that_cannot_be_written(name, capsys, cwd, monkeypatch):
    argv = _command(name, cwd)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checks, "open", refuse, raising=False)  # the probe file: as on a read-only folder
    (cwd / "ro").mkdir()
    force = ["--force"] if name in ("demo", "detection", "compare") else []
    _fails([*argv, "--out", "ro", *force], capsys,
           "--out: expected a folder that can be created and written, got 'ro' (Permission denied)", cwd)
    # a new folder under it: created for the probe, then removed again
    _fails([*argv, "--out", "ro/new/deep"], capsys, "got 'ro/new/deep' (Permission denied)", cwd)
    assert list((cwd / "ro").iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_out_on_a_read_only_file_system(capsys, cwd):
    _fails([*_command("curves", cwd), "--out", "/proc/self/focalkit-out"], capsys,
           "--out: expected a folder that can be created and written, got '/proc/self/focalkit-out'", cwd)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_in_a_read_only_folder_by_permissions(capsys, cwd):
    ro = cwd / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _fails([*_command("compare", cwd), "--out", str(ro / "r")], capsys, "(Permission denied)", cwd)
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("name", ["demo", "detection", "compare"])
def test_existing_out_refused_without_force(name, capsys, cwd):
    (cwd / "r").mkdir()
    (cwd / "r" / "keep.txt").write_text("mine")
    _fails([*_command(name, cwd), "--out", "r"], capsys,
           "--out: expected a folder that does not exist yet (or pass --force to write into it), got existing 'r'",
           cwd)


def test_out_check_leaves_nothing_behind(cwd):
    assert checks.check_out_dir(cwd / "a" / "b" / "c") == cwd / "a" / "b" / "c"
    assert checks.check_out_dir(cwd) == cwd
    assert checks.check_out_dir(None) is None
    assert list(cwd.iterdir()) == []


def test_python_api_checks_out_before_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "report"
    table = load_table(_csv(tmp_path / "d.csv"), "label")
    with pytest.raises(focalkit.InvalidArgumentError, match="out: expected a folder path whose parents are folders"):
        run_compare_table(table, CompareConfig(folds=2, epochs=1), bad, progress=False)
    with pytest.raises(focalkit.InvalidArgumentError, match="under the file"):
        classification.run_digits_demo(classification.QUICK, bad, progress=False)
    with pytest.raises(focalkit.InvalidArgumentError, match="under the file"):
        detection.run_detection_demo(detection.QUICK_DETECTION, bad, progress=False)


# ------------------------------------------------------------------------------------------------ --data: the path
def test_data_path_problems(capsys, cwd, monkeypatch):
    base = ["compare", "--target", "label", "--no-progress", "--out", "r"]
    _fails([*base, "--data", "missing.csv"], capsys, "--data: expected an existing file, got 'missing.csv'", cwd)
    (cwd / "folder.csv").mkdir()
    _fails([*base, "--data", "folder.csv"], capsys, "--data: expected a file, got a folder 'folder.csv'", cwd)
    (cwd / "empty.csv").write_text("")
    _fails([*base, "--data", "empty.csv"], capsys, "--data: expected a non-empty file, got an empty file", cwd)
    (cwd / "empty.npz").write_bytes(b"")
    _fails([*base, "--data", "empty.npz"], capsys, "--data: expected a non-empty file, got an empty file", cwd)
    (cwd / "d.xlsx").write_text("x")
    _fails([*base, "--data", "d.xlsx"], capsys, "--data: expected a file ending in .csv, .parquet, .pq, .npz", cwd)
    _fails([*base, "--data", "y" * 300 + ".csv"], capsys, "--data: expected a readable file, got 'yyy", cwd)
    if hasattr(os, "mkfifo"):
        os.mkfifo(cwd / "pipe.csv")
        _fails([*base, "--data", "pipe.csv"], capsys, "--data: expected a regular file, got 'pipe.csv'", cwd)
    locked = _csv(cwd / "locked.csv")
    real_open = pathlib.Path.open

    def refuse(self, *args, **kwargs):
        if self.name == "locked.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", refuse)  # as an unreadable file (chmod does not stop root)
    _fails([*base, "--data", locked.name], capsys,
           "--data: expected a readable file, got 'locked.csv' (Permission denied)", cwd)


# ------------------------------------------------------------------------------------------------ CSV / Parquet content
def _bad_csvs(d: pathlib.Path) -> list[tuple[pathlib.Path, str]]:
    rng = np.random.default_rng(1)
    cases = []
    (d / "header.csv").write_text("a,b,label\n")
    cases.append((d / "header.csv", "--data: expected at least one row, got 0"))
    cases.append((_csv(d / "one_class.csv", label="cat"), "--target: expected at least 2 classes, got 1"))
    nan = rng.normal(size=40)
    nan[3] = np.nan
    cases.append((_csv(d / "nan.csv", b=nan), "expected finite feature values, got NaN or infinite values in columns: b"))
    inf = rng.normal(size=40)
    inf[5] = -np.inf
    cases.append((_csv(d / "inf.csv", a=inf), "got NaN or infinite values in columns: a"))
    cases.append((_csv(d / "strings.csv", colour=["red", "blue"] * 20),
                  "--data: expected numeric feature columns, got non-numeric columns: colour"))
    huge = rng.normal(size=40)
    huge[7] = 1e39
    cases.append((_csv(d / "huge.csv", b=huge),
                  "--data: expected feature values within the float32 range used for training (|value| <= 3.403e+38),"
                  " got larger values in columns: b"))
    cases.append((_csv(d / "no_labels.csv", label=np.nan), "--target: expected a label in every row, got 40 missing"))
    pd.DataFrame({"label": np.arange(40) % 2}).to_csv(d / "only_label.csv", index=False)
    cases.append((d / "only_label.csv", "--data: expected at least one feature column besides 'label', got none"))
    (d / "ragged.csv").write_text("a,b,label\n1,2,0\n3,4,5,6\n")
    cases.append((d / "ragged.csv", "--data: expected a readable csv file, got"))
    (d / "binary.csv").write_bytes(bytes(range(256)) * 8)
    cases.append((d / "binary.csv", "--data: expected a readable csv file, got"))
    (d / "bad.parquet").write_text("not parquet")
    cases.append((d / "bad.parquet", "--data: expected a readable parquet file, got"))
    pd.DataFrame({"a": [1.0, 2.0] * 10, "label": [[1], [2, 3]] * 10}).to_parquet(d / "lists.parquet")
    cases.append((d / "lists.parquet", "--target: expected labels that are numbers or strings, got a value of type "
                                       "ndarray"))
    few = np.arange(40) % 2
    few[:3] = 7
    cases.append((_csv(d / "small_class.csv", label=few), "--folds: expected every class to have at least 5 samples"))
    return cases


def test_bad_tables(capsys, cwd):
    for path, expected in _bad_csvs(cwd):
        _fails(["compare", "--data", path.name, "--target", "label", "--out", "r", "--no-progress"], capsys, expected,
               cwd)
    _fails(["compare", "--data", "nan.csv", "--target", "klass"], capsys,
           "--target: expected a column of nan.csv (columns: a, b, label), got 'klass'", cwd)
    _fails(["compare", "--data", "nan.csv"], capsys, "--target: expected the name of the label column, got nothing",
           cwd)


# ------------------------------------------------------------------------------------------------ .npz content
def test_bad_npz(capsys, cwd):
    rng = np.random.default_rng(2)
    y = np.arange(40) % 2
    (cwd / "text.npz").write_text("hello, not a zip archive")
    np.save(cwd / "array.npy", np.zeros((4, 2)))
    os.replace(cwd / "array.npy", cwd / "array.npz")  # a .npy file with the .npz suffix
    import zipfile

    with zipfile.ZipFile(cwd / "garbage.npz", "w") as z:
        z.writestr("X.npy", b"garbage")
        z.writestr("y.npy", b"garbage")
    with zipfile.ZipFile(cwd / "truncated.npz", "w") as z:
        z.writestr("X.npy", (cwd / "array.npz").read_bytes()[:100])
        z.writestr("y.npy", (cwd / "array.npz").read_bytes()[:100])
    np.savez(cwd / "object_x.npz", X=np.array([[1, 2]] * 40, dtype=object), y=y)
    np.savez(cwd / "object_y.npz", X=rng.normal(size=(40, 2)), y=np.array([None] * 40, dtype=object))
    np.savez(cwd / "complex.npz", X=np.ones((40, 2), dtype=complex), y=y)
    np.savez(cwd / "strings.npz", X=np.array([["a", "b"]] * 40), y=y)
    np.savez(cwd / "no_columns.npz", X=np.ones((40, 0)), y=y)
    np.savez(cwd / "no_rows.npz", X=np.ones((0, 3)), y=np.zeros(0))
    np.savez(cwd / "flat.npz", X=np.ones(40), y=y)
    np.savez(cwd / "labels_2d.npz", X=np.ones((40, 2)), y=y[:, None])
    np.savez(cwd / "nan_labels.npz", X=rng.normal(size=(40, 2)), y=np.where(y == 1, 1.0, np.nan))
    huge = rng.normal(size=(40, 3))
    huge[4, 2] = 1e39
    np.savez(cwd / "huge.npz", X=huge, y=y)
    np.savez(cwd / "no_x.npz", features=np.ones((40, 2)), y=y)
    cases = [
        ("text.npz", "--data: expected a .npz file (a zip archive of .npy arrays, as numpy.savez writes), got "
                     "'text.npz' (not a zip archive)"),
        ("array.npz", "(not a zip archive)"),
        ("garbage.npz", "--data: expected 'X' in garbage.npz to be a .npy array, got a member that is not one"),
        ("truncated.npz", "--data: expected a readable .npz file, got 'truncated.npz' (array 'X'"),
        ("object_x.npz", "--data: expected numeric or string arrays in object_x.npz, got an object array 'X'"),
        ("object_y.npz", "got an object array 'y'"),
        ("complex.npz", "--data: expected real numeric X, got dtype complex128"),
        ("strings.npz", "--data: expected real numeric X, got dtype <U1"),
        ("no_columns.npz", "--data: expected at least one feature column in X, got shape (40, 0)"),
        ("no_rows.npz", "--data: expected at least one row, got 0"),
        ("flat.npz", "--data: expected X of shape (N, D), got shape (40,)"),
        ("labels_2d.npz", "--target: expected labels of shape (40,), got (40, 1)"),
        ("nan_labels.npz", "--target: expected a label in every row, got 20 NaN labels in array 'y'"),
        ("huge.npz", "got larger values in columns: X[:, 2]"),
        ("no_x.npz", "--data: expected an array named 'X' in no_x.npz, got arrays ['features', 'y']"),
    ]
    for name, expected in cases:
        _fails(["compare", "--data", name, "--out", "r", "--no-progress"], capsys, expected, cwd)
    _fails(["compare", "--data", "huge.npz", "--target", "labels"], capsys,
           "--target: expected an array of huge.npz (X, y), got 'labels'", cwd)


# ------------------------------------------------------------------------------------------------ float32 training data
def test_standardised_values_are_checked_in_float32():
    # nearly constant on most rows, huge on one: in the fold where that row is tested, (x - mean) / std overflows
    col = np.zeros(40)
    col[1::4] = 1e-30
    col[0] = 3e38
    table = Table(np.stack([col, np.linspace(0, 1, 40)], 1).astype(np.float32), np.arange(40) % 2, ("p", "q"),
                  ("tiny", "ok"))
    with pytest.raises(focalkit.InvalidArgumentError,
                       match=r"--data: expected feature columns whose standardised values fit in float32 .*: tiny$"):
        make_folds(table, 2, seed=0)
    with pytest.raises(focalkit.InvalidArgumentError, match="standardised values fit in float32"):
        run_compare_table(table, CompareConfig(folds=2, epochs=1), None, progress=False)
    # values near float32's limit standardise without overflow (statistics in float64)
    big = Table(np.stack([np.linspace(-3e38, 3e38, 40), np.linspace(0, 1, 40)], 1).astype(np.float32),
                np.arange(40) % 2, ("p", "q"), ("big", "ok"))
    for _, split in make_folds(big, 2, seed=0):
        assert np.isfinite(split.x_train).all() and np.isfinite(split.x_test).all()


def test_validate_table_checks_values_built_in_python():
    x = np.ones((40, 2), dtype=np.float32)
    x[3, 1] = np.inf
    with pytest.raises(focalkit.InvalidArgumentError, match="got NaN or infinite values in columns: b$"):
        validate_table(Table(x, np.arange(40) % 2, ("p", "q"), ("a", "b")), folds=2)
    with pytest.raises(focalkit.InvalidArgumentError, match=r"expected features of shape \(40, D\) with D >= 1"):
        validate_table(Table(np.ones((40, 0), np.float32), np.arange(40) % 2, ("p", "q"), ()), folds=2)


# ------------------------------------------------------------------------------------------------ as a process
def test_console_entry_point_exit_status_and_one_line(tmp_path):
    (tmp_path / "d.npz").write_text("not a zip")
    (tmp_path / "afile").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "focalkit_app.cli.main", "compare", "--data", str(tmp_path / "d.npz"),
                           "--out", str(tmp_path / "afile" / "r")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("focalkit compare: error: --out: expected a folder path whose parents are folders")
