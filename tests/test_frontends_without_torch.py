"""focalkit.jax and focalkit.keras work in a process where PyTorch cannot be imported; ``import focalkit`` is light.

Each check runs in a fresh interpreter (``sys.executable``): the pytest process has long since imported torch. Torch is
blocked by a meta-path finder that raises ImportError for ``torch`` and ``torch.*``, not by ``sys.modules["torch"] =
None``: SciPy (imported by JAX) looks ``torch`` up in ``sys.modules`` to recognise tensors and fails on a ``None``
entry, so that way would test SciPy rather than focalkit.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

TIMEOUT_S = 300

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import sys
    import types


    class _BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked in this test")
            return None


    sys.meta_path.insert(0, _BlockTorch())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("torch was imported despite the block")


    def assert_no_torch():
        real = [m for m, mod in sys.modules.items()
                if (m == "torch" or m.startswith("torch.")) and isinstance(mod, types.ModuleType)]
        assert not real, real
    """
)

JAX_CODE = BLOCK_TORCH + textwrap.dedent(
    """
    import numpy as np
    import jax
    import jax.numpy as jnp

    import focalkit
    import focalkit.jax as fj

    x = jnp.array([2.0, -1.0, 0.5])
    y = jnp.array([1.0, 0.0, 1.0])
    loss = fj.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0)
    assert loss.shape == (3,) and bool(jnp.all(jnp.isfinite(loss))), loss
    grad = jax.grad(lambda z: fj.sigmoid_focal_loss(z, y, gamma=2.0).sum())(x)
    assert grad.shape == (3,) and bool(jnp.all(jnp.isfinite(grad))), grad

    logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]])
    labels = jnp.array([0, 2])
    loss = fj.softmax_focal_loss(logits, labels, gamma=2.0, alpha=[0.25, 0.5, 0.75])
    assert loss.shape == (2,) and bool(jnp.all(loss > 0)), loss
    grad = jax.grad(lambda z: fj.softmax_focal_loss(z, labels, gamma=2.0).sum())(logits)
    assert grad.shape == (2, 3) and bool(jnp.all(jnp.isfinite(grad))), grad
    np.testing.assert_allclose(np.asarray(grad).sum(axis=1), 0.0, atol=1e-6)  # softmax: gradient rows sum to 0

    assert fj.binary_focal_loss(jnp.array([0.9, 0.2]), jnp.array([1.0, 0.0])).shape == (2,)
    assert fj.sigmoid_focal_loss_star(x, y).shape == (3,)
    assert bool(jnp.all(jnp.isfinite(fj.asymmetric_loss(x, y)))) and fj.poly1_focal_loss(x, y).shape == (3,)
    assert fj.poly1_cross_entropy(logits, labels).shape == (2,)
    assert fj.asymmetric_loss_single_label(logits, labels).shape == (2,)

    # errors come from focalkit.errors, without torch
    try:
        fj.sigmoid_focal_loss(x, y, gamma=-1.0)
    except focalkit.InvalidArgumentError as e:
        assert str(e) == "gamma: expected a number >= 0.0, got -1.0", str(e)
    else:
        raise AssertionError("no error for gamma=-1")

    assert_no_torch()
    print("ok")
    """
)

KERAS_CODE = BLOCK_TORCH + textwrap.dedent(
    """
    import numpy as np
    import keras
    from keras import ops

    import focalkit
    import focalkit.keras as fk

    assert keras.backend.backend() == "jax", keras.backend.backend()
    y_true = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    y_pred = np.array([[0.3, 0.6], [0.8, 0.4]], np.float32)
    loss = float(ops.convert_to_numpy(fk.BinaryFocalLoss(gamma=2.0, alpha=0.25)(y_true, y_pred)))
    assert np.isfinite(loss) and loss > 0, loss
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]], np.float32)
    loss = float(ops.convert_to_numpy(fk.SparseCategoricalFocalLoss(from_logits=True)(np.array([0, 2]), logits)))
    assert np.isfinite(loss) and loss > 0, loss
    for value in (fk.AsymmetricLoss()(y_true, logits[:, :2]), fk.Poly1CrossEntropy()(np.array([0, 2]), logits)):
        assert np.isfinite(float(ops.convert_to_numpy(value))), value

    try:
        fk.BinaryFocalLoss(alpha=1.5)
    except focalkit.InvalidArgumentError as e:
        assert str(e).startswith("alpha: expected"), str(e)
    else:
        raise AssertionError("no error for alpha=1.5")

    assert_no_torch()
    print("ok")
    """
)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu", **env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def _assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip().endswith("ok"), proc.stdout[-3000:]


def test_import_focalkit_imports_nothing_heavy() -> None:
    """Plain ``import focalkit`` loads neither PyTorch nor any optional dependency."""
    code = (
        "import sys\n"
        "import focalkit\n"
        "heavy = ('torch', 'triton', 'jax', 'jaxlib', 'keras', 'tensorflow', 'matplotlib', 'pandas')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    _assert_ok(_run(code))


def test_jax_front_end_without_torch() -> None:
    pytest.importorskip("jax", reason="focalkit.jax needs JAX: pip install 'focalkit[jax]'")
    _assert_ok(_run(JAX_CODE))


def test_keras_front_end_on_jax_without_torch() -> None:
    # Not pytest.importorskip("keras"): importing Keras here would load its default back-end (TensorFlow) into the
    # pytest process; see tests/test_frontend_keras.py. Keras only runs in the subprocess, on its JAX back-end.
    if importlib.util.find_spec("keras") is None:
        pytest.skip("focalkit.keras needs Keras 3: pip install 'focalkit[keras]'")
    if int(importlib.metadata.version("keras").split(".")[0]) < 3:
        pytest.skip("focalkit.keras needs Keras 3, found Keras 2")
    pytest.importorskip("jax", reason="this check runs Keras on its JAX back-end")
    _assert_ok(_run(KERAS_CODE, KERAS_BACKEND="jax"))
