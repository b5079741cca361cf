"""The shared shell of focalkit's ``keras.losses.Loss`` classes: call the loss function with the stored settings.

Each subclass names its loss function (``loss_fn``) and the hyper-parameters it stores (``param_names``); ``call``
passes exactly those to the function and ``get_config`` serialises exactly those, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import keras

from focalkit.keras._checks import check_keras_reduction


class FocalLossObject(keras.losses.Loss):
    """Base of focalkit's Keras loss classes (:class:`BinaryFocalLoss`, :class:`AsymmetricLoss`, ...)."""

    loss_fn: ClassVar[Callable[..., Any]]
    param_names: ClassVar[tuple[str, ...]]

    def __init__(self, *, name: str, reduction: str | None, dtype: Any) -> None:
        # checked here so that a bad reduction raises focalkit's InvalidArgumentError (a ValueError, as Keras's own)
        super().__init__(name=name, reduction=check_keras_reduction(reduction), dtype=dtype)

    def _params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names}

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return type(self).loss_fn(y_true, y_pred, **self._params())

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self._params())
        return config
