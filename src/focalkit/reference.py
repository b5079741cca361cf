"""Float64 reference implementations: the specification every focalkit back-end is tested against.

These functions are written from the formulas of Lin et al. (2017), in float64, with no attempt at speed. The only
concessions to numerics are that log p and log(1 - p) are float64 ``logsigmoid(x)`` / ``logsigmoid(-x)`` and that
1 - p is ``sigmoid(-x)``, never a subtraction, so values stay accurate far into the tails (|logit| of several hundred).
They are the source of truth for the tests, the benchmarks and the shared test vectors of the JAX and Keras
front-ends.

Each function returns *per-element* losses (no reduction) as a float64 tensor and is differentiable with autograd,
so reference gradients are ``torch.autograd.grad(reference.f(x, ...).sum(), x)`` with ``x`` in float64.

The detection family (quality focal, varifocal, Gaussian focal and distribution focal loss) follows the same rules;
each function names its paper and the formula it writes out.

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection." ICCV 2017,
    arXiv:1708.02002. Equations (1)-(5), Appendix A (FL*) and Appendix B (gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "alpha_t",
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "binary_focal_loss",
    "distribution_focal_loss",
    "equalized_focal_factors",
    "equalized_focal_loss",
    "gaussian_focal_loss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "quality_focal_loss",
    "reduced_focal_factor",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "softmax_focal_loss",
    "varifocal_loss",
]

AlphaLike = float | Sequence[float] | Tensor | None


def _f64(value: Tensor | float | Sequence[float]) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


def alpha_t(alpha: AlphaLike, y: Tensor, class_dim_size: int | None = None) -> Tensor:
    """alpha_t = alpha y + (1 - alpha)(1 - y); 1 when alpha is None or negative (the paper's eq. 3).

    A per-class alpha of length C is broadcast along dim 1 of ``y``.
    """
    y = _f64(y)
    if alpha is None:
        return torch.ones_like(y)
    a = _f64(alpha)
    if a.ndim == 0:
        if float(a) < 0:
            return torch.ones_like(y)
    else:
        shape = [1] * y.ndim
        shape[1] = a.numel()
        a = a.reshape(shape)
    return a * y + (1 - a) * (1 - y)


def reduced_focal_factor(one_minus_p_t: Tensor, gamma: float, threshold: float | None) -> Tensor:
    """The focal factor (1 - p_t)^gamma, or with a threshold the reduced focal loss' ((1 - p_t) / threshold)^gamma
    where p_t >= threshold and 1 below (Sergievskiy & Ponamarev 2019, arXiv:1903.01347; float64)."""
    if threshold is None:
        return one_minus_p_t**gamma
    p_t = 1 - one_minus_p_t
    return torch.where(p_t >= threshold, (one_minus_p_t / threshold) ** gamma, torch.ones_like(p_t))


def sigmoid_focal_loss(x: Tensor, y: Tensor, alpha: AlphaLike = 0.25, gamma: float = 2.0,
                       reduced_threshold: float | None = None) -> Tensor:
    """FL = -alpha_t (1 - p_t)^gamma log(p_t), p = sigmoid(x), p_t = p y + (1 - p)(1 - y); per element, float64.

    For soft targets y in [0, 1] this is the torchvision generalisation:
    alpha_t (1 - p_t)^gamma * BCE(p, y) with BCE = -y log p - (1 - y) log(1 - p). With ``reduced_threshold`` the
    factor is :func:`reduced_focal_factor`'s.
    """
    x = _f64(x)
    y = _f64(y)
    p, one_minus_p = torch.sigmoid(x), torch.sigmoid(-x)
    one_minus_p_t = p * (1 - y) + one_minus_p * y  # 1 - p_t, with p_t = p y + (1 - p)(1 - y)
    bce = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
    return alpha_t(alpha, y) * reduced_focal_factor(one_minus_p_t, gamma, reduced_threshold) * bce


def binary_focal_loss(p: Tensor, y: Tensor, alpha: AlphaLike = 0.25, gamma: float = 2.0) -> Tensor:
    """FL from probabilities: -alpha_t (1 - p_t)^gamma log(p_t) with p_t = p y + (1 - p)(1 - y); float64."""
    p = _f64(p)
    y = _f64(y)
    p_t = p * y + (1 - p) * (1 - y)
    bce = -(y * torch.log(p) + (1 - y) * torch.log1p(-p))
    return alpha_t(alpha, y) * (1 - p_t) ** gamma * bce


def sigmoid_focal_loss_star(
    x: Tensor, y: Tensor, gamma: float = 2.0, beta: float = 1.0, alpha: AlphaLike = 0.25
) -> Tensor:
    """FL* (Appendix A): x_t = s x with s = 2y - 1, p*_t = sigmoid(gamma x_t + beta), FL* = -alpha_t log(p*_t) / gamma.

    Soft targets interpolate: y FL*(s = +1) + (1 - y) FL*(s = -1), each weighted by its alpha.
    """
    x = _f64(x)
    y = _f64(y)
    if alpha is None or (not isinstance(alpha, (Sequence, Tensor)) and float(alpha) < 0):
        a_pos, a_neg = torch.ones((), dtype=torch.float64), torch.ones((), dtype=torch.float64)
    else:
        a = _f64(alpha)
        if a.ndim > 0:
            shape = [1] * y.ndim
            shape[1] = a.numel()
            a = a.reshape(shape)
        a_pos, a_neg = a, 1 - a
    pos = -F.logsigmoid(gamma * x + beta) / gamma
    neg = -F.logsigmoid(-gamma * x + beta) / gamma
    return y * a_pos * pos + (1 - y) * a_neg * neg


def softmax_focal_loss(
    x: Tensor,
    target: Tensor,
    alpha: AlphaLike = None,
    gamma: float = 2.0,
    weight: Tensor | None = None,
    reduced_threshold: float | None = None,
) -> Tensor:
    """Softmax focal loss per row: -alpha_c w_c (1 - p_c)^gamma log(p_c), summed over c with target weights.

    Args:
        x: logits of shape (N, C) or (N, C, d1, ...).
        target: int64 class indices of shape (N, d1, ...) (rows equal to -100 or out of range give 0), or float class
            probabilities of the logits' shape.
        alpha: None, a float multiplying every term, or a per-class sequence of length C.
        gamma: focusing parameter.
        weight: optional per-class weight of length C (as in F.cross_entropy).
        reduced_threshold: None, or the reduced focal loss' threshold (:func:`reduced_focal_factor`).

    Returns:
        float64 losses of shape (N, d1, ...), unreduced.
    """
    x = _f64(x)
    num_classes = x.shape[1]
    p = torch.softmax(x, dim=1)
    term = -reduced_focal_factor(1 - p, gamma, reduced_threshold) * torch.log_softmax(x, dim=1)
    shape = [1] * x.ndim
    shape[1] = num_classes
    if alpha is not None:
        a = _f64(alpha)
        term = term * (a.reshape(shape) if a.ndim > 0 else a)
    if weight is not None:
        term = term * _f64(weight).reshape(shape)
    if target.is_floating_point():
        q = _f64(target)
    else:
        valid = (target >= 0) & (target < num_classes)
        q = torch.nn.functional.one_hot(torch.where(valid, target, 0), num_classes).to(torch.float64)
        q = q * valid.unsqueeze(-1)
        q = q.movedim(-1, 1)
    return (q * term).sum(dim=1)


# ---------------------------------------------------------------------------------------------- detection family
def _bce_with_logits(x: Tensor, y: Tensor) -> Tensor:
    """BCE(sigmoid(x), y) = -y log p - (1 - y) log(1 - p), with log p = logsigmoid(x), log(1 - p) = logsigmoid(-x)."""
    return -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))


def quality_focal_loss(x: Tensor, y: Tensor, beta: float = 2.0) -> Tensor:
    """Quality Focal Loss per element, float64: QFL = |y - p|^beta BCE(p, y), p = sigmoid(x), quality y in [0, 1].

    Li et al. 2020 ("Generalized Focal Loss", eq. 5): QFL(sigma) = -|y - sigma|^beta ((1 - y) log(1 - sigma)
    + y log sigma). y - p is evaluated as y (1 - p) - (1 - y) p with 1 - p = sigmoid(-x) (the same number, without
    the rounding of 1 - p near p = 1).
    """
    x = _f64(x)
    y = _f64(y)
    p, one_minus_p = torch.sigmoid(x), torch.sigmoid(-x)
    y_minus_p = y * one_minus_p - (1 - y) * p
    return y_minus_p.abs() ** beta * _bce_with_logits(x, y)


def varifocal_loss(
    x: Tensor, q: Tensor, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True,
    labels: Tensor | None = None,
) -> Tensor:
    """Varifocal Loss per element, float64 (Zhang et al. 2021, VarifocalNet, eq. 2).

    VFL(p, q) = -q (q log p + (1 - q) log(1 - p)) for q > 0 and -alpha p^gamma log(1 - p) for q = 0, i.e.
    w BCE(p, q) with w = q (or 1 without ``iou_weighted``) on positives and alpha p^gamma on negatives.
    With ``labels`` (YOLO-style), positives are the elements whose label is 1 and the weight is
    alpha p^gamma (1 - label) + w label, with the same BCE(p, q).
    """
    x = _f64(x)
    q = _f64(q)
    label = (q > 0).to(torch.float64) if labels is None else _f64(labels)
    positive_weight = q if iou_weighted else torch.ones_like(q)
    weight = label * positive_weight + (1 - label) * alpha * torch.sigmoid(x) ** gamma
    return weight * _bce_with_logits(x, q)


def gaussian_focal_loss(
    x: Tensor, y: Tensor, alpha: float = 2.0, beta: float = 4.0, *, from_logits: bool = True
) -> Tensor:
    """Gaussian focal loss (CornerNet / CenterNet heatmaps) per element, float64.

    Law & Deng 2018 (CornerNet, eq. 1), Zhou et al. 2019 (CenterNet):
    L = -(1 - p)^alpha log p where y = 1 (a peak), L = -(1 - y)^beta p^alpha log(1 - p) elsewhere; the sum is divided
    by the number of peaks. ``x`` are logits (p = sigmoid(x)) or, with ``from_logits=False``, probabilities.
    """
    x = _f64(x)
    y = _f64(y)
    if from_logits:
        p, one_minus_p = torch.sigmoid(x), torch.sigmoid(-x)
        log_p, log_one_minus_p = F.logsigmoid(x), F.logsigmoid(-x)
    else:
        p, one_minus_p = x, 1 - x
        log_p, log_one_minus_p = torch.log(x), torch.log1p(-x)
    peak = y == 1
    positive = -(one_minus_p**alpha) * log_p
    negative = -((1 - y) ** beta) * p**alpha * log_one_minus_p
    return torch.where(peak, positive, negative)


def distribution_focal_loss(x: Tensor, y: Tensor) -> Tensor:
    """Distribution Focal Loss per row, float64 (Li et al. 2020, "Generalized Focal Loss", eq. 6).

    x: (N, n + 1, d1, ...) logits over the bins 0..n; y: (N, d1, ...) continuous targets in [0, n], clamped to
    [0, n - 0.01] (focalkit's convention, as YOLOv8) so that y_{i+1} = y_i + 1 stays a bin.
    DFL = -((y_{i+1} - y) log S_i + (y - y_i) log S_{i+1}), y_i = floor(y), S = softmax(x) along dim 1.
    """
    x = _f64(x)
    n = x.shape[1] - 1
    y = _f64(y).clamp(0, n - 0.01)
    left = y.floor()
    right = left + 1
    log_s = torch.log_softmax(x, dim=1)
    log_s_left = log_s.gather(1, left.long().unsqueeze(1)).squeeze(1)
    log_s_right = log_s.gather(1, right.long().unsqueeze(1)).squeeze(1)
    return -((right - y) * log_s_left + (y - left) * log_s_right)


# ---------------------------------------------------------------------------------------------- equalized focal loss
def equalized_focal_factors(
    pos_grad: Tensor, neg_grad: Tensor, gamma_b: float = 2.0, scale: float = 8.0
) -> tuple[Tensor, Tensor, Tensor]:
    """(g, gamma, weight) per class from accumulated gradient magnitudes, float64 (Li et al. 2022).

    g_j = clamp(P_j / (N_j + 1e-10), 0, 1), the accumulated positive-to-negative gradient ratio of class j, clipped
    linearly to [0, 1] as the authors' code (ModelTC EOD / United-Perception ``EqualizedFocalLoss.collect_grad``)
    does; gamma_j = gamma_b + scale (1 - g_j) (the focusing factor); weight_j = gamma_j / gamma_b (the weighting
    factor). Before any statistics the authors' code starts from g_j = 1 (gamma_j = gamma_b).
    """
    g = (_f64(pos_grad) / (_f64(neg_grad) + 1e-10)).clamp(0.0, 1.0)
    gamma = gamma_b + scale * (1 - g)
    return g, gamma, gamma / gamma_b


def equalized_focal_loss(
    x: Tensor, y: Tensor, gamma: Tensor | Sequence[float], weight: Tensor | Sequence[float] | None = None,
    alpha: AlphaLike = 0.25,
) -> Tensor:
    """Equalized focal loss per element, float64 (Li et al. 2022, "Equalized Focal Loss for Dense Long-Tailed
    Object Detection", CVPR, arXiv:2201.02593).

    EFL = -alpha_t w_j (1 - p_t)^gamma_j log(p_t), p = sigmoid(x), with the per-class focusing factor gamma_j and
    weighting factor w_j (``weight``, 1 when None) of the element's class j = its index along dim 1; for soft targets
    log(p_t) is replaced by -BCE(p, y), as in :func:`sigmoid_focal_loss`.
    """
    x = _f64(x)
    y = _f64(y)
    shape = [1] * x.ndim
    shape[1] = x.shape[1]
    g = _f64(gamma).reshape(shape)
    w = torch.ones_like(g) if weight is None else _f64(weight).reshape(shape)
    p, one_minus_p = torch.sigmoid(x), torch.sigmoid(-x)
    one_minus_p_t = p * (1 - y) + one_minus_p * y
    return alpha_t(alpha, y) * w * one_minus_p_t**g * _bce_with_logits(x, y)


# ---------------------------------------------------------------------------------------------- classification family
def asymmetric_loss(
    x: Tensor, y: Tensor, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float | None = 0.05, *,
    detach_focal_weight: bool = False,
) -> Tensor:
    """Asymmetric loss per element, float64 (Ridnik, Ben-Baruch et al. 2021, "Asymmetric Loss For Multi-Label
    Classification", ICCV, arXiv:2009.14119, section 3).

    L = -y L+ - (1 - y) L-, L+ = (1 - p)^gamma_pos log(p), L- = p_m^gamma_neg log(1 - p_m), p = sigmoid(x), with the
    shifted probability p_m = max(p - m, 0), m = ``clip`` (0 or None: no shift). 1 - p is sigmoid(-x) and
    1 - p_m = (1 - p) + m where p > m (the same numbers, without the rounding of a subtraction from 1). With
    ``detach_focal_weight`` the focusing weights (1 - p)^gamma_pos and p_m^gamma_neg are detached (constants for
    autograd), as the authors' ``disable_torch_grad_focal_loss`` makes them.
    """
    x = _f64(x)
    y = _f64(y)
    m = 0.0 if clip is None else float(clip)
    p, one_minus_p = torch.sigmoid(x), torch.sigmoid(-x)
    weight_pos = one_minus_p**gamma_pos
    if m > 0:
        above = p > m
        p_m = torch.where(above, p - m, torch.ones_like(p))  # max(p - m, 0) where used; the term is 0 elsewhere
        weight_neg = torch.where(above, p_m**gamma_neg, torch.zeros_like(p))
        log_one_minus_p_m = torch.where(above, torch.log(one_minus_p + m), torch.zeros_like(p))
    else:
        weight_neg = p**gamma_neg
        log_one_minus_p_m = F.logsigmoid(-x)
    if detach_focal_weight:
        weight_pos, weight_neg = weight_pos.detach(), weight_neg.detach()
    return -(y * weight_pos * F.logsigmoid(x) + (1 - y) * weight_neg * log_one_minus_p_m)


def _smoothed_one_hot(target: Tensor, num_classes: int, label_smoothing: float, ignore_index: int) -> Tensor:
    """(N, C, d1, ...) float64: one-hot (1 - eps) + eps / C on the valid rows, 0 on ``ignore_index`` rows."""
    valid = target != ignore_index
    one_hot = F.one_hot(torch.where(valid, target, 0), num_classes).movedim(-1, 1).to(torch.float64)
    return (one_hot * (1 - label_smoothing) + label_smoothing / num_classes) * valid.unsqueeze(1)


def asymmetric_loss_single_label(
    x: Tensor, target: Tensor, gamma_pos: float = 0.0, gamma_neg: float = 4.0, label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    """Single-label asymmetric loss per row, float64 (the ASL authors' ``ASLSingleLabel``).

    L = -sum_c q_c w_c log p_c, p = softmax(x) along dim 1, w_t = (1 - p_t)^gamma_pos for the target class t and
    w_c = p_c^gamma_neg for the others, q = one-hot (1 - eps) + eps / C (eps = ``label_smoothing``). 1 - p_t is the
    sum of the other classes' probabilities. Rows whose target is ``ignore_index`` give 0.
    """
    x = _f64(x)
    num_classes = x.shape[1]
    p, log_p = torch.softmax(x, dim=1), torch.log_softmax(x, dim=1)
    valid = target != ignore_index
    is_target = F.one_hot(torch.where(valid, target, 0), num_classes).movedim(-1, 1).bool()
    one_minus_p_t = (p * ~is_target).sum(dim=1, keepdim=True)
    weight = torch.where(is_target, one_minus_p_t**gamma_pos, p**gamma_neg)
    q = _smoothed_one_hot(target, num_classes, label_smoothing, ignore_index)
    return -(q * weight * log_p).sum(dim=1)


def poly1_cross_entropy(
    x: Tensor, target: Tensor, epsilon: float = 1.0, weight: Tensor | Sequence[float] | None = None,
    label_smoothing: float = 0.0, ignore_index: int = -100,
) -> Tensor:
    """Poly-1 cross-entropy per row, float64 (Leng et al. 2022, "PolyLoss", ICLR, arXiv:2204.12511: Poly-1 and
    the paper's code).

    Poly-1 = CE + epsilon (1 - p_t). With the targets q (one-hot, or class probabilities; either smoothed as
    F.cross_entropy smooths them, q (1 - eps) + eps / C) and class weights w_c (F.cross_entropy's ``weight``):
    L = sum_c w_c q_c (-log p_c + epsilon (1 - p_c)), which for w = 1 and q summing to 1 is the paper's code,
    CE + epsilon (1 - p_t) with p_t = sum_c q_c p_c. 1 - p_c is -expm1(log p_c). ``ignore_index`` rows give 0.
    """
    x = _f64(x)
    num_classes = x.shape[1]
    log_p = torch.log_softmax(x, dim=1)
    if target.is_floating_point():
        q = _f64(target) * (1 - label_smoothing) + label_smoothing / num_classes
    else:
        q = _smoothed_one_hot(target, num_classes, label_smoothing, ignore_index)
    if weight is not None:
        shape = [1] * x.ndim
        shape[1] = num_classes
        q = q * _f64(weight).reshape(shape)
    return (q * (-log_p + epsilon * -torch.expm1(log_p))).sum(dim=1)


def poly1_focal_loss(
    x: Tensor, y: Tensor, epsilon: float = 1.0, alpha: AlphaLike = 0.25, gamma: float = 2.0
) -> Tensor:
    """Poly-1 focal loss per element, float64 (Leng et al. 2022, "PolyLoss": Poly-1 focal loss and its
    code).

    Poly-1 = FL + epsilon (1 - p_t)^(gamma + 1), FL the (alpha-balanced) sigmoid focal loss of
    :func:`sigmoid_focal_loss` and 1 - p_t = p (1 - y) + (1 - p) y; the poly term is not alpha-weighted.
    """
    x = _f64(x)
    y = _f64(y)
    one_minus_p_t = torch.sigmoid(x) * (1 - y) + torch.sigmoid(-x) * y
    return sigmoid_focal_loss(x, y, alpha, gamma) + epsilon * one_minus_p_t ** (gamma + 1)
