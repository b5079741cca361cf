"""focalkit.keras classification losses (AsymmetricLoss, AsymmetricLossSingleLabel, Poly1CrossEntropy,
Poly1FocalLoss) on every installed Keras back-end: each back-end runs tests/keras_classification_check.py in its own
subprocess (Keras picks its back-end once per process), and every check it records is asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest
from keras_subprocess import BACKENDS, assert_check, registered_checks, require_keras3, run_checker

# Keras only ever runs in the subprocesses (tests/keras_subprocess.py).
require_keras3()

HERE = Path(__file__).parent
CHECKER = HERE / "keras_classification_check.py"
CHECKS = [
    "vectors_asymmetric_loss",
    "vectors_asymmetric_loss_single_label",
    "vectors_poly1_cross_entropy",
    "vectors_poly1_focal_loss",
    "stability_at_1e4",
    "half_precision_computed_in_float32",
    "reductions_sample_weight_and_ignore_class",
    "semantics_match_the_focal_losses",
    "serialisation_round_trip",
    "compile_fit",
    "bad_arguments_raise_typed_errors",
]


@pytest.fixture(scope="module")
def backend_results() -> dict[str, dict]:
    return run_checker(CHECKER, "focalkit_keras_classification_")


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_keras_classification_backend(backend: str, check: str, backend_results: dict[str, dict]) -> None:
    assert_check(backend_results, backend, check)


def test_checker_lists_every_check() -> None:
    assert sorted(registered_checks(CHECKER)) == sorted(CHECKS)
