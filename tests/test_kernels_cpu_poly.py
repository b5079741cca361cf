"""The specialised CPU kernels of the asymmetric loss, the Poly-1 focal loss and the Poly-1 cross-entropy.

The asymmetric loss picks, per 256-element chunk, a loop for binary targets (one log per element), and per call
loops for gamma_pos = 0, clip > 0 and integer gamma_neg (compile-time powers for 0..8); the Poly-1 focal loss runs
on the sigmoid focal kernel's loop for epsilon >= 0 and on the logistic-family loop for epsilon < 0; the Poly-1
cross-entropy runs on the softmax kernel. Each path is compared with the float64 reference (values and gradients
by float64 autograd) over the probability bands, binary and soft targets, every kernel dtype and parameter grids
that reach every variant, then: chunks of mixed target kinds, tiny p_m, the cancellation of epsilon = -1 at
p_t -> 1, weight and ignore_index, 1 vs 2 threads, compute_grad off, and |logit| up to 1e4. No timing here.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import focalkit
from focalkit import reference
from focalkit.backends import get_forward, resolve_backend
from focalkit.backends.cpu import library as cpu_lib
from focalkit.backends.cpu import logistic

from conftest import BANDS, FLOAT_DTYPES, assert_close, make_logits, make_targets

pytestmark = pytest.mark.skipif(not cpu_lib.available(), reason=f"CPU kernels not built: {cpu_lib.load_error()}")

# binary targets (the per-chunk binary loop) and soft targets (the general loop)
TARGET_PATTERNS = ["zeros", "ones", "random", "soft"]
SHAPE = (40, 13)  # 520 elements: two full chunks and a partial one


def _grad_of(loss_fn, x, *args):
    """(loss, d sum(loss) / d x) of a float64 reference on the rounded inputs."""
    x64 = x.detach().double().requires_grad_(True)
    loss = loss_fn(x64, *args)
    (grad,) = torch.autograd.grad(loss.sum(), x64)
    return loss.detach(), grad


def _cpu(op, x, y, *, reduce_sum=False, compute_grad=True, **kwargs):
    return get_forward(op, "cpu")(x, y, **kwargs, reduce_sum=reduce_sum, compute_grad=compute_grad)


# ------------------------------------------------------------------------------------------------ asymmetric
# (gamma_pos, gamma_neg, clip, detach): the paper's default, every compile-time power 0..8, a run-time integer power
# (10), a non-integer power, no clip, a wide clip, a positive gamma_pos and the detached weights
ASYMMETRIC_PARAMS = [
    (0.0, 4.0, 0.05, 0.0), (0.0, 0.0, 0.05, 0.0), (0.0, 1.0, 0.05, 0.0), (0.0, 2.0, 0.1, 0.0),
    (0.0, 3.0, 0.05, 0.0), (0.0, 5.0, 0.05, 0.0), (0.0, 8.0, 0.02, 0.0), (0.0, 10.0, 0.05, 0.0),
    (0.0, 3.5, 0.05, 0.0), (0.0, 4.0, 0.0, 0.0), (0.0, 2.0, 0.6, 0.0), (1.0, 4.0, 0.05, 0.0),
    (0.0, 4.0, 0.05, 1.0), (2.0, 2.5, 0.0, 1.0),
]


def _asymmetric_args(params):
    gamma_pos, gamma_neg, clip, detach = params
    return dict(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, detach_focal_weight=detach, ignore_index=None)


def _asymmetric_reference(x, y, params):
    gamma_pos, gamma_neg, clip, detach = params
    return _grad_of(lambda x64: reference.asymmetric_loss(x64, y.double(), gamma_pos, gamma_neg, clip,
                                                          detach_focal_weight=bool(detach)), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("params", ASYMMETRIC_PARAMS)
def test_asymmetric_matches_reference(params, band, pattern, dtype):
    x = make_logits(band, SHAPE).to(dtype)
    y = make_targets(pattern, SHAPE).to(dtype)
    loss, grad = _cpu("asymmetric", x, y, **_asymmetric_args(params))
    ref_loss, ref_grad = _asymmetric_reference(x, y, params)
    assert grad.dtype == dtype
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("params", [(0.0, 4.0, 0.05, 0.0), (0.0, 3.5, 0.05, 0.0)])
def test_asymmetric_chunks_of_mixed_target_kinds(params):
    """Binary and soft chunks in one call: each chunk takes its own loop and both match the reference."""
    x = make_logits("random", (8, 256), seed=3)
    y = make_targets("random", (8, 256), seed=4)
    y[1::2] = make_targets("soft", (4, 256), seed=5)  # odd rows (chunks) soft, even rows binary
    y[3, 17] = 0.5  # a binary chunk with a single soft value takes the general loop
    loss, grad = _cpu("asymmetric", x, y, **_asymmetric_args(params))
    ref_loss, ref_grad = _asymmetric_reference(x, y, params)
    assert_close(loss, ref_loss, torch.float32)
    assert_close(grad, ref_grad, torch.float32)


@pytest.mark.parametrize("pattern", ["zeros", "soft"])
def test_asymmetric_tiny_shifted_probability_keeps_relative_accuracy(pattern):
    """Where p is just above the clip, p_m is small and -log(1 - p_m) ~ p_m must keep its relative accuracy: the error
    left is the rounding of p (ulp(0.05) / p_m <= 4e-5 here), where log(1 - p_m) from the rounded 1 - p_m would be
    off by up to ulp(1) / p_m = 6e-4."""
    clip = 0.05
    p = clip + torch.logspace(-4, -1, 64, dtype=torch.float64)
    x = torch.log(p / (1 - p)).float().reshape(8, 8)
    y = make_targets(pattern, (8, 8)) * 0.01 if pattern == "soft" else torch.zeros(8, 8)
    params = (0.0, 1.0, clip, 0.0)
    loss, grad = _cpu("asymmetric", x, y, **_asymmetric_args(params))
    ref_loss, ref_grad = _asymmetric_reference(x, y, params)
    torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-4, atol=0)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=0)


def test_asymmetric_nan_logit_gives_nan_loss():
    x = torch.tensor([[float("nan"), 1.0], [float("nan"), -1.0]])
    y = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    loss, _ = _cpu("asymmetric", x, y, **_asymmetric_args((0.0, 4.0, 0.05, 0.0)))
    assert torch.isnan(loss[:, 0]).all() and torch.isfinite(loss[:, 1]).all()


# ------------------------------------------------------------------------------------------------ Poly-1 focal
POLY_FOCAL_PARAMS = list(itertools.product([2.0, 0.0, 0.5, 3.0], [1.0, 0.0, 5.0, -1.0, -0.3]))


def _poly_focal_reference(x, y, gamma, epsilon, alpha_pos=None, alpha_neg=None):
    def loss_fn(x64):
        y64 = y.double()
        if alpha_pos is None:
            return reference.poly1_focal_loss(x64, y64, epsilon, alpha=None, gamma=gamma)
        # per-class alpha weighs the focal term only; the poly term is not alpha-weighted
        shape = [1] * x64.ndim
        shape[1] = x64.shape[1]
        a_t = alpha_pos.double().view(shape) * y64 + alpha_neg.double().view(shape) * (1 - y64)
        u = torch.sigmoid(x64) * (1 - y64) + torch.sigmoid(-x64) * y64
        return reference.sigmoid_focal_loss(x64, y64, alpha=None, gamma=gamma) * a_t + epsilon * u ** (gamma + 1)

    return _grad_of(loss_fn, x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("band,pattern", list(itertools.product(BANDS, TARGET_PATTERNS)))
@pytest.mark.parametrize("with_alpha", [False, True])
@pytest.mark.parametrize("gamma,epsilon", POLY_FOCAL_PARAMS)
def test_poly1_focal_matches_reference(gamma, epsilon, with_alpha, band, pattern, dtype):
    x = make_logits(band, SHAPE).to(dtype)
    y = make_targets(pattern, SHAPE).to(dtype)
    alphas = {}
    if with_alpha:
        alpha_pos = torch.linspace(0.1, 0.9, SHAPE[1])
        alphas = dict(alpha_pos=alpha_pos, alpha_neg=1 - alpha_pos)
    loss, grad = _cpu("poly1_focal", x, y, gamma=gamma, epsilon=epsilon, ignore_index=None, **alphas)
    ref_loss, ref_grad = _poly_focal_reference(x, y, gamma, epsilon, **alphas)
    assert grad.dtype == dtype
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("pattern", TARGET_PATTERNS)
@pytest.mark.parametrize("gamma,epsilon", [(2.0, 1.0), (0.5, 0.0), (3.0, 2.0)])
def test_poly1_focal_kernels_agree_for_nonnegative_epsilon(gamma, epsilon, pattern):
    """The sigmoid-kernel loop (chosen for epsilon >= 0) and the logistic-family loop give the same numbers."""
    x = make_logits("random", SHAPE, seed=7)
    y = make_targets(pattern, SHAPE, seed=8)
    fast = logistic.run("poly1_focal", x, y, params=(gamma, epsilon), reduce_sum=False, compute_grad=True,
                        poly1_sigmoid_kernel=True)
    family = logistic.run("poly1_focal", x, y, params=(gamma, epsilon), reduce_sum=False, compute_grad=True)
    torch.testing.assert_close(fast[0], family[0], rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(fast[1], family[1], rtol=2e-6, atol=1e-7)


def test_poly1_sigmoid_kernel_refuses_negative_epsilon():
    x, y = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(focalkit.InvalidArgumentError, match="poly1_sigmoid_kernel"):
        logistic.run("poly1_focal", x, y, params=(2.0, -1.0), reduce_sum=False, compute_grad=False,
                     poly1_sigmoid_kernel=True)


# ------------------------------------------------------------------------------------------------ Poly-1 CE
CE_SHAPES = [(37, 5), (2, 5, 7, 3), (3, 64)]
CE_EPSILONS = [1.0, 2.0, 0.0, -0.5, -1.0]


def _class_targets(shape, seed=2, ignore_every=0):
    rows = (shape[0], *shape[2:])
    t = torch.randint(0, shape[1], rows, generator=torch.Generator().manual_seed(seed))
    if ignore_every:
        t.view(-1)[::ignore_every] = -100
    return t


def _poly_ce_reference(x, t, epsilon, weight=None):
    return _grad_of(lambda x64: reference.poly1_cross_entropy(x64, t, epsilon, weight, 0.0, -100), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("band", list(BANDS))
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("epsilon", CE_EPSILONS)
def test_poly1_cross_entropy_matches_reference(epsilon, weighted, shape, band, dtype):
    x = make_logits(band, shape).to(dtype)
    t = _class_targets(shape, ignore_every=7)
    weight = torch.linspace(0.25, 2.0, shape[1]) if weighted else None
    loss, grad = _cpu("poly1_cross_entropy", x, t, class_weight=weight, epsilon=epsilon, label_smoothing=0.0,
                      ignore_index=-100)
    ref_loss, ref_grad = _poly_ce_reference(x, t, epsilon, weight)
    assert loss.shape == t.shape and grad.dtype == dtype
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("epsilon", [-1.0, -0.5, 1.0])
def test_poly1_cross_entropy_confident_rows_keep_relative_accuracy(epsilon):
    """p_t -> 1: CE ~ u and epsilon = -1 cancels them to ~u^2 / 2; the kernel keeps the relative accuracy."""
    margins = torch.linspace(2.0, 20.0, 32)
    x = torch.zeros(32, 4)
    x[:, 2] = margins
    t = torch.full((32,), 2)
    loss, grad = _cpu("poly1_cross_entropy", x, t, epsilon=epsilon, label_smoothing=0.0, ignore_index=None)
    ref_loss, ref_grad = _poly_ce_reference(x, t, epsilon)
    assert (loss > 0).all()
    torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-5, atol=1e-30)


def test_poly1_cross_entropy_public_function_runs_the_kernel_and_matches_torch(monkeypatch):
    x = make_logits("random", (50, 6), seed=4)
    t = _class_targets((50, 6), ignore_every=9)
    weight = torch.linspace(0.5, 1.5, 6)
    assert resolve_backend("poly1_cross_entropy", x, t, {"class_weight": weight}) == "cpu"
    results = {}
    for backend in ("torch", "cpu"):
        monkeypatch.setenv("FOCALKIT_BACKEND", backend)
        xb = x.clone().requires_grad_(True)
        loss = focalkit.poly1_cross_entropy(xb, t, 2.0, weight, reduction="mean")
        loss.backward()
        results[backend] = (loss.detach(), xb.grad)
    torch.testing.assert_close(results["cpu"][0], results["torch"][0], rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(results["cpu"][1], results["torch"][1], rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("case", ["probabilities", "label smoothing", "no rows"])
def test_poly1_cross_entropy_cases_computed_by_the_torch_closed_form(case):
    """Probability targets, label smoothing and empty inputs give the PyTorch back-end's numbers."""
    x = make_logits("random", (0 if case == "no rows" else 12, 5), seed=6)
    t = _class_targets(tuple(x.shape))
    smoothing = 0.1 if case == "label smoothing" else 0.0
    if case == "probabilities":
        t = torch.softmax(make_logits("random", (12, 5), seed=9), dim=1)
    args = dict(class_weight=torch.linspace(0.5, 1.5, 5), epsilon=1.5, label_smoothing=smoothing,
                ignore_index=None if case == "probabilities" else -100, reduce_sum=False, compute_grad=True)
    ours = get_forward("poly1_cross_entropy", "cpu")(x, t, **args)
    torch_numbers = get_forward("poly1_cross_entropy", "torch")(x, t, **args)
    torch.testing.assert_close(ours[0], torch_numbers[0], rtol=0, atol=0)
    torch.testing.assert_close(ours[1], torch_numbers[1], rtol=0, atol=0)


