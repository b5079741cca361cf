"""Equalized Focal Loss of Li et al. (2022): a sigmoid focal loss whose focusing and weighting factors are set per
class from the accumulated gradient statistics of that class.

.. math::

    g_j = \\operatorname{clamp}\\!\\left(\\frac{P_j}{N_j + 10^{-10}},\\, 0,\\, 1\\right),\\qquad
    \\gamma_j = \\gamma_b + s\\,(1 - g_j),\\qquad w_j = \\frac{\\gamma_j}{\\gamma_b},\\qquad
    \\mathrm{EFL} = -\\alpha_t\\, w_j\\, (1 - p_t)^{\\gamma_j} \\log p_t

P_j and N_j are the magnitudes of the gradient of the loss with respect to the logits of class j, summed over the
positive and the negative elements of every batch seen so far (soft targets y split each element's |gradient| as
y |g| positive, (1 - y) |g| negative). A rare class collects little positive gradient against a large negative one:
small g_j, so a larger gamma_j (down-weighting its many easy negatives) and a larger weight w_j; a frequent class
tends to g_j = 1 and the plain focal loss with gamma_b.

The mapping of the ratio is the authors' code's (ModelTC EOD / United-Perception ``EqualizedFocalLoss.collect_grad``:
``pos_neg = clamp(pos_grad / (neg_grad + 1e-10), 0, 1)``), a linear clip, not the sigmoid mapping
1 / (1 + exp(-k (r - mu))) of EQL v2 (Tan et al. 2021), which the EFL paper does not use. g_j starts at 1 (as the
authors' ``pos_neg`` buffer), so before the first update every gamma_j = gamma_b and w_j = 1.

References:
  B. Li, Y. Yao, J. Tan, G. Zhang, F. Yu, J. Lu, Y. Luo. Equalized Focal Loss for Dense Long-Tailed Object
  Detection. CVPR 2022 (arXiv:2201.02593).
"""

from __future__ import annotations

import functools
import numbers

import torch
import torch.distributed as dist
from torch import Tensor, nn

from focalkit._checks import check_floating, check_ignore_index, check_number, describe, per_class_buffer
from focalkit.errors import argument_error, type_error
from focalkit.functional.equalized import equalized_focal_loss
from focalkit.semantics import check_bool, check_reduction, check_sigmoid_alpha

__all__ = ["EqualizedFocalLoss", "equalized_focal_statistics"]

RATIO_EPS = 1e-10  # the authors' code: pos_grad / (neg_grad + 1e-10)


def equalized_focal_statistics(grad: Tensor, targets: Tensor, ignore_index: int | None = -100) -> tuple[Tensor, Tensor]:
    """Per-class positive and negative gradient magnitudes of one batch: (P, N), float64 vectors of length C.

    P_c = sum of y |grad| and N_c = sum of (1 - y) |grad| over every element of class c (dim 1), y the binary or soft
    target; with class-index targets y is 1 at the target class, a target equal to C is all negative (background),
    and ``ignore_index`` rows count nowhere. Index targets need no one-hot tensor: the positives are gathered.

    Args:
        grad: d loss / d logits, shape (N, C, d1, ...).
        targets: float targets of that shape, or class indices of shape (N, d1, ...).
        ignore_index: the index value of ignored rows (index targets), or None.

    Example:
        >>> grad = torch.tensor([[-0.5, 0.25, 0.125], [0.5, 0.25, -1.0]])
        >>> equalized_focal_statistics(grad, torch.tensor([0, 3]))  # row 1 is background
        (tensor([0.5000, 0.0000, 0.0000], dtype=torch.float64), tensor([0.5000, 0.5000, 1.1250], dtype=torch.float64))
    """
    magnitude = grad.detach().abs().to(torch.promote_types(grad.dtype, torch.float32))
    dims = [0, *range(2, magnitude.ndim)]
    if targets.is_floating_point():
        y = targets.detach().to(magnitude.dtype)
        return (magnitude * y).sum(dims, dtype=torch.float64), (magnitude * (1 - y)).sum(dims, dtype=torch.float64)
    num_classes = magnitude.shape[1]
    index = targets.detach().long().unsqueeze(1)  # (N, 1, d1, ...)
    if ignore_index is not None:
        magnitude.masked_fill_(index == ignore_index, 0.0)
    positive = (index >= 0) & (index < num_classes)
    column = torch.where(positive, index, torch.zeros_like(index))
    at_target = magnitude.gather(1, column)
    positive_part = torch.where(positive, at_target, torch.zeros_like(at_target))
    pos = torch.zeros(num_classes, dtype=torch.float64, device=grad.device)
    pos.scatter_add_(0, column.flatten(), positive_part.flatten().to(torch.float64))
    magnitude.scatter_(1, column, at_target - positive_part)  # the positives' entries become 0, the rest stay
    return pos, magnitude.sum(dims, dtype=torch.float64)


