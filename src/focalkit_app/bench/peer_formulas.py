"""Other libraries' published loss formulas, written out in PyTorch, for parity tests and benchmark rows.

mmdetection, CenterNet, ultralytics (YOLOv8), the ASL authors, timm and the PolyLoss paper cannot be installed beside
the CPU build of torch in this project's environment (they import torchvision or need CUDA builds), so their
formulas are transcribed here, one function per published function, with their clamps, epsilons, in-place updates
and reductions. ``tests/test_detection_family.py`` and ``tests/test_classification_family.py`` check focalkit against
them; ``focalkit bench --op family`` times them eager and compiled beside focalkit.

Example:
    >>> import torch
    >>> x = torch.zeros(2, 3); y = torch.zeros(2, 3)
    >>> float(mmdet_varifocal_loss(x, y, reduction="sum")) > 0
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["mmdet_weight_reduce_loss", "mmdet_quality_focal_loss", "mmdet_quality_focal_loss_tensor_target", "mmdet_varifocal_loss", "mmdet_gaussian_focal_loss", "mmdet_distribution_focal_loss", "centernet_sigmoid", "centernet_neg_loss", "yolo_varifocal_loss", "yolo_dfl", "asl_authors_asymmetric_loss", "asl_authors_asymmetric_loss_optimized", "asl_authors_single_label", "timm_asymmetric_loss_multi_label_classic", "timm_asymmetric_loss_multi_label", "timm_poly_cross_entropy", "timm_poly_binary_cross_entropy", "paper_poly1_cross_entropy", "paper_poly1_focal_loss", "keras_categorical_focal_crossentropy"]


# ---------------------------------------------------------------------------------------------- detection
# Written out from memory of the peers' code (mmdetection 3.x mmdet/models/losses/{utils,gfocal_loss,varifocal_loss,
# gaussian_focal_loss}.py; CenterNet src/lib/models/losses.py and utils.py; ultralytics 8.x ultralytics/utils/loss.py
# and utils/tal.py), not copied from a checkout: the shapes of the computations, the clamps and epsilons are theirs.
def mmdet_weight_reduce_loss(loss, weight=None, reduction="mean", avg_factor=None):
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        if reduction == "mean":
            loss = loss.mean()
        elif reduction == "sum":
            loss = loss.sum()
    else:
        if reduction == "mean":
            eps = torch.finfo(torch.float32).eps
            loss = loss.sum() / (avg_factor + eps)
        elif reduction != "none":
            raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


def mmdet_quality_focal_loss(pred, target, beta=2.0):
    assert len(target) == 2, "target for QFL must be a tuple of two elements, including category label and quality label"
    label, score = target
    pred_sigmoid = pred.sigmoid()
    scale_factor = pred_sigmoid
    zerolabel = scale_factor.new_zeros(pred.shape)
    loss = F.binary_cross_entropy_with_logits(pred, zerolabel, reduction="none") * scale_factor.pow(beta)
    bg_class_ind = pred.size(1)
    pos = ((label >= 0) & (label < bg_class_ind)).nonzero().squeeze(1)
    pos_label = label[pos].long()
    scale_factor = score[pos] - pred_sigmoid[pos, pos_label]
    loss[pos, pos_label] = F.binary_cross_entropy_with_logits(
        pred[pos, pos_label], score[pos], reduction="none") * scale_factor.abs().pow(beta)
    loss = loss.sum(dim=1, keepdim=False)
    return loss


def mmdet_quality_focal_loss_tensor_target(pred, target, beta=2.0, activated=False):
    assert pred.size() == target.size()
    if activated:
        pred_sigmoid = pred
        loss_function = F.binary_cross_entropy
    else:
        pred_sigmoid = pred.sigmoid()
        loss_function = F.binary_cross_entropy_with_logits
    scale_factor = pred_sigmoid
    target = target.type_as(pred)
    zerolabel = scale_factor.new_zeros(pred.shape)
    loss = loss_function(pred, zerolabel, reduction="none") * scale_factor.pow(beta)
    pos = target != 0
    scale_factor = target[pos] - pred_sigmoid[pos]
    loss[pos] = loss_function(pred[pos], target[pos], reduction="none") * scale_factor.abs().pow(beta)
    loss = loss.sum(dim=1, keepdim=False)
    return loss


def mmdet_varifocal_loss(pred, target, weight=None, alpha=0.75, gamma=2.0, iou_weighted=True, reduction="mean",
                         avg_factor=None):
    assert pred.size() == target.size()
    pred_sigmoid = pred.sigmoid()
    target = target.type_as(pred)
    if iou_weighted:
        focal_weight = target * (target > 0.0).float() + \
            alpha * (pred_sigmoid - target).abs().pow(gamma) * (target <= 0.0).float()
    else:
        focal_weight = (target > 0.0).float() + \
            alpha * (pred_sigmoid - target).abs().pow(gamma) * (target <= 0.0).float()
    loss = F.binary_cross_entropy_with_logits(pred, target, reduction="none") * focal_weight
    return mmdet_weight_reduce_loss(loss, weight, reduction, avg_factor)


def mmdet_gaussian_focal_loss(pred, gaussian_target, alpha=2.0, gamma=4.0, pos_weight=1.0, neg_weight=1.0):
    eps = 1e-12
    pos_weights = gaussian_target.eq(1)
    neg_weights = (1 - gaussian_target).pow(gamma)
    pos_loss = -(pred + eps).log() * (1 - pred).pow(alpha) * pos_weights
    neg_loss = -(1 - pred + eps).log() * pred.pow(alpha) * neg_weights
    return pos_weight * pos_loss + neg_weight * neg_loss


def mmdet_distribution_focal_loss(pred, label):
    dis_left = label.long()
    dis_right = dis_left + 1
    weight_left = dis_right.float() - label
    weight_right = label - dis_left.float()
    loss = F.cross_entropy(pred, dis_left, reduction="none") * weight_left \
        + F.cross_entropy(pred, dis_right, reduction="none") * weight_right
    return loss


def centernet_sigmoid(x):
    return torch.clamp(x.sigmoid(), min=1e-4, max=1 - 1e-4)


def centernet_neg_loss(pred, gt):
    pos_inds = gt.eq(1).float()
    neg_inds = gt.lt(1).float()
    neg_weights = torch.pow(1 - gt, 4)
    loss = 0
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * pos_inds
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights * neg_inds
    num_pos = pos_inds.float().sum()
    pos_loss = pos_loss.sum()
    neg_loss = neg_loss.sum()
    if num_pos == 0:
        loss = loss - neg_loss
    else:
        loss = loss - (pos_loss + neg_loss) / num_pos
    return loss


def yolo_varifocal_loss(pred_score, gt_score, label, gamma=2.0, alpha=0.75, upcast=True):
    """``upcast=False`` skips the peer's ``.float()`` (meant to lift fp16 under AMP out of autocast), which would
    round float64 inputs to float32; the float64 parity below evaluates the formula itself."""
    cast = (lambda t: t.float()) if upcast else (lambda t: t)  # noqa: E731
    weight = alpha * pred_score.sigmoid().pow(gamma) * (1 - label) + gt_score * label
    # (the peer wraps this in ``with autocast(enabled=False):``, a no-op on CPU float inputs)
    loss = (F.binary_cross_entropy_with_logits(cast(pred_score), cast(gt_score), reduction="none") * weight)
    return loss.mean(1).sum()


def yolo_dfl(pred_dist, target, reg_max=16):
    target = target.clamp_(0, reg_max - 1 - 0.01)
    tl = target.long()  # target left
    tr = tl + 1  # target right
    wl = tr - target  # weight left
    wr = 1 - wl  # weight right
    return (
        F.cross_entropy(pred_dist, tl.view(-1), reduction="none").view(tl.shape) * wl
        + F.cross_entropy(pred_dist, tr.view(-1), reduction="none").view(tl.shape) * wr
    ).mean(-1, keepdim=True)


# ------------------------------------------------------------------------------------ classification
# Written out from memory of the peers' published code (Alibaba-MIIL/ASL src/loss_functions/losses.py; timm
# timm/loss/asymmetric_loss.py and timm/loss/poly_loss.py; the PolyLoss paper's code listing, TensorFlow, translated
# to torch here), not imported or copied from a checkout: the shapes of the computations, clamps, epsilons, in-place
# updates and reductions are theirs. ``upcast=False`` skips a peer's ``.float()`` (meant to lift fp16 out of half
# precision), which would round float64 inputs to float32; the float64 parity below evaluates the formula itself.
def asl_authors_asymmetric_loss(x, y, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8):
    """The authors' ``AsymmetricLoss.forward``; in the current file the ``disable_torch_grad_focal_loss`` lines are
    commented out, so the gradient always flows through the focusing weight."""
    x_sigmoid = torch.sigmoid(x)
    xs_pos = x_sigmoid
    xs_neg = 1 - x_sigmoid
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    los_pos = y * torch.log(xs_pos.clamp(min=eps))
    los_neg = (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        pt0 = xs_pos * y
        pt1 = xs_neg * (1 - y)  # pt = p if t > 0 else 1-p
        pt = pt0 + pt1
        one_sided_gamma = gamma_pos * y + gamma_neg * (1 - y)
        one_sided_w = torch.pow(1 - pt, one_sided_gamma)
        loss *= one_sided_w
    return -loss.sum()


def asl_authors_asymmetric_loss_optimized(x, y, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8,
                                          disable_torch_grad_focal_loss=False):
    """The authors' ``AsymmetricLossOptimized.forward`` (in-place updates; the flag switches grad off globally)."""
    targets = y
    anti_targets = 1 - y
    xs_pos = torch.sigmoid(x)
    xs_neg = 1.0 - xs_pos
    if clip is not None and clip > 0:
        xs_neg.add_(clip).clamp_(max=1)
    loss = targets * torch.log(xs_pos.clamp(min=eps))
    loss.add_(anti_targets * torch.log(xs_neg.clamp(min=eps)))
    if gamma_neg > 0 or gamma_pos > 0:
        if disable_torch_grad_focal_loss:
            torch.set_grad_enabled(False)
        xs_pos = xs_pos * targets
        xs_neg = xs_neg * anti_targets
        asymmetric_w = torch.pow(1 - xs_pos - xs_neg, gamma_pos * targets + gamma_neg * anti_targets)
        if disable_torch_grad_focal_loss:
            torch.set_grad_enabled(True)
        loss *= asymmetric_w
    return -loss.sum()


