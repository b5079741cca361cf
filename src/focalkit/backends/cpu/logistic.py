"""The logistic family on the fused CPU kernel: one runner for the per-element losses of p = sigmoid(x).

``fk_logistic_family`` of ``csrc/focal_cpu.c`` computes, in one pass over flat elements of logits viewed as
(N, C, S), the quantities every loss of the family shares (all in float32, from e = exp(-|x|))

.. math::

    p = \\sigma(x),\\quad 1 - p = \\sigma(-x),\\quad s_+ = \\mathrm{softplus}(x) = -\\log(1 - p),\\quad
    s_- = \\mathrm{softplus}(-x) = -\\log p,\\quad \\mathrm{BCE}(p, y) = y\\, s_- + (1 - y)\\, s_+

and then the weight of one loss and its derivative, picked by a loss code (a compile-time specialised loop per
loss, gradient on / off and element argument present / absent). The losses and their closed forms are those of
:mod:`focalkit.backends.pytorch` (``quality``, ``varifocal``, ``gaussian``, ``asymmetric``, ``poly``); this module
prepares the tensors, runs the kernel over the thread pool of :mod:`focalkit.backends.cpu.library` and turns the
kernel's count of invalid targets into the standard typed error.

Memory: reads logits, targets and the element argument once, writes the gradient (logits' dtype) and, unless
``reduce_sum``, the float32 loss; the sum needs one float64 per 4096 elements (added in order: the sum does not
depend on the thread count).

Example:
    >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[0.9, 0.0]])
    >>> loss, grad = run("quality_focal", x, y, params=(2.0,), reduce_sum=False, compute_grad=True)
    >>> loss
    tensor([[0.0001, 0.0227]])

Reference:
    X. Li et al., "Generalized Focal Loss", NeurIPS 2020, arXiv:2006.04388 (the quality focal loss, eq. 5); the
    other losses' references are in their modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..._checks import check_class_indices, check_unit_interval_values
from ..._targets import ncs
from ...errors import InvalidArgumentError
from ...value_checks import value_checks_enabled
from . import library as cpu_lib

__all__ = ["LOSS_CODES", "run"]

# must match the FK_QUALITY .. FK_POLY1 enum of focal_cpu.c
LOSS_CODES = {"quality_focal": 0, "varifocal": 1, "gaussian_focal": 2, "asymmetric": 3, "poly1_focal": 4}
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_PARAMS = 4  # the kernel reads up to four float parameters


def _as_kernel_floats(tensor: Tensor, shape: torch.Size) -> Tensor:
    """A contiguous fp32 / fp16 / bf16 tensor of ``shape`` (converted to float32 when of another dtype)."""
    t = tensor.detach()
    if t.dtype not in _FLOAT_DTYPES:
        t = t.to(torch.float32)
    return t.expand(shape).contiguous() if t.shape != shape else t.contiguous()


def _per_class(vector: Tensor, c: int) -> Tensor:
    return vector.detach().to(device="cpu", dtype=torch.float32).contiguous().reshape(c)


def _raise_bad_targets(targets: Tensor, c: int, ignore_index: int | None, count: int) -> None:
    """The standard error of the targets' checks (a host scan that runs only on failure), else a summary."""
    if targets.is_floating_point():
        check_unit_interval_values("targets", targets)
        expected = "float targets in [0, 1]"
    else:
        check_class_indices("targets", targets, 0, c, ignore_index)
        expected = f"class indices in [0, {c}]" + (f" or ignore_index={ignore_index}" if ignore_index is not None else "")
    raise InvalidArgumentError(f"targets: expected {expected}, got {count} value(s) outside (found by the CPU kernel)")