class _GradientTap(torch.autograd.Function):
    """Identity on the logits whose backward hands the incoming gradient (d objective / d logits through this loss
    only) to a callback before passing it on unchanged; no copy in either direction."""

    @staticmethod
    def forward(ctx, logits: Tensor, callback) -> Tensor:  # type: ignore[override]
        ctx.callback = callback
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        if grad is not None:
            ctx.callback(grad.detach())
        return grad, None


class EqualizedFocalLoss(nn.Module):
    """Equalized Focal Loss module: :func:`focalkit.functional.equalized_focal_loss` with per-class factors kept up
    to date from the gradient statistics, as a stateful drop-in for the sigmoid focal loss of dense detectors.

    Args:
        num_classes: C, the number of foreground classes (the logits' dim 1; index C is the background, no column).
        gamma_b: the base focusing factor gamma_b > 0 (2 in the paper).
        scale: s >= 0, how far gamma_j rises above gamma_b for g_j = 0 (8 in the paper); 0 gives the focal loss.
        alpha: as in :func:`focalkit.sigmoid_focal_loss` (0.25; None or a negative number disables it).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``; "mean" divides by the elements that count or ``normalizer``.
        ignore_index: class-index value of rows to ignore (no loss, no statistics).
        sync_statistics: all-reduce each batch's statistics over ``torch.distributed`` processes when initialised.
        sync_normalizer: average the mean's denominator over the processes (see :func:`focalkit.sigmoid_focal_loss`).

    Statistics. The buffers ``pos_grad`` (P_j), ``neg_grad`` (N_j) and ``pos_neg`` (g_j) are float64 vectors of
    length C (so ``state_dict`` saves them and ``module.to(device)`` moves them; ``module.half()`` leaves them in
    float64; the names are those of the authors' code). In training mode, when the logits require grad,
    ``forward`` wraps them in an identity ``torch.autograd.Function`` (a gradient tap, no copy); during
    ``backward`` its backward receives exactly the gradient of the objective with respect to the logits *through
    this loss* (times whatever scales the loss: a loss weight, AMP's loss scale) with no extra forward pass, and
    adds its per-class positive and negative magnitudes (:func:`equalized_focal_statistics`) to the buffers, then
    sets g_j. The factors of a batch are those before its
    own update. A batch whose statistics are not finite (an AMP overflow step, which the optimiser skips too)
    leaves the buffers unchanged. In ``eval()`` mode, or without gradients, nothing is updated.

    Distributed. With ``sync_statistics=True`` and ``torch.distributed`` initialised, each backward all-reduces the
    batch's (P, N) and divides by the world size, so that every process holds the same buffers; with DDP's gradient
    averaging and the same normalisation as one process (``"mean"`` over equal shards, or
    ``sync_normalizer=True``), they equal those of one process on the concatenated batch. Every process must then
    run backward through the loss the same number of times (a collective runs inside backward). The authors' code
    sums without dividing: both buffers are larger by the world size, and g_j is the same.

    Differences from the authors' code: class indices are 0..C-1 with C the background (theirs: 1..C with 0), the
    ignore index is -100 (theirs: -1), "mean" divides by the counted elements unless ``normalizer`` is given (theirs:
    by the normaliser, 1 by default; pass ``normalizer=num_pos`` for theirs), the loss is computed in log space
    (theirs, ``-log(pred_t)``, is inf with a NaN gradient where p_t rounds to 0, e.g. a positive at x = -110 in
    fp32), the statistics come from the loss' own gradient rather than a backward hook on the classifier layer
    (the same numbers when the loss is the only use of the logits), and the buffers are float64.

    Example:
        >>> criterion = EqualizedFocalLoss(num_classes=3)
        >>> logits = torch.zeros(6, 3, requires_grad=True)
        >>> criterion(logits, torch.tensor([0, 0, 1, 3, 3, 3])).backward()  # class 2 never positive
        >>> criterion.pos_neg
        tensor([0.1667, 0.0667, 0.0000], dtype=torch.float64)
        >>> criterion.gamma  # gamma_b + s (1 - g): the rarer the class, the larger its focusing factor
        tensor([ 8.6667,  9.4667, 10.0000], dtype=torch.float64)
    """

    pos_grad: Tensor
    neg_grad: Tensor
    pos_neg: Tensor

    def __init__(
        self,
        num_classes: int,
        gamma_b: float = 2.0,
        scale: float = 8.0,
        alpha: float | None | list[float] | tuple[float, ...] | Tensor = 0.25,
        reduction: str = "mean",
        *,
        ignore_index: int = -100,
        sync_statistics: bool = True,
        sync_normalizer: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 1:
            raise argument_error("num_classes", "a positive int", repr(num_classes))
        self.num_classes = int(num_classes)
        self.gamma_b = check_number("gamma_b", gamma_b, minimum=0.0, strict=True)
        self.scale = check_number("scale", scale, minimum=0.0)
        if isinstance(alpha, (list, tuple)) or (isinstance(alpha, Tensor) and alpha.ndim > 0):
            vector = per_class_buffer("alpha", alpha, unit_range=True)
            if vector.numel() != self.num_classes:
                raise argument_error("alpha", f"{self.num_classes} per-class values (num_classes)",
                                     f"shape ({vector.numel()},)")
            self.register_buffer("alpha", vector)
        else:
            if isinstance(alpha, Tensor):
                alpha = alpha.item()
            self.alpha = check_sigmoid_alpha(alpha)  # type: ignore[assignment]
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)
        self.sync_statistics = check_bool("sync_statistics", sync_statistics)
        self.sync_normalizer = check_bool("sync_normalizer", sync_normalizer)
        self.register_buffer("pos_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        self.register_buffer("neg_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        self.register_buffer("pos_neg", torch.ones(self.num_classes, dtype=torch.float64))

    @property
    def gamma(self) -> Tensor:
        """The focusing factors gamma_j = gamma_b + scale (1 - g_j), float64 (C,)."""
        return self.gamma_b + self.scale * (1 - self.pos_neg.detach())

    @property
    def weight(self) -> Tensor:
        """The weighting factors w_j = gamma_j / gamma_b, float64 (C,)."""
        return self.gamma / self.gamma_b

    def forward(self, inputs: Tensor, targets: Tensor, normalizer: Tensor | float | None = None) -> Tensor:
        inputs = check_floating("inputs", inputs)
        if inputs.ndim < 2 or inputs.shape[1] != self.num_classes:
            raise argument_error(
                "inputs", f"logits with num_classes={self.num_classes} classes in dim 1: (N, {self.num_classes}, ...)",
                describe(inputs))
        if inputs.device != self.pos_neg.device:
            raise argument_error("inputs", f"a tensor on the module's device {self.pos_neg.device} (move the module "
                                 "with .to(device))", describe(inputs))
        gamma = self.gamma
        logits = inputs
        if self.training and torch.is_grad_enabled() and inputs.requires_grad and isinstance(targets, Tensor):
            logits = _GradientTap.apply(inputs, functools.partial(self._collect, targets=targets.detach()))
        return equalized_focal_loss(
            logits, targets, gamma, gamma / self.gamma_b, self.alpha, self.reduction,
            ignore_index=self.ignore_index, normalizer=normalizer,
            sync_normalizer=self.sync_normalizer and self.reduction == "mean",
        )

    def _collect(self, grad: Tensor, targets: Tensor) -> None:
        with torch.no_grad():
            self.update_statistics(*equalized_focal_statistics(grad, targets, self.ignore_index))

    @torch.no_grad()
    def update_statistics(self, pos_grad: Tensor, neg_grad: Tensor) -> None:
        """Add one batch's per-class positive / negative gradient magnitudes (synchronised over processes when
        ``sync_statistics``) and set g_j. Called by backward; public for gradients collected elsewhere (e.g. a hook
        on the classifier layer, as the authors' code does)."""
        for name, value in (("pos_grad", pos_grad), ("neg_grad", neg_grad)):
            if not isinstance(value, Tensor):
                raise type_error(name, "a tensor of per-class gradient magnitudes", type(value).__name__)
            if value.shape != (self.num_classes,):
                raise argument_error(name, f"shape ({self.num_classes},)", describe(value))
        stats = torch.stack([pos_grad, neg_grad]).to(device=self.pos_grad.device, dtype=torch.float64)
        if self.sync_statistics and dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats, op=dist.ReduceOp.SUM)
            stats = stats / dist.get_world_size()
        finite = torch.isfinite(stats).all()  # no host sync: an overflow step is masked, not branched on
        stats = torch.where(finite, stats, torch.zeros_like(stats))
        self.pos_grad += stats[0]
        self.neg_grad += stats[1]
        ratio = (self.pos_grad / (self.neg_grad + RATIO_EPS)).clamp(0.0, 1.0)
        self.pos_neg.copy_(torch.where(finite, ratio, self.pos_neg))

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        """``module.half()`` / ``.to(dtype)`` (e.g. of a whole model holding the loss) keep the statistics in
        float64: accumulated sums in float16 would stall and overflow."""
        super()._apply(fn, *args, **kwargs)
        for name in ("pos_grad", "neg_grad", "pos_neg"):
            buffer = self._buffers[name]
            if buffer is not None and buffer.dtype != torch.float64:
                self._buffers[name] = buffer.to(torch.float64)
        return self

    @torch.no_grad()
    def reset_statistics(self) -> None:
        """Forget the statistics: P = N = 0 and g = 1 (gamma_j = gamma_b), the state after construction."""
        self.pos_grad.zero_()
        self.neg_grad.zero_()
        self.pos_neg.fill_(1.0)

    def extra_repr(self) -> str:
        alpha = self.alpha if not isinstance(self.alpha, Tensor) else "per-class"
        return (f"num_classes={self.num_classes}, gamma_b={self.gamma_b}, scale={self.scale}, alpha={alpha}, "
                f"reduction={self.reduction!r}, sync_statistics={self.sync_statistics}")
