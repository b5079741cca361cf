"""JAX front-end of focalkit: pure, per-element focal losses in optax's style.

Import it explicitly (``import focalkit.jax``); ``import focalkit`` never imports JAX. Every function returns
unreduced losses (per element, or per example for the softmax form), takes its hyper-parameters as keyword-only
static Python numbers, and has the same numerics and semantics as the PyTorch core (checked against shared float64
test vectors). Gradients are closed forms supplied through ``jax.custom_jvp``, so ``grad``, ``jacfwd``, ``hessian``,
``jit`` and ``vmap`` all work.

The dense-detection losses ``quality_focal_loss`` (GFL), ``varifocal_loss`` (VarifocalNet) and
``gaussian_focal_loss`` (CornerNet / CenterNet, from logits) follow the same conventions; they are written with stable
``jnp`` operations in log space and differentiated by plain autodiff (finite for all finite logits).

The classification losses ``asymmetric_loss`` (ASL, multi-label), ``asymmetric_loss_single_label`` (its softmax
variant), ``poly1_cross_entropy`` and ``poly1_focal_loss`` (PolyLoss) follow them too: the sigmoid ones with the
PyTorch core's closed-form gradient through ``jax.custom_jvp``, the softmax ones in log space with plain autodiff.

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
    arXiv:1708.02002.
"""

from focalkit.jax._asymmetric import asymmetric_loss, asymmetric_loss_single_label
from focalkit.jax._binary import binary_focal_loss
from focalkit.jax._detection import gaussian_focal_loss, quality_focal_loss, varifocal_loss
from focalkit.jax._poly import poly1_cross_entropy, poly1_focal_loss
from focalkit.jax._sigmoid import sigmoid_focal_loss
from focalkit.jax._softmax import softmax_focal_loss
from focalkit.jax._star import sigmoid_focal_loss_star

__all__ = [
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "binary_focal_loss",
    "gaussian_focal_loss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "quality_focal_loss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "softmax_focal_loss",
    "varifocal_loss",
]
