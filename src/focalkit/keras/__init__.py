"""Keras 3 front-end of focalkit: focal losses written with ``keras.ops`` (TensorFlow, JAX and PyTorch back-ends).

Import it explicitly (``import focalkit.keras``); ``import focalkit`` never imports Keras. The classes follow
Keras's naming and conventions (``from_logits``, ``label_smoothing``, ``reduction``, ``sample_weight``,
``ignore_class``), are registered as serialisable under the package name ``"focalkit"``, and compute the same
numbers as the PyTorch core (checked against shared float64 test vectors on all three back-ends).

=================================  ======================================================================
``BinaryFocalLoss``                sigmoid focal loss (logits or probabilities), per-class alpha
``CategoricalFocalLoss``           softmax focal loss, one-hot / soft targets
``SparseCategoricalFocalLoss``     softmax focal loss, integer targets, ``ignore_class``
``binary_focal_loss`` etc.         the functions behind the classes (per-sample losses)
=================================  ======================================================================

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
    arXiv:1708.02002.
"""

from focalkit.keras._binary import BinaryFocalLoss, binary_focal_loss
from focalkit.keras._categorical import (
    CategoricalFocalLoss,
    SparseCategoricalFocalLoss,
    categorical_focal_loss,
    sparse_categorical_focal_loss,
)

__all__ = [
    "BinaryFocalLoss",
    "CategoricalFocalLoss",
    "SparseCategoricalFocalLoss",
    "binary_focal_loss",
    "categorical_focal_loss",
    "sparse_categorical_focal_loss",
]
