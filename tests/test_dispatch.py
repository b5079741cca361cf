"""Back-end dispatch (focalkit.kernels.dispatch) and the custom ops (focalkit.kernels.ops).

Covers: the automatic choice, forcing by argument and by FOCALKIT_BACKEND, typed errors for unavailable back-ends,
public functions giving the same numbers on every back-end, torch.compile(fullgraph=True) through the custom ops
without graph breaks or gamma recompiles, torch.library.opcheck, and memory (saved tensors, no gradient copy).
"""

from __future__ import annotations

import pytest
import torch

import focalkit
from focalkit.kernels import cpu_lib, dispatch, ops
from focalkit.kernels.dispatch import BackendUnavailableError, get_forward, resolve_backend

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
    assert resolve_backend("sigmoid", x, y) == "cpu"
    assert resolve_backend("softmax", x, torch.zeros(16, dtype=torch.long)) == "cpu"


def test_auto_falls_back_to_torch_for_what_kernels_do_not_cover():
    x, y = _xy(dtype=torch.float64)
    assert resolve_backend("sigmoid", x, y) == "torch"  # float64
    x32, y32 = _xy()
    assert resolve_backend("sigmoid", x32, y32, pos_weight=torch.ones(5)) == "torch"
    assert resolve_backend("softmax", x32, torch.softmax(x32, 1)) == "torch"  # probability targets


def test_auto_without_cpu_library_uses_torch(monkeypatch):
    monkeypatch.setattr(cpu_lib, "_lib", None)
    monkeypatch.setattr(cpu_lib, "_loaded", True)
    monkeypatch.setattr(cpu_lib, "_load_error", "simulated: not built")
    x, y = _xy()
    assert resolve_backend("sigmoid", x, y) == "torch"
    with pytest.raises(BackendUnavailableError, match="not built"):
        resolve_backend("sigmoid", x, y, backend="cpu")
    # the public function still works (torch back-end)
    loss = focalkit.sigmoid_focal_loss(x, y, reduction="sum")
    assert torch.isfinite(loss)


def test_forcing_by_argument_and_environment(monkeypatch):
    x, y = _xy()
    assert resolve_backend("sigmoid", x, y, backend="torch") == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    assert resolve_backend("sigmoid", x, y) == "torch"
    if HAVE_CPU:
        assert resolve_backend("sigmoid", x, y, backend="cpu") == "cpu"  # the argument wins over the environment
        monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
        assert resolve_backend("sigmoid", x, y) == "cpu"
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert resolve_backend("sigmoid", x, y) in ("cpu", "torch")


def test_unknown_or_unavailable_backends_raise_typed_errors(monkeypatch):
    x, y = _xy()
    with pytest.raises(focalkit.InvalidArgumentError, match="backend"):
        resolve_backend("sigmoid", x, y, backend="cuda")
    monkeypatch.setenv(dispatch.ENV_VAR, "fast")
    with pytest.raises(focalkit.InvalidArgumentError, match="FOCALKIT_BACKEND"):
        resolve_backend("sigmoid", x, y)
    monkeypatch.delenv(dispatch.ENV_VAR)
    with pytest.raises(BackendUnavailableError):
        resolve_backend("sigmoid", x, y, backend="triton")  # CPU tensor, no interpreter
    with pytest.raises(BackendUnavailableError, match="float64"):
        resolve_backend("sigmoid", x.double(), y.double(), backend="cpu")
    with pytest.raises(BackendUnavailableError, match="pos_weight"):
        resolve_backend("sigmoid", x, y, backend="cpu", pos_weight=torch.ones(5))
    assert issubclass(BackendUnavailableError, ValueError)
    with pytest.raises(BackendUnavailableError):  # through the public function and the environment variable
        monkeypatch.setenv(dispatch.ENV_VAR, "triton")
        focalkit.sigmoid_focal_loss(x, y)


