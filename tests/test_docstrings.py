"""The examples in the core docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

CORE_MODULES = [
    "focalkit._sigmoid_focal_loss",
    "focalkit._softmax_focal_loss",
    "focalkit._binary_focal_loss",
    "focalkit._focal_loss_star",
    "focalkit._class_weights",
    "focalkit._targets",
    "focalkit._validation",
    "focalkit.modules",
]


@pytest.mark.parametrize("name", CORE_MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": importlib.import_module("torch")}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
