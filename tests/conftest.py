"""Shared test helpers: dtype tolerances and the probability bands x target patterns grid."""

from __future__ import annotations

import pytest
import torch

import focalkit

# Relative / absolute tolerance of a back-end against the float64 reference, per input dtype. Half-precision
# inputs are rounded before the reference sees them, so the remaining error is that of fp32 math plus the rounding of
# the output to the input dtype ("none" reductions).
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=2e-5, atol=1e-6),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-3),
    torch.float16: dict(rtol=2e-3, atol=1e-4),
}

FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# Logit bands: small probabilities, large probabilities, and mixed random logits.
BANDS = {
    "low": lambda g, shape: -torch.rand(shape, generator=g) * 6 - 3,
    "high": lambda g, shape: torch.rand(shape, generator=g) * 6 + 3,
    "random": lambda g, shape: torch.randn(shape, generator=g) * 3,
}
PATTERNS = {
    "zeros": lambda g, shape: torch.zeros(shape),
    "ones": lambda g, shape: torch.ones(shape),
    "random": lambda g, shape: (torch.rand(shape, generator=g) > 0.5).float(),
    "soft": lambda g, shape: torch.rand(shape, generator=g),
}


@pytest.fixture(params=["recompute", "store"])
def gradient_mode(request):
    """Runs a test in both gradient modes (focalkit.set_gradient_mode), restoring the default after."""
    focalkit.set_gradient_mode(request.param)
    yield request.param
    focalkit.set_gradient_mode("recompute")


def make_logits(band: str, shape, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return BANDS[band](generator, shape)


def make_targets(pattern: str, shape, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return PATTERNS[pattern](generator, shape)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(
        actual.to(torch.float64), expected.to(torch.float64), rtol=tol["rtol"] * scale, atol=tol["atol"] * scale
    )


def pytest_configure(config: pytest.Config) -> None:
    torch.manual_seed(0)
