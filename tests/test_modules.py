"""Modules equal their functions; the YOLOv5-style and num_classes wrapper patterns work with only an import change."""

from __future__ import annotations

import torch
import torch.nn as nn

import focalkit
from focalkit import FocalLoss


def test_modules_equal_functions():
    x = torch.randn(6, 4)
    y = torch.rand(6, 4)
    t = torch.tensor([0, 3, -100, 2, 1, 4])
    torch.testing.assert_close(
        focalkit.SigmoidFocalLoss(alpha=0.3, gamma=1.5, reduction="sum")(x, y), focalkit.sigmoid_focal_loss(x, y, 0.3, 1.5, "sum")
    )
    torch.testing.assert_close(
        focalkit.SigmoidFocalLoss(alpha=[0.1, 0.2, 0.3, 0.4])(x, t, normalizer=3.0),
        focalkit.sigmoid_focal_loss(x, t, [0.1, 0.2, 0.3, 0.4], 2.0, "mean", normalizer=3.0),
    )
    ts = torch.tensor([0, 3, -100, 2, 1, 0])
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    torch.testing.assert_close(
        focalkit.SoftmaxFocalLoss(w, label_smoothing=0.1, gamma=1.0, alpha=0.5)(x, ts),
        focalkit.softmax_focal_loss(x, ts, w, label_smoothing=0.1, gamma=1.0, alpha=0.5),
    )
    p = torch.sigmoid(x)
    torch.testing.assert_close(focalkit.BinaryFocalLoss(0.25, 2.0)(p, y.round()), focalkit.binary_focal_loss(p, y.round()))
    torch.testing.assert_close(
        focalkit.SigmoidFocalLossStar(4.0, 0.0, reduction="none")(x, y), focalkit.sigmoid_focal_loss_star(x, y, 4.0, 0.0)
    )


def test_module_buffers_follow_to():
    module = focalkit.SoftmaxFocalLoss(weight=[1.0, 2.0], alpha=[0.5, 0.5]).to(torch.float64)
    assert module.weight.dtype == torch.float64 and module.alpha.dtype == torch.float64
    assert "alpha" in dict(module.named_buffers())


class YoloFocalLoss(nn.Module):
    """YOLOv5's `FocalLoss` wrapper around `nn.BCEWithLogitsLoss`, same behaviour, used only as the expected value."""

    def __init__(self, loss_fcn, gamma=1.5, alpha=0.25):
        super().__init__()
        self.loss_fcn = loss_fcn
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = loss_fcn.reduction
        self.loss_fcn.reduction = "none"

    def forward(self, pred, true):
        loss = self.loss_fcn(pred, true)
        pred_prob = torch.sigmoid(pred)
        p_t = true * pred_prob + (1 - true) * (1 - pred_prob)
        alpha_factor = true * self.alpha + (1 - true) * (1 - self.alpha)
        modulating_factor = (1.0 - p_t) ** self.gamma
        loss *= alpha_factor * modulating_factor
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


def test_yolo_style_bce_wrapper_pattern():
    pred = torch.randn(8, 5, dtype=torch.float64)
    true = (torch.rand(8, 5) > 0.6).double()
    for reduction in ("mean", "sum", "none"):
        for kwargs in ({}, {"pos_weight": torch.tensor([1.0, 2.0, 1.0, 3.0, 1.0], dtype=torch.float64)}):
            ours_bce = nn.BCEWithLogitsLoss(reduction=reduction, **kwargs)
            criterion = FocalLoss(ours_bce, gamma=1.5, alpha=0.25)
            assert ours_bce.reduction == reduction  # the wrapped loss is read, not modified
            expected = YoloFocalLoss(nn.BCEWithLogitsLoss(reduction=reduction, **kwargs), gamma=1.5, alpha=0.25)(pred, true)
            torch.testing.assert_close(criterion(pred, true), expected)
    criterion = FocalLoss(loss_fcn=nn.BCEWithLogitsLoss(), gamma=2.0, alpha=0.75)  # keyword form, alpha above 0.5
    torch.testing.assert_close(criterion(pred, true), YoloFocalLoss(nn.BCEWithLogitsLoss(), 2.0, 0.75)(pred, true))


def test_num_classes_wrapper_pattern():
    """FocalLoss(num_classes, gamma, alpha, reduction) one-hot encodes integer targets."""
    num_classes = 5
    inputs = torch.randn(10, num_classes, dtype=torch.float64)
    targets = torch.randint(0, num_classes, (10,))
    criterion = FocalLoss(num_classes, gamma=2, alpha=0.25, reduction="mean")
    one_hot = nn.functional.one_hot(targets, num_classes=num_classes).double()
    expected = focalkit.reference.sigmoid_focal_loss(inputs, one_hot, 0.25, 2.0).mean()
    torch.testing.assert_close(criterion(inputs, targets), expected)
    torch.testing.assert_close(criterion(inputs, one_hot), expected)


def test_focal_loss_softmax_form():
    x = torch.randn(5, 3)
    t = torch.tensor([0, 1, 2, 1, 0])
    torch.testing.assert_close(FocalLoss(gamma=2.0, form="softmax")(x, t), focalkit.softmax_focal_loss(x, t, gamma=2.0))
