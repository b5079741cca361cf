"""The examples in the core docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

CORE_MODULES = [
    "focalkit.functional",
    "focalkit.functional.sigmoid",
    "focalkit.functional.softmax",
    "focalkit.functional.binary",
    "focalkit.functional.star",
    "focalkit.functional.quality",
    "focalkit.functional.varifocal",
    "focalkit.functional.gaussian",
    "focalkit.functional.distribution",
    "focalkit.functional.asymmetric",
    "focalkit.functional.poly",
    "focalkit.functional.equalized",
    "focalkit.functional.dice_focal",
    "focalkit.functional.focal_tversky",
    "focalkit.functional.focal_modes",
    "focalkit.functional._segmentation",
    "focalkit.functional._segmentation_stats",
    "focalkit.adaptive.equalized",
    "focalkit.imbalance",
    "focalkit.nn",
    "focalkit.errors",
    "focalkit.semantics",
    "focalkit.value_checks",
    "focalkit._targets",
    "focalkit._checks",
    "focalkit._autograd",
    "focalkit.backends",
    "focalkit.backends.contract",
    "focalkit.backends.pytorch",
    "focalkit.backends.pytorch.sigmoid",
    "focalkit.backends.pytorch.softmax",
    "focalkit.backends.pytorch.binary",
    "focalkit.backends.pytorch.star",
    "focalkit.backends.pytorch.quality",
    "focalkit.backends.pytorch.varifocal",
    "focalkit.backends.pytorch.gaussian",
    "focalkit.backends.pytorch.distribution",
    "focalkit.backends.pytorch.asymmetric",
    "focalkit.backends.pytorch.poly",
    "focalkit.backends.pytorch.equalized",
    "focalkit.backends.pytorch._logistic",
    "focalkit.backends.pytorch._reduced",
    "focalkit.backends.cpu.poly_cross_entropy",
    "focalkit.backends.cpu.segmentation",
    "focalkit.backends.cpu",
    "focalkit.backends.cpu.logistic",
    "focalkit.backends.cpu.quality",
    "focalkit.backends.cpu.varifocal",
    "focalkit.backends.cpu.gaussian",
    "focalkit.backends.cpu.asymmetric",
    "focalkit.backends.cpu.poly",
    "focalkit.backends.cpu.distribution",
    "focalkit.backends.triton",
    "focalkit_app.bench.peer_formulas",
]


@pytest.mark.parametrize("name", CORE_MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": importlib.import_module("torch")}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
