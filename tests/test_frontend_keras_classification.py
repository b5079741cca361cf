"""focalkit.keras classification losses (AsymmetricLoss, AsymmetricLossSingleLabel, Poly1CrossEntropy,
Poly1FocalLoss) on every installed Keras back-end: each back-end runs tests/keras_classification_check.py in its own
subprocess (Keras picks its back-end once per process), and every check it records is asserted here."""

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

# Not pytest.importorskip("keras"): importing Keras here would load its default back-end into the pytest process
# (see tests/test_frontend_keras.py). Keras only ever runs in the subprocesses.
if importlib.util.find_spec("keras") is None:
    pytest.skip("focalkit.keras needs Keras 3: pip install 'focalkit[keras]'", allow_module_level=True)
if int(importlib.metadata.version("keras").split(".")[0]) < 3:
    pytest.skip("focalkit.keras needs Keras 3, found Keras 2", allow_module_level=True)

HERE = Path(__file__).parent
CHECKER = HERE / "keras_classification_check.py"
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
TIMEOUT_S = 540
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
    tmp = Path(tempfile.mkdtemp(prefix="focalkit_keras_classification_"))
    procs = {}
    for backend, module in BACKENDS.items():
        if importlib.util.find_spec(module) is None:
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        out = tmp / f"{backend}.json"
        proc = subprocess.Popen([sys.executable, str(CHECKER), str(out)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        procs[backend] = (proc, out)
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
def test_keras_classification_backend(backend: str, check: str, backend_results: dict[str, dict]) -> None:
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"{backend} is not installed")
    payload = backend_results[backend]
    assert "error" not in payload, payload.get("error")
    result = payload["results"].get(check)
    assert result is not None, f"check {check} did not run on {backend}"
    assert result["ok"], result["detail"]


def test_checker_lists_every_check() -> None:
    lines = CHECKER.read_text().splitlines()
    # a check is a function right below @check
    defined = [line[4:].split("(")[0] for prev, line in zip(lines, lines[1:], strict=False) if prev == "@check"]
    assert sorted(defined) == sorted(CHECKS), defined
