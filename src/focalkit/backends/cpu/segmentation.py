r"""Fused CPU statistics of the segmentation losses: per-(image, class) sums and the focal term in one pass.

Calls ``fk_segmentation_stats`` and ``fk_segmentation_grad`` of ``csrc/segmentation_cpu.c`` through :mod:`ctypes` on
logits viewed as (N, C, S) (S = the product of the spatial sizes) without a permute or a copy. With p the softmax
over C or the sigmoid of each logit, g the target (one-hot of a class index, or a float target) and v the pixel's
validity (0 at ``ignore_index``), the forward pass returns, per image n and class c, three sums over the pixels s:

.. math::

    \text{dice:}\quad \sum_s v\,(p (1 - g) + (1 - p) g),\ \sum_s v\,p,\ \sum_s g \qquad
    \text{dice\_squared:}\quad \sum_s v\,(p (1 - g) - (1 - p) g)^2,\ \sum_s v\,p^2,\ \sum_s g^2

    \text{tversky:}\quad \mathrm{TP} = \sum_s v\,p\,g,\ \mathrm{FN} = \sum_s v\,(1 - p)\,g,\
    \mathrm{FP} = \sum_s v\,p\,(1 - g)

with 1 - p formed without cancellation, the focal term's sum per image (softmax, class indices:
-w_t (1 - p_t)^\gamma \log p_t per pixel; sigmoid: (w^+_c g + w^-_c (1 - g)) v (1 - p_t)^\gamma \mathrm{BCE} per
element), the number of valid pixels per image and the number of *extreme* pixels (logit spread above 50, where
float32 probabilities may underflow). The backward pass recomputes p and writes dL/dx from dL/d(statistics) and
dL/d(focal sums).

Threads: the pixels of each image are cut into blocks of ``library.BLOCK``; each block writes its own partial sums,
added in block order afterwards, so the results do not depend on the thread count.

Example:
    >>> x = torch.randn(2, 3, 8, 8); t = torch.randint(0, 3, (2, 8, 8))
    >>> out = statistics(x, t, softmax=True, mode="dice", ignore_index=-100, focal=None, gamma=2.0)
    >>> out.stats.shape, out.focal.shape
    (torch.Size([2, 3, 3]), torch.Size([2]))

Reference:
    F. Milletari et al., "V-Net", 3DV 2016; N. Abraham and N. M. Khan, "A Novel Focal Tversky Loss Function",
    ISBI 2019; T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from . import library as cpu_lib

__all__ = ["MODES", "STATISTICS", "SegmentationStatistics", "gradient", "statistics", "supported"]

MODES = {"dice": 0, "dice_squared": 1, "tversky": 2}
STATISTICS = 3  # sums per (image, class)
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class SegmentationStatistics(NamedTuple):
    """Outputs of :func:`statistics`: ``stats`` (N, C, 3) float64, ``focal`` (N,) float64 (zeros without a focal
    term), ``counts`` (N,) float64 valid pixels, ``extreme`` the number of valid pixels with a logit spread > 50,
    ``invalid`` the number of class indices outside [0, C) that are not ``ignore_index`` (0 for float targets)."""

    stats: Tensor
    focal: Tensor
    counts: Tensor
    extreme: int
    invalid: int


def supported(input: Tensor) -> bool:
    """Whether the kernels can run on these logits: a CPU tensor in float32 / float16 / bfloat16, library built."""
    return input.device.type == "cpu" and input.dtype in _DTYPES and cpu_lib.available()


def _layout(input: Tensor) -> tuple[int, int, int, int]:
    n, c = input.shape[:2]
    s = math.prod(input.shape[2:])
    spad = (s + cpu_lib.BLOCK - 1) // cpu_lib.BLOCK * cpu_lib.BLOCK
    return n, c, s, spad


def _targets(target: Tensor) -> tuple[Tensor, int]:
    """Class indices as contiguous int64 (code FK_I64) or float targets as contiguous float32 (FK_F32)."""
    if target.is_floating_point():
        return target.detach().to(torch.float32).contiguous(), cpu_lib.DTYPE_CODES[torch.float32]
    return target.detach().to(torch.int64).contiguous(), cpu_lib.DTYPE_CODES[torch.int64]


def _weights(focal: tuple[Tensor, Tensor | None] | None) -> tuple[Tensor | None, Tensor | None]:
    if focal is None:
        return None, None
    positive, negative = focal
    positive = positive.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if negative is not None:
        negative = negative.detach().to(device="cpu", dtype=torch.float32).contiguous()
    return positive, negative


def _ptr(t: Tensor | None) -> int | None:
    return t.data_ptr() if t is not None else None



def statistics(input: Tensor, target: Tensor, *, softmax: bool, mode: str, ignore_index: int,
               focal: tuple[Tensor, Tensor | None] | None, gamma: float) -> SegmentationStatistics:
    """The per-(image, class) statistics of ``mode``, the focal sums and the valid counts (see the module docstring).

    Args:
        input: logits (N, C, *spatial), CPU, float32 / float16 / bfloat16 (read in place when contiguous).
        target: class indices (N, *spatial) (integer; pixels equal to ``ignore_index`` are left out) or float
            targets of the input's shape in [0, 1].
        softmax: softmax over C, else a sigmoid per element.
        mode: ``"dice"``, ``"dice_squared"`` or ``"tversky"``.
        ignore_index: the ignored class index (class-index targets).
        focal: ``None`` (no focal term), or per-class weights: softmax (class indices only) ``(w, None)`` with
            w_c = alpha_c weight_c; sigmoid ``(w_pos, w_neg)``, the weights of positives and negatives (C,) each.
        gamma: the focal term's focusing parameter.

    Returns:
        :class:`SegmentationStatistics`.
    """
    lib = cpu_lib.lib()
    n, c, s, spad = _layout(input)
    x = input.detach().contiguous()
    t, tdt = _targets(target)
    wpos, wneg = _weights(focal)
    blocks = n * (spad // cpu_lib.BLOCK)
    stride = STATISTICS * c + 3
    partials = torch.zeros(blocks, stride, dtype=torch.float64)
    xdt = cpu_lib.DTYPE_CODES[x.dtype]
    args = (x.data_ptr(), xdt, t.data_ptr(), tdt, int(ignore_index), 1, n, c, s, spad, int(softmax), MODES[mode],
            int(focal is not None), _ptr(wpos), _ptr(wneg), float(gamma))
    pp = partials.data_ptr()

    def work(start: int, end: int, threads: int, piece: int) -> int:
        per_thread = 2 * c * cpu_lib.CHUNK
        return lib.fk_segmentation_stats(*args, start, end, pp, cpu_lib.scratch_pointer(per_thread * threads),
                                         per_thread, threads, piece)

    extreme = cpu_lib.parallel_for(n * spad, work, min_parallel=max(cpu_lib.BLOCK, cpu_lib.MIN_PARALLEL // max(c, 1)))
    totals = partials.view(n, blocks // max(n, 1), stride).sum(1) if n else partials.new_zeros(0, stride)
    stats = totals[:, : STATISTICS * c].reshape(n, c, STATISTICS)
    invalid = int(totals[:, STATISTICS * c + 2].sum()) if n else 0
    return SegmentationStatistics(stats, totals[:, STATISTICS * c], totals[:, STATISTICS * c + 1], int(extreme),
                                  invalid)


def gradient(input: Tensor, target: Tensor, grad_stats: Tensor, grad_focal: Tensor | None, *, softmax: bool,
             mode: str, ignore_index: int, focal: tuple[Tensor, Tensor | None] | None, gamma: float) -> Tensor:
    """dL/d input (the input's shape and dtype) from ``grad_stats`` = dL/d stats (N, C, 3) and ``grad_focal`` =
    dL/d focal (N,) (None without a focal term); the other arguments as in :func:`statistics`.

    Example:
        >>> x = torch.randn(1, 2, 4); t = torch.tensor([[0, 1, 1, 0]])
        >>> gradient(x, t, torch.ones(1, 2, 3), None, softmax=True, mode="dice", ignore_index=-100, focal=None,
        ...          gamma=2.0).shape
        torch.Size([1, 2, 4])
    """
    lib = cpu_lib.lib()
    n, c, s, spad = _layout(input)
    x = input.detach().contiguous()
    t, tdt = _targets(target)
    wpos, wneg = _weights(focal)
    dstat = grad_stats.detach().to(torch.float32).contiguous()
    dfocal = None
    if focal is not None:
        dfocal = (grad_focal if grad_focal is not None else torch.zeros(n)).detach().to(torch.float32).contiguous()
    grad = torch.empty(x.shape, dtype=x.dtype)
    xdt = cpu_lib.DTYPE_CODES[x.dtype]
    args = (x.data_ptr(), xdt, t.data_ptr(), tdt, int(ignore_index), 1, n, c, s, spad, int(softmax), MODES[mode],
            int(focal is not None), _ptr(wpos), _ptr(wneg), float(gamma), dstat.data_ptr(), _ptr(dfocal))
    gp = grad.data_ptr()

    def work(start: int, end: int, threads: int, piece: int) -> int:
        per_thread = 3 * c * cpu_lib.CHUNK
        return lib.fk_segmentation_grad(*args, start, end, gp, cpu_lib.scratch_pointer(per_thread * threads),
                                        per_thread, threads, piece)

    cpu_lib.parallel_for(n * spad, work, min_parallel=max(cpu_lib.BLOCK, cpu_lib.MIN_PARALLEL // max(c, 1)))
    return grad
