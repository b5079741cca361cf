"""``focalkit demo --task segmentation``: the synthetic shapes, the boundary-recall metric on hand-made masks, the
losses and a tiny run end to end."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import focalkit
from focalkit_app.demo import cli
from focalkit_app.demo import segmentation as seg
from focalkit_app.demo.segmentation_data import COMMON, RARE, make_shapes
from focalkit_app.demo.segmentation_metrics import boundary_recall, dice_score, mask_boundary

TINY = seg.SegmentationConfig(seeds=2, steps=3, batch=2, width=4, test_images=12)  # discs in both test sets


def _parse(argv):
    parser = argparse.ArgumentParser(prog="focalkit")
    sub = parser.add_subparsers(dest="cmd")
    cli.add_demo_arguments(sub.add_parser("demo"))
    return parser.parse_args(["demo", *argv])


def _square(size, top, left, side, value=RARE):
    m = np.zeros((size, size), dtype=np.int64)
    m[top:top + side, left:left + side] = value
    return m


# --- the task -----------------------------------------------------------------------------------------------------

def test_rare_class_is_rare_small_and_present_in_about_three_images_of_ten():
    from scipy import ndimage

    n = 1000
    x, y = make_shapes(np.random.default_rng(0), n)
    assert x.shape == (n, 1, 32, 32) and x.dtype == np.float32 and y.shape == (n, 32, 32) and y.dtype == np.int64
    present = (y == RARE).any((1, 2)).mean()
    assert abs(present - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    fractions = np.bincount(y.ravel(), minlength=3) / y.size
    assert fractions[RARE] < 0.01 and 0.08 < fractions[COMMON] < 0.25
    for b in range(50):
        discs, k = ndimage.label(y[b] == RARE)
        assert k <= 1 and all(9 <= np.sum(discs == i) <= 21 for i in range(1, k + 1))
        squares, k = ndimage.label(y[b] == COMMON)
        assert 1 <= k <= 3 and all(np.sum(squares == i) >= 36 for i in range(1, k + 1))
    # objects are brighter than the noise; same generator state, same images
    assert x[:, 0][y > 0].mean() > x[:, 0][y == 0].mean() + 0.4
    x2, y2 = make_shapes(np.random.default_rng(0), n)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_make_shapes_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    for kwargs, name in (({"batch": 0}, "batch"), ({"batch": 2, "size": 8}, "size"),
                         ({"batch": 2, "rare_probability": 1.5}, "rare_probability"),
                         ({"batch": 2, "noise": -0.1}, "noise")):
        with pytest.raises(focalkit.InvalidArgumentError, match=name):
            make_shapes(rng, **kwargs)


# --- the metrics on hand-made masks ---------------------------------------------------------------------------------

def test_mask_boundary_on_hand_made_masks():
    square = _square(7, 2, 2, 3) == RARE
    b = mask_boundary(square)
    assert b.sum() == 8 and not b[3, 3] and b[2, 2] and b[4, 3]
    assert mask_boundary(_square(7, 3, 3, 1) == RARE).sum() == 1     # a single pixel is its own boundary
    full = np.ones((5, 5), dtype=bool)                                 # touches the border: boundary = the border ring
    assert mask_boundary(full).sum() == 16 and not mask_boundary(full)[1:4, 1:4].any()
    assert mask_boundary(np.zeros((2, 5, 5), dtype=bool)).shape == (2, 5, 5)


def test_boundary_recall_on_hand_made_masks():
    truth = _square(9, 3, 3, 3)                          # 8 boundary pixels
    assert boundary_recall(truth, truth, RARE, tolerance=0) == 1.0
    assert boundary_recall(np.zeros_like(truth), truth, RARE) == 0.0
    assert np.isnan(boundary_recall(truth, np.zeros_like(truth), RARE))
    shifted = _square(9, 3, 4, 3)                        # one pixel to the right
    # tolerance 0: the true boundary pixels of columns 4 and 5 on rows 3 and 5 coincide -> 4 of 8
    assert boundary_recall(shifted, truth, RARE, tolerance=0) == 0.5
    assert boundary_recall(shifted, truth, RARE, tolerance=1) == 1.0
    far = _square(9, 3, 5, 3)                            # two pixels to the right: column 3 is 2 px away
    assert boundary_recall(far, truth, RARE, tolerance=1) == 5 / 8
    assert boundary_recall(far, truth, RARE, tolerance=2) == 1.0
    # a blob covering the object has its boundary far away: recall of the boundary, not of the area
    assert boundary_recall(np.full_like(truth, RARE), truth, RARE, tolerance=1) == 0.0
    # only the class asked for counts
    assert boundary_recall(_square(9, 3, 3, 3, value=COMMON), truth, RARE) == 0.0
    assert boundary_recall(_square(9, 3, 3, 3, value=COMMON), _square(9, 3, 3, 3, value=COMMON), COMMON) == 1.0


def test_boundary_recall_pools_over_images_without_matching_across_them():
    truth = np.stack([_square(9, 3, 3, 3), np.zeros((9, 9), dtype=np.int64)])
    elsewhere = truth[::-1].copy()                       # the right prediction, but in the other image
    assert boundary_recall(elsewhere, truth, RARE) == 0.0
    big = _square(9, 1, 1, 7)                            # 24 boundary pixels
    truth = np.stack([_square(9, 3, 3, 3), big])
    pred = np.stack([_square(9, 3, 3, 3), np.zeros((9, 9), dtype=np.int64)])
    assert boundary_recall(pred, truth, RARE) == 8 / (8 + 24)


def test_dice_score_on_hand_made_masks():
    truth = _square(6, 0, 0, 2)
    pred = _square(6, 0, 0, 1)
    assert dice_score(pred, truth, RARE) == pytest.approx(2 * 1 / (1 + 4))
    assert dice_score(truth, truth, RARE) == 1.0
    assert dice_score(np.zeros_like(truth), truth, RARE) == 0.0
    assert np.isnan(dice_score(np.zeros_like(truth), np.zeros_like(truth), RARE))


def test_metrics_reject_bad_input():
    m = np.zeros((4, 4), dtype=np.int64)
    with pytest.raises(focalkit.InvalidArgumentError, match="pred, truth"):
        boundary_recall(m, np.zeros((4, 5), dtype=np.int64), RARE)
    with pytest.raises(focalkit.InvalidArgumentError, match="tolerance"):
        boundary_recall(m, m, RARE, tolerance=-1)


# --- losses, model, run -----------------------------------------------------------------------------------------------

def test_losses_are_the_library_functions_with_their_defaults():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    y = torch.randint(0, 3, (2, 8, 8), generator=g)
    torch.testing.assert_close(seg.segmentation_loss("ce", x, y), F.cross_entropy(x, y))
    torch.testing.assert_close(seg.segmentation_loss("focal", x, y),
                               focalkit.softmax_focal_loss(x, y, gamma=2.0, reduction="mean"))
    torch.testing.assert_close(seg.segmentation_loss("dice_focal", x, y), focalkit.dice_focal_loss(x, y))
    torch.testing.assert_close(seg.segmentation_loss("focal_tversky", x, y),
                               focalkit.focal_tversky_loss(x, y, alpha=0.7, beta=0.3, gamma=0.75))
    with pytest.raises(focalkit.InvalidArgumentError, match="loss"):
        seg.segmentation_loss("lovasz", x, y)


def test_tiny_run_writes_report_json_and_plot(tmp_path):
    out = tmp_path / "seg"
    printed = []
    result = seg.run_segmentation_demo(TINY, out, progress=False, command="focalkit demo --task segmentation",
                                       echo=printed.append)
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "results.json", "segmentation_examples.png"]
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["runs"]) == {"ce", "focal", "dice_focal", "focal_tversky"}
    for runs in saved["runs"].values():
        assert len(runs) == 2
        assert all(0.0 <= r["rare_boundary_recall"] <= 1.0 and 0.0 <= r["common_dice"] <= 1.0 for r in runs)
    assert saved["runs"]["focal"][1]["common_dice"] == result["runs"]["focal"][1]["common_dice"]
    assert all(n > 0 for n in saved["test_rare_pixels"])
    report = (out / "report.md").read_text()
    assert "`focalkit demo --task segmentation`" in report and "## How winners are decided" in report
    mean = np.mean([r["common_dice"] for r in saved["runs"]["dice_focal"]])
    assert f"{mean:.3f}" in report
    assert any("vs CE" in line for line in printed)


def test_cli_rejects_bad_options_before_training(capsys):
    assert cli.run_demo(_parse(["--task", "segmentation", "--seeds", "1", "--no-progress"])) == 2
    assert "--seeds: expected at least 2" in capsys.readouterr().err
    assert cli.run_demo(_parse(["--task", "segmentation", "--imbalance", "10", "--no-progress"])) == 2
    assert "--imbalance: expected only with --task classification" in capsys.readouterr().err


def test_cli_runs_the_task(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(seg, "QUICK_SEGMENTATION", TINY)
    out = tmp_path / "report"
    assert cli.run_demo(_parse(["--task", "segmentation", "--quick", "--out", str(out), "--no-progress"])) == 0
    assert "boundary recall" in capsys.readouterr().out
    assert (out / "segmentation_examples.png").exists()
