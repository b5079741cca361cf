"""Fused focal-loss kernels (issue 3).

Back-end modules live here, one per concern:

- ``triton_sigmoid`` / ``triton_softmax``: Triton kernels and their host functions ``sigmoid_focal_forward`` /
  ``softmax_focal_forward`` (the "Kernel contract" of ``docs/CONTRACT.md``). They import Triton at module top and are
  only imported lazily, when a tensor is on a CUDA device or when a test forces them.

This package ``__init__`` deliberately imports nothing, so ``import focalkit`` never imports Triton.
"""
