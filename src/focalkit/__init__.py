"""focalkit: exact, NaN-free, fast and memory-lean focal loss (Lin et al. 2017) and its family.

``import focalkit`` imports only PyTorch. Optional parts load on demand: ``focalkit.jax`` (JAX), ``focalkit.keras``
(Keras 3), the Triton kernels (when a CUDA tensor meets an installed Triton), ``focalkit.demo`` and the CLI.

Functions (the logic) and modules (thin shells):

=====================================  ==========================================================================
``sigmoid_focal_loss``                 focal loss on logits, drop-in for ``torchvision.ops.sigmoid_focal_loss``
``softmax_focal_loss``                 focal loss over a softmax, conventions of ``F.cross_entropy``
``binary_focal_loss``                  focal loss from probabilities
``sigmoid_focal_loss_star``            FL* (paper, Appendix A)
``class_balanced_weights``             Cui et al. 2019 weights from class counts
``prior_bias`` / ``init_prior_bias_``  the paper's prior-probability bias initialisation
``reference``                          float64 specification of every loss
=====================================  ==========================================================================
"""

from . import reference
from ._binary_focal_loss import binary_focal_loss
from ._class_weights import class_balanced_weights, init_prior_bias_, prior_bias
from ._errors import FocalKitError, InvalidArgumentError, InvalidTypeError
from ._focal_loss_star import sigmoid_focal_loss_star
from ._sigmoid_focal_loss import sigmoid_focal_loss
from ._softmax_focal_loss import softmax_focal_loss
from ._validation import get_value_checks, set_value_checks
from .modules import BinaryFocalLoss, FocalLoss, SigmoidFocalLoss, SigmoidFocalLossStar, SoftmaxFocalLoss

__version__ = "0.1.0"

__all__ = [
    "BinaryFocalLoss",
    "FocalKitError",
    "FocalLoss",
    "InvalidArgumentError",
    "InvalidTypeError",
    "SigmoidFocalLoss",
    "SigmoidFocalLossStar",
    "SoftmaxFocalLoss",
    "binary_focal_loss",
    "class_balanced_weights",
    "get_value_checks",
    "init_prior_bias_",
    "prior_bias",
    "reference",
    "set_value_checks",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "softmax_focal_loss",
]
