"""One bad hyper-parameter, one error: the PyTorch core, the adaptive losses, focalkit.jax and focalkit.keras agree.

``focalkit.semantics`` defines the meaning and the error text of the shared scalar hyper-parameters. For each shared
bad argument this module checks that semantics produces the documented message, and that every front-end which has
that argument raises the same exception type with the identical text. The PyTorch core and the adaptive losses run
in this process, JAX too (skipped without JAX); Keras runs in one subprocess on its JAX back-end (importing Keras here
would load TensorFlow next to Triton, see tests/test_frontend_keras.py).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

import focalkit
from focalkit import semantics
from focalkit.errors import InvalidArgumentError, InvalidTypeError

NAN = float("nan")

# case -> (exception type, the exact message, the semantics call that defines it)
CASES: dict[str, tuple[type, str, Callable[[], Any]]] = {
    "gamma=-1": (InvalidArgumentError, "gamma: expected a number >= 0.0, got -1.0", lambda: semantics.check_gamma(-1)),
    "gamma=-1 (FL*)": (
        InvalidArgumentError,
        "gamma: expected a number > 0.0, got -1.0",
        lambda: semantics.check_gamma(-1, strict=True),
    ),
    "gamma='2'": (InvalidTypeError, "gamma: expected a real number, got '2'", lambda: semantics.check_gamma("2")),
    "gamma=nan": (InvalidArgumentError, "gamma: expected a finite number, got nan", lambda: semantics.check_gamma(NAN)),
    "sigmoid alpha=1.5": (
        InvalidArgumentError,
        "alpha: expected a number in [0, 1], None or a negative number to disable it, got 1.5",
        lambda: semantics.check_sigmoid_alpha(1.5),
    ),
    "softmax alpha=2.0": (
        InvalidArgumentError,
        "alpha: expected a number in [0, 1] or None, got 2.0",
        lambda: semantics.check_softmax_alpha(2.0),
    ),
    "label_smoothing=1.5": (
        InvalidArgumentError,
        "label_smoothing: expected a number in [0, 1], got 1.5",
        lambda: semantics.check_label_smoothing(1.5),
    ),
    "reduction='avg'": (
        InvalidArgumentError,
        "reduction: expected one of ('none', 'mean', 'sum'), got 'avg'",
        lambda: semantics.check_reduction("avg"),
    ),
}


def _outcome(call: Callable[[], Any]) -> tuple[type, str]:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the type is what is compared (pytest's skip is not an Exception)
        return type(error), str(error)
    raise AssertionError("no exception raised")


def _assert_same_as_semantics(case: str, call: Callable[[], Any]) -> None:
    want_type, want_message, _ = CASES[case]
    got_type, got_message = _outcome(call)
    assert (got_type, got_message) == (want_type, want_message)


@pytest.mark.parametrize("case", list(CASES))
def test_semantics_defines_the_message(case: str) -> None:
    _assert_same_as_semantics(case, CASES[case][2])


# ---------- PyTorch core (public API) ----------


def _torch() -> Any:
    return pytest.importorskip("torch")


def _sig() -> tuple[Any, Any]:
    torch = _torch()
    return torch.zeros(4, 3), torch.zeros(4, 3)


def _soft() -> tuple[Any, Any]:
    torch = _torch()
    return torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)


def _probs() -> tuple[Any, Any]:
    torch = _torch()
    return torch.full((4, 3), 0.5), torch.zeros(4, 3)


F = focalkit  # attributes are looked up when a call runs (the core loads lazily)

# A module is built and called: whether it checks its hyper-parameters in __init__ or in forward is its own business.

CORE: dict[str, dict[str, Callable[[], Any]]] = {
    "gamma=-1": {
        "sigmoid_focal_loss": lambda: F.sigmoid_focal_loss(*_sig(), gamma=-1),
        "softmax_focal_loss": lambda: F.softmax_focal_loss(*_soft(), gamma=-1),
        "binary_focal_loss": lambda: F.binary_focal_loss(*_probs(), gamma=-1),
        "SigmoidFocalLoss": lambda: F.SigmoidFocalLoss(gamma=-1)(*_sig()),
        "SoftmaxFocalLoss": lambda: F.SoftmaxFocalLoss(gamma=-1)(*_soft()),
        "BinaryFocalLoss": lambda: F.BinaryFocalLoss(gamma=-1)(*_probs()),
    },
    "gamma=-1 (FL*)": {
        "sigmoid_focal_loss_star": lambda: F.sigmoid_focal_loss_star(*_sig(), gamma=-1),
        "SigmoidFocalLossStar": lambda: F.SigmoidFocalLossStar(gamma=-1)(*_sig()),
    },
    "gamma='2'": {
        "sigmoid_focal_loss": lambda: F.sigmoid_focal_loss(*_sig(), gamma="2"),
        "softmax_focal_loss": lambda: F.softmax_focal_loss(*_soft(), gamma="2"),
        "binary_focal_loss": lambda: F.binary_focal_loss(*_probs(), gamma="2"),
        "sigmoid_focal_loss_star": lambda: F.sigmoid_focal_loss_star(*_sig(), gamma="2"),
        "SoftmaxFocalLoss": lambda: F.SoftmaxFocalLoss(gamma="2")(*_soft()),
    },
    "gamma=nan": {
        "sigmoid_focal_loss": lambda: F.sigmoid_focal_loss(*_sig(), gamma=NAN),
        "softmax_focal_loss": lambda: F.softmax_focal_loss(*_soft(), gamma=NAN),
        "binary_focal_loss": lambda: F.binary_focal_loss(*_probs(), gamma=NAN),
        "SigmoidFocalLoss": lambda: F.SigmoidFocalLoss(gamma=NAN)(*_sig()),
    },
    "sigmoid alpha=1.5": {
        "sigmoid_focal_loss": lambda: F.sigmoid_focal_loss(*_sig(), alpha=1.5),
        "binary_focal_loss": lambda: F.binary_focal_loss(*_probs(), alpha=1.5),
        "sigmoid_focal_loss_star": lambda: F.sigmoid_focal_loss_star(*_sig(), alpha=1.5),
        "SigmoidFocalLoss": lambda: F.SigmoidFocalLoss(alpha=1.5)(*_sig()),
        "BinaryFocalLoss": lambda: F.BinaryFocalLoss(alpha=1.5)(*_probs()),
    },
    "softmax alpha=2.0": {
        "softmax_focal_loss": lambda: F.softmax_focal_loss(*_soft(), alpha=2.0),
        "SoftmaxFocalLoss": lambda: F.SoftmaxFocalLoss(alpha=2.0)(*_soft()),
    },
    "label_smoothing=1.5": {
        "softmax_focal_loss": lambda: F.softmax_focal_loss(*_soft(), label_smoothing=1.5),
        "SoftmaxFocalLoss": lambda: F.SoftmaxFocalLoss(label_smoothing=1.5)(*_soft()),
    },
    "reduction='avg'": {
        "sigmoid_focal_loss": lambda: F.sigmoid_focal_loss(*_sig(), reduction="avg"),
        "softmax_focal_loss": lambda: F.softmax_focal_loss(*_soft(), reduction="avg"),
        "binary_focal_loss": lambda: F.binary_focal_loss(*_probs(), reduction="avg"),
        "sigmoid_focal_loss_star": lambda: F.sigmoid_focal_loss_star(*_sig(), reduction="avg"),
        "SigmoidFocalLoss": lambda: F.SigmoidFocalLoss(reduction="avg")(*_sig()),
        "SoftmaxFocalLoss": lambda: F.SoftmaxFocalLoss(reduction="avg")(*_soft()),
        "BinaryFocalLoss": lambda: F.BinaryFocalLoss(reduction="avg")(*_probs()),
    },
}


@pytest.mark.parametrize(
    "case,label", [(case, label) for case, calls in CORE.items() for label in calls], ids=lambda v: str(v)
)
def test_core(case: str, label: str) -> None:
    _assert_same_as_semantics(case, CORE[case][label])


# ---------- adaptive losses (where the argument exists: their gamma may be negative, there is no alpha) ----------


def _adaptive() -> Any:
    _torch()
    import focalkit.adaptive as adaptive

    return adaptive


ADAPTIVE: dict[str, dict[str, Callable[[], Any]]] = {
    "gamma='2'": {"per_sample_focal_loss": lambda: _adaptive().per_sample_focal_loss(*_soft(), gamma="2")},
    "gamma=nan": {"per_sample_focal_loss": lambda: _adaptive().per_sample_focal_loss(*_soft(), gamma=NAN)},
    "reduction='avg'": {
        "per_sample_focal_loss": lambda: _adaptive().per_sample_focal_loss(*_soft(), gamma=2.0, reduction="avg"),
        "FLSD53Loss": lambda: _adaptive().FLSD53Loss(reduction="avg"),
        "AdaFocalLoss": lambda: _adaptive().AdaFocalLoss(reduction="avg"),
        "AutomatedFocalLoss": lambda: _adaptive().AutomatedFocalLoss(reduction="avg"),
    },
}


@pytest.mark.parametrize(
    "case,label", [(case, label) for case, calls in ADAPTIVE.items() for label in calls], ids=lambda v: str(v)
)
def test_adaptive(case: str, label: str) -> None:
    _assert_same_as_semantics(case, ADAPTIVE[case][label])


def test_adaptive_gamma_like_parameters_use_semantics() -> None:
    adaptive = _adaptive()
    assert _outcome(lambda: adaptive.FLSD53Loss(gamma_low=-1)) == _outcome(
        lambda: semantics.check_number("gamma_low", -1, minimum=0.0)
    )
    assert _outcome(lambda: adaptive.FLSD53Loss(gamma_high="3")) == (
        InvalidTypeError,
        "gamma_high: expected a real number, got '3'",
    )
    assert _outcome(lambda: adaptive.AdaFocalLoss(lam=NAN)) == (
        InvalidArgumentError,
        "lam: expected a finite number, got nan",
    )


# ---------- JAX front-end (no reduction, no label smoothing) ----------


def _fj() -> Any:
    pytest.importorskip("jax", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")
    import focalkit.jax as fj

    return fj


def _jsig() -> tuple[Any, Any]:
    import jax.numpy as jnp

    return jnp.zeros((4, 3)), jnp.zeros((4, 3))


def _jsoft() -> tuple[Any, Any]:
    import jax.numpy as jnp

    return jnp.zeros((4, 3)), jnp.zeros(4, jnp.int32)


def _jprobs() -> tuple[Any, Any]:
    import jax.numpy as jnp

    return jnp.full((4, 3), 0.5), jnp.zeros((4, 3))


JAX: dict[str, dict[str, Callable[[], Any]]] = {
    "gamma=-1": {
        "sigmoid_focal_loss": lambda: _fj().sigmoid_focal_loss(*_jsig(), gamma=-1),
        "softmax_focal_loss": lambda: _fj().softmax_focal_loss(*_jsoft(), gamma=-1),
        "binary_focal_loss": lambda: _fj().binary_focal_loss(*_jprobs(), gamma=-1),
    },
    "gamma=-1 (FL*)": {"sigmoid_focal_loss_star": lambda: _fj().sigmoid_focal_loss_star(*_jsig(), gamma=-1)},
    "gamma='2'": {
        "sigmoid_focal_loss": lambda: _fj().sigmoid_focal_loss(*_jsig(), gamma="2"),
        "softmax_focal_loss": lambda: _fj().softmax_focal_loss(*_jsoft(), gamma="2"),
        "binary_focal_loss": lambda: _fj().binary_focal_loss(*_jprobs(), gamma="2"),
        "sigmoid_focal_loss_star": lambda: _fj().sigmoid_focal_loss_star(*_jsig(), gamma="2"),
    },
    "gamma=nan": {
        "sigmoid_focal_loss": lambda: _fj().sigmoid_focal_loss(*_jsig(), gamma=NAN),
        "softmax_focal_loss": lambda: _fj().softmax_focal_loss(*_jsoft(), gamma=NAN),
        "binary_focal_loss": lambda: _fj().binary_focal_loss(*_jprobs(), gamma=NAN),
    },
    "sigmoid alpha=1.5": {
        "sigmoid_focal_loss": lambda: _fj().sigmoid_focal_loss(*_jsig(), alpha=1.5),
        "binary_focal_loss": lambda: _fj().binary_focal_loss(*_jprobs(), alpha=1.5),
        "sigmoid_focal_loss_star": lambda: _fj().sigmoid_focal_loss_star(*_jsig(), alpha=1.5),
    },
    "softmax alpha=2.0": {"softmax_focal_loss": lambda: _fj().softmax_focal_loss(*_jsoft(), alpha=2.0)},
}


@pytest.mark.parametrize(
    "case,label", [(case, label) for case, calls in JAX.items() for label in calls], ids=lambda v: str(v)
)
def test_jax(case: str, label: str) -> None:
    _assert_same_as_semantics(case, JAX[case][label])


def test_jax_per_class_alpha_uses_semantics() -> None:
    fj = _fj()
    want = _outcome(lambda: semantics.check_per_class_values("alpha", [0.25, 1.5, 0.5], unit_range=True))
    assert _outcome(lambda: fj.sigmoid_focal_loss(*_jsig(), alpha=[0.25, 1.5, 0.5])) == want
    assert _outcome(lambda: fj.softmax_focal_loss(*_jsoft(), alpha=[0.25, 1.5, 0.5])) == want


def test_jax_array_gamma_is_rejected_as_not_static() -> None:
    import jax.numpy as jnp

    fj = _fj()
    error_type, message = _outcome(lambda: fj.sigmoid_focal_loss(*_jsig(), gamma=jnp.float32(2.0)))
    assert error_type is InvalidTypeError
    assert message.startswith("gamma: expected a static Python number"), message


# ---------- Keras front-end, in a subprocess on its JAX back-end ----------

# (case, label, call); the call is source evaluated in the subprocess with fk = focalkit.keras and np = numpy
KERAS: list[tuple[str, str, str]] = [
    ("gamma=-1", "BinaryFocalLoss", "fk.BinaryFocalLoss(gamma=-1)"),
    ("gamma=-1", "CategoricalFocalLoss", "fk.CategoricalFocalLoss(gamma=-1)"),
    ("gamma=-1", "SparseCategoricalFocalLoss", "fk.SparseCategoricalFocalLoss(gamma=-1)"),
    ("gamma=-1", "binary_focal_loss", "fk.binary_focal_loss(Y, P, gamma=-1)"),
    ("gamma='2'", "BinaryFocalLoss", "fk.BinaryFocalLoss(gamma='2')"),
    ("gamma='2'", "CategoricalFocalLoss", "fk.CategoricalFocalLoss(gamma='2')"),
    ("gamma='2'", "SparseCategoricalFocalLoss", "fk.SparseCategoricalFocalLoss(gamma='2')"),
    ("gamma=nan", "BinaryFocalLoss", "fk.BinaryFocalLoss(gamma=float('nan'))"),
    ("gamma=nan", "categorical_focal_loss", "fk.categorical_focal_loss(Y, P, gamma=float('nan'))"),
    ("sigmoid alpha=1.5", "BinaryFocalLoss", "fk.BinaryFocalLoss(alpha=1.5)"),
    ("sigmoid alpha=1.5", "binary_focal_loss", "fk.binary_focal_loss(Y, P, alpha=1.5)"),
    ("softmax alpha=2.0", "CategoricalFocalLoss", "fk.CategoricalFocalLoss(alpha=2.0)"),
    ("softmax alpha=2.0", "SparseCategoricalFocalLoss", "fk.SparseCategoricalFocalLoss(alpha=2.0)"),
    ("softmax alpha=2.0", "sparse_categorical_focal_loss", "fk.sparse_categorical_focal_loss(T, P, alpha=2.0)"),
    ("label_smoothing=1.5", "BinaryFocalLoss", "fk.BinaryFocalLoss(label_smoothing=1.5)"),
    ("label_smoothing=1.5", "CategoricalFocalLoss", "fk.CategoricalFocalLoss(label_smoothing=1.5)"),
    ("label_smoothing=1.5", "categorical_focal_loss", "fk.categorical_focal_loss(Y, P, label_smoothing=1.5)"),
]
# Keras's reductions are its own (a different set from the core's "none" | "mean" | "sum"): same type and form of
# message, from semantics.check_choice, not the same text.
KERAS_REDUCTION_CALL = "fk.BinaryFocalLoss(reduction='avg')"

KERAS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import focalkit.keras as fk

    Y = np.eye(3, dtype=np.float32)[[0, 2]]
    P = np.full((2, 3), 1 / 3, np.float32)
    T = np.array([0, 2])
    out = {}
    for key, source in json.loads(sys.argv[1]).items():
        try:
            eval(source)
        except Exception as error:
            out[key] = [type(error).__module__ + "." + type(error).__qualname__, str(error)]
        else:
            out[key] = None
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def keras_outcomes() -> dict[str, Any]:
    if importlib.util.find_spec("keras") is None:
        pytest.skip("focalkit.keras needs Keras 3: pip install 'focalkit[keras]'")
    if int(importlib.metadata.version("keras").split(".")[0]) < 3:
        pytest.skip("focalkit.keras needs Keras 3, found Keras 2")
    pytest.importorskip("jax", reason="the Keras checks run on Keras's JAX back-end")
    calls = {f"{case}|{label}": source for case, label, source in KERAS}
    calls["reduction"] = KERAS_REDUCTION_CALL
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, json.dumps(calls)], env=env, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit code {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _qualified(error_type: type) -> str:
    return f"{error_type.__module__}.{error_type.__qualname__}"


@pytest.mark.parametrize("case,label", [(case, label) for case, label, _ in KERAS], ids=lambda v: str(v))
def test_keras(case: str, label: str, keras_outcomes: dict[str, Any]) -> None:
    want_type, want_message, _ = CASES[case]
    got = keras_outcomes[f"{case}|{label}"]
    assert got is not None, "no exception raised"
    assert tuple(got) == (_qualified(want_type), want_message)


def test_keras_reduction(keras_outcomes: dict[str, Any]) -> None:
    got = keras_outcomes["reduction"]
    assert got is not None, "no exception raised"
    keras_reductions = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none")
    want = _outcome(lambda: semantics.check_choice("reduction", "avg", keras_reductions))
    assert tuple(got) == (_qualified(want[0]), want[1])
