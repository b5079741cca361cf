"""Dense detection in miniature: the generated task, the anchor assignment, the losses' normalisation, the AP, the
plateau rule, the ranking stability, the report's verdicts and a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import focalkit
from focalkit_app.demo.detection import DetectionConfig, run_detection_demo
from focalkit_app.demo.detection_budget import budget_state, doubling_budgets, plateau_index, state_label
from focalkit_app.demo.detection_losses import (CE_NO_PRIOR, CE_PRIOR, QFL, VFL, LossConfig, default_grid,
                                                detection_loss, quick_grid)
from focalkit_app.demo.detection_metrics import average_precision, mean_average_precision
from focalkit_app.demo.detection_plots import normalised_loss_cdf
from focalkit_app.demo.detection_ranking import ranking_stability
from focalkit_app.demo.detection_report import budget_table, difficulty, findings
from focalkit_app.demo.detection_task import (ANCHOR_SHAPES, BG_IOU, CLASS_NAMES, FG_IOU, IGNORE, IMBALANCE,
                                              anchor_boxes, assign_anchors, class_frequencies, make_batch)
from focalkit_app.demo.detection_training import (TrainConfig, averaged_model, ema_decay_at, epoch_batches,
                                                  train_run, training_set, warmup_factor)

C = len(CLASS_NAMES)


# ------------------------------------------------------------------------------------------------ the task
def test_class_frequencies_follow_the_stated_long_tail():
    p = class_frequencies()
    assert p.sum() == pytest.approx(1.0)
    assert np.all(np.diff(p) < 0)
    assert p[0] / p[-1] == pytest.approx(IMBALANCE)
    ratios = p[:-1] / p[1:]
    assert np.allclose(ratios, IMBALANCE ** (1 / (C - 1)))


def test_object_counts_and_class_frequencies_of_generated_images():
    b = make_batch(np.random.default_rng(0), 600, size=24)
    counts = np.array([len(o) for o in b.objects])
    assert counts.min() >= 1 and counts.max() <= 5
    assert 3.0 < counts.mean() < 3.6  # 2..5 drawn uniformly, a few dropped when no place is free
    classes = np.concatenate([o[:, 0] for o in b.objects])
    observed = np.bincount(classes, minlength=C) / len(classes)
    expected = class_frequencies()
    sigma = np.sqrt(expected * (1 - expected) / len(classes))
    assert np.all(np.abs(observed - expected) < 4 * sigma), (observed, expected)
    sides = np.concatenate([o[:, 3:] for o in b.objects])
    assert sides.min() >= 3 and sides.max() <= 7
    # objects lie inside the image
    for o in b.objects:
        assert np.all(o[:, 1] + o[:, 3] <= 24) and np.all(o[:, 2] + o[:, 4] <= 24) and np.all(o[:, 1:3] >= 0)


def test_generation_is_deterministic_and_holds_objects_where_the_boxes_are():
    a = make_batch(np.random.default_rng(3), 4)
    b = make_batch(np.random.default_rng(3), 4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert a.images.dtype == np.float32 and a.labels.dtype == np.int64
    assert a.images.shape == (4, 1, 32, 32) and a.labels.shape == (4, len(ANCHOR_SHAPES), 32, 32)
    inside, outside = [], []
    for img, objs in zip(a.images[:, 0], a.objects):
        mask = np.zeros(img.shape, bool)
        for _, y0, x0, h, w in objs:
            mask[y0:y0 + h, x0:x0 + w] = True
        inside.append(img[mask].mean())
        outside.append(img[~mask].mean())
    assert np.mean(inside) > np.mean(outside) + 0.2


def _brute_force_assignment(objects, size):
    """RetinaNet's rule written out anchor by anchor."""
    labels = np.full((len(ANCHOR_SHAPES), size, size), C, dtype=np.int64)
    quality = np.zeros(labels.shape)
    for a, (ah, aw) in enumerate(ANCHOR_SHAPES):
        for i in range(size):
            for j in range(size):
                ay0, ax0 = i + 0.5 - ah / 2, j + 0.5 - aw / 2
                best, best_iou = None, 0.0
                for c, y0, x0, h, w in objects:
                    ih = max(0.0, min(ay0 + ah, y0 + h) - max(ay0, y0))
                    iw = max(0.0, min(ax0 + aw, x0 + w) - max(ax0, x0))
                    iou = ih * iw / (ah * aw + h * w - ih * iw)
                    if iou > best_iou:
                        best, best_iou = c, iou
                if best_iou >= FG_IOU:
                    labels[a, i, j], quality[a, i, j] = best, best_iou
                elif best_iou >= BG_IOU:
                    labels[a, i, j] = IGNORE
    return labels, quality


