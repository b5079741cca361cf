"""focalkit.keras on the TensorFlow, JAX and PyTorch back-ends of Keras 3.

Keras chooses its back-end once, at first import, from KERAS_BACKEND. Each back-end therefore runs
tests/keras_backend_check.py in its own subprocess (all back-ends started together, once per session); every check
the script records becomes one test item here, so a failure names its back-end and check and shows the traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from keras_subprocess import BACKENDS, assert_check, registered_checks, require_keras3, run_checker

# Not pytest.importorskip: importing Keras here would import its default back-end (TensorFlow) into the pytest process,
# and TensorFlow 2.21 loaded before Triton 3.9 aborts the process ("LLVM ERROR: inconsistency in registered
# CommandLine options") as soon as a later test imports torch._dynamo. Keras only ever runs in the subprocesses.
require_keras3()

HERE = Path(__file__).parent
CHECKER = HERE / "keras_backend_check.py"

CHECKS = [
    "vectors_binary_from_logits",
    "vectors_binary_from_probs",
    "vectors_sparse_categorical",
    "vectors_categorical_soft_targets",
    "stability_binary_from_logits",
    "stability_softmax",
    "stability_probabilities_at_0_and_1",
    "half_precision_computed_in_float32",
    "reductions_and_sample_weight",
    "ignore_class_left_out_of_the_mean",
    "label_smoothing_matches_smoothed_targets",
    "binary_focal_loss_probability_usage",
    "serialisation_round_trip",
    "compile_fit_save_load",
    "bad_arguments_raise_typed_errors",
    "invalid_values_raise_typed_errors",
    "invalid_values_give_nan_when_traced",
    "keras_binary_focal_agrees_in_the_body",
    "keras_categorical_focal_agrees_in_the_body",
    "keras_clip_biases_tails_and_zeroes_gradients",
    "keras_pow_on_probabilities_nan_gradient_gamma_below_1",
    "closed_form_gradient_matches_autodiff",
    "closed_form_gradient_half_precision",
    "closed_form_gives_no_label_gradient",
    "second_derivative_zero_closed_form_exact_autodiff",
    "categorical_closed_form_second_derivative",
    "closed_form_saves_one_logits_sized_tensor",
]


@pytest.fixture(scope="session")
def backend_results() -> dict[str, dict]:
    """Run the checker once per installed back-end, concurrently; {backend: payload or {"error": text}}."""
    return run_checker(CHECKER, "focalkit_keras_")


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_keras_backend(backend: str, check: str, backend_results: dict[str, dict]) -> None:
    assert_check(backend_results, backend, check)


def test_checker_lists_every_check() -> None:
    """The CHECKS list above and the checks defined in the script stay in sync."""
    assert sorted(registered_checks(CHECKER)) == sorted(CHECKS)


def test_import_focalkit_is_lazy() -> None:
    """import focalkit (core) does not import Keras, TensorFlow or JAX."""
    code = (
        "import sys, focalkit\n"
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'optax') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
