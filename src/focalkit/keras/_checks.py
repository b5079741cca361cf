"""Argument checks of the Keras front-end (pure Python; run once, when a loss is built or called).

The meaning and the error text of ``gamma``, ``alpha`` (scalar or per-class), ``label_smoothing`` and ``reduction``
come from :mod:`focalkit.semantics`, shared with the PyTorch core, the adaptive losses and the JAX front-end. Only
what is specific to Keras lives here: Keras's own set of reductions, per-class values given as arrays / tensors, and
the class count along the class ``axis``, known only once ``y_pred`` is seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from focalkit import semantics
from focalkit.errors import argument_error

__all__ = ["KERAS_REDUCTIONS", "check_alpha", "check_class_count", "check_gamma", "check_keras_reduction",
           "check_label_smoothing"]

# what keras.losses.Loss accepts (besides None)
KERAS_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none")


def check_alpha(alpha: Any, *, negative_disables: bool) -> float | list[float] | None:
    """None, a scalar or a list of per-class values in [0, 1].

    A scalar follows :func:`focalkit.semantics.check_sigmoid_alpha` when ``negative_disables`` (sigmoid family:
    negative -> None) and :func:`~focalkit.semantics.check_softmax_alpha` otherwise. A list, tuple or array of
    rank >= 1 is checked by :func:`~focalkit.semantics.check_per_class_values` and returned as a list of floats (so it
    serialises with ``get_config``).
    """
    if alpha is None:
        return None
    if isinstance(alpha, (list, tuple)):
        return semantics.check_per_class_values("alpha", alpha, unit_range=True)
    if not semantics.is_real_number(alpha) and len(getattr(alpha, "shape", ())) >= 1:  # NumPy array or tensor
        return semantics.check_per_class_values("alpha", np.asarray(alpha).tolist(), unit_range=True)
    if negative_disables:
        return semantics.check_sigmoid_alpha(alpha)
    return semantics.check_softmax_alpha(alpha)


def check_gamma(gamma: Any) -> float:
    return semantics.check_gamma(gamma)


def check_label_smoothing(value: Any) -> float:
    return semantics.check_label_smoothing(value)


def check_keras_reduction(reduction: Any) -> str | None:
    """None or one of Keras's reductions (:data:`KERAS_REDUCTIONS`)."""
    if reduction is None:
        return None
    return semantics.check_choice("reduction", reduction, KERAS_REDUCTIONS)


def check_class_count(name: str, num_classes: Any, alpha: Any, *, minimum: int = 1) -> None:
    """Static checks once the class count is known: the per-class alpha length and the minimum class count."""
    if num_classes is None:
        return
    if num_classes < minimum:
        raise argument_error(name, f"at least {minimum} classes on the class axis", num_classes)
    if isinstance(alpha, list) and len(alpha) != num_classes:
        raise argument_error("alpha", f"{num_classes} per-class values (one per class)", len(alpha))
