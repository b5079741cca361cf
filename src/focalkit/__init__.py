"""focalkit: exact, NaN-free, fast and memory-lean focal loss (Lin et al. 2017) and its family.

``import focalkit`` is light: the public names below load on first use, and nothing optional (Triton, JAX, Keras,
matplotlib, pandas) is imported until asked for. ``focalkit.jax`` and ``focalkit.keras`` work without PyTorch.

Layers (see ``docs/ARCHITECTURE.md``):

=====================================  ==========================================================================
``focalkit.functional``                the loss functions (validate, call the autograd layer, reduce)
``focalkit.nn``                        ``torch.nn.Module`` shells around them
``focalkit.reference``                 float64 specification of every loss
``focalkit.backends``                  which back-end runs a call (PyTorch, fused C on CPU, Triton) and why
``focalkit.errors``                    the exception types
``focalkit.semantics``                 the scalar hyper-parameters' meaning, shared by every front-end
``focalkit.adaptive``                  losses whose gamma adapts during training
``focalkit.jax`` / ``focalkit.keras``  the same losses for JAX and Keras 3
=====================================  ==========================================================================

Functions (the logic) and modules (thin shells):

=====================================  ==========================================================================
``sigmoid_focal_loss``                 focal loss on logits, drop-in for ``torchvision.ops.sigmoid_focal_loss``
``softmax_focal_loss``                 focal loss over a softmax, conventions of ``F.cross_entropy``
``binary_focal_loss``                  focal loss from probabilities
``sigmoid_focal_loss_star``            FL* (paper, Appendix A)
``quality_focal_loss``                 Quality Focal Loss (Generalized Focal Loss), mmdetection conventions
``varifocal_loss``                     Varifocal Loss (VarifocalNet); mmdetection's or, with ``labels=``, YOLO's
``gaussian_focal_loss``                CornerNet / CenterNet heatmap focal loss, from logits or probabilities
``distribution_focal_loss``            Distribution Focal Loss (GFL; mmdetection, YOLOv8 ``DFLoss``)
``equalized_focal_loss``               Equalized Focal Loss (per-class gamma_j, w_j); stateful ``EqualizedFocalLoss``
``asymmetric_loss``                    Asymmetric Loss (ASL) for multi-label classification, the authors' / timm's
``asymmetric_loss_single_label``       the ASL authors' single-label (softmax) variant ``ASLSingleLabel``
``poly1_cross_entropy``                Poly-1 cross-entropy (PolyLoss), conventions of ``F.cross_entropy``
``poly1_focal_loss``                   Poly-1 focal loss (PolyLoss), conventions of torchvision's focal loss
``dice_focal_loss``                    Dice + focal loss for segmentation, MONAI ``DiceFocalLoss`` conventions
``focal_tversky_loss``                 Focal Tversky loss (Abraham & Khan 2019)
``focal_loss``                         focal loss with smp's modes: "binary", "multiclass", "multilabel"
``class_balanced_weights``             Cui et al. 2019 weights from class counts
``prior_bias`` / ``init_prior_bias_``  the paper's prior-probability bias initialisation
=====================================  ==========================================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import FocalKitError, InvalidArgumentError, InvalidTypeError

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access, PEP 562)
_LAZY = {
    "sigmoid_focal_loss": "focalkit.functional",
    "softmax_focal_loss": "focalkit.functional",
    "binary_focal_loss": "focalkit.functional",
    "sigmoid_focal_loss_star": "focalkit.functional",
    "quality_focal_loss": "focalkit.functional",
    "varifocal_loss": "focalkit.functional",
    "gaussian_focal_loss": "focalkit.functional",
    "distribution_focal_loss": "focalkit.functional",
    "equalized_focal_loss": "focalkit.functional",
    "asymmetric_loss": "focalkit.functional",
    "asymmetric_loss_single_label": "focalkit.functional",
    "poly1_cross_entropy": "focalkit.functional",
    "poly1_focal_loss": "focalkit.functional",
    "dice_focal_loss": "focalkit.functional",
    "focal_tversky_loss": "focalkit.functional",
    "focal_loss": "focalkit.functional",
    "class_balanced_weights": "focalkit.imbalance",
    "prior_bias": "focalkit.imbalance",
    "init_prior_bias_": "focalkit.imbalance",
    "get_gradient_mode": "focalkit.gradient_mode",
    "set_gradient_mode": "focalkit.gradient_mode",
    "get_value_checks": "focalkit.value_checks",
    "set_value_checks": "focalkit.value_checks",
    "BinaryFocalLoss": "focalkit.nn",
    "FocalLoss": "focalkit.nn",
    "SigmoidFocalLoss": "focalkit.nn",
    "SigmoidFocalLossStar": "focalkit.nn",
    "SoftmaxFocalLoss": "focalkit.nn",
    "QualityFocalLoss": "focalkit.nn",
    "VarifocalLoss": "focalkit.nn",
    "GaussianFocalLoss": "focalkit.nn",
    "DistributionFocalLoss": "focalkit.nn",
    "EqualizedFocalLoss": "focalkit.nn",
    "AsymmetricLoss": "focalkit.nn",
    "AsymmetricLossSingleLabel": "focalkit.nn",
    "Poly1CrossEntropyLoss": "focalkit.nn",
    "Poly1FocalLoss": "focalkit.nn",
    "DiceFocalLoss": "focalkit.nn",
    "FocalTverskyLoss": "focalkit.nn",
}
_SUBMODULES = (
    "adaptive", "backends", "functional", "gradient_mode", "imbalance", "nn", "reference", "semantics", "value_checks",
)

__all__ = [
    "AsymmetricLoss",
    "AsymmetricLossSingleLabel",
    "BinaryFocalLoss",
    "DiceFocalLoss",
    "DistributionFocalLoss",
    "EqualizedFocalLoss",
    "FocalKitError",
    "FocalLoss",
    "FocalTverskyLoss",
    "GaussianFocalLoss",
    "InvalidArgumentError",
    "InvalidTypeError",
    "Poly1CrossEntropyLoss",
    "Poly1FocalLoss",
    "QualityFocalLoss",
    "SigmoidFocalLoss",
    "SigmoidFocalLossStar",
    "SoftmaxFocalLoss",
    "VarifocalLoss",
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "binary_focal_loss",
    "class_balanced_weights",
    "dice_focal_loss",
    "distribution_focal_loss",
    "equalized_focal_loss",
    "focal_loss",
    "focal_tversky_loss",
    "gaussian_focal_loss",
    "get_gradient_mode",
    "get_value_checks",
    "init_prior_bias_",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "prior_bias",
    "quality_focal_loss",
    "reference",
    "set_gradient_mode",
    "set_value_checks",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "softmax_focal_loss",
    "varifocal_loss",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"focalkit.{name}")
    elif name == "modules":  # the modules' former home, kept so that ``from focalkit import modules`` still works
        value = importlib.import_module("focalkit.nn")
    else:
        raise AttributeError(f"module 'focalkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


if TYPE_CHECKING:  # what static tools see; at run time the names above load lazily
    from . import reference
    from .functional import (
        asymmetric_loss,
        asymmetric_loss_single_label,
        binary_focal_loss,
        dice_focal_loss,
        distribution_focal_loss,
        equalized_focal_loss,
        focal_loss,
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
    from .imbalance import class_balanced_weights, init_prior_bias_, prior_bias
    from .nn import (
        AsymmetricLoss,
        AsymmetricLossSingleLabel,
        BinaryFocalLoss,
        DiceFocalLoss,
        DistributionFocalLoss,
        EqualizedFocalLoss,
        FocalLoss,
        FocalTverskyLoss,
        GaussianFocalLoss,
        Poly1CrossEntropyLoss,
        Poly1FocalLoss,
        QualityFocalLoss,
        SigmoidFocalLoss,
        SigmoidFocalLossStar,
        SoftmaxFocalLoss,
        VarifocalLoss,
    )
    from .gradient_mode import get_gradient_mode, set_gradient_mode
    from .value_checks import get_value_checks, set_value_checks
