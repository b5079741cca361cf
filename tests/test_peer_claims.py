"""What the README states about other libraries' focal losses, reproduced.

Each test pins one row or sentence of the README's "Conventions compared" table, its "Where focalkit differs from
Keras and optax" list and its Semantics section, with the value measured here, so that a change of a peer library (or
a wrong sentence) fails a test instead of going unnoticed.

- torchvision: ``torchvision.ops.sigmoid_focal_loss`` written out in ``focalkit_app.bench._impls.torchvision_formula``
  (torchvision itself is optional and often absent);
- mmcv: its CUDA kernels cannot run here; ``_mmcv_sigmoid_kernel`` and ``_mmcv_softmax_kernel_target_gradient``
  transcribe them (``mmcv/ops/csrc/common/cuda/{sigmoid,softmax}_focal_loss_cuda_kernel.cuh``), in the kernel's
  element type T with ``FLT_MIN`` cast to T as the C++ does;
- kornia and optax: the installed packages (skipped when absent);
- Keras 3: ``tests/keras_peer_claims_check.py`` measures its losses in a subprocess per back-end (Keras picks its
  back-end once, at import; TensorFlow is never imported into the pytest process, see tests/test_frontend_keras.py),
  and the assertions are here.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import focalkit
from focalkit import reference
from focalkit_app.bench._impls import torchvision_formula

HALF_DTYPES = [torch.float16, torch.bfloat16]
ALL_DTYPES = [torch.float32, *HALF_DTYPES]
# |logit| from the body of the distribution to far beyond any probability the dtypes can hold
MAGNITUDES = [0.0, 1.0, 9.0, 12.0, 16.7, 17.4, 20.0, 50.0, 100.0, 1e3, 1e4]
FLT_MIN = 1.1754943508222875e-38


def _dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _representable(lo: float, hi: float, dtype: torch.dtype) -> torch.Tensor:
    """Every value of ``dtype`` in [lo, hi] (lo, hi > 0), ascending."""
    int_type = torch.int32 if dtype == torch.float32 else torch.int16
    bounds = torch.tensor([lo, hi], dtype=dtype).view(int_type).tolist()
    return torch.arange(bounds[0], bounds[1] + 1, dtype=int_type).view(dtype)


def _first_above(value: float, dtype: torch.dtype) -> float:
    """The smallest value of ``dtype`` strictly above ``value`` (> 0)."""
    width = 4 * torch.finfo(dtype).eps  # a few ulps either side
    candidates = _representable(value * (1 - width), value * (1 + width), dtype)
    return float(candidates[candidates.double() > value][0])


def _torchvision_gradient(x: torch.Tensor, y: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The torchvision formula (alpha 0.25, reduction "sum") and its gradient, in the dtype of ``x``."""
    x = x.detach().clone().requires_grad_(True)
    total = torchvision_formula(x, y, 0.25, gamma)
    (grad,) = torch.autograd.grad(total, x)
    return total.detach(), grad


