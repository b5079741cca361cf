"""Back-end dispatch (focalkit.backends) and the custom ops of the autograd layer (focalkit._autograd).

Covers: the automatic choice, forcing by argument and by FOCALKIT_BACKEND, typed errors for unavailable back-ends,
public functions giving the same numbers on every back-end, torch.compile(fullgraph=True) through the custom ops
without graph breaks or gamma recompiles, torch.library.opcheck, and memory (saved tensors, no gradient copy).
"""

from __future__ import annotations

import importlib

import pytest
import torch

import focalkit
from focalkit import _autograd, backends as dispatch
from focalkit.backends import BackendUnavailableError, get_forward, resolve_backend
from focalkit.backends.cpu import library as cpu_lib

HAVE_CPU = cpu_lib.available()
needs_cpu = pytest.mark.skipif(not HAVE_CPU, reason="CPU kernels not built")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def _xy(n=16, c=5, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, c, generator=g) * 3).to(dtype), (torch.rand(n, c, generator=g) < 0.3).to(dtype)


# ------------------------------------------------------------------------------------------------ choice
@needs_cpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_auto_picks_cpu_kernels_for_cpu_tensors(dtype):
    x, y = _xy(dtype=dtype)
    assert resolve_backend("sigmoid_focal", x, y) == "cpu"
    assert resolve_backend("softmax_focal", x, torch.zeros(16, dtype=torch.long)) == "cpu"


def test_auto_falls_back_to_torch_for_what_kernels_do_not_cover():
    x, y = _xy(dtype=torch.float64)
    assert resolve_backend("sigmoid_focal", x, y) == "torch"  # float64
    x32, y32 = _xy()
    assert resolve_backend("sigmoid_focal", x32, y32, {"pos_weight": torch.ones(5)}) == "torch"
    # probability targets with the reduced focal loss' option, which the soft-target kernel does not have
    assert resolve_backend("softmax_focal_soft", x32, torch.softmax(x32, 1), {"reduced_threshold": 0.5}) == "torch"
    assert resolve_backend("binary_focal", torch.sigmoid(x32), y32) == "torch"
    assert resolve_backend("sigmoid_focal_star", x32, y32) == "torch"


def test_auto_without_cpu_library_uses_torch(monkeypatch, request):
    dispatch.clear_dispatch_cache()  # resolutions made with the library loaded
    request.addfinalizer(dispatch.clear_dispatch_cache)  # and the ones made without it
    monkeypatch.setattr(cpu_lib, "_lib", None)
    monkeypatch.setattr(cpu_lib, "_loaded", True)
    monkeypatch.setattr(cpu_lib, "_load_error", "simulated: not built")
    x, y = _xy()
    assert resolve_backend("sigmoid_focal", x, y) == "torch"
    with pytest.raises(BackendUnavailableError, match="not built"):
        resolve_backend("sigmoid_focal", x, y, backend="cpu")
    # the public function still works (torch back-end)
    loss = focalkit.sigmoid_focal_loss(x, y, reduction="sum")
    assert torch.isfinite(loss)


def test_forcing_by_argument_and_environment(monkeypatch):
    x, y = _xy()
    assert resolve_backend("sigmoid_focal", x, y, backend="torch") == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    assert resolve_backend("sigmoid_focal", x, y) == "torch"
    if HAVE_CPU:
        assert resolve_backend("sigmoid_focal", x, y, backend="cpu") == "cpu"  # the argument wins over the environment
        monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
        assert resolve_backend("sigmoid_focal", x, y) == "cpu"
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert resolve_backend("sigmoid_focal", x, y) in ("cpu", "torch")


def test_unknown_or_unavailable_backends_raise_typed_errors(monkeypatch):
    x, y = _xy()
    with pytest.raises(focalkit.InvalidArgumentError, match="backend"):
        resolve_backend("sigmoid_focal", x, y, backend="cuda")
    monkeypatch.setenv(dispatch.ENV_VAR, "fast")
    with pytest.raises(focalkit.InvalidArgumentError, match="FOCALKIT_BACKEND"):
        resolve_backend("sigmoid_focal", x, y)
    monkeypatch.delenv(dispatch.ENV_VAR)
    with pytest.raises(BackendUnavailableError):
        resolve_backend("sigmoid_focal", x, y, backend="triton")  # CPU tensor, no interpreter
    with pytest.raises(BackendUnavailableError, match="float64"):
        resolve_backend("sigmoid_focal", x.double(), y.double(), backend="cpu")
    with pytest.raises(BackendUnavailableError, match="pos_weight"):
        resolve_backend("sigmoid_focal", x, y, {"pos_weight": torch.ones(5)}, backend="cpu")
    assert issubclass(BackendUnavailableError, ValueError)
    with pytest.raises(BackendUnavailableError):  # through the public function and the environment variable
        monkeypatch.setenv(dispatch.ENV_VAR, "triton")
        focalkit.sigmoid_focal_loss(x, y)


