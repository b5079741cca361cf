"""Running a Keras checker script once per installed Keras back-end, each in its own subprocess.

Keras picks its back-end once per process, and importing TensorFlow beside Triton in one process aborts it, so the
Keras tests never import Keras in the pytest process: a checker script (``tests/keras_*_check.py``) runs per
back-end with ``KERAS_BACKEND`` set, writes ``{"backend": ..., "results": {check: {"ok": ..., "detail": ...}}}`` to
a JSON file, and the test modules assert every recorded check.
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

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # Keras back-end -> package it needs
TIMEOUT_S = 540


def require_keras3() -> None:
    """Skip the calling test module unless Keras 3 is installed (checked without importing it)."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("focalkit.keras needs Keras 3: pip install 'focalkit[keras]'", allow_module_level=True)
    if int(importlib.metadata.version("keras").split(".")[0]) < 3:
        pytest.skip("focalkit.keras needs Keras 3, found Keras 2", allow_module_level=True)


def available(backend: str) -> bool:
    """Whether the package a Keras back-end needs is installed."""
    return importlib.util.find_spec(BACKENDS[backend]) is not None


def run_checker(checker: Path, prefix: str, timeout_s: int = TIMEOUT_S) -> dict[str, dict]:
    """Run ``checker`` once per installed back-end, concurrently; {backend: payload or {"error": text}}."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    procs = {}
    for backend in BACKENDS:
        if not available(backend):
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        out = tmp / f"{backend}.json"
        proc = subprocess.Popen([sys.executable, str(checker), str(out)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        procs[backend] = (proc, out)
    results = {}
    for backend, (proc, out) in procs.items():
        try:
            log, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
            results[backend] = {"error": f"timed out after {timeout_s} s\n{log[-3000:]}"}
            continue
        if proc.returncode != 0 or not out.exists():
            results[backend] = {"error": f"exit code {proc.returncode}\n{log[-3000:]}"}
        else:
            results[backend] = json.loads(out.read_text())
    return results


def assert_check(results: dict[str, dict], backend: str, check: str) -> None:
    """The check ran on that back-end (and on no other) and passed; skipped when the back-end is not installed."""
    if not available(backend):
        pytest.skip(f"Keras back-end {backend!r} needs the {BACKENDS[backend]!r} package, which is not installed")
    payload = results[backend]
    assert "error" not in payload, f"checker script failed on {backend}:\n{payload.get('error')}"
    if "backend" in payload:
        assert payload["backend"] == backend, f"Keras ran on {payload['backend']!r}, not {backend!r}"
    result = payload["results"].get(check)
    assert result is not None, f"check {check!r} did not run on {backend}"
    assert result["ok"], f"{check} on {backend}:\n{result['detail']}"


def registered_checks(checker: Path) -> list[str]:
    """The names of the functions decorated with ``@check`` in a checker script."""
    lines = checker.read_text().splitlines()
    return [line[4:].split("(")[0] for prev, line in zip(lines, lines[1:]) if prev == "@check" and line.startswith("def ")]