def _torchvision_losses(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """The formula's per-element losses (it returns their sum), in the dtype of ``x``."""
    return torch.stack([torchvision_formula(x[i : i + 1], y[i : i + 1], 0.25, gamma) for i in range(len(x))])


def _both_sides(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits +-MAGNITUDES with the label that makes them right and the one that makes them wrong; 'right' mask."""
    m = torch.tensor(MAGNITUDES)
    x = torch.cat([m, -m, m, -m]).to(dtype)
    y = torch.cat([torch.ones_like(m), torch.zeros_like(m), torch.zeros_like(m), torch.ones_like(m)]).to(dtype)
    right = torch.cat([torch.ones_like(m), torch.ones_like(m), torch.zeros_like(m), torch.zeros_like(m)]).bool()
    return x, y, right


# ---------------------------------------------------------------------------------------------------- torchvision

# The formula's gradient is NaN where p_t rounds to exactly 1 and gamma < 1: d (1 - p_t)^gamma / d p_t is then
# -gamma 0^(gamma - 1) = -inf, times a zero. p_t = sigmoid(x) (y = 1) rounds to 1 once exp(-x) is below half an ulp
# of 1 from above, 2^-24 in float32; p_t = 1 - sigmoid(x) (y = 0) once sigmoid(x) is below half an ulp from below,
# 2^-25. In float16 / bfloat16 the sigmoid is rounded to the dtype, and both sides round at 2^-12 / 2^-9.
# Onset: the first value of the dtype above k ln 2.
NAN_ONSET_POWERS = {torch.float32: {1.0: 24, 0.0: 25}, torch.float16: {1.0: 12, 0.0: 12},
                    torch.bfloat16: {1.0: 9, 0.0: 9}}


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("label", [1.0, 0.0])
def test_torchvision_formula_nan_gradient_onset(dtype: torch.dtype, label: float) -> None:
    """NaN gradient from |x| >= 16.64 (y = 1) / 17.33 (y = 0) in fp32, 8.32 in fp16, 6.25 in bf16, gamma 0.5,
    on the confidently right side only, at every larger |x| up to 1e4; the loss itself stays finite."""
    onset = _first_above(NAN_ONSET_POWERS[dtype][label] * math.log(2.0), dtype)
    sign = 1.0 if label == 1.0 else -1.0
    window = _representable(onset * 0.998, onset * 1.002, dtype)
    far = torch.tensor([20.0, 30.0, 50.0, 100.0, 1e3, 1e4], dtype=dtype)
    magnitudes = torch.cat([window, far])
    x = sign * magnitudes
    total, grad = _torchvision_gradient(x, torch.full_like(x, label), gamma=0.5)
    nan = torch.isnan(grad)
    assert torch.isfinite(total)
    assert torch.isfinite(grad[magnitudes < onset]).all(), "NaN before the onset"
    assert nan[magnitudes >= onset].all(), "finite at or after the onset"
    assert float(magnitudes[nan].min()) == onset
    # focalkit at the same points: finite, and of the sign that pushes x further towards the label
    x_fk = x.clone().requires_grad_(True)
    (fk_grad,) = torch.autograd.grad(focalkit.sigmoid_focal_loss(x_fk, torch.full_like(x, label), 0.25, 0.5).sum(),
                                     x_fk)
    assert torch.isfinite(fk_grad).all() and (sign * fk_grad <= 0).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9])
def test_torchvision_formula_nan_only_on_the_confidently_right_side(dtype: torch.dtype, gamma: float) -> None:
    """gamma < 1: confidently wrong elements keep a finite loss and the gradient +-alpha_t; right ones turn NaN."""
    x, y, right = _both_sides(dtype)
    _, grad = _torchvision_gradient(x, y, gamma)
    assert torch.isfinite(_torchvision_losses(x, y, gamma)).all()
    assert torch.isfinite(grad[~right]).all()
    assert torch.isnan(grad[right & (x.abs() >= 20)]).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("gamma", [0.0, 1.0, 1.5, 2.0])
def test_torchvision_formula_finite_for_gamma_0_and_gamma_at_least_1(dtype: torch.dtype, gamma: float) -> None:
    """gamma = 0 (torch's pow has a zero derivative at exponent 0) and gamma >= 1 (0^(gamma - 1) is finite): finite
    loss and gradient at |x| up to 1e4; for gamma >= 1 the right side's gradient is exactly 0 once p_t rounds to 1."""
    x, y, right = _both_sides(dtype)
    _, grad = _torchvision_gradient(x, y, gamma)
    assert torch.isfinite(_torchvision_losses(x, y, gamma)).all() and torch.isfinite(grad).all()
    if gamma >= 1:
        assert (grad[right & (x.abs() >= 20)] == 0).all()


# ---------------------------------------------------------------------------------------------------- mmcv


def _mmcv_sigmoid_kernel(x: torch.Tensor, is_target: torch.Tensor, gamma: float, alpha: float):
    """mmcv's sigmoid focal loss CUDA kernel (forward and its closed-form backward), element type T = x.dtype:
    p = 1 / (1 + expf(-x)); loss = -alpha (1 - p)^g log(max(p, FLT_MIN)) for the target column,
    -(1 - alpha) p^g log(max(1 - p, FLT_MIN)) for the others; FLT_MIN is cast to T (0 in half precision)."""
    floor = torch.tensor(FLT_MIN, dtype=x.dtype)
    p = (1.0 / (1.0 + torch.exp(-x.float()))).to(x.dtype)
    q = 1 - p
    log_p, log_q = torch.log(torch.maximum(p, floor)), torch.log(torch.maximum(q, floor))
    loss = torch.where(is_target, -alpha * q.pow(gamma) * log_p, -(1 - alpha) * p.pow(gamma) * log_q)
    grad_p = q.pow(gamma) * (q - gamma * p * log_p)
    grad_n = p.pow(gamma) * (gamma * q * log_q - p)
    grad = torch.where(is_target, -alpha * grad_p, -(1 - alpha) * grad_n)
    return loss, grad


def _mmcv_softmax_kernel_target_gradient(p_t: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """mmcv's softmax focal loss backward, first kernel: the factor of (onehot - softmax) of each row,
    alpha (-(1 - p_t)^g + g (1 - p_t)^(g - 1) p_t log(max(p_t, FLT_MIN)))."""
    log_p_t = torch.log(torch.maximum(p_t, torch.tensor(FLT_MIN, dtype=p_t.dtype)))
    return alpha * (-(1 - p_t).pow(gamma) + gamma * (1 - p_t).pow(gamma - 1) * p_t * log_p_t)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_mmcv_sigmoid_kernel_finite_in_float32_and_capped_at_flt_min(gamma: float) -> None:
    """Its hand-written gradient has no (1 - p)^(gamma - 1) factor: finite at every |x| <= 1e4 for gamma < 1 too.
    Its log is clamped at FLT_MIN: a confidently wrong element's loss stops at alpha_t 87.3 (true: alpha_t |x|)."""
    x, y, _ = _both_sides(torch.float32)
    loss, grad = _mmcv_sigmoid_kernel(x, y.bool(), gamma, 0.25)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    cap = -math.log(FLT_MIN)
    wrong_positive = (y == 1) & (x <= -100)
    torch.testing.assert_close(loss[wrong_positive], torch.full_like(loss[wrong_positive], 0.25 * cap))
    truth = reference.sigmoid_focal_loss(x.double(), y.double(), 0.25, gamma)
    torch.testing.assert_close(truth[wrong_positive], 0.25 * x[wrong_positive].abs().double(), rtol=1e-9, atol=0)
    assert (truth[wrong_positive] > loss[wrong_positive].double()).all()


def test_mmcv_sigmoid_kernel_half_precision_loses_the_clamp() -> None:
    """In float16 (T)FLT_MIN is 0: a positive whose sigmoid underflows (x <= -17.4) gives loss inf, gradient NaN."""
    x = torch.tensor([-12.0, -17.4, -20.0, -100.0, -1e4], dtype=torch.float16)
    loss, grad = _mmcv_sigmoid_kernel(x, torch.ones_like(x, dtype=torch.bool), 2.0, 0.25)
    assert torch.isfinite(loss[0]) and torch.isfinite(grad[0])
    assert torch.isinf(loss[1:]).all() and torch.isnan(grad[1:]).all()


def test_mmcv_softmax_kernel_nan_gradient_for_gamma_below_1() -> None:
    """The softmax backward keeps (1 - p_t)^(gamma - 1): NaN once p_t rounds to 1 (two classes, margin >= 16.64 in
    float32, as for the torchvision formula); finite for gamma >= 1 and for rows that are not saturated."""
    margin = torch.tensor([5.0, 16.0, 16.7, 20.0, 100.0])
    p_t = torch.softmax(torch.stack([margin, torch.zeros_like(margin)], dim=1), dim=1)[:, 0]
    below = _mmcv_softmax_kernel_target_gradient(p_t, 0.5, 0.25)
    assert torch.isfinite(below[:2]).all() and torch.isnan(below[2:]).all()
    assert torch.isfinite(_mmcv_softmax_kernel_target_gradient(p_t, 2.0, 0.25)).all()


# ---------------------------------------------------------------------------------------------------- kornia


def _kornia_losses():
    return pytest.importorskip("kornia.losses", reason="the kornia comparison needs kornia")


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_kornia_finite_at_extreme_logits(dtype: torch.dtype, gamma: float) -> None:
    """kornia's binary loss uses exp(gamma logsigmoid) and its softmax loss detaches the factor where p_t rounds to
    1: losses and gradients are finite at |x| <= 1e4 in fp32, fp16 and bf16, for the functions and the modules."""
    kl = _kornia_losses()
    x, y, _ = _both_sides(dtype)
    x_bin, y_bin = x.reshape(1, 1, -1), y.reshape(1, 1, -1)
    m = torch.tensor(MAGNITUDES)
    zeros = torch.zeros_like(m)
    # three classes, target 0 (right: +m, wrong: -m) and target 1 (right and wrong)
    rows = torch.cat([torch.stack([m, zeros, -m], 1), torch.stack([-m, zeros, m], 1), torch.stack([zeros, m, zeros], 1),
                      torch.stack([zeros, -m, zeros], 1)]).to(dtype)
    target = torch.cat([torch.zeros(2 * len(m)), torch.ones(2 * len(m))]).long()
    calls = [
        (lambda z, r: kl.binary_focal_loss_with_logits(z, y_bin, alpha=0.25, gamma=gamma, reduction=r), x_bin),
        (lambda z, r: kl.BinaryFocalLossWithLogits(alpha=0.25, gamma=gamma, reduction=r)(z, y_bin), x_bin),
        (lambda z, r: kl.focal_loss(z, target, alpha=0.25, gamma=gamma, reduction=r), rows),
        (lambda z, r: kl.FocalLoss(alpha=0.25, gamma=gamma, reduction=r)(z, target), rows),
    ]
    for call, logits in calls:
        for reduction in ("none", "mean", "sum"):
            z = logits.clone().requires_grad_(True)
            loss = call(z, reduction)
            (grad,) = torch.autograd.grad(loss.sum(), z)
            assert loss.dtype == dtype
            assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (reduction, dtype)


@pytest.mark.parametrize("alpha", [None, 0.25, 0.75])
def test_kornia_binary_weights_negatives_by_one_minus_alpha(alpha: float | None) -> None:
    """binary_focal_loss_with_logits: alpha on the positive term, 1 - alpha on the negative term (alpha_t); None
    weighs both by 1. Hard targets: the paper's formula (focalkit.reference). Soft targets t: the two terms weighted
    by t and 1 - t, t FL(x, 1) + (1 - t) FL(x, 0), which is not torchvision's (and focalkit's) soft-target form."""
    kl = _kornia_losses()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, generator=g, dtype=torch.float64) * 4
    hard = (torch.rand(3, 4, 5, generator=g) < 0.3).double()
    theirs = kl.binary_focal_loss_with_logits(x, hard, alpha=alpha, gamma=2.0, reduction="none")
    torch.testing.assert_close(theirs, reference.sigmoid_focal_loss(x, hard, alpha, 2.0), rtol=1e-10, atol=1e-12)
    soft = torch.rand(3, 4, 5, generator=g, dtype=torch.float64)
    theirs = kl.binary_focal_loss_with_logits(x, soft, alpha=alpha, gamma=2.0, reduction="none")
    positive = reference.sigmoid_focal_loss(x, torch.ones_like(x), alpha, 2.0)
    negative = reference.sigmoid_focal_loss(x, torch.zeros_like(x), alpha, 2.0)
    torch.testing.assert_close(theirs, soft * positive + (1 - soft) * negative, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(theirs, reference.sigmoid_focal_loss(x, soft, alpha, 2.0))


@pytest.mark.parametrize("alpha", [0.25, 0.75])
def test_kornia_softmax_alpha_weighs_class_0_by_one_minus_alpha(alpha: float) -> None:
    """focal_loss (softmax): class 0 weighted 1 - alpha, classes 1..C-1 alpha: focalkit's per-class alpha
    [1 - alpha, alpha, ..., alpha], not a float multiplying every term (focalkit, mmcv, Keras)."""
    kl = _kornia_losses()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, 3, generator=g, dtype=torch.float64) * 3
    t = torch.randint(0, 4, (6, 3), generator=g)
    theirs = kl.focal_loss(x, t, alpha=alpha, gamma=2.0, reduction="none").sum(1)
    per_class = [1 - alpha] + [alpha] * 3
    torch.testing.assert_close(theirs, reference.softmax_focal_loss(x, t, per_class, 2.0), rtol=1e-10, atol=1e-12)
    as_float = reference.softmax_focal_loss(x, t, alpha, 2.0)
    assert not torch.allclose(theirs, as_float)


def test_kornia_mean_divides_by_n_c_spatial() -> None:
    """'mean' = sum / (N C H W) for both losses, ignored pixels included in the count (F.cross_entropy and focalkit
    leave them out; softmax 'mean' is therefore the mean cross-entropy / C at gamma 0)."""
    kl = _kornia_losses()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    y = (torch.rand(2, 5, 3, 4, generator=g) < 0.3).double()
    binary = kl.binary_focal_loss_with_logits
    torch.testing.assert_close(binary(x, y, alpha=0.25, reduction="mean"),
                               binary(x, y, alpha=0.25, reduction="sum") / x.numel())
    t = torch.randint(0, 5, (2, 3, 4), generator=g)
    t[0, 0] = -100  # four ignored pixels
    mean = kl.focal_loss(x, t, alpha=None, gamma=0.0, reduction="mean")
    total = kl.focal_loss(x, t, alpha=None, gamma=0.0, reduction="sum")
    torch.testing.assert_close(mean, total / x.numel())
    cross_entropy = torch.nn.functional.cross_entropy(x, t, reduction="sum")
    torch.testing.assert_close(total, cross_entropy)


def test_kornia_half_precision_computed_and_summed_in_the_input_dtype() -> None:
    """fp16 inputs: the loss is computed in fp16 (error several times fp16's rounding of the output, which is
    focalkit's only error there) and 'sum' is returned in fp16, inf above 65504 (focalkit returns fp32)."""
    kl = _kornia_losses()
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 4, 256, generator=g) * 4).half()
    y = (torch.rand(1, 4, 256, generator=g) < 0.5).half()
    truth = reference.sigmoid_focal_loss(x.double(), y.double(), 0.25, 2.0)
    body = truth > 1e-3

    def max_relative_error(loss: torch.Tensor) -> float:
        return float(((loss.double() - truth).abs() / truth)[body].max())

    theirs = max_relative_error(kl.binary_focal_loss_with_logits(x, y, alpha=0.25, gamma=2.0))
    ours = max_relative_error(focalkit.sigmoid_focal_loss(x, y, 0.25, 2.0))
    assert ours <= 1.01 * 2.0**-11 and theirs > 2 * 2.0**-11, (ours, theirs)  # measured: 4.6e-4 and 2.2e-3
    big = torch.full((1, 1, 10), 1e4, dtype=torch.float16)  # ten losses of 7500
    summed = kl.binary_focal_loss_with_logits(big, torch.zeros_like(big), alpha=0.25, reduction="sum")
    assert summed.dtype == torch.float16 and torch.isinf(summed)
    ours_summed = focalkit.sigmoid_focal_loss(big, torch.zeros_like(big), 0.25, 2.0, reduction="sum")
    assert ours_summed.dtype == torch.float32 and float(ours_summed) == 75000.0


# ---------------------------------------------------------------------------------------------------- optax


def _optax():
    pytest.importorskip("jax", reason="the optax comparison needs JAX")
    return pytest.importorskip("optax", reason="the optax comparison needs optax")


def test_optax_finite_loss_gradient_hessian_in_the_tails() -> None:
    """optax.losses.sigmoid_focal_loss works in log space: at |x| <= 1e4, gamma 0.5 and 2, both sides, loss, gradient
    and second derivative are finite in float32, and loss and gradient in float16 and bfloat16 (computed in the
    input dtype). One compiled function, to compile once."""
    optax = _optax()
    import jax
    import jax.numpy as jnp

    def focal(z, labels, gamma):
        return optax.losses.sigmoid_focal_loss(z, labels, alpha=0.25, gamma=gamma)

    @jax.jit
    def measurements(z, labels):
        out = {}
        for dtype in (jnp.float32, jnp.float16, jnp.bfloat16):
            zd, yd = z.astype(dtype), labels.astype(dtype)
            for gamma in (0.5, 2.0):
                grad = jax.grad(lambda w: focal(w, yd, gamma).sum())  # noqa: B023 - called at once
                values = {"loss": focal(zd, yd, gamma), "gradient": grad(zd)}
                if dtype == jnp.float32:
                    values["second derivative"] = jax.grad(lambda w: grad(w).sum())(zd)  # noqa: B023
                out[f"{jnp.dtype(dtype).name}, gamma {gamma}"] = values
        return out

    x, y, _ = _both_sides(torch.float32)
    results = measurements(jnp.asarray(x.numpy()), jnp.asarray(y.numpy()))
    assert len(results) == 6
    for case, values in results.items():
        assert values["loss"].dtype == jnp.dtype(case.split(",")[0])
        for name, value in values.items():
            assert bool(jnp.isfinite(value).all()), (case, name)


def test_optax_conventions() -> None:
    """alpha None: no weighting; alpha: alpha_t = alpha y + (1 - alpha)(1 - y); no reduction (the logits' shape);
    no softmax focal loss; labels may be arrays or Python numbers, not lists."""
    optax = _optax()
    import jax
    import jax.numpy as jnp

    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, generator=g) * 3
    y = torch.rand(4, 6, generator=g)
    focal = optax.losses.sigmoid_focal_loss

    @jax.jit
    def calls(z, labels):
        return (focal(z, labels, alpha=None, gamma=2.0), focal(z, labels, alpha=0.25, gamma=2.0), focal(z, 1.0),
                focal(z, jnp.ones_like(z)))

    unweighted, weighted, scalar_label, array_label = (
        np.asarray(v, np.float64) for v in calls(jnp.asarray(x.numpy()), jnp.asarray(y.numpy())))
    for alpha, theirs in ((None, unweighted), (0.25, weighted)):
        assert theirs.shape == (4, 6)
        ours = reference.sigmoid_focal_loss(x.double(), y.double(), alpha, 2.0).numpy()
        np.testing.assert_allclose(theirs, ours, rtol=1e-5)
    np.testing.assert_array_equal(scalar_label, array_label)
    assert [name for name in dir(optax.losses) if "focal" in name.lower()] == ["sigmoid_focal_loss"]
    with pytest.raises(TypeError):
        focal(jnp.asarray(x[0].numpy()), [1.0] * 6)


