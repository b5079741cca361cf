"""The kernel contract: every loss focalkit computes, as the back-ends see it.

Each :class:`LossOp` entry names one loss and its arguments. A back-end implements an op with one function

.. code-block:: python

    forward(logits, targets, *, <tensor args that are not None>, <scalar args>, ignore_index, reduce_sum,
            compute_grad) -> (loss, grad | None)

that returns, from one pass over the data,

- ``loss``: float32 (float64 for float64 logits) per-element losses of the logits' shape, or per-row losses of shape
  (N, d1, ...) when the op reduces the class dim 1 (``per_row``), or their 0-d sum when ``reduce_sum``;
- ``grad``: d loss_i / d logits (the derivative of the *sum* of the losses), of the logits' shape and dtype, when
  ``compute_grad``; else None, and no gradient work is done.

``compute_grad`` may also be :data:`GRADIENT_ONLY` (a true value): the caller needs the gradient alone (a backward
pass that recomputes it from the saved inputs), so a back-end may skip forming the losses and return None in the
loss's place; one that makes no such distinction returns both, as for ``True``.

Arguments: ``logits`` (N, C, d1, ...) floating point; ``targets`` float of the logits' shape or int64 class indices
of shape (N, d1, ...); tensor args are float vectors of length C on the logits' device (or None: absent); scalar
args are Python floats; ``ignore_index`` is an int (index targets only) or None. An op's ``element_args`` are
per-element float tensors of the targets' shape instead of per-class vectors. Every value is computed in
float32 at least, whatever the input dtype. ``docs/CONTRACT.md`` gives each op's per-element formula; the float64
specification is :mod:`focalkit.reference`.

Example:
    >>> OPS["sigmoid_focal"].scalar_args
    ('gamma', 'reduced_threshold')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GRADIENT_ONLY", "LossOp", "OPS"]

#: ``compute_grad`` value of a call that needs the gradient alone (see the module docstring)
GRADIENT_ONLY = "only"


@dataclass(frozen=True)
class LossOp:
    """One loss of the contract.

    Attributes:
        name: the op's name; also its ``torch.library`` name ``focalkit::<name>``.
        tensor_args: names of the optional per-class float vectors, in order.
        scalar_args: names of the float hyper-parameters, in order.
        per_row: the loss reduces the class dim 1 (softmax): its shape is the logits' without dim 1, and the chain
            rule broadcasts the incoming gradient along dim 1.
        summary: one line for readers and error messages.
        element_args: the names among ``tensor_args`` that are per-element tensors of the targets' shape (the
            quality scores of index targets, the labels of the varifocal loss) instead of per-class vectors. Like
            the per-class vectors they are constants for autograd (no gradient flows into them).
        optional_scalars: the names among ``scalar_args`` whose value 0 switches an option off (the reduced focal
            loss' threshold). Like an optional tensor argument, a back-end receives one only when it is on and lists
            it in its ``IMPLEMENTS``; otherwise the call runs on a back-end that does.
    """

    name: str
    tensor_args: tuple[str, ...]
    scalar_args: tuple[str, ...]
    per_row: bool
    summary: str
    element_args: tuple[str, ...] = ()
    optional_scalars: tuple[str, ...] = ()


OPS: dict[str, LossOp] = {
    op.name: op
    for op in (
        LossOp(
            "sigmoid_focal", ("alpha_pos", "alpha_neg", "pos_weight"), ("gamma", "reduced_threshold"), False,
            "a_t m(p_t) BCE(sigmoid(x), y), m = (1 - p_t)^gamma (reduced: ((1 - p_t) / th)^gamma where p_t >= th, "
            "else 1); float or class-index targets (C = background)",
            optional_scalars=("reduced_threshold",),
        ),
        LossOp(
            "softmax_focal", ("weight", "alpha"), ("gamma", "reduced_threshold"), True,
            "-w_t m(p_t) log p_t over softmax(x) along dim 1 (m as for sigmoid_focal); class-index targets",
            optional_scalars=("reduced_threshold",),
        ),
        LossOp(
            "softmax_focal_soft", ("class_weight",), ("gamma", "label_smoothing", "reduced_threshold"), True,
            "-sum_c q_c w_c m(p_c) log p_c; class probabilities, or indices with label smoothing",
            optional_scalars=("reduced_threshold",),
        ),
        LossOp(
            "binary_focal", ("alpha_pos", "alpha_neg"), ("gamma",), False,
            "a_t (1 - p_t)^gamma BCE(p, y) from probabilities p",
        ),
        LossOp(
            "sigmoid_focal_star", ("alpha_pos", "alpha_neg"), ("gamma", "beta"), False,
            "FL* = -a_t log(sigmoid(gamma x_t + beta)) / gamma",
        ),
        LossOp(
            "quality_focal", ("scores",), ("beta",), False,
            "|y - p|^beta BCE(sigmoid(x), y); float quality targets, or class indices with per-row scores",
            element_args=("scores",),
        ),
        LossOp(
            "varifocal", ("labels",), ("alpha", "gamma", "iou_weighted"), False,
            "(l q^iw + (1 - l) alpha p^gamma) BCE(sigmoid(x), q); l = q > 0, or the given labels",
            element_args=("labels",),
        ),
        LossOp(
            "gaussian_focal", (), ("alpha", "beta"), False,
            "-(1 - p)^alpha log p at peaks (y = 1), -(1 - y)^beta p^alpha log(1 - p) elsewhere; p = sigmoid(x)",
        ),
        LossOp(
            "gaussian_focal_probs", (), ("alpha", "beta"), False,
            "the Gaussian focal loss from probabilities p",
        ),
        LossOp(
            "distribution_focal", (), (), True,
            "(y_r - y) CE(x, y_l) + (y - y_l) CE(x, y_r) over the bins along dim 1; float targets (N, d1, ...)",
        ),
        LossOp(
            "equalized_focal", ("gamma", "weight", "alpha_pos", "alpha_neg"), (), False,
            "a_t w_j (1 - p_t)^gamma_j BCE(sigmoid(x), y), gamma_j and w_j per class (dim 1); (C = background)",
        ),
        LossOp(
            "asymmetric", (), ("gamma_pos", "gamma_neg", "clip", "detach_focal_weight"), False,
            "y (1 - p)^gamma_pos (-log p) + (1 - y) p_m^gamma_neg (-log(1 - p_m)), p_m = max(p - clip, 0); float targets",
        ),
        LossOp(
            "asymmetric_single_label", (), ("gamma_pos", "gamma_neg", "label_smoothing"), True,
            "-sum_c q_c w_c log p_c over softmax(x), w_t = (1 - p_t)^gamma_pos, w_c = p_c^gamma_neg; class indices",
        ),
        LossOp(
            "poly1_cross_entropy", ("class_weight",), ("epsilon", "label_smoothing"), True,
            "sum_c w_c q_c (-log p_c + epsilon (1 - p_c)) = CE + epsilon (1 - p_t); class indices or probabilities",
        ),
        LossOp(
            "poly1_focal", ("alpha_pos", "alpha_neg"), ("gamma", "epsilon"), False,
            "a_t (1 - p_t)^gamma BCE(sigmoid(x), y) + epsilon (1 - p_t)^(gamma + 1); float targets",
        ),
    )
}