def test_get_forward_returns_contract_functions():
    from focalkit.backends.pytorch import sigmoid as torch_sigmoid, softmax as torch_softmax

    assert get_forward("sigmoid_focal", "torch") is torch_sigmoid.forward
    assert get_forward("softmax_focal", "torch") is torch_softmax.forward
    assert get_forward("softmax_focal_soft", "torch") is torch_softmax.forward_soft
    if HAVE_CPU:
        from focalkit.backends.cpu import sigmoid as cpu_sigmoid, softmax as cpu_softmax

        assert get_forward("sigmoid_focal", "cpu") is cpu_sigmoid.forward
        assert get_forward("softmax_focal", "cpu") is cpu_softmax.forward
    assert set(dispatch.available_backends()) == {"torch", "cpu", "triton"}
    assert dispatch.cpu_kernel_isa() in ("avx512", "avx2", "base", "none")


def test_every_backend_declares_its_reasons_for_every_op():
    """The dispatcher walks the priority list over the back-ends' declarations; each refusal says why."""
    from focalkit.backends.contract import OPS

    x, y = _xy()
    for op in OPS:
        assert dispatch.unsupported_reasons("torch", op, x, y) == []
        for name in ("cpu", "triton"):
            reasons = dispatch.unsupported_reasons(name, op, x, y)
            assert all(isinstance(r, str) and r for r in reasons)
            if op not in importlib.import_module(f"focalkit.backends.{name}").IMPLEMENTS:
                assert f"does not implement the op {op!r}" in reasons[0]
    with pytest.raises(focalkit.InvalidArgumentError, match="op: expected one of"):
        resolve_backend("sigmoid", x, y)


# ------------------------------------------------------------------------------------------------ public API
@needs_cpu
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_public_functions_agree_across_backends(monkeypatch, reduction):
    x, y = _xy(40, 7)
    t = torch.randint(0, 8, (40,))
    t[::5] = -100
    weight = torch.rand(7, generator=torch.Generator().manual_seed(1))
    results = {}
    for name in ("torch", "cpu"):
        monkeypatch.setenv(dispatch.ENV_VAR, name)
        out = []
        for fn in (
            lambda x: focalkit.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction=reduction),
            lambda x: focalkit.sigmoid_focal_loss(x, t, alpha=[0.1 * i for i in range(7)], gamma=0.5, reduction=reduction),
            lambda x: focalkit.softmax_focal_loss(x, t.clamp(max=6), gamma=2.0, reduction=reduction, weight=weight),
        ):
            xr = x.clone().requires_grad_(True)
            loss = fn(xr)
            loss.sum().backward()
            out.append((loss.detach(), xr.grad))
        results[name] = out
    for (lt, gt), (lc, gc) in zip(results["torch"], results["cpu"]):
        torch.testing.assert_close(lc, lt, rtol=2e-5, atol=1e-6)
        torch.testing.assert_close(gc, gt, rtol=2e-5, atol=1e-6)


