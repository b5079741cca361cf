"""Keras 3 front-end of focalkit: focal losses written with ``keras.ops`` (TensorFlow, JAX and PyTorch back-ends).

Import it explicitly (``import focalkit.keras``); ``import focalkit`` never imports Keras. The classes follow
Keras's naming and conventions (``from_logits``, ``label_smoothing``, ``reduction``, ``sample_weight``,
``ignore_class``), are registered as serialisable under the package name ``"focalkit"``, and compute the same
numbers as the PyTorch core (checked against shared float64 test vectors on all three back-ends).

=================================  ======================================================================
``BinaryFocalLoss``                sigmoid focal loss (logits or probabilities), per-class alpha
``CategoricalFocalLoss``           softmax focal loss, one-hot / soft targets
``SparseCategoricalFocalLoss``     softmax focal loss, integer targets, ``ignore_class``
``QualityFocalLoss``               Quality Focal Loss (GFL) from logits, dense quality targets
``VarifocalLoss``                  Varifocal Loss (VarifocalNet) from logits
``GaussianFocalLoss``              Gaussian focal loss (CornerNet / CenterNet heatmaps) from logits
``AsymmetricLoss``                 Asymmetric Loss (ASL), multi-label, from logits
``AsymmetricLossSingleLabel``      single-label ASL over a softmax, integer targets, ``ignore_class``
``Poly1CrossEntropy``              Poly-1 cross-entropy (PolyLoss), integer or probability targets
``Poly1FocalLoss``                 Poly-1 focal loss (PolyLoss) over a sigmoid, from logits
``binary_focal_loss`` etc.         the functions behind the classes (per-sample losses)
=================================  ======================================================================

From logits, the binary, categorical and sparse categorical losses attach their closed-form gradient to the logits
(``gradient="closed_form"``, the default: as fast and memory-lean as Keras's own focal losses; no gradient to
``y_true`` and a zero second derivative; on the PyTorch back-end the categorical loss runs focalkit's own op, with
nothing logits-sized kept and an exact second derivative); ``gradient="autodiff"`` differentiates the log-space
composition instead (label gradients, exact higher derivatives).

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
    arXiv:1708.02002.
"""

from focalkit.keras._asymmetric import (
    AsymmetricLoss,
    AsymmetricLossSingleLabel,
    asymmetric_loss,
    asymmetric_loss_single_label,
)
from focalkit.keras._binary import BinaryFocalLoss, binary_focal_loss
from focalkit.keras._categorical import (
    CategoricalFocalLoss,
    SparseCategoricalFocalLoss,
    categorical_focal_loss,
    sparse_categorical_focal_loss,
)
from focalkit.keras._detection import (
    GaussianFocalLoss,
    QualityFocalLoss,
    VarifocalLoss,
    gaussian_focal_loss,
    quality_focal_loss,
    varifocal_loss,
)
from focalkit.keras._poly import Poly1CrossEntropy, Poly1FocalLoss, poly1_cross_entropy, poly1_focal_loss

__all__ = [
    "AsymmetricLoss",
    "AsymmetricLossSingleLabel",
    "BinaryFocalLoss",
    "CategoricalFocalLoss",
    "GaussianFocalLoss",
    "Poly1CrossEntropy",
    "Poly1FocalLoss",
    "QualityFocalLoss",
    "SparseCategoricalFocalLoss",
    "VarifocalLoss",
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "binary_focal_loss",
    "categorical_focal_loss",
    "gaussian_focal_loss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "quality_focal_loss",
    "sparse_categorical_focal_loss",
    "varifocal_loss",
]
