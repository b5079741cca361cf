"""``focalkit demo``: the four CLI entry points, the --quick run end to end, and its error paths."""

from __future__ import annotations

import argparse
import time

import pytest

from focalkit_app.demo import cli


def _parse(add, argv):
    parser = argparse.ArgumentParser(prog="focalkit")
    sub = parser.add_subparsers(dest="cmd")
    add(sub.add_parser("x"))
    return parser.parse_args(["x", *argv])


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "report"
    args = _parse(cli.add_demo_arguments, ["--quick", "--out", str(out), "--no-progress"])
    start = time.perf_counter()
    assert cli.run_demo(args) == 0
    elapsed = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert "imbalance factor 100 (3 seeds)" in printed
    for label in ["cross-entropy", "alpha-balanced CE", "softmax focal g=2", "sigmoid focal a=.25 g=2",
                  "class-balanced focal", "FLSD-53", "AdaFocal", "automated focal"]:
        assert label in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["curves_if100.png", "recall_if100.png", "reliability_if100.png", "report.md"]
    report = (out / "report.md").read_text()
    assert "## How winners are decided" in report and "### What the numbers say" in report
    assert "Training counts per class: 0: 100, 1: 60" in report
    # generous bound: the suite may share the 2 cores with other jobs
    assert elapsed < 120


def test_demo_refuses_existing_out_without_force(tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = _parse(cli.add_demo_arguments, ["--quick", "--out", str(out), "--no-progress"])
    assert cli.run_demo(args) == 2
    err = capsys.readouterr().err
    assert "focalkit demo: error: --out: expected a folder that does not exist yet" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_demo_rejects_bad_values(tmp_path, capsys):
    args = _parse(cli.add_demo_arguments, ["--imbalance", "0.5", "--no-progress"])
    assert cli.run_demo(args) == 2
    assert "--imbalance: expected factors >= 1, got [0.5]" in capsys.readouterr().err
    args = _parse(cli.add_demo_arguments, ["--seeds", "1", "--no-progress"])
    assert cli.run_demo(args) == 2
    assert "--seeds: expected at least 2" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    args = _parse(cli.add_demo_arguments, ["--out", str(f), "--force"])
    assert cli.run_demo(args) == 2
    assert "expected a folder path" in capsys.readouterr().err


def test_parsers_expose_documented_options():
    a = _parse(cli.add_demo_arguments, [])
    assert (a.task, a.quick, a.out, a.force) == ("classification", False, None, False)
    c = _parse(cli.add_compare_arguments, ["--data", "f.csv", "--target", "y"])
    assert (c.folds, c.tune, c.trials, c.force) == (5, False, 20, False)
    with pytest.raises(SystemExit):
        _parse(cli.add_compare_arguments, ["--target", "y"])  # --data is required