def test_anchor_assignment_matches_the_rule_anchor_by_anchor():
    size = 16
    objects = np.array([[1, 2, 3, 4, 4], [2, 8, 7, 3, 7], [0, 9, 9, 6, 5]])  # the last two overlap
    labels, quality = assign_anchors(objects, anchor_boxes(size), C)
    want_labels, want_quality = _brute_force_assignment(objects, size)
    assert np.array_equal(labels, want_labels)
    np.testing.assert_allclose(quality, want_quality, rtol=1e-6)
    # every class of the three objects has foreground anchors; background = C and ignored anchors both occur
    assert set(np.unique(labels)) == {IGNORE, 0, 1, 2, C}
    assert np.all(quality[labels == C] == 0) and np.all(quality[labels == IGNORE] == 0)
    assert np.all(quality[(labels >= 0) & (labels < C)] >= FG_IOU)
    # a 4 x 4 object at (2, 3): the (4, 4) anchors centred half a pixel off its centre have IoU 12.25 / 19.75
    assert labels[0, 3, 4] == 1 and quality[0, 3, 4] == pytest.approx(12.25 / 19.75)
    # no object: every anchor is background
    empty, q = assign_anchors(np.zeros((0, 5), np.int64), anchor_boxes(size), C)
    assert np.all(empty == C) and np.all(q == 0)


def test_every_generated_object_gets_foreground_anchors():
    b = make_batch(np.random.default_rng(1), 64)
    for labels, quality, objs in zip(b.labels, b.quality, b.objects):
        assert len(objs) == 0 or ((labels >= 0) & (labels < C)).any()
        np.testing.assert_array_equal(quality > 0, (labels >= 0) & (labels < C))
    fg = ((b.labels >= 0) & (b.labels < C)).mean()
    assert 1 / 300 < fg < 1 / 30  # rare foreground, as in dense detection


# ------------------------------------------------------------------------------------------------ losses
def _batch_tensors(seed=0, batch=2, size=16):
    b = make_batch(np.random.default_rng(seed), batch, size)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, C, len(ANCHOR_SHAPES), size, size, generator=g) * 2 - 3
    return logits, torch.from_numpy(b.labels), torch.from_numpy(b.quality)


@pytest.mark.parametrize("row", [CE_PRIOR, LossConfig("fl", "fl", gamma=2.0, alpha=0.25),
                                 LossConfig("star", "fl_star", gamma=2.0, beta=1.0, alpha=0.25), QFL, VFL])
def test_loss_sums_non_ignored_sigmoids_and_divides_by_foreground(row):
    logits, labels, quality = _batch_tensors()
    kept = (labels != IGNORE).unsqueeze(1).float()
    fg = (labels >= 0) & (labels < C)
    onehot = torch.nn.functional.one_hot(torch.where(fg, labels, C), C + 1)[..., :C].movedim(-1, 1).float()
    scores = onehot * quality.unsqueeze(1)
    alpha = -1.0 if row.alpha is None else row.alpha
    if row.kind == "fl_star":
        each = focalkit.sigmoid_focal_loss_star(logits, onehot, gamma=row.gamma, beta=row.beta, alpha=alpha)
    elif row.kind == "qfl":
        each = focalkit.quality_focal_loss(logits, scores, beta=row.beta, reduction="none")
    elif row.kind == "vfl":
        each = focalkit.varifocal_loss(logits, scores, alpha=row.alpha, gamma=row.gamma, reduction="none")
    else:
        each = focalkit.sigmoid_focal_loss(logits, onehot, alpha=alpha, gamma=row.gamma)
    want = (each * kept).sum() / fg.sum()
    snapshot = logits.clone()
    torch.testing.assert_close(detection_loss(logits, labels, quality, row), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(logits, snapshot)
    # no foreground anchor: divide by 1, not 0
    background = torch.full_like(labels, C)
    assert torch.isfinite(detection_loss(logits, background, torch.zeros_like(quality), row))


def test_grids_cover_the_paper_tables_and_the_detection_family():
    grid = default_grid()
    kinds = {r.kind for r in grid}
    assert kinds == {"ce", "fl", "fl_star", "qfl", "vfl"}
    assert [r.prior for r in grid if r.group == "baseline"] == [False, True]
    assert len([r for r in grid if r.kind == "ce" and r.alpha is not None]) >= 2
    assert len([r for r in grid if r.kind == "fl"]) >= 2
    assert {r.label for r in quick_grid()} <= {r.label for r in grid}
    with pytest.raises(focalkit.InvalidArgumentError, match="kind"):
        LossConfig("x", "hinge")


# ------------------------------------------------------------------------------------------------ AP, budget, rank
def test_average_precision_matches_scikit_learn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.03
    s = np.round(rng.normal(size=3000) + 2 * y, 1)  # ties included
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), rel=1e-12)
    assert np.isnan(average_precision(np.zeros(5), np.arange(5.0)))


