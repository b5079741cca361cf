"""focalkit.keras on the TensorFlow, JAX and PyTorch back-ends of Keras 3.

Keras chooses its back-end once, at first import, from KERAS_BACKEND. Each back-end therefore runs
tests/keras_backend_check.py in its own subprocess (all back-ends started together, once per session); every check
the script records becomes one test item here, so a failure names its back-end and check and shows the traceback.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Not pytest.importorskip: importing Keras here would import its default back-end (TensorFlow) into the pytest process,
# and TensorFlow 2.21 loaded before Triton 3.9 aborts the process ("LLVM ERROR: inconsistency in registered
# CommandLine options") as soon as a later test imports torch._dynamo. Keras only ever runs in the subprocesses.
if importlib.util.find_spec("keras") is None:
    pytest.skip("focalkit.keras needs Keras 3: pip install 'focalkit[keras]'", allow_module_level=True)
if int(importlib.metadata.version("keras").split(".")[0]) < 3:
    pytest.skip("focalkit.keras needs Keras 3, found Keras 2", allow_module_level=True)

HERE = Path(__file__).parent
CHECKER = HERE / "keras_backend_check.py"
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
TIMEOUT_S = 540

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
    "closed_form_saves_one_logits_sized_tensor",
]


def _available(backend: str) -> bool:
    return importlib.util.find_spec(BACKENDS[backend]) is not None


@pytest.fixture(scope="session")
def backend_results() -> dict[str, dict]:
    """Run the checker once per installed back-end, concurrently; {backend: payload or {"error": text}}."""
    tmp = Path(tempfile.mkdtemp(prefix="focalkit_keras_"))
    procs = {}
    for backend in BACKENDS:
        if not _available(backend):
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        out = tmp / f"{backend}.json"
        procs[backend] = (
            subprocess.Popen(
                [sys.executable, str(CHECKER), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
            out,
        )
    results = {}
    for backend, (proc, out) in procs.items():
        try:
            log, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
            results[backend] = {"error": f"timed out after {TIMEOUT_S} s\n{log[-3000:]}"}
            continue
        if proc.returncode != 0 or not out.exists():
            results[backend] = {"error": f"exit code {proc.returncode}\n{log[-3000:]}"}
        else:
            results[backend] = json.loads(out.read_text())
    return results


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_keras_backend(backend: str, check: str, backend_results: dict[str, dict]) -> None:
    if not _available(backend):
        pytest.skip(f"Keras back-end {backend!r} needs the {BACKENDS[backend]!r} package, which is not installed")
    payload = backend_results[backend]
    assert "error" not in payload, f"checker script failed on {backend}:\n{payload.get('error')}"
    assert payload["backend"] == backend, f"Keras ran on {payload['backend']!r}, not {backend!r}"
    result = payload["results"].get(check)
    assert result is not None, f"check {check!r} did not run on {backend}"
    assert result["ok"], f"{check} on {backend}:\n{result['detail']}"


def test_checker_lists_every_check() -> None:
    """The CHECKS list above and the checks defined in the script stay in sync."""
    source = CHECKER.read_text()
    defined = [line.split("def ")[1].split("(")[0] for line in source.splitlines() if line.startswith("def ")]
    registered = [name for name in defined if f"@check\ndef {name}(" in source]
    assert sorted(registered) == sorted(CHECKS)


def test_import_focalkit_is_lazy() -> None:
    """import focalkit (core) does not import Keras, TensorFlow or JAX."""
    code = (
        "import sys, focalkit\n"
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'optax') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
