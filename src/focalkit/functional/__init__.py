"""The focal-loss functions: validate the arguments, call the autograd layer, reduce.

Each loss is one module here (``sigmoid``, ``softmax``, ``binary``, ``star``, and the detection family
``quality``, ``varifocal``, ``gaussian``, ``distribution``, and ``equalized`` for long-tailed detection; the
classification family ``asymmetric`` and ``poly``; the segmentation family ``dice_focal``, ``focal_tversky`` and
``focal_modes``, compositions in this layer); its math lives in the PyTorch back-end
(:mod:`focalkit.backends.pytorch`), its fused kernels in the other back-ends, its specification in :mod:`focalkit.reference`. The same names are exported from :mod:`focalkit`.

Example:
    >>> import torch
    >>> from focalkit.functional import sigmoid_focal_loss
    >>> sigmoid_focal_loss(torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]]), reduction="sum")
    tensor(0.0174)
"""

from .asymmetric import asymmetric_loss, asymmetric_loss_single_label
from .binary import binary_focal_loss
from .dice_focal import dice_focal_loss
from .distribution import distribution_focal_loss
from .equalized import equalized_focal_loss
from .focal_modes import focal_loss
from .focal_tversky import focal_tversky_loss
from .gaussian import gaussian_focal_loss
from .poly import poly1_cross_entropy, poly1_focal_loss
from .quality import quality_focal_loss
from .sigmoid import sigmoid_focal_loss
from .softmax import softmax_focal_loss
from .star import sigmoid_focal_loss_star
from .varifocal import varifocal_loss

__all__ = [
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "binary_focal_loss",
    "dice_focal_loss",
    "distribution_focal_loss",
    "equalized_focal_loss",
    "focal_loss",
    "focal_tversky_loss",
    "gaussian_focal_loss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "quality_focal_loss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "softmax_focal_loss",
    "varifocal_loss",
]