def run(op: str, logits: Tensor, targets: Tensor, *, params: Sequence[float], element: Tensor | None = None,
        alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None, ignore_index: int | None = None,
        reduce_sum: bool, compute_grad: bool, poly1_sigmoid_kernel: bool = False) -> tuple[Tensor, Tensor | None]:
    """Loss and d loss_i / d x_i of one logistic-family op in one pass of the fused CPU kernel.

    Args:
        op: a key of :data:`LOSS_CODES`.
        logits: CPU float tensor (fp32 / fp16 / bf16), viewed as (N, C, S); made contiguous if it is not.
        targets: float targets in [0, 1] of the logits' shape, or (``quality_focal`` only) int64 class indices of
            shape (N, *spatial) with C = background and ``ignore_index`` rows giving 0.
        params: the op's scalar parameters in the kernel's order (at most four).
        element: the per-element argument: ``quality_focal`` with index targets, the scores of the labelled
            class (N, *spatial); ``varifocal``, the labels of the logits' shape; None: absent.
        alpha_pos, alpha_neg: per-class (C,) weights (``poly1_focal``), used when both are given.
        ignore_index: index-target value of ignored rows, or None.
        reduce_sum: return the 0-d float32 sum (float64 block partials added in order).
        compute_grad: also return the gradient in the logits' dtype; otherwise None and no gradient work.
        poly1_sigmoid_kernel: ``poly1_focal`` with epsilon >= 0 only: run ``fk_poly1_focal``, the sigmoid focal
            kernel's specialised loops (binary targets, gamma == 2, alpha or not) plus the poly term, instead of the
            family kernel (which also serves epsilon < 0).

    Returns:
        ``(loss, grad)``: float32 logits-shaped loss (or 0-d sum) and the logits-shaped gradient or None.
    """
    lib = cpu_lib.lib()
    shape = logits.shape
    x = logits.detach().contiguous()
    n, c, s = ncs(shape)
    total = x.numel()
    index_targets = not targets.is_floating_point()
    if index_targets:
        if op != "quality_focal":
            raise InvalidArgumentError(f"targets: expected float targets in [0, 1] for {op}, got {targets.dtype}")
        t = targets.detach().to(torch.int64).contiguous()
        if t.numel() != n * s:
            raise InvalidArgumentError(
                f"targets: expected {n * s} class indices for logits of shape {tuple(shape)}, got {t.numel()}")
        e = None if element is None else element.detach().to(device="cpu", dtype=torch.float32).contiguous().reshape(-1)
        if e is not None and e.numel() != n * s:
            raise InvalidArgumentError(f"scores: expected {n * s} values (one per row), got {e.numel()}")
    else:
        t = _as_kernel_floats(targets, shape)
        # the scores of index targets have no meaning for dense targets (as in the PyTorch back-end)
        e = _as_kernel_floats(element, shape) if element is not None and op == "varifocal" else None
    ap = an = None
    if alpha_pos is not None and alpha_neg is not None:
        ap, an = _per_class(alpha_pos, c), _per_class(alpha_neg, c)
    values = [float(v) for v in params]
    if len(values) > _PARAMS:
        raise InvalidArgumentError(f"params: expected at most {_PARAMS} values, got {len(values)}")
    prm = torch.tensor(values + [0.0] * (_PARAMS - len(values)), dtype=torch.float32)

    loss, grad, sums = cpu_lib.row_outputs(tuple(shape), x, total, reduce_sum, compute_grad)

    code = LOSS_CODES[op]
    xdt, tdt = cpu_lib.DTYPE_CODES[x.dtype], cpu_lib.DTYPE_CODES[t.dtype]
    edt = cpu_lib.DTYPE_CODES[e.dtype] if e is not None else 0
    has_ignore = ignore_index is not None and index_targets
    ign = int(ignore_index) if has_ignore else 0
    xp, tp, pp = x.data_ptr(), t.data_ptr(), prm.data_ptr()
    address = cpu_lib.address
    ep, app, anp, lp, gp, sp = address(e), address(ap), address(an), address(loss), address(grad), address(sums)

    if poly1_sigmoid_kernel:
        if op != "poly1_focal" or values[1] < 0:
            raise InvalidArgumentError(f"poly1_sigmoid_kernel: expected poly1_focal with epsilon >= 0, got {op} "
                                       f"with params {values}")
        gamma, epsilon = values[0], values[1]

        def work(start: int, end: int, threads: int, piece: int) -> int:
            return lib.fk_poly1_focal(xp, xdt, tp, tdt, app, anp, gamma, epsilon, n, c, s, start, end, lp, gp, sp,
                                      threads, piece)
    else:
        def work(start: int, end: int, threads: int, piece: int) -> int:
            return lib.fk_logistic_family(code, pp, xp, xdt, tp, tdt, ep, edt, app, anp, ign, int(has_ignore), n, c,
                                          s, start, end, lp, gp, sp, threads, piece)

    bad = cpu_lib.parallel_for(total, work)
    if bad and value_checks_enabled(targets):  # with value checks off, out-of-range rows count as background
        _raise_bad_targets(targets, c, ignore_index if has_ignore else None, bad)
    if reduce_sum:
        loss = sums.total()
    return loss, grad