def asl_authors_single_label(inputs, target, gamma_pos=0, gamma_neg=4, eps=0.1, reduction="mean"):
    """The authors' ``ASLSingleLabel.forward`` with label smoothing done out of place (an earlier
    version smoothed ``targets_classes`` in place with ``mul_`` / ``add_``, which autograd had saved, and raised in
    backward for eps > 0)."""
    num_classes = inputs.size()[-1]
    log_preds = torch.log_softmax(inputs, dim=-1)
    targets_classes = torch.zeros_like(inputs).scatter_(1, target.long().unsqueeze(1), 1)
    targets = targets_classes
    anti_targets = 1 - targets
    xs_pos = torch.exp(log_preds)
    xs_neg = 1 - xs_pos
    xs_pos = xs_pos * targets
    xs_neg = xs_neg * anti_targets
    asymmetric_w = torch.pow(1 - xs_pos - xs_neg, gamma_pos * targets + gamma_neg * anti_targets)
    log_preds = log_preds * asymmetric_w
    if eps > 0:  # label smoothing
        targets_classes = targets_classes.mul(1 - eps).add(eps / num_classes)
    loss = -targets_classes.mul(log_preds)
    loss = loss.sum(dim=-1)
    if reduction == "mean":
        loss = loss.mean()
    return loss