def test_pos_weight_keeps_the_torch_path(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    x, y = _xy()
    xr = x.clone().requires_grad_(True)
    loss = focalkit.sigmoid_focal_loss(xr, y, pos_weight=torch.full((5,), 2.0), reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and xr.grad is not None


# ------------------------------------------------------------------------------------------------ custom ops
def test_opcheck_custom_ops():
    x, y = _xy(12, 3)
    x.requires_grad_(True)
    gamma = torch.tensor([2.0], dtype=torch.float64)
    t = torch.randint(0, 3, (12,))
    ops = torch.ops.focalkit
    for backend in ("torch", "cpu") if HAVE_CPU else ("torch",):
        torch.library.opcheck(ops.sigmoid_focal.default, (x, y, [None, None, None], gamma, None, True, True, backend))
        torch.library.opcheck(ops.sigmoid_focal.default,
                              (x, t, [torch.rand(3), torch.rand(3), None], gamma, -100, False, True, backend))
        torch.library.opcheck(ops.softmax_focal.default, (x, t, [torch.rand(3), None], gamma, -100, False, True, backend))
    two = torch.tensor([2.0, 0.1], dtype=torch.float64)
    torch.library.opcheck(ops.softmax_focal_soft.default, (x, t, [None], two, -100, False, True, "torch"))
    torch.library.opcheck(ops.sigmoid_focal_star.default, (x, y, [None, None], two, None, True, True, "torch"))
    torch.library.opcheck(ops.binary_focal.default,
                          (torch.rand(12, 3, requires_grad=True), y, [None, None], gamma, None, False, True, "torch"))


def test_registered_ops_match_the_eager_path():
    """The custom op (what torch.compile traces) and the eager autograd.Function give the same loss and gradient."""
    x, y = _xy(12, 3)
    weights = torch.arange(36.0).reshape(12, 3)
    xr = x.clone().requires_grad_(True)
    loss = _autograd.focal_loss_op("sigmoid_focal", xr, y, scalars={"gamma": 0.5})
    (loss * weights).sum().backward()
    xo = x.clone().requires_grad_(True)
    op_loss, _ = torch.ops.focalkit.sigmoid_focal(xo, y, [None, None, None], torch.tensor([0.5], dtype=torch.float64),
                                                  None, False, False, "")
    (op_loss * weights).sum().backward()
    assert torch.equal(loss.detach(), op_loss.detach()) and torch.equal(xr.grad, xo.grad)


class _CountingBackend:
    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        from functorch.compile import make_boxed_func
        from torch._dynamo.backends.common import aot_autograd

        return aot_autograd(fw_compiler=lambda g, _: make_boxed_func(g), bw_compiler=lambda g, _: make_boxed_func(g))(
            gm, example_inputs
        )


def test_compile_fullgraph_through_public_functions_no_graph_break():
    torch._dynamo.reset()
    x, y = _xy(32, 4)
    t = torch.randint(0, 4, (32,))

    def f(x):
        return (focalkit.sigmoid_focal_loss(x, y, reduction="mean")
                + focalkit.softmax_focal_loss(x, t, gamma=1.5, reduction="sum") * 0.5)

    backend = _CountingBackend()
    compiled = torch.compile(f, fullgraph=True, backend=backend)  # fullgraph: any graph break raises
    xr = x.clone().requires_grad_(True)
    xe = x.clone().requires_grad_(True)
    out = compiled(xr)
    out.backward()
    ref = f(xe)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(xr.grad, xe.grad)
    assert backend.graphs == 1


def test_compile_gamma_changes_do_not_recompile_per_value():
    torch._dynamo.reset()
    x, y = _xy(32, 4)

    backend = _CountingBackend()

    def loss(x, gamma):
        return _autograd.focal_loss_op("sigmoid_focal", x, y, scalars={"gamma": gamma}, reduce_sum=True)

    f = torch.compile(loss, fullgraph=True, backend=backend)
    for g in (2.0, 1.0, 0.5, 0.25):  # tensor gamma: one graph for all values
        xr = x.clone().requires_grad_(True)
        out = f(xr, torch.tensor(g))
        out.backward()
        torch.testing.assert_close(out, loss(x, g))
    assert backend.graphs == 1
    torch._dynamo.reset()
    backend2 = _CountingBackend()
    f2 = torch.compile(loss, fullgraph=True, backend=backend2)
    for g in (2.0, 1.0, 0.5, 0.25):  # float gamma: one recompile to a dynamic float, then none
        f2(x, g)
    assert backend2.graphs <= 2


def test_compile_with_inductor_matches_eager():
    torch._dynamo.reset()
    x, y = _xy(64, 6)
    f = lambda x: focalkit.sigmoid_focal_loss(x, y, reduction="sum") * 2.0  # noqa: E731
    xr = x.clone().requires_grad_(True)
    out = torch.compile(f, fullgraph=True)(xr)
    out.backward()
    xe = x.clone().requires_grad_(True)
    f(xe).backward()
    torch.testing.assert_close(xr.grad, xe.grad)


# ------------------------------------------------------------------------------------------------ memory
def _saved_storages(fn):
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    return storages, loss


@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_saved_tensors_at_most_logits_plus_targets(monkeypatch, backend, dtype):
    if backend == "cpu" and not HAVE_CPU:
        pytest.skip("CPU kernels not built")
    monkeypatch.setenv(dispatch.ENV_VAR, backend)
    x, y = _xy(1024, 80, dtype)  # above the small-input rule (gradient_mode.SMALL_INPUT_ELEMENTS)
    x.requires_grad_(True)
    t = torch.randint(0, 80, (1024,))
    logits_bytes = x.numel() * x.element_size()
    for fn, budget in (
        (lambda: focalkit.sigmoid_focal_loss(x, y, reduction="sum"), logits_bytes + y.numel() * y.element_size()),
        (lambda: focalkit.sigmoid_focal_loss(x, t, reduction="mean"), logits_bytes + t.numel() * 8),
        (lambda: focalkit.softmax_focal_loss(x, t), logits_bytes + t.numel() * 8),
    ):
        storages, loss = _saved_storages(fn)
        assert sum(storages.values()) <= budget + 16  # a "mean" divides by a 0-d denominator, which autograd saves
        loss.backward()
        x.grad = None


@needs_cpu
def test_sum_saves_only_the_inputs_and_backward_accumulates(monkeypatch):
    """reduction="sum": autograd saves exactly the logits and the targets (the gradient is written by the backward
    pass, straight into .grad); with retain_graph a second backward accumulates the same gradient."""
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    x, y = _xy(8192, 10)  # above the small-input rule (gradient_mode.SMALL_INPUT_ELEMENTS)
    x.requires_grad_(True)
    storages, loss = _saved_storages(lambda: focalkit.sigmoid_focal_loss(x, y, reduction="sum"))
    assert set(storages) == {x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()}
    loss.backward()
    assert x.grad.untyped_storage().data_ptr() not in storages
    x.grad = None
    loss = focalkit.sigmoid_focal_loss(x, y, reduction="sum")
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


@needs_cpu
def test_peak_extra_memory_is_one_logits_buffer(monkeypatch):
    from focalkit_app.bench._runner import peak_extra_bytes

    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    x, y = _xy(2000, 80)
    x.requires_grad_(True)
    peak = peak_extra_bytes(lambda x, y: focalkit.sigmoid_focal_loss(x, y, reduction="sum"), x, y)
    logits_bytes = x.numel() * 4
    assert logits_bytes <= peak <= 1.01 * logits_bytes + 262144


@needs_cpu
@pytest.mark.parametrize("reduction", ["mean", "scaled sum"])
def test_an_incoming_gradient_other_than_one_scales_the_buffer_in_place(monkeypatch, reduction):
    """A "mean" (incoming gradient 1 / N) or a scaled loss: the backward multiplies its fresh gradient buffer in place,
    so the peak stays one logits-sized buffer, and the gradient is the sum's gradient times the factor."""
    from focalkit_app.bench._runner import peak_extra_bytes

    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    x, y = _xy(2000, 80)
    x.requires_grad_(True)
    if reduction == "mean":
        fn, factor = (lambda x, y: focalkit.sigmoid_focal_loss(x, y, reduction="mean")), 1.0 / x.numel()
    else:
        fn, factor = (lambda x, y: 2.5 * focalkit.sigmoid_focal_loss(x, y, reduction="sum")), 2.5
    peak = peak_extra_bytes(fn, x, y)
    logits_bytes = x.numel() * 4
    assert logits_bytes <= peak <= 1.01 * logits_bytes + 262144
    x.grad = None
    fn(x, y).backward()
    scaled = x.grad.clone()
    x.grad = None
    focalkit.sigmoid_focal_loss(x, y, reduction="sum").backward()
    torch.testing.assert_close(scaled, x.grad * factor, rtol=1e-6, atol=0)


@needs_cpu
def test_double_backward_through_the_cpu_backend_matches_torch(monkeypatch):
    x, y = _xy()
    results = []
    for name in ("cpu", "torch"):
        monkeypatch.setenv(dispatch.ENV_VAR, name)
        xr = x.clone().requires_grad_(True)
        loss = focalkit.sigmoid_focal_loss(xr, y, gamma=0.5, reduction="sum")
        (g,) = torch.autograd.grad(loss, xr, create_graph=True)
        (h,) = torch.autograd.grad(g.pow(2).sum(), xr)
        results.append((g.detach(), h))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=2e-5, atol=1e-7)
    torch.testing.assert_close(results[0][1], results[1][1])
