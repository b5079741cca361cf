"""How the Triton kernel tests run: compiled on CUDA, or in Triton's CPU interpreter.

``FOCALKIT_TRITON_TESTS`` = ``cuda`` | ``interpreter`` | ``auto`` (default: CUDA when available). The interpreter
must be switched on (``TRITON_INTERPRET=1``) before the kernels are decorated, i.e. before ``focalkit.backends.triton``
kernel modules are imported; a test module calls :func:`choose_mode` first, imports the kernels, then calls
:func:`check_kernels` with them. Both skip the whole module (with the reason) where the mode cannot be honoured.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch


def choose_mode(test_file: str) -> bool:
    """Decide the mode (True: CUDA) and switch the interpreter on for CPU runs."""
    mode = os.environ.get("FOCALKIT_TRITON_TESTS", "auto").lower()
    on_gpu = mode == "cuda" or (mode == "auto" and torch.cuda.is_available())
    if on_gpu and not torch.cuda.is_available():  # pragma: no cover
        pytest.skip("FOCALKIT_TRITON_TESTS=cuda but CUDA is not available", allow_module_level=True)
    if not on_gpu:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":  # pragma: no cover
            pytest.skip(
                "triton was imported earlier in this process without TRITON_INTERPRET=1 (by another test module?), "
                f"so its kernels cannot run in the CPU interpreter; run this file on its own: pytest {test_file}",
                allow_module_level=True,
            )
        os.environ["TRITON_INTERPRET"] = "1"
    return on_gpu


def check_kernels(on_gpu: bool, kernels: list[object], test_file: str) -> None:
    """Skip when the kernel modules were imported earlier in the other mode (interpreted vs compiled)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover
        InterpretedFunction = ()  # type: ignore[assignment]
    interpreted = all(isinstance(k, InterpretedFunction) for k in kernels)
    if interpreted == on_gpu:  # pragma: no cover
        pytest.skip(
            f"focalkit.backends.triton.* were imported earlier in this process in the other Triton mode (interpreter: "
            f"{interpreted}); run this file on its own: pytest {test_file}",
            allow_module_level=True,
        )