def timm_asymmetric_loss_multi_label_classic(x, y, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8,
                                             disable_torch_grad_focal_loss=False):
    """timm's long-standing ``AsymmetricLossMultiLabel``: the authors' formula, returning ``-loss.sum()``."""
    xs_pos = torch.sigmoid(x)
    xs_neg = 1 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    loss = y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not disable_torch_grad_focal_loss):
            pt = xs_pos * y + xs_neg * (1 - y)
            one_sided_w = torch.pow(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
        loss *= one_sided_w
    return -loss.sum()


def timm_asymmetric_loss_multi_label(x, y, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8, smoothing=0.0,
                                     reduction="batchmean", weight=None, upcast=True):
    """timm's current ``AsymmetricLossMultiLabel`` (float32 compute, smoothing towards 0.5, per-class weight,
    reductions 'batchmean' (default: sum / N), 'sum', 'mean', 'none')."""
    if upcast:
        x, y = x.float(), y.float()
    if smoothing:
        y = y * (1.0 - smoothing) + 0.5 * smoothing
    xs_pos = torch.sigmoid(x)
    xs_neg = 1 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    loss = y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))
    if gamma_neg > 0 or gamma_pos > 0:
        pt = xs_pos * y + xs_neg * (1 - y)
        loss = loss * torch.pow(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
    loss = -loss
    if weight is not None:
        loss = loss * weight
    if reduction == "batchmean":
        return loss.sum() / x.shape[0]
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


def timm_poly_cross_entropy(x, target, epsilon=2.0, smoothing=0.0, reduction="mean", upcast=True):
    """timm's ``PolyCrossEntropy``: p_t = sum_c target_c p_c with the smoothed one-hot."""
    log_probs = F.log_softmax(x.float() if upcast else x, dim=-1)
    if target.shape != x.shape:
        num_classes = x.shape[-1]
        target = F.one_hot(target.long(), num_classes).to(log_probs.dtype)
        if smoothing:
            target = target * (1.0 - smoothing) + smoothing / num_classes
    target = target.to(log_probs.dtype)
    loss = -(target * log_probs).sum(dim=-1)
    pt = (target * log_probs.exp()).sum(dim=-1)
    loss = loss + epsilon * (1.0 - pt)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def timm_poly_binary_cross_entropy(x, target, epsilon=2.0, gamma=0.0, alpha=None, reduction="mean"):
    """timm's ``PolyBinaryCrossEntropy`` (float32 cast skipped): alpha_t weighs the focal *and* the poly term."""
    y = target
    p = torch.sigmoid(x)
    one_minus_pt = 1.0 - (y * p + (1.0 - y) * (1.0 - p))
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    poly = one_minus_pt
    if gamma:
        focal = one_minus_pt**gamma
        loss = loss * focal
        poly = poly * focal
    loss = loss + epsilon * poly
    if alpha is not None:
        loss = loss * (y * alpha + (1.0 - y) * (1.0 - alpha))
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def paper_poly1_cross_entropy(logits, labels, epsilon):
    """PolyLoss paper's code: pt = reduce_sum(labels * softmax(logits)); CE = softmax_cross_entropy_with_logits;
    Poly1 = CE + epsilon (1 - pt). ``labels`` are (smoothed) one-hot rows."""
    pt = (labels * torch.softmax(logits, dim=-1)).sum(dim=-1)
    ce = -(labels * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    return ce + epsilon * (1 - pt)


def paper_poly1_focal_loss(logits, labels, epsilon, gamma=2.0, alpha=0.25):
    """PolyLoss paper's code: FL (alpha-balanced, torchvision's form) + epsilon (1 - pt)^(gamma + 1)."""
    p = torch.sigmoid(logits)
    ce_loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    pt = labels * p + (1 - labels) * (1 - p)
    fl = ce_loss * ((1 - pt) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * labels + (1 - alpha) * (1 - labels)
        fl = alpha_t * fl
    return fl + epsilon * torch.pow(1 - pt, gamma + 1)


# ---------------------------------------------------------------------------------------------- soft targets
def keras_categorical_focal_crossentropy(logits, y_true, alpha=0.25, gamma=2.0, epsilon=1e-7):
    """Keras 3's ``categorical_focal_crossentropy(from_logits=True)`` (keras/src/losses/losses.py), written with torch
    operations (Keras's torch back-end runs the same ones): softmax, renormalise, clip to [eps, 1 - eps], then
    sum_c alpha (1 - p_c)^gamma (-y_c log p_c) over the last axis. Soft or one-hot ``y_true`` of the logits' shape."""
    output = torch.softmax(logits, dim=-1)
    output = output / output.sum(dim=-1, keepdim=True)
    output = output.clamp(epsilon, 1.0 - epsilon)
    cce = -y_true * torch.log(output)
    modulating_factor = torch.pow(1.0 - output, gamma)
    weighting_factor = modulating_factor * alpha
    return (weighting_factor * cce).sum(dim=-1)