def test_mean_average_precision_excludes_ignored_anchors():
    labels = np.array([[[[0, 3, IGNORE, 1]]]])            # (B=1, A=1, S=1, 4): classes 0 and 1 present, 2 absent
    logits = np.zeros((1, C, 1, 1, 4))
    logits[0, 0, 0, 0] = [5, 1, 9, 0]                      # the ignored anchor's high score must not count
    logits[0, 1, 0, 0] = [0, 1, 9, 5]
    m, per_class = mean_average_precision(logits, labels)
    assert per_class[0] == pytest.approx(1.0) and per_class[1] == pytest.approx(1.0) and np.isnan(per_class[2])
    assert m == pytest.approx(1.0)


def test_plateau_rule():
    assert doubling_budgets(125, 3) == (125, 250, 500)
    assert plateau_index([0.2, 0.5, 0.695, 0.70]) == 2          # the last two within 1 point
    assert plateau_index([0.695, 0.70, 0.705, 0.70]) == 0        # flat from the start
    assert plateau_index([0.2, 0.5, 0.6, 0.70]) is None          # last doubling gained 10 points
    assert plateau_index([0.5, 0.70, 0.69, 0.70, 0.72]) is None  # still moving by 2 points
    assert plateau_index([0.5, 0.72, 0.60, 0.70, 0.705]) == 3    # a dip before the plateau does not count
    assert plateau_index([0.5, 0.78, 0.765]) is None             # a decline (overfitting) is no plateau either
    assert plateau_index([0.5, float("nan"), 0.7, 0.7]) is None
    assert plateau_index([0.7]) is None
    assert plateau_index([0.70, 0.72], tol=0.03) == 0
    with pytest.raises(focalkit.InvalidArgumentError, match="first, count"):
        doubling_budgets(0, 3)


