"""``focalkit demo --task multilabel``: the long-tailed mosaics, the losses, the metrics and a tiny run end to end."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import focalkit
from focalkit_app.demo import cli
from focalkit_app.demo import multilabel as ml
from focalkit_app.demo.multilabel_data import digit_mosaics, label_probabilities

TINY = ml.MultiLabelConfig(seeds=2, train=ml.TrainConfig(epochs=2, hidden=16), n_train=120, n_test=80)


def _parse(argv):
    parser = argparse.ArgumentParser(prog="focalkit")
    sub = parser.add_subparsers(dest="cmd")
    cli.add_demo_arguments(sub.add_parser("demo"))
    return parser.parse_args(["demo", *argv])


def test_label_probabilities_follow_the_long_tail():
    p = label_probabilities(100.0)
    assert p.shape == (10,) and abs(p.sum() - 1.0) < 1e-12
    assert np.all(np.diff(p) < 0)
    assert p[0] / p[-1] == pytest.approx(100.0)
    assert np.allclose(label_probabilities(1.0), 0.1)
    for bad in (0.5, float("inf"), float("nan"), "10"):
        with pytest.raises(focalkit.InvalidArgumentError, match="imbalance"):
            label_probabilities(bad)


def test_training_label_frequencies_have_a_long_tail_and_the_test_set_is_balanced():
    fill, n = 0.75, 4000
    split = digit_mosaics(100.0, 0, n_train=n, n_test=n, fill=fill)
    expected = 1 - (1 - fill * label_probabilities(100.0)) ** 4       # P(label present) in a training mosaic
    got = split.y_train.mean(0)
    assert np.all(np.abs(got - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 1e-3)
    assert split.train_counts[0] > 20 * split.train_counts[9]
    assert split.rare_labels.tolist() == [6, 7, 8, 9]
    balanced = 1 - (1 - fill * 0.1) ** 4
    assert np.all(np.abs(split.y_test.mean(0) - balanced) < 4 * np.sqrt(balanced * (1 - balanced) / n))


def test_mosaics_hold_the_labelled_digits_and_test_tiles_are_unseen():
    from sklearn.datasets import load_digits

    split = digit_mosaics(10.0, 3, n_train=300, n_test=300)
    data = load_digits()
    lookup = {(img / 16.0).astype(np.float32).tobytes(): int(c) for img, c in zip(data.images, data.target)}

    def tiles(x):
        m = x.reshape(-1, 16, 16)
        return [[m[i, r:r + 8, c:c + 8] for r in (0, 8) for c in (0, 8)] for i in range(len(m))]

    seen = {}
    for name, x, y in (("train", split.x_train, split.y_train), ("test", split.x_test, split.y_test)):
        keys = set()
        for row, labels in zip(tiles(x), y):
            digits = {lookup[t.tobytes()] for t in row if t.any()}   # a blank tile is all zeros
            assert digits == set(np.flatnonzero(labels).tolist())
            keys |= {t.tobytes() for t in row if t.any()}
        seen[name] = keys
    assert not seen["train"] & seen["test"]
    again = digit_mosaics(10.0, 3, n_train=300, n_test=300)
    assert np.array_equal(again.x_train, split.x_train) and np.array_equal(again.y_test, split.y_test)


def test_losses_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 10, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(6, 10, generator=g) < 0.3).to(torch.float64)
    torch.testing.assert_close(ml.multilabel_loss("bce", x, y),
                               F.binary_cross_entropy_with_logits(x, y, reduction="sum") / 6)
    # the ASL paper's focal loss is ASL with gamma_pos = gamma_neg = gamma and no clip
    torch.testing.assert_close(ml.multilabel_loss("focal", x, y),
                               focalkit.asymmetric_loss(x, y, 2.0, 2.0, None, reduction="sum") / 6)
    p = torch.sigmoid(x)
    pm = (p - 0.05).clamp_min(0)
    asl = -(y * torch.log(p) + (1 - y) * pm ** 4 * torch.log(1 - pm)).sum() / 6
    torch.testing.assert_close(ml.multilabel_loss("asl", x, y), asl)
    a = 0.25 * y + 0.75 * (1 - y)
    pt = p * y + (1 - p) * (1 - y)
    torch.testing.assert_close(ml.multilabel_loss("focal_a25", x, y), -(a * (1 - pt) ** 2 * torch.log(pt)).sum() / 6)
    with pytest.raises(focalkit.InvalidArgumentError, match="loss"):
        ml.multilabel_loss("hinge", x, y)


def test_metrics_average_precision_per_label():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.2], [0.7, 0.3, 0.3], [0.8, 0.1, 0.4]])
    m = ml.multilabel_metrics(y, s, np.array([1, 2]))
    # label 0: ranking pos, neg, pos -> (1 + 2/3) / 2; label 1: pos, neg, pos -> (1 + 2/3) / 2; label 2: no positive
    assert m["per_label_ap"][:2] == pytest.approx([5 / 6, 5 / 6])
    assert np.isnan(m["per_label_ap"][2])
    assert m["map"] == pytest.approx(5 / 6) and m["rare_map"] == pytest.approx(5 / 6)
    perfect = ml.multilabel_metrics(y[:, :2], y[:, :2].astype(float), np.array([1]))
    assert perfect["map"] == 1.0 and perfect["rare_map"] == 1.0


def test_tiny_run_writes_report_json_and_plot(tmp_path):
    out = tmp_path / "ml"
    printed = []
    result = ml.run_multilabel_demo(TINY, out, progress=False, command="focalkit demo --task multilabel",
                                    echo=printed.append)
    assert sorted(p.name for p in out.iterdir()) == ["multilabel_per_label_ap.png", "report.md", "results.json"]
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["runs"]) == {"bce", "focal", "focal_a25", "asl"}
    for runs in saved["runs"].values():
        assert len(runs) == 2 and all(0.0 <= r["map"] <= 1.0 and 0.0 <= r["rare_map"] <= 1.0 for r in runs)
    assert saved["runs"]["asl"][1]["map"] == result["runs"]["asl"][1]["map"]
    report = (out / "report.md").read_text()
    assert "`focalkit demo --task multilabel`" in report and "## How winners are decided" in report
    mean = np.mean([r["rare_map"] for r in saved["runs"]["focal"]])
    assert f"{mean:.3f}" in report
    assert any("vs BCE" in line for line in printed)


def test_cli_rejects_bad_options_before_training(tmp_path, capsys):
    assert cli.run_demo(_parse(["--task", "multilabel", "--seeds", "1", "--no-progress"])) == 2
    assert "--seeds: expected at least 2" in capsys.readouterr().err
    assert cli.run_demo(_parse(["--task", "multilabel", "--imbalance", "10", "--no-progress"])) == 2
    assert "--imbalance: expected only with --task classification" in capsys.readouterr().err


def test_cli_runs_the_task(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ml, "QUICK_MULTILABEL", TINY)
    out = tmp_path / "report"
    assert cli.run_demo(_parse(["--task", "multilabel", "--quick", "--out", str(out), "--no-progress"])) == 0
    assert "mAP" in capsys.readouterr().out
    assert (out / "results.json").exists()