def test_poly1_cross_entropy_counts_invalid_targets():
    x = torch.zeros(4, 3)
    with pytest.raises(focalkit.InvalidArgumentError, match="target"):
        _cpu("poly1_cross_entropy", x, torch.tensor([0, 3, 1, 2]), epsilon=1.0, label_smoothing=0.0,
             ignore_index=-100)


# ------------------------------------------------------------------------------------------------ common flags
def _calls():
    """One call per specialised path: (op, logits, targets, keyword arguments)."""
    x = make_logits("random", (300, 64), seed=11)
    y = make_targets("random", (300, 64), seed=12)
    ys = make_targets("soft", (300, 64), seed=12)
    t = _class_targets((300, 64), ignore_every=5)
    return {
        "asymmetric binary": ("asymmetric", x, y, _asymmetric_args((0.0, 4.0, 0.05, 0.0))),
        "asymmetric soft": ("asymmetric", x, ys, _asymmetric_args((0.0, 3.5, 0.05, 0.0))),
        "poly1 focal": ("poly1_focal", x, y, dict(gamma=2.0, epsilon=1.0, ignore_index=None)),
        "poly1 focal negative": ("poly1_focal", x, ys, dict(gamma=2.0, epsilon=-1.0, ignore_index=None)),
        "poly1 cross-entropy": ("poly1_cross_entropy", x, t, dict(class_weight=torch.linspace(0.5, 2.0, 64),
                                                                 epsilon=1.0, label_smoothing=0.0, ignore_index=-100)),
    }


