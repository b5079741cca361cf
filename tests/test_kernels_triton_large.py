"""The Triton kernels on tensors of more than 2^31 elements, compiled on a CUDA GPU (skipped without one).

Every address offset in the kernels is computed in 64-bit integers (``docs/kernels_triton.md``, "64-bit offsets"); a
32-bit offset would wrap past element 2^31 and read or write the wrong place. These tests build bf16 logits just
over 2^31 elements and check the rows that lie past element 2^31 against the same kernel run on a copy of those rows
alone (small offsets), bit for bit, and against the float64 reference. The per-element loss, the gradient and the
deterministic sum are checked for the sigmoid kernel with class-index targets ((N, 80), detection layout) and the
softmax kernel ((N, 1000) rows, and (N, C, S) with a spatial dimension).

They need a GPU with about 40 GB free and run in ``bash scripts/run_gpu_checks.sh``; on CPU they skip (the Triton
interpreter cannot hold tensors of this size in reasonable time).
"""

from __future__ import annotations

import pytest
import torch

LARGE = 2**31
NEEDED_BYTES = 40 * 2**30

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU (tensors over 2^31 elements; not run in the CPU interpreter)",
                allow_module_level=True)
triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton); kernels not tested")
if torch.cuda.mem_get_info()[0] < NEEDED_BYTES:
    pytest.skip(f"needs {NEEDED_BYTES >> 30} GiB of free GPU memory", allow_module_level=True)

from focalkit import reference  # noqa: E402
from focalkit.backends.triton import sigmoid as triton_sigmoid  # noqa: E402
from focalkit.backends.triton import softmax as triton_softmax  # noqa: E402

DEV = torch.device("cuda")
GAMMA = 2.0
TAIL_ROWS = 2048
FP32_TOLERANCE = dict(rtol=2e-5, atol=1e-6)  # losses are float32 for every input dtype (conftest's)


@pytest.fixture(autouse=True)
def _free_memory():
    yield
    torch.cuda.empty_cache()


def _rows_past_2_31(n_rows: int, row_elems: int) -> slice:
    """The last TAIL_ROWS rows; all of them start past element 2^31."""
    assert (n_rows - TAIL_ROWS) * row_elems > LARGE
    return slice(n_rows - TAIL_ROWS, n_rows)


def _assert_tail_matches(loss, grad, loss_tail, grad_tail, tail: slice) -> None:
    torch.testing.assert_close(loss[tail], loss_tail, rtol=0, atol=0)
    torch.testing.assert_close(grad[tail], grad_tail, rtol=0, atol=0)


def _check_rows_past_2_31(forward, x, t, kw, reference_loss) -> None:
    """Per-element loss and gradient of the rows past element 2^31 equal ``forward`` on a copy of those rows (bit for
    bit) and ``reference_loss`` (float64, on the CPU copy of the rows); the deterministic sum equals the float64 sum of
    the per-element losses."""
    assert x.numel() > LARGE
    loss, grad = forward(x, t, reduce_sum=False, compute_grad=True, **kw)
    tail = _rows_past_2_31(x.shape[0], x[0].numel())
    loss_tail, grad_tail = forward(x[tail].clone(), t[tail].clone(), reduce_sum=False, compute_grad=True, **kw)
    _assert_tail_matches(loss, grad, loss_tail, grad_tail, tail)
    ref = reference_loss(x[tail].double().cpu(), t[tail].cpu())
    torch.testing.assert_close(loss_tail.double().cpu(), ref, **FP32_TOLERANCE)

    total, _ = forward(x, t, reduce_sum=True, compute_grad=False, **kw)
    expected = loss.sum(dtype=torch.float64)
    del loss, grad
    torch.testing.assert_close(total.double(), expected, rtol=1e-5, atol=0)


def test_sigmoid_index_targets_past_2_31_elements():
    c = 80
    n = LARGE // c + TAIL_ROWS + 1024
    g = torch.Generator(device=DEV).manual_seed(0)
    x = (torch.randn((n, c), device=DEV, generator=g) * 4).to(torch.bfloat16)
    t = torch.randint(0, c + 1, (n,), device=DEV, generator=g)
    kw = dict(alpha_pos=torch.full((c,), 0.25, device=DEV), alpha_neg=torch.full((c,), 0.75, device=DEV),
              gamma=GAMMA, ignore_index=-100)

    def reference_loss(x64, rows):
        y = torch.nn.functional.one_hot(rows, c + 1)[:, :c].double()
        return reference.sigmoid_focal_loss(x64, y, alpha=0.25, gamma=GAMMA)

    _check_rows_past_2_31(triton_sigmoid.forward, x, t, kw, reference_loss)


def test_softmax_rows_past_2_31_elements():
    c = 1000
    n = LARGE // c + TAIL_ROWS + 64
    g = torch.Generator(device=DEV).manual_seed(1)
    x = (torch.randn((n, c), device=DEV, generator=g) * 3).to(torch.bfloat16)
    t = torch.randint(0, c, (n,), device=DEV, generator=g)
    kw = dict(weight=None, alpha=None, gamma=GAMMA, ignore_index=-100)

    def reference_loss(x64, rows):
        return reference.softmax_focal_loss(x64, rows, alpha=None, gamma=GAMMA)

    _check_rows_past_2_31(triton_softmax.forward, x, t, kw, reference_loss)


def test_softmax_spatial_layout_past_2_31_elements():
    # (N, C, S): the class stride is S, so one pixel's classes lie S elements apart; the last image starts past 2^31
    n, c, s = 5, 19, 2**25
    g = torch.Generator(device=DEV).manual_seed(2)
    x = (torch.randn((n, c, s), device=DEV, generator=g) * 3).to(torch.bfloat16)
    t = torch.randint(0, c, (n, s), device=DEV, generator=g)
    kw = dict(weight=None, alpha=None, gamma=GAMMA, ignore_index=-100)
    assert (n - 1) * c * s > LARGE
    loss, grad = triton_softmax.forward(x, t, reduce_sum=False, compute_grad=True, **kw)
    last = slice(n - 1, n)
    loss_last, grad_last = triton_softmax.forward(x[last].clone(), t[last].clone(), reduce_sum=False,
                                                  compute_grad=True, **kw)
    torch.testing.assert_close(loss[last], loss_last, rtol=0, atol=0)
    torch.testing.assert_close(grad[last], grad_last, rtol=0, atol=0)
    pixels = slice(s - 4096, s)  # the last pixels of the last image: the largest offsets
    ref = reference.softmax_focal_loss(x[last, :, pixels].double().cpu(), t[last, pixels].cpu(), alpha=None,
                                       gamma=GAMMA)
    torch.testing.assert_close(loss_last[:, pixels].double().cpu(), ref, **FP32_TOLERANCE)
