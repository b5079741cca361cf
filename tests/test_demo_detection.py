"""Dense detection in miniature: the generated task, the loss normalisation, Figure 4's curves, the report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import focalkit
from focalkit_app.demo.detection import (SHAPES, DetectionConfig, LossConfig, default_grid, detection_loss, make_batch,
                                     normalised_loss_cdf, run_detection_demo, train_detector)


def test_task_is_dense_and_rare():
    x, y = make_batch(np.random.default_rng(0), 32)
    assert x.shape == (32, 1, 36, 36) and y.shape == (32, 9, 36, 36)
    per_image = y[0].size
    assert 10_000 <= per_image <= 100_000
    ratio = y.mean()
    assert 1 / 1500 < ratio < 1 / 500
    # positives come in 3x3 blocks of a single anchor shape at an object's centre
    b, k, i, j = np.argwhere(y > 0)[0]
    assert y[b, k, i:i + 3, j:j + 3].sum() == 9
    h, w = SHAPES[k]
    cy, cx = i + 1, j + 1
    assert x[b, 0, cy - h // 2:cy + h // 2 + 1, cx - w // 2:cx + w // 2 + 1].mean() > 0.4
    # generated on the fly, deterministic per seed
    x2, y2 = make_batch(np.random.default_rng(0), 32)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_grid_covers_paper_tables():
    grid = default_grid()
    alphas = sorted(c.alpha for c in grid if c.kind == "ce" and c.alpha is not None)
    assert alphas == [0.10, 0.25, 0.50, 0.75, 0.90, 0.99, 0.999]
    gammas = [(c.gamma, c.alpha) for c in grid if c.kind == "fl"]
    assert gammas == [(0.1, 0.75), (0.2, 0.75), (0.5, 0.5), (1.0, 0.25), (2.0, 0.25), (5.0, 0.25)]
    assert [c.prior for c in grid if c.group == "baseline"] == [False, True]
    assert [(c.gamma, c.beta) for c in grid if c.kind == "fl_star"] == [(2.0, 1.0), (4.0, 0.0)]


def test_loss_is_normalised_by_number_of_positives():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 9, 8, 8, generator=g)
    labels = torch.zeros(2, 9, 8, 8)
    labels[0, 3, 2:5, 2:5] = 1.0
    for cfg in (LossConfig("ce", "ce"), LossConfig("fl", "fl", gamma=2.0, alpha=0.25),
                LossConfig("star", "fl_star", gamma=2.0, beta=1.0, alpha=0.25)):
        got = detection_loss(logits, labels, cfg)
        if cfg.kind == "fl_star":
            total = focalkit.sigmoid_focal_loss_star(logits, labels, gamma=2.0, beta=1.0, alpha=0.25, reduction="sum")
        else:
            alpha = -1.0 if cfg.alpha is None else cfg.alpha
            total = focalkit.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=cfg.gamma, reduction="sum")
        torch.testing.assert_close(got, total / 9)
    # no positives: divide by 1, not 0
    assert torch.isfinite(detection_loss(logits, torch.zeros_like(labels), LossConfig("ce", "ce")))


def test_figure4_curves():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 9, 10, 10, generator=g) * 3 - 4
    labels = (torch.rand(1, 9, 10, 10, generator=g) < 0.05).float()
    (fp, cp), (fn, cn) = normalised_loss_cdf(logits, labels, 2.0)
    assert len(fp) == int(labels.sum()) and len(fn) == labels.numel() - int(labels.sum())
    for c in (cp, cn):
        assert c[-1] == pytest.approx(1.0) and np.all(np.diff(c) >= -1e-12)
    # with gamma 2 the negatives' loss is more concentrated than with gamma 0 (the paper's observation)
    (_, _), (_, cn0) = normalised_loss_cdf(logits, labels, 0.0)
    assert cn[len(cn) // 2] < cn0[len(cn0) // 2]


def test_tiny_run_and_report(tmp_path):
    cfg = DetectionConfig(seeds=2, steps=3, batch=2, test_images=2, workers=1,
                          grid=(LossConfig("CE, no prior init", "ce", prior=False, group="baseline"),
                                LossConfig("CE, prior init pi=.01", "ce", group="baseline"),
                                LossConfig("FL g=2 a=0.25", "fl", gamma=2.0, alpha=0.25, group="Table 1b")))
    run = train_detector(cfg.grid[1], cfg, seed=0)
    assert 0.0 <= run.ap <= 1.0 and len(run.loss_curve) == 3
    lines = []
    result = run_detection_demo(cfg, tmp_path / "det", progress=False, echo=lines.append)
    assert result["ap"].shape == (3, 2)
    names = sorted(p.name for p in (tmp_path / "det").iterdir())
    assert names == ["detection_example.png", "detection_training_curves.png", "figure4_loss_cdf.png", "report.md"]
    report = (tmp_path / "det" / "report.md").read_text()
    assert "| Table 1b | FL g=2 a=0.25 |" in report and "Ranking stability across seeds" in report
    assert any("Wall time" in ln for ln in lines)