CALL_NAMES = sorted(_calls())


@pytest.mark.parametrize("name", CALL_NAMES)
def test_threads_do_not_change_the_numbers(name):
    op, x, y, kwargs = _calls()[name]
    # above the parallel threshold: the elements (rows) are split over the threads
    reps = -(-2 * cpu_lib.MIN_PARALLEL // x.numel()) + 1
    x = x.repeat(reps, 1)
    y = y.repeat(reps) if y.ndim == 1 else y.repeat(reps, 1)
    previous = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = (_cpu(op, x, y, **kwargs), _cpu(op, x, y, reduce_sum=True, **kwargs))
    finally:
        torch.set_num_threads(previous)
    (loss1, grad1), (sum1, _) = results[1]
    (loss2, grad2), (sum2, _) = results[2]
    torch.testing.assert_close(loss2, loss1, rtol=0, atol=0)
    torch.testing.assert_close(grad2, grad1, rtol=0, atol=0)
    torch.testing.assert_close(sum2, sum1, rtol=0, atol=0)


@pytest.mark.parametrize("name", CALL_NAMES)
def test_no_gradient_gives_the_same_loss(name):
    op, x, y, kwargs = _calls()[name]
    loss, grad = _cpu(op, x, y, **kwargs)
    loss_only, none = _cpu(op, x, y, compute_grad=False, **kwargs)
    total, no_grad = _cpu(op, x, y, reduce_sum=True, compute_grad=False, **kwargs)
    assert grad is not None and none is None and no_grad is None
    torch.testing.assert_close(loss_only, loss, rtol=0, atol=0)
    torch.testing.assert_close(total.double(), loss.double().sum(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", CALL_NAMES)
def test_finite_at_extreme_logits(name, dtype):
    op, _, y, kwargs = _calls()[name]
    scale = torch.logspace(0, 4, 64)  # |logit| from 1 to 1e4
    x = (torch.where(torch.arange(300 * 64).reshape(300, 64) % 2 == 0, 1.0, -1.0) * scale.repeat(300, 1)).to(dtype)
    y = y.to(dtype) if y.is_floating_point() else y
    loss, grad = _cpu(op, x, y, **kwargs)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert grad.dtype == dtype


@pytest.mark.parametrize("name", CALL_NAMES)
def test_inputs_are_not_modified(name):
    op, x, y, kwargs = _calls()[name]
    x_before, y_before = x.clone(), y.clone()
    _cpu(op, x, y, **kwargs)
    assert torch.equal(x, x_before) and torch.equal(y, y_before)


@pytest.mark.parametrize("bad", [5, -3])
def test_poly1_cross_entropy_invalid_index_gives_the_same_error_on_both_backends(bad, monkeypatch):
    """The public function leaves the index scan to the kernel on CPU; the error is the one of the host scan."""
    x = torch.zeros(4, 5)
    t = torch.tensor([0, bad, -100, 2])
    messages = {}
    for backend in ("torch", "cpu"):
        monkeypatch.setenv("FOCALKIT_BACKEND", backend)
        with pytest.raises(focalkit.InvalidArgumentError) as caught:
            focalkit.poly1_cross_entropy(x, t, 1.0)
        messages[backend] = str(caught.value)
    assert messages["cpu"] == messages["torch"] and "target" in messages["cpu"]
