"""``focalkit compare`` end to end on small files (CSV, Parquet, .npz), with and without --tune."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from focalkit_app.demo import cli
from focalkit_app.demo.compare import CompareConfig, make_folds, run_compare_table
from focalkit_app.demo.tabular import load_table


def _data(n_per=(40, 15, 6), seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, n in enumerate(n_per):
        xs.append(rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[c])
        ys.append(np.full(n, ["ant", "bee", "cow"][c]))
    return np.vstack(xs), np.concatenate(ys)


def test_formats_load_identically(tmp_path):
    x, y = _data()
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2"]).assign(kind=y)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    np.savez(tmp_path / "d.npz", X=x, kind=y.astype("U3"))
    a = load_table(tmp_path / "d.csv", "kind")
    b = load_table(tmp_path / "d.parquet", "kind")
    c = load_table(tmp_path / "d.npz", "kind")
    assert a.class_names == b.class_names == c.class_names == ("ant", "bee", "cow")
    assert np.array_equal(a.y, b.y) and np.array_equal(a.y, c.y)
    np.testing.assert_allclose(a.x, c.x, rtol=1e-6)
    assert a.feature_names == ("f0", "f1", "f2")


def test_folds_are_stratified_and_disjoint():
    x, y = _data()
    from focalkit_app.demo.tabular import Table

    t = Table(x.astype(np.float32), np.unique(y, return_inverse=True)[1], ("ant", "bee", "cow"), ("a", "b", "c"))
    splits = make_folds(t, 3, seed=0)
    assert len(splits) == 3
    total = sum(len(s.y_test) for _, s in splits)
    assert total == len(y)
    for _, s in splits:
        assert set(np.unique(s.y_test)) == {0, 1, 2}
        assert len(s.y_train) + len(s.y_val) + len(s.y_test) == len(y)
        # standardised with training statistics
        assert abs(float(np.concatenate([s.x_train, s.x_val]).mean())) < 0.2


def test_compare_cli_writes_report(tmp_path, capsys):
    x, y = _data()
    f = tmp_path / "d.csv"
    pd.DataFrame(x, columns=["f0", "f1", "f2"]).assign(kind=y).to_csv(f, index=False)
    out = tmp_path / "rep"
    parser = argparse.ArgumentParser()
    cli.add_compare_arguments(parser)
    args = parser.parse_args(["--data", str(f), "--target", "kind", "--folds", "3", "--epochs", "5", "--out",
                              str(out), "--no-progress"])
    assert cli.run_compare(args) == 0
    printed = capsys.readouterr().out
    assert "d.csv: 61 rows, 3 features, 3 classes, 3 stratified folds" in printed
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "recall.png", "reliability.png", "report.md"]
    assert "ant (40), bee (15), cow (6)" in (out / "report.md").read_text()
    # --force writes into the existing folder
    args.force = True
    assert cli.run_compare(args) == 0


def test_tune_reports_gain_and_recommendation(tmp_path, capsys):
    from focalkit_app.demo.tabular import Table

    x, y = _data()
    t = Table(x.astype(np.float32), np.unique(y, return_inverse=True)[1], ("ant", "bee", "cow"), ("a", "b", "c"))
    cfg = CompareConfig(folds=3, epochs=4, tune=True, trials=2, losses=("ce", "focal"))
    run_compare_table(t, cfg, tmp_path / "r", progress=False)
    printed = capsys.readouterr().out
    assert "Tuned class-balanced sigmoid focal loss (2 Optuna trials per search, nested by fold)" in printed
    assert "recommended configuration (search on all data): alpha = " in printed
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Tuning (`--tune`)" in report
    assert report.count("| 0 |") == 1 and "| 2 |" in report
    assert any(v in report for v in ("**better**", "**worse**", "**within noise**"))
