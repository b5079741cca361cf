"""``nn.Module`` shells over the focalkit functions: they store validated hyper-parameters and call the function.

Per-class tensors (``alpha``, ``weight``, ``pos_weight``) are registered as buffers, so ``module.to(device)`` moves
them. Modules default to ``reduction="mean"`` like the ``torch.nn`` losses (the functions keep the defaults of the
functions they replace: ``"none"`` for ``sigmoid_focal_loss`` as in torchvision, ``"mean"`` for the others).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import check_gamma, check_ignore_index, check_number, per_class_buffer, scalar_value
from .adaptive.equalized import EqualizedFocalLoss  # stateful (gradient statistics); defined with the adaptive losses
from .errors import argument_error, type_error
from .functional import (
    asymmetric_loss,
    asymmetric_loss_single_label,
    binary_focal_loss,
    dice_focal_loss,
    distribution_focal_loss,
    focal_tversky_loss,
    gaussian_focal_loss,
    poly1_cross_entropy,
    poly1_focal_loss,
    quality_focal_loss,
    sigmoid_focal_loss,
    sigmoid_focal_loss_star,
    softmax_focal_loss,
    varifocal_loss,
)
from .functional._alpha import AlphaArg
from .functional.asymmetric import _check_clip
from .functional.poly import _check_epsilon
from .functional.quality import QualityTargets
from .semantics import check_label_smoothing
from .semantics import check_bool, check_reduction, check_sigmoid_alpha, check_softmax_alpha
from .semantics import check_number as check_real_number

__all__ = [
    "AsymmetricLoss",
    "AsymmetricLossSingleLabel",
    "BinaryFocalLoss",
    "DiceFocalLoss",
    "DistributionFocalLoss",
    "EqualizedFocalLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "GaussianFocalLoss",
    "Poly1CrossEntropyLoss",
    "Poly1FocalLoss",
    "QualityFocalLoss",
    "SigmoidFocalLoss",
    "SigmoidFocalLossStar",
    "SoftmaxFocalLoss",
    "VarifocalLoss",
]


def _store_alpha(module: nn.Module, alpha: AlphaArg, *, form: str = "sigmoid") -> None:
    """Keep a per-class alpha as a float32 buffer and a scalar one as a float, checked as the functions check them."""
    if isinstance(alpha, (list, tuple)) or (isinstance(alpha, Tensor) and alpha.ndim > 0):
        module.register_buffer("alpha", per_class_buffer("alpha", alpha, unit_range=True))
    elif form == "softmax":
        module.alpha = check_softmax_alpha(scalar_value(alpha))  # type: ignore[assignment]
    else:
        # the sigmoid family keeps a negative alpha (it disables the weighting, as in the functions)
        module.alpha = None if check_sigmoid_alpha(scalar_value(alpha)) is None else float(alpha)  # type: ignore[assignment,arg-type]


def _optional_buffer(module: nn.Module, name: str, value: Tensor | Sequence[float] | None) -> None:
    module.register_buffer(name, None if value is None else per_class_buffer(name, value, unit_range=False))


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`focalkit.sigmoid_focal_loss` (per-element sigmoid focal loss on logits).

    Example:
        >>> criterion = SigmoidFocalLoss(alpha=0.25, gamma=2.0)
        >>> loss = criterion(torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float())
    """

    def __init__(
        self,
        alpha: AlphaArg = 0.25,
        gamma: float = 2.0,
        reduction: str = "mean",
        *,
        ignore_index: int = -100,
        pos_weight: Tensor | Sequence[float] | None = None,
        sync_normalizer: bool = False,
    ) -> None:
        super().__init__()
        _store_alpha(self, alpha)
        self.gamma = check_gamma(gamma)
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)
        _optional_buffer(self, "pos_weight", pos_weight)
        self.sync_normalizer = sync_normalizer

    def forward(self, inputs: Tensor, targets: Tensor, normalizer: Tensor | float | None = None) -> Tensor:
        return sigmoid_focal_loss(
            inputs,
            targets,
            self.alpha,
            self.gamma,
            self.reduction,
            ignore_index=self.ignore_index,
            pos_weight=self.pos_weight,
            normalizer=normalizer,
            sync_normalizer=self.sync_normalizer and self.reduction == "mean",
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


class SoftmaxFocalLoss(nn.Module):
    """Module form of :func:`focalkit.softmax_focal_loss`, with the arguments of ``nn.CrossEntropyLoss``.

    Example:
        >>> criterion = SoftmaxFocalLoss(gamma=2.0, label_smoothing=0.1)
        >>> loss = criterion(torch.randn(4, 5), torch.tensor([0, 4, 2, 1]))
    """

    def __init__(
        self,
        weight: Tensor | Sequence[float] | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        alpha: AlphaArg = None,
        gamma: float = 2.0,
        sync_normalizer: bool = False,
    ) -> None:
        super().__init__()
        _optional_buffer(self, "weight", weight)
        self.ignore_index = check_ignore_index(ignore_index)
        self.reduction = check_reduction(reduction)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, minimum=0.0)
        _store_alpha(self, alpha, form="softmax")
        self.gamma = check_gamma(gamma)
        self.sync_normalizer = sync_normalizer

    def forward(self, input: Tensor, target: Tensor, normalizer: Tensor | float | None = None) -> Tensor:
        return softmax_focal_loss(
            input,
            target,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            alpha=self.alpha,
            gamma=self.gamma,
            normalizer=normalizer,
            sync_normalizer=self.sync_normalizer and self.reduction == "mean",
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"


class BinaryFocalLoss(nn.Module):
    """Module form of :func:`focalkit.binary_focal_loss` (from probabilities).

    Example:
        >>> criterion = BinaryFocalLoss(alpha=0.25, gamma=2.0)
        >>> loss = criterion(torch.tensor([0.2, 0.8]), torch.tensor([1.0, 1.0]))
    """

    def __init__(self, alpha: AlphaArg = 0.25, gamma: float = 2.0, reduction: str = "mean") -> None:
        super().__init__()
        _store_alpha(self, alpha)
        self.gamma = check_gamma(gamma)
        self.reduction = check_reduction(reduction)

    def forward(self, probs: Tensor, targets: Tensor) -> Tensor:
        return binary_focal_loss(probs, targets, self.alpha, self.gamma, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


class SigmoidFocalLossStar(nn.Module):
    """Module form of :func:`focalkit.sigmoid_focal_loss_star` (FL*, Appendix A).

    Example:
        >>> criterion = SigmoidFocalLossStar(gamma=2.0, beta=1.0)
        >>> loss = criterion(torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float())
    """

    def __init__(
        self, gamma: float = 2.0, beta: float = 1.0, alpha: AlphaArg = 0.25, reduction: str = "mean", *, ignore_index: int = -100
    ) -> None:
        super().__init__()
        self.gamma = check_gamma(gamma, strict=True)
        self.beta = check_number("beta", beta)
        _store_alpha(self, alpha)
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, inputs: Tensor, targets: Tensor, normalizer: Tensor | float | None = None) -> Tensor:
        return sigmoid_focal_loss_star(
            inputs, targets, self.gamma, self.beta, self.alpha, self.reduction,
            ignore_index=self.ignore_index, normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, beta={self.beta}, alpha={self.alpha}, reduction={self.reduction!r}"


class FocalLoss(nn.Module):
    """One-stop focal loss that also accepts the two wrapper patterns users already write.

    - ``FocalLoss(nn.BCEWithLogitsLoss(), gamma=1.5, alpha=0.25)`` (the YOLOv5-style wrapper around
      ``nn.BCEWithLogitsLoss``): the sigmoid focal loss inheriting the wrapped loss' ``reduction``, ``weight`` and ``pos_weight``. The wrapped module is
      read, never modified.
    - ``FocalLoss(num_classes, gamma=2, alpha=0.25, reduction="mean")`` (a wrapper taking the class count): the
      sigmoid focal loss taking integer class targets of shape (N,) (equivalent to one-hot encoding them with ``num_classes`` columns) or
      float targets of the logits' shape.
    - ``FocalLoss(gamma=2.0, form="softmax")``: the softmax focal loss (``alpha`` then multiplies every term or is a
      per-class vector; the default ``alpha`` of this form is None).

    Args:
        loss_fcn: an ``nn.BCEWithLogitsLoss`` to wrap, or the number of classes (int), or None.
        gamma: focusing parameter >= 0.
        alpha: as in :func:`focalkit.sigmoid_focal_loss`; for ``form="softmax"`` the default becomes None.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``; default: the wrapped loss' reduction, else ``"mean"``.
        form: ``"sigmoid"`` or ``"softmax"``.
        num_classes: the number of classes (alternative to passing it first).
        ignore_index: class-index value of rows to ignore.

    Example:
        >>> criterion = FocalLoss(nn.BCEWithLogitsLoss(), gamma=1.5, alpha=0.25)
        >>> loss = criterion(torch.randn(8, 4), torch.randint(0, 2, (8, 4)).float())
        >>> criterion = FocalLoss(4, gamma=2, alpha=0.25, reduction="mean")
        >>> loss = criterion(torch.randn(8, 4), torch.randint(0, 4, (8,)))
    """

    def __init__(
        self,
        loss_fcn: nn.BCEWithLogitsLoss | int | None = None,
        gamma: float = 2.0,
        alpha: AlphaArg | str = "default",
        reduction: str | None = None,
        *,
        form: str = "sigmoid",
        num_classes: int | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        if form not in ("sigmoid", "softmax"):
            raise argument_error("form", "'sigmoid' or 'softmax'", repr(form))
        weight = pos_weight = None
        if isinstance(loss_fcn, nn.BCEWithLogitsLoss):
            if form != "sigmoid":
                raise argument_error("form", "'sigmoid' when wrapping nn.BCEWithLogitsLoss", repr(form))
            reduction = loss_fcn.reduction if reduction is None else reduction
            weight, pos_weight = loss_fcn.weight, loss_fcn.pos_weight
        elif isinstance(loss_fcn, int) and not isinstance(loss_fcn, bool):
            if num_classes is not None and num_classes != loss_fcn:
                raise argument_error("num_classes", f"the same value as the first argument ({loss_fcn})", num_classes)
            num_classes = loss_fcn
        elif loss_fcn is not None:
            raise type_error("loss_fcn", "an nn.BCEWithLogitsLoss to wrap, the number of classes, or None", type(loss_fcn).__name__)
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise argument_error("num_classes", "a positive int", repr(num_classes))
        if isinstance(alpha, str):
            if alpha != "default":
                raise argument_error("alpha", "a number, a per-class sequence or None", repr(alpha))
            alpha = 0.25 if form == "sigmoid" else None
        self.form = form
        self.num_classes = num_classes
        self.gamma = check_gamma(gamma)
        _store_alpha(self, alpha, form=form)
        self.reduction = check_reduction("mean" if reduction is None else reduction)
        self.ignore_index = check_ignore_index(ignore_index)
        _optional_buffer(self, "weight", weight)
        _optional_buffer(self, "pos_weight", pos_weight)

    def forward(self, inputs: Tensor, targets: Tensor, normalizer: Tensor | float | None = None) -> Tensor:
        if self.num_classes is not None and (inputs.ndim < 2 or inputs.shape[1] != self.num_classes):
            raise argument_error("inputs", f"logits with {self.num_classes} classes in dim 1", f"shape {tuple(inputs.shape)}")
        if self.form == "softmax":
            return softmax_focal_loss(
                inputs, targets, None, self.ignore_index, self.reduction,
                alpha=self.alpha, gamma=self.gamma, normalizer=normalizer,
            )
        return sigmoid_focal_loss(
            inputs,
            targets,
            self.alpha,
            self.gamma,
            self.reduction,
            ignore_index=self.ignore_index,
            pos_weight=self.pos_weight,
            weight=self.weight,
            normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        return f"form={self.form!r}, alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


# ---------------------------------------------------------------------------------------------- detection family
class QualityFocalLoss(nn.Module):
    """Module form of :func:`focalkit.quality_focal_loss` (mmdetection's ``QualityFocalLoss`` with
    ``use_sigmoid=True``; ``forward(pred, target, weight, avg_factor)`` maps to ``(inputs, targets, weight,
    normalizer)``).

    Example:
        >>> criterion = QualityFocalLoss(beta=2.0)
        >>> loss = criterion(torch.randn(4, 3), (torch.tensor([0, 3, 2, 1]), torch.rand(4)))
    """

    def __init__(self, beta: float = 2.0, reduction: str = "mean", *, ignore_index: int = -100) -> None:
        super().__init__()
        self.beta = check_number("beta", beta, minimum=0.0)
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, inputs: Tensor, targets: QualityTargets, weight: Tensor | None = None,
                normalizer: Tensor | float | None = None) -> Tensor:
        return quality_focal_loss(
            inputs, targets, self.beta, self.reduction, weight=weight, normalizer=normalizer,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return f"beta={self.beta}, reduction={self.reduction!r}"


class VarifocalLoss(nn.Module):
    """Module form of :func:`focalkit.varifocal_loss` (mmdetection's ``VarifocalLoss``; pass ``labels=`` to
    ``forward`` for the YOLO-style form).

    Example:
        >>> criterion = VarifocalLoss(alpha=0.75, gamma=2.0)
        >>> loss = criterion(torch.randn(4, 3), torch.rand(4, 3) * (torch.rand(4, 3) > 0.7))
    """

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.alpha = check_number("alpha", alpha, minimum=0.0)
        self.gamma = check_gamma(gamma)
        self.iou_weighted = check_bool("iou_weighted", iou_weighted)
        self.reduction = check_reduction(reduction)

    def forward(self, inputs: Tensor, targets: Tensor, weight: Tensor | None = None,
                normalizer: Tensor | float | None = None, *, labels: Tensor | None = None) -> Tensor:
        return varifocal_loss(
            inputs, targets, self.alpha, self.gamma, self.iou_weighted, self.reduction,
            weight=weight, normalizer=normalizer, labels=labels,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, iou_weighted={self.iou_weighted}, reduction={self.reduction!r}"


class GaussianFocalLoss(nn.Module):
    """Module form of :func:`focalkit.gaussian_focal_loss` (mmdetection's ``GaussianFocalLoss(alpha=2.0,
    gamma=4.0)`` is ``GaussianFocalLoss(alpha=2.0, beta=4.0, from_logits=False)`` on its sigmoid output).

    Example:
        >>> criterion = GaussianFocalLoss(alpha=2.0, beta=4.0)
        >>> heatmap = torch.zeros(1, 2, 4, 4); heatmap[0, 1, 2, 2] = 1.0
        >>> loss = criterion(torch.randn(1, 2, 4, 4), heatmap)
    """

    def __init__(self, alpha: float = 2.0, beta: float = 4.0, reduction: str = "mean", *,
                 from_logits: bool = True) -> None:
        super().__init__()
        self.alpha = check_number("alpha", alpha, minimum=0.0)
        self.beta = check_number("beta", beta, minimum=0.0)
        self.reduction = check_reduction(reduction)
        self.from_logits = check_bool("from_logits", from_logits)

    def forward(self, inputs: Tensor, targets: Tensor, normalizer: Tensor | float | None = None) -> Tensor:
        return gaussian_focal_loss(
            inputs, targets, self.alpha, self.beta, self.reduction, from_logits=self.from_logits,
            normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, reduction={self.reduction!r}, from_logits={self.from_logits}"


class DistributionFocalLoss(nn.Module):
    """Module form of :func:`focalkit.distribution_focal_loss` (mmdetection's ``DistributionFocalLoss``, YOLOv8's
    ``DFLoss`` with ``reg_max`` = the number of bins, inputs.shape[1]).

    Example:
        >>> criterion = DistributionFocalLoss()
        >>> loss = criterion(torch.randn(8, 17), torch.rand(8) * 16)
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, inputs: Tensor, targets: Tensor, weight: Tensor | None = None,
                normalizer: Tensor | float | None = None) -> Tensor:
        return distribution_focal_loss(inputs, targets, self.reduction, weight=weight, normalizer=normalizer)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


# ---------------------------------------------------------------------------------------------- classification family
class AsymmetricLoss(nn.Module):
    """Module form of :func:`focalkit.asymmetric_loss` (multi-label ASL). The ASL authors'
    ``AsymmetricLoss(gamma_neg, gamma_pos, clip, disable_torch_grad_focal_loss=d)`` is
    ``AsymmetricLoss(gamma_pos, gamma_neg, clip, "sum", detach_focal_weight=d)`` (theirs returns the sum).

    Example:
        >>> criterion = AsymmetricLoss(gamma_pos=0.0, gamma_neg=4.0, clip=0.05)
        >>> loss = criterion(torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float())
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float | None = 0.05,
                 reduction: str = "mean", *, detach_focal_weight: bool = False) -> None:
        super().__init__()
        self.gamma_pos = check_number("gamma_pos", gamma_pos, minimum=0.0)
        self.gamma_neg = check_number("gamma_neg", gamma_neg, minimum=0.0)
        self.clip = _check_clip(clip)
        self.reduction = check_reduction(reduction)
        self.detach_focal_weight = check_bool("detach_focal_weight", detach_focal_weight)

    def forward(self, inputs: Tensor, targets: Tensor, weight: Tensor | None = None,
                normalizer: Tensor | float | None = None) -> Tensor:
        return asymmetric_loss(
            inputs, targets, self.gamma_pos, self.gamma_neg, self.clip, self.reduction,
            detach_focal_weight=self.detach_focal_weight, weight=weight, normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        return (f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}, "
                f"reduction={self.reduction!r}, detach_focal_weight={self.detach_focal_weight}")


class AsymmetricLossSingleLabel(nn.Module):
    """Module form of :func:`focalkit.asymmetric_loss_single_label` (the ASL authors' ``ASLSingleLabel(gamma_pos,
    gamma_neg, eps)`` is ``AsymmetricLossSingleLabel(gamma_pos, gamma_neg, label_smoothing=eps)``).

    Example:
        >>> criterion = AsymmetricLossSingleLabel(gamma_pos=0.0, gamma_neg=4.0, label_smoothing=0.1)
        >>> loss = criterion(torch.randn(4, 5), torch.tensor([0, 4, 2, 1]))
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, reduction: str = "mean", *,
                 label_smoothing: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        self.gamma_pos = check_number("gamma_pos", gamma_pos, minimum=0.0)
        self.gamma_neg = check_number("gamma_neg", gamma_neg, minimum=0.0)
        self.reduction = check_reduction(reduction)
        self.label_smoothing = check_label_smoothing(scalar_value(label_smoothing))
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return asymmetric_loss_single_label(
            input, target, self.gamma_pos, self.gamma_neg, self.reduction,
            label_smoothing=self.label_smoothing, ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return (f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")


class Poly1CrossEntropyLoss(nn.Module):
    """Module form of :func:`focalkit.poly1_cross_entropy`, with the arguments of ``nn.CrossEntropyLoss`` and
    ``epsilon`` first (timm's ``PolyCrossEntropy(epsilon, smoothing)`` is
    ``Poly1CrossEntropyLoss(epsilon, label_smoothing=smoothing)``).

    Example:
        >>> criterion = Poly1CrossEntropyLoss(epsilon=1.0, label_smoothing=0.1)
        >>> loss = criterion(torch.randn(4, 5), torch.tensor([0, 4, 2, 1]))
    """

    def __init__(self, epsilon: float = 1.0, weight: Tensor | Sequence[float] | None = None, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.epsilon = _check_epsilon(epsilon)
        _optional_buffer(self, "weight", weight)
        self.ignore_index = check_ignore_index(ignore_index)
        self.reduction = check_reduction(reduction)
        self.label_smoothing = check_label_smoothing(scalar_value(label_smoothing))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return poly1_cross_entropy(
            input, target, self.epsilon, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"


class Poly1FocalLoss(nn.Module):
    """Module form of :func:`focalkit.poly1_focal_loss` (sigmoid; the poly term is not alpha-weighted).

    Example:
        >>> criterion = Poly1FocalLoss(epsilon=-1.0, alpha=0.25, gamma=2.0)
        >>> loss = criterion(torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float())
    """

    def __init__(self, epsilon: float = 1.0, alpha: AlphaArg = 0.25, gamma: float = 2.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.epsilon = _check_epsilon(epsilon)
        _store_alpha(self, alpha)
        self.gamma = check_gamma(gamma)
        self.reduction = check_reduction(reduction)

    def forward(self, inputs: Tensor, targets: Tensor, weight: Tensor | None = None,
                normalizer: Tensor | float | None = None) -> Tensor:
        return poly1_focal_loss(
            inputs, targets, self.epsilon, self.alpha, self.gamma, self.reduction, weight=weight, normalizer=normalizer
        )

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


# ---------------------------------------------------------------------------------------------- segmentation family
def _store_class_values(module: nn.Module, name: str, value: object, *, unit_range: bool) -> None:
    """Per-class values become a float32 buffer (moved by ``.to()``); a number (checked) or None stays an attribute.
    The length is checked against the input's classes at call time (C, or C - 1 without the background)."""
    if isinstance(value, (list, tuple)) or (isinstance(value, Tensor) and value.ndim > 0):
        module.register_buffer(name, per_class_buffer(name, value, unit_range=unit_range))
    elif value is None:
        setattr(module, name, None)
    else:
        setattr(module, name, check_real_number(name, scalar_value(value), minimum=0.0,
                                                maximum=1.0 if unit_range else None))


class DiceFocalLoss(nn.Module):
    """Module form of :func:`focalkit.dice_focal_loss` (MONAI's ``DiceFocalLoss`` conventions; arguments by keyword,
    ``softmax=False`` for MONAI's ``sigmoid=True``).

    Example:
        >>> criterion = DiceFocalLoss(include_background=False, alpha=[0.25, 0.75], weight=[1.0, 2.0])
        >>> loss = criterion(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
    """

    def __init__(
        self,
        *,
        softmax: bool = True,
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        alpha: float | Sequence[float] | Tensor | None = None,
        gamma: float = 2.0,
        weight: float | Sequence[float] | Tensor | None = None,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        squared_pred: bool = False,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.softmax = check_bool("softmax", softmax)
        self.include_background = check_bool("include_background", include_background)
        self.to_onehot_y = None if to_onehot_y is None else check_bool("to_onehot_y", to_onehot_y)
        _store_class_values(self, "alpha", alpha, unit_range=True)
        self.gamma = check_gamma(gamma)
        _store_class_values(self, "weight", weight, unit_range=False)
        self.lambda_dice = check_number("lambda_dice", lambda_dice, minimum=0.0)
        self.lambda_focal = check_number("lambda_focal", lambda_focal, minimum=0.0)
        self.smooth_nr = check_number("smooth_nr", smooth_nr, minimum=0.0)
        self.smooth_dr = check_number("smooth_dr", smooth_dr, minimum=0.0, strict=True)
        self.batch = check_bool("batch", batch)
        self.squared_pred = check_bool("squared_pred", squared_pred)
        self.reduction = check_reduction(reduction, ("mean", "sum"))
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return dice_focal_loss(
            input, target, softmax=self.softmax, include_background=self.include_background,
            to_onehot_y=self.to_onehot_y, alpha=self.alpha, gamma=self.gamma, weight=self.weight,
            lambda_dice=self.lambda_dice, lambda_focal=self.lambda_focal, smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr, batch=self.batch, squared_pred=self.squared_pred, reduction=self.reduction,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return (f"softmax={self.softmax}, include_background={self.include_background}, gamma={self.gamma}, "
                f"lambda_dice={self.lambda_dice}, lambda_focal={self.lambda_focal}, batch={self.batch}, "
                f"reduction={self.reduction!r}")


class FocalTverskyLoss(nn.Module):
    """Module form of :func:`focalkit.focal_tversky_loss` (Abraham & Khan 2019; ``alpha`` weighs false negatives).

    Example:
        >>> criterion = FocalTverskyLoss(alpha=0.7, beta=0.3, gamma=0.75)
        >>> loss = criterion(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
    """

    def __init__(
        self,
        *,
        softmax: bool = True,
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 0.75,
        smooth: float = 1e-5,
        batch: bool = False,
        weight: float | Sequence[float] | Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.softmax = check_bool("softmax", softmax)
        self.include_background = check_bool("include_background", include_background)
        self.to_onehot_y = None if to_onehot_y is None else check_bool("to_onehot_y", to_onehot_y)
        self.alpha = check_number("alpha", alpha, minimum=0.0)
        self.beta = check_number("beta", beta, minimum=0.0)
        self.gamma = check_gamma(gamma, strict=True)
        self.smooth = check_number("smooth", smooth, minimum=0.0, strict=True)
        self.batch = check_bool("batch", batch)
        _store_class_values(self, "weight", weight, unit_range=False)
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal_tversky_loss(
            input, target, softmax=self.softmax, include_background=self.include_background,
            to_onehot_y=self.to_onehot_y, alpha=self.alpha, beta=self.beta, gamma=self.gamma, smooth=self.smooth,
            batch=self.batch, weight=self.weight, reduction=self.reduction, ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, smooth={self.smooth}, "
                f"softmax={self.softmax}, batch={self.batch}, reduction={self.reduction!r}")