def test_get_forward_returns_contract_functions():
    from focalkit._sigmoid_math import sigmoid_focal_forward_torch
    from focalkit._softmax_math import softmax_focal_forward_torch

    assert get_forward("sigmoid", "torch") is sigmoid_focal_forward_torch
    assert get_forward("softmax", "torch") is softmax_focal_forward_torch
    if HAVE_CPU:
        from focalkit.kernels import cpu_sigmoid, cpu_softmax

        assert get_forward("sigmoid", "cpu") is cpu_sigmoid.sigmoid_focal_forward
        assert get_forward("softmax", "cpu") is cpu_softmax.softmax_focal_forward
    assert set(dispatch.available_backends()) == {"torch", "cpu", "triton"}


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
    gamma = torch.scalar_tensor(2.0, dtype=torch.float64)
    t = torch.randint(0, 3, (12,))
    for backend in ("torch", "cpu") if HAVE_CPU else ("torch",):
        torch.library.opcheck(torch.ops.focalkit.sigmoid_focal_fwd.default,
                              (x, y, None, None, gamma, None, True, True, backend))
        torch.library.opcheck(torch.ops.focalkit.sigmoid_focal_fwd.default,
                              (x, t, torch.rand(3), torch.rand(3), gamma, -100, False, True, backend))
        torch.library.opcheck(torch.ops.focalkit.softmax_focal_fwd.default,
                              (x, t, torch.rand(3), None, gamma, -100, False, True, backend))


def test_registered_ops_match_eager_twins(monkeypatch):
    x, y = _xy(12, 3)
    grads = []
    for force in (False, True):
        monkeypatch.setattr(ops, "_force_op", force)
        xr = x.clone().requires_grad_(True)
        loss = ops.sigmoid_focal(xr, y, gamma=0.5, reduce_sum=False)
        (loss * torch.arange(36.0).reshape(12, 3)).sum().backward()
        grads.append((loss.detach(), xr.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


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

    @torch.compile(fullgraph=True, backend=backend)
    def f(x, gamma):
        return ops.sigmoid_focal(x, y, gamma=gamma, reduce_sum=True)

    for g in (2.0, 1.0, 0.5, 0.25):  # tensor gamma: one graph for all values
        xr = x.clone().requires_grad_(True)
        out = f(xr, torch.tensor(g))
        out.backward()
        torch.testing.assert_close(out, ops.sigmoid_focal(x, y, gamma=g, reduce_sum=True))
    assert backend.graphs == 1
    torch._dynamo.reset()
    backend2 = _CountingBackend()
    f2 = torch.compile(lambda x, gamma: ops.sigmoid_focal(x, y, gamma=gamma, reduce_sum=True), fullgraph=True,
                       backend=backend2)
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
    x, y = _xy(256, 80, dtype)
    x.requires_grad_(True)
    t = torch.randint(0, 80, (256,))
    logits_bytes = x.numel() * x.element_size()
    for fn, budget in (
        (lambda: focalkit.sigmoid_focal_loss(x, y, reduction="sum"), logits_bytes + y.numel() * y.element_size()),
        (lambda: focalkit.sigmoid_focal_loss(x, t, reduction="mean"), logits_bytes + t.numel() * 8),
        (lambda: focalkit.softmax_focal_loss(x, t), logits_bytes + t.numel() * 8),
    ):
        storages, loss = _saved_storages(fn)
        assert sum(storages.values()) <= budget
        loss.backward()
        x.grad = None


@needs_cpu
def test_sum_backward_moves_the_saved_gradient_into_grad(monkeypatch):
    """reduction="sum" + loss.backward(): the gradient computed in forward becomes x.grad without a copy."""
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    x, y = _xy(128, 10)
    x.requires_grad_(True)
    storages, loss = _saved_storages(lambda: focalkit.sigmoid_focal_loss(x, y, reduction="sum"))
    loss.backward()
    assert x.grad.untyped_storage().data_ptr() in storages
    # with retain_graph the saved gradient is kept and x.grad is a separate tensor with the same values
    x.grad = None
    loss = focalkit.sigmoid_focal_loss(x, y, reduction="sum")
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


@needs_cpu
def test_peak_extra_memory_is_one_logits_buffer(monkeypatch):
    from focalkit.bench._runner import peak_extra_bytes

    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    x, y = _xy(2000, 80)
    x.requires_grad_(True)
    peak = peak_extra_bytes(lambda x, y: focalkit.sigmoid_focal_loss(x, y, reduction="sum"), x, y)
    logits_bytes = x.numel() * 4
    assert logits_bytes <= peak <= 1.01 * logits_bytes + 262144


@needs_cpu
def test_double_backward_raises(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    x, y = _xy()
    x.requires_grad_(True)
    loss = focalkit.sigmoid_focal_loss(x, y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()