def test_ranking_stability():
    agree = ranking_stability([[0.9, 0.8, 0.85], [0.5, 0.6, 0.55], [0.1, 0.2, 0.15]])
    assert agree.tau == pytest.approx(1.0) and agree.same_best and agree.stable
    flipped = ranking_stability([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
    assert flipped.tau == pytest.approx(-1.0) and not flipped.same_best and not flipped.stable
    diverged = ranking_stability([[np.nan, 0.9], [0.5, 0.5]])
    assert diverged.ranks[:, 0].tolist() == [2.0, 1.0]


def test_verdicts_and_findings_follow_the_numbers():
    rows = (CE_NO_PRIOR, CE_PRIOR, LossConfig("alpha-CE a=0.75", "ce", alpha=0.75, group="1a"),
            LossConfig("FL g=2 a=0.25", "fl", gamma=2.0, alpha=0.25, group="1b"))
    rng = np.random.default_rng(0)
    base = 0.5 + 0.02 * rng.normal(size=(1, 1, 5, 2))
    ap = np.concatenate([base - 0.2, base, base + 0.001 * rng.normal(size=base.shape), base + 0.1])
    table = budget_table(ap[:, 0], rows, (100, 200), baseline=1)
    assert table[1][2].endswith(" -") and table[4][2].endswith(" +") and table[3][2].endswith(" =")
    assert "(baseline)" in table[2][1] and table[2][2].count("+-") == 1 and not table[2][2].endswith(("+", "-", "="))
    text = " ".join(findings(ap, rows, ("sgd",), (100, 200), baseline=1))
    assert "best focal loss FL g=2 a=0.25 vs alpha-CE a=0.75: +10.0" in text and "better" in text
    assert "rows FL g=2 a=0.25 does not beat: none" in text
    ap[2] = ap[3] + 0.05  # alpha-CE now clearly above the focal loss
    text = " ".join(findings(ap, rows, ("sgd",), (100, 200), baseline=1))
    assert "best mean alpha-CE a=0.75" in text and "alpha-CE a=0.75 (better than it)" in text
    ap[0, 0, 0, 1] = np.nan
    assert budget_table(ap[:, 0], rows, (100, 200), baseline=1)[1][3] == "diverged 1/5"


def test_difficulty_reports_the_rows_at_convergence_and_the_ones_still_moving():
    rows = (CE_PRIOR, LossConfig("FL g=2 a=0.25", "fl", gamma=2.0, alpha=0.25, group="1b"))
    seeds = np.array([0.0, 0.002, -0.002])
    flat = np.array([0.40, 0.70, 0.745, 0.75])[None, :] + seeds[:, None]     # plateau from the third budget
    rising = np.array([0.40, 0.60, 0.70, 0.80])[None, :] + seeds[:, None]    # +10 points in the last doubling
    falling = np.array([0.40, 0.72, 0.70, 0.68])[None, :] + seeds[:, None]   # -2 points in the last doubling
    rows += (LossConfig("VFL a=.75 g=2", "vfl", gamma=2.0, alpha=0.75, group="family"),)
    ap = np.stack([rising, flat, falling])[:, None]                           # (R=3, O=1, S=3, K=4)
    lines = difficulty(ap, np.zeros(ap.shape + (C,)), rows, ("adam",), (64, 128, 256, 512), CLASS_NAMES)
    text = " ".join(lines)
    assert "Best row at the largest budget (512 steps): CE, prior init with ADAM, mAP 80.0" in text
    assert "still moving" in text
    assert ("ADAM: 1 of 3 rows meet the plateau rule by 512 steps; the best of them at convergence is FL g=2 a=0.25, "
            "mAP 75.0 (plateau from 256 steps); 1 is past its peak (peak at 128 steps): the last doubling (256 to "
            "512 steps) changed it by -2.0 AP points; 1 is still rising: the last doubling (256 to 512 "
            "steps) changed it by +10.0 AP points.") in text
    table = budget_table(ap[:, 0], rows, (64, 128, 256, 512), baseline=0)
    assert [r[-1] for r in table[1:]] == ["still rising", "256", "past peak (128)"]


def test_budget_state_tells_rising_from_past_the_peak():
    assert budget_state([0.2, 0.5, 0.695, 0.70]) == ("plateau", 2)
    assert budget_state([0.5, 0.76, 0.75, 0.73]) == ("past peak", 1)      # fell by 2 points in the last doubling
    assert budget_state([0.5, 0.70, 0.74, 0.735]) == ("plateau", 2)       # fell by less than 1 point: a plateau
    assert budget_state([0.5, 0.60, 0.70]) == ("rising", None)
    assert budget_state([0.5, float("nan"), 0.7]) == ("unknown", None)
    assert budget_state([0.7]) == ("unknown", None)
    assert state_label([0.5, 0.76, 0.75, 0.73], (64, 128, 256, 512)) == "past peak (128)"
    assert state_label([0.5, 0.6, 0.7], (64, 128, 256)) == "still rising"
    assert state_label([0.5, float("nan"), 0.7], (64, 128, 256)) == "not converged"
    assert state_label([0.5, 0.7, 0.705], (64, 128, 256)) == "128"


# ------------------------------------------------------------------------------------------------ training, e2e
def test_warmup_then_constant_learning_rate():
    assert warmup_factor(0, 50) == pytest.approx(1 / 3)
    assert warmup_factor(25, 50) == pytest.approx(2 / 3)
    assert [warmup_factor(s, 50) for s in (50, 51, 10_000)] == [1.0, 1.0, 1.0]


def test_epochs_visit_every_training_image_once_in_a_fresh_order():
    it = epoch_batches(np.random.default_rng(0), 12, 4)
    epochs = [np.concatenate([next(it) for _ in range(3)]) for _ in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(12))
    assert not np.array_equal(epochs[0], epochs[1])
    short = epoch_batches(np.random.default_rng(0), 10, 4)  # the incomplete last batch is dropped
    first = [next(short) for _ in range(2)]
    assert all(len(b) == 4 for b in first) and len(set(np.concatenate(first).tolist())) == 8


def test_averaged_weights_follow_the_warmed_up_decay():
    assert ema_decay_at(0, 0.99) == pytest.approx(0.1) and ema_decay_at(10, 0.99) == pytest.approx(11 / 20)
    assert ema_decay_at(10_000, 0.99) == 0.99
    model = torch.nn.Linear(1, 1, bias=False)
    average = averaged_model(model, 0.99)
    expected = None
    for t, w in enumerate([1.0, 3.0, -2.0, 5.0]):
        with torch.no_grad():
            model.weight.fill_(w)
        average.update_parameters(model)
        # the first update copies the weights; update t >= 1 averages with d = ema_decay_at(t, decay)
        expected = w if expected is None else ema_decay_at(t, 0.99) * expected + (1 - ema_decay_at(t, 0.99)) * w
        assert average.module.weight.item() == pytest.approx(expected)


def test_training_set_is_finite_and_fixed_by_the_seed():
    cfg = TrainConfig(train_images=6, size=16)
    a, b, c = training_set(cfg, 0), training_set(cfg, 0), training_set(cfg, 1)
    assert a.images.shape == (6, 1, 16, 16) and np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_tiny_end_to_end_run_and_report(tmp_path):
    train = TrainConfig(budgets=(2, 4), batch=2, train_images=4, size=16, width=4, test_images=6, warmup=2)
    run = train_run(CE_PRIOR, "sgd", 0, train)
    assert run.ap.shape == (2,) and np.all((run.ap >= 0) & (run.ap <= 1)) and len(run.loss) == 4
    again = train_run(CE_PRIOR, "sgd", 0, train)
    np.testing.assert_array_equal(run.ap, again.ap)
    rows = (CE_NO_PRIOR, CE_PRIOR, LossConfig("FL g=2 a=0.25", "fl", gamma=2.0, alpha=0.25, group="Table 1b"), QFL)
    cfg = DetectionConfig(seeds=2, grid=rows, train=train, workers=1)
    lines = []
    result = run_detection_demo(cfg, tmp_path / "det", progress=False, echo=lines.append)
    assert result["ap"].shape == (4, 2, 2, 2) and np.all(np.isfinite(result["ap"]))
    names = sorted(p.name for p in (tmp_path / "det").iterdir())
    assert names == ["ap_vs_budget.png", "detection_example.png", "figure4_loss_cdf.png", "ranking_stability.png",
                     "report.md"]
    report = (tmp_path / "det" / "report.md").read_text()
    for needed in ("## SGD: test mAP % by training budget", "## ADAM: test mAP % by training budget",
                   "| Table 1b | FL g=2 a=0.25 |", "Plateau:", "Kendall tau", "## Difficulty"):
        assert needed in report
    assert any(ln.startswith("Wall time") for ln in lines)


def test_max_budget_doubles_the_checkpoints_up_to_it():
    assert DetectionConfig().with_max_budget(4096).train.budgets == (64, 128, 256, 512, 1024, 2048, 4096)
    assert DetectionConfig().with_max_budget(128).train.budgets == (64, 128)
    quick = DetectionConfig(train=TrainConfig(budgets=(32, 64, 128)))
    assert quick.with_max_budget(512).train.budgets == (32, 64, 128, 256, 512)
    for bad in (1000, 64, 32, 0, -128):
        with pytest.raises(focalkit.InvalidArgumentError, match=rf"max_budget: expected the first budget 64 .*got {bad}"):
            DetectionConfig().with_max_budget(bad)
    for bad in ("128", 128.0, True):
        with pytest.raises(focalkit.InvalidTypeError, match="max_budget: expected an int"):
            DetectionConfig().with_max_budget(bad)


def test_optimizers_can_be_chosen():
    assert DetectionConfig().with_optimizers(["adam"]).optimizers == ("adam",)
    assert DetectionConfig().with_optimizers(("adam", "sgd")).optimizers == ("adam", "sgd")
    for bad in ([], ["sgd", "sgd"], ["rmsprop"], ["SGD"]):
        with pytest.raises(focalkit.InvalidArgumentError, match="optimizers: expected one or both of 'sgd', 'adam'"):
            DetectionConfig().with_optimizers(bad)


def test_figure4_curves():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(900, generator=g) * 3 - 4
    labels = (torch.rand(900, generator=g) < 0.05).float()
    (fp, cp), (fn, cn) = normalised_loss_cdf(logits, labels, 2.0)
    assert len(fp) == int(labels.sum()) and len(fn) == labels.numel() - int(labels.sum())
    for c in (cp, cn):
        assert c[-1] == pytest.approx(1.0) and np.all(np.diff(c) >= -1e-12)
    (_, _), (_, cn0) = normalised_loss_cdf(logits, labels, 0.0)
    assert cn[len(cn) // 2] < cn0[len(cn0) // 2]  # gamma 2 concentrates the negatives' loss (the paper's Figure 4)