# ---------------------------------------------------------------------------------------------------- Keras

KERAS_SCRIPT = Path(__file__).with_name("keras_peer_claims_check.py")
KERAS_BACKENDS = {"torch": "torch", "jax": "jax"}  # back-end -> the package it needs
KERAS_TIMEOUT_S = 300


def _keras_3() -> bool:
    # Not importorskip: importing Keras here would import TensorFlow into the pytest process (see module docstring).
    return importlib.util.find_spec("keras") is not None and \
        int(importlib.metadata.version("keras").split(".")[0]) >= 3


@pytest.fixture(scope="module", autouse=True)
def keras_processes(request: pytest.FixtureRequest):
    """Start the Keras measurements (one subprocess per back-end) when the module starts, so that they run while
    the tests above do, if any Keras test is selected; {backend: (process, output path)}."""
    selected = any(item.name.startswith("test_keras_") for item in request.session.items
                   if getattr(item, "module", None) is request.module)
    if not selected or not _keras_3():
        yield {}
        return
    tmp = Path(tempfile.mkdtemp(prefix="focalkit_keras_peers_"))
    procs = {}
    for backend, package in KERAS_BACKENDS.items():
        if importlib.util.find_spec(package) is None:
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        out = tmp / f"{backend}.json"
        procs[backend] = (subprocess.Popen([sys.executable, str(KERAS_SCRIPT), str(out)], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out)
    yield procs
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


_keras_payloads: dict[str, dict] = {}


def _keras(backend: str, name: str, keras_processes) -> dict:
    """One measurement of the Keras script on ``backend`` (waits for its subprocess)."""
    if not _keras_3():
        pytest.skip("the Keras comparison needs Keras 3")
    if backend not in keras_processes:
        pytest.skip(f"Keras back-end {backend!r} needs {KERAS_BACKENDS[backend]!r}, which is not installed")
    if backend not in _keras_payloads:
        proc, out = keras_processes[backend]
        log, _ = proc.communicate(timeout=KERAS_TIMEOUT_S)
        assert proc.returncode == 0 and out.exists(), f"Keras script failed on {backend}:\n{log[-3000:]}"
        _keras_payloads[backend] = json.loads(out.read_text())
    payload = _keras_payloads[backend]
    assert payload["backend"] == backend
    result = payload["results"][name]
    assert "error" not in result, result.get("error")
    return result


def keras_backends(test):
    """A Keras test, run for each back-end of KERAS_BACKENDS."""
    return pytest.mark.slow(pytest.mark.parametrize("backend", list(KERAS_BACKENDS))(test))


KERAS_EPSILON = 1e-7  # keras.backend.epsilon(), the clip of every probability


@keras_backends
def test_keras_categorical_caps_loss_and_zeroes_gradient_below_the_clip(backend: str, keras_processes) -> None:
    """CategoricalFocalCrossentropy clips softmax probabilities to [1e-7, 1 - 1e-7]: a target probability below 1e-7
    reads (1 - 1e-7)^gamma (-log 1e-7) = 16.1 (alpha 1) at any logit, with an exactly zero gradient; above the clip
    the gradient is the ordinary one."""
    r = _keras(backend, "categorical_from_logits_tails", keras_processes)
    p_t = np.asarray(r["p_t_wrong"])
    clipped = p_t < KERAS_EPSILON
    assert clipped.any() and (~clipped).any()
    for gamma in (0.5, 2.0):
        loss, grad = np.asarray(r[f"gamma={gamma},wrong"]["loss"]), np.asarray(r[f"gamma={gamma},wrong"]["grad"])
        cap = -math.log(KERAS_EPSILON)
        np.testing.assert_allclose(loss[clipped], cap, rtol=1e-5)
        assert np.all(grad[clipped] == 0)
        assert np.all(np.abs(grad[~clipped][:, 0]) > 0.5)
        truth = reference.softmax_focal_loss(
            torch.tensor([[-s, 0.0, 0.0] for s in r["magnitudes"]], dtype=torch.float64),
            torch.zeros(len(p_t), dtype=torch.long), None, gamma).numpy()
        assert truth[-1] > 500 * loss[-1]  # at logit -1e4 the true loss is 1e4
    r = _keras(backend, "categorical_from_probabilities_below_the_clip", keras_processes)
    p_t, loss, grad = np.asarray(r["p_t"]), np.asarray(r["loss"]), np.asarray(r["grad"])
    clipped = p_t < KERAS_EPSILON
    np.testing.assert_allclose(loss[clipped], -math.log(KERAS_EPSILON), rtol=1e-5)
    assert np.all(grad[clipped] == 0) and np.all(grad[~clipped][:, 0] < 0)


@keras_backends
def test_keras_categorical_never_nan_right_side_floors(backend: str, keras_processes) -> None:
    """The clip also keeps 1 - p_t >= 1.2e-7, so (1 - p_t)^gamma never has an infinite derivative: no NaN for
    gamma 0.5 or 2 at |x| <= 1e4. A confidently right row reads a constant floor instead of tending to 0."""
    r = _keras(backend, "categorical_from_logits_tails", keras_processes)
    magnitudes = np.asarray(r["magnitudes"])
    for gamma in (0.5, 2.0):
        for side in ("wrong", "right"):
            m = r[f"gamma={gamma},{side}"]
            assert np.all(np.isfinite(m["loss"])) and np.all(np.isfinite(m["grad"])), (gamma, side)
        right = np.asarray(r[f"gamma={gamma},right"]["loss"])
        floor = right[magnitudes >= 20]
        assert np.all(floor == floor[0]) and floor[0] > 0
        assert np.all(np.asarray(r[f"gamma={gamma},right"]["grad"])[magnitudes >= 20] == 0)


@keras_backends
def test_keras_reductions(backend: str, keras_processes) -> None:
    """Default reduction "sum_over_batch_size": BinaryFocalCrossentropy averages over the last axis, then over the
    batch, i.e. divides by all elements; CategoricalFocalCrossentropy sums over classes, then divides by the rows."""
    r = _keras(backend, "reductions", keras_processes)
    np.testing.assert_allclose(r["binary_mean"], np.mean(r["binary_elements"]), rtol=1e-6)
    np.testing.assert_allclose(r["categorical_mean"], np.mean(r["categorical_rows"]), rtol=1e-6)
    assert not np.isclose(r["binary_mean"], np.sum(r["binary_elements"]) / 4, rtol=1e-3)  # not sum / rows


@keras_backends
def test_keras_alpha_conventions(backend: str, keras_processes) -> None:
    """BinaryFocalCrossentropy ignores alpha unless apply_class_balancing=True, then weighs by alpha_t;
    CategoricalFocalCrossentropy's default alpha 0.25 multiplies every term."""
    r = _keras(backend, "binary_alpha_defaults", keras_processes)
    np.testing.assert_array_equal(r["alpha_0.9_unbalanced"], r["alpha_0.1_unbalanced"])
    labels = np.ravel(r["labels"])
    alpha_t = 0.9 * labels + 0.1 * (1 - labels)
    np.testing.assert_allclose(np.ravel(r["per_element_balanced_0.9"]), alpha_t * np.ravel(r["per_element_unbalanced"]),
                               rtol=1e-6)
    np.testing.assert_allclose(r["categorical_default"], 0.25 * np.asarray(r["categorical_alpha_1"]), rtol=1e-6)


@keras_backends
def test_keras_binary_from_logits_clips_and_nans(backend: str, keras_processes) -> None:
    """from_logits on the PyTorch and JAX back-ends takes the sigmoid, then clips: a positive at x = -30 reads
    0.25 (-log 1e-7) = 4.03 (true 7.5) with zero gradient. pow on probabilities: at x = +-30 on the right side,
    gamma 0.5, the gradient is NaN; the first NaN on a 1/64 grid is the first point above 24 ln 2 (y = 1) and
    25 ln 2 (y = 0), as for the torchvision formula, and every larger |x| stays NaN."""
    r = _keras(backend, "binary_from_logits_extremes", keras_processes)
    wrong = r["wrong_positive_gamma_0"]
    np.testing.assert_allclose(wrong["loss"][0], 0.25 * -math.log(KERAS_EPSILON), rtol=1e-5)
    assert wrong["grad"][0][0] == 0.0
    assert np.all(np.isnan(r["right_gamma_0.5"]["grad"]))
    onset = _keras(backend, "binary_nan_gradient_onset", keras_processes)
    for side, power in (("y=1", 24), ("y=0", 25)):
        expected = math.ceil(power * math.log(2.0) * 64) / 64
        assert onset[side]["first_non_finite"] == expected and onset[side]["all_non_finite_after"], onset


@keras_backends
def test_keras_binary_probability_of_a_right_negative(backend: str, keras_processes) -> None:
    """p = 2.1e-9, y = 0, gamma 0: the clip at 1e-7 reads 7.5e-8 to 8.9e-8 instead of 1.5e-9. Its gradient is NaN on
    the JAX back-end (pow(0, 0)'s derivative, 1 - p_t having rounded to 0) and 0 on the PyTorch one (the clip)."""
    r = _keras(backend, "binary_right_negative_probability", keras_processes)
    truth = 0.75 * math.log1p(math.exp(-20.0))
    assert 7.4e-8 <= r["loss"][0] <= 9.0e-8 and r["loss"][0] > 40 * truth
    grad = r["grad"][0][0]
    assert math.isnan(grad) if backend == "jax" else grad == 0.0


@keras_backends
def test_keras_half_precision_inputs_computed_in_float32(backend: str, keras_processes) -> None:
    """A loss of the default dtype casts float16 inputs to float32: same values as the float32 of the same numbers."""
    r = _keras(backend, "half_precision_inputs", keras_processes)
    assert r["dtype"] == "float32"
    np.testing.assert_array_equal(r["from_half"], r["from_float32"])
