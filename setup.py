"""Build script for focalkit's optional fused CPU kernels (all metadata lives in pyproject.toml).

Shared libraries are built from ``src/focalkit/backends/cpu/csrc/focal_cpu.c`` (plain C, no torch or Python headers
needed): a baseline one and, on x86-64, an AVX2 + FMA + F16C one and an AVX-512 one (512-bit vectors). They are loaded with ctypes at run time and chosen
by CPU feature. If no C compiler works, the build of the extension is skipped and the install still succeeds:
focalkit then uses its PyTorch back-end. Set ``FOCALKIT_NO_EXT=1`` to skip the kernels on purpose.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "src/focalkit/backends/cpu/csrc"
ABI_FILE = "src/focalkit/backends/cpu/abi.py"
COMMON_ARGS = ["-O3", "-g0", "-std=gnu11", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-fvisibility=hidden"]
# OpenMP for the kernels' pieces: the library then names libgomp.so.1, which resolves to the copy torch has loaded
# (its Linux wheels ship libgomp.so.1 with that soname), so the kernels share torch's thread pool.
OPENMP_ARGS = ["-fopenmp"]
# x86-64-v4's vector extensions; without the last flag GCC would keep 256-bit vectors (measured: the 512-bit loops of
# the sigmoid and softmax kernels run 1.3-1.4x faster than the AVX2 build's on an AVX-512 CPU)
AVX512_ARGS = ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c",
               "-mprefer-vector-width=512"]


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing, so focalkit installs without a compiler; and that builds without
    OpenMP when the compiler has none (the kernels then run on focalkit's Python thread pool)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler / toolchain failure
            sys.stderr.write(f"focalkit: fused CPU kernels not built ({exc}); using the PyTorch back-end\n")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
            return
        except Exception as exc:  # noqa: BLE001
            if OPENMP_ARGS[0] not in ext.extra_compile_args:
                sys.stderr.write(f"focalkit: extension {ext.name} not built ({exc}); continuing without it\n")
                return
            sys.stderr.write(f"focalkit: extension {ext.name} not built with OpenMP ({exc}); retrying without it\n")
        ext.extra_compile_args = [a for a in ext.extra_compile_args if a not in OPENMP_ARGS]
        ext.extra_link_args = [a for a in ext.extra_link_args if a not in OPENMP_ARGS]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"focalkit: extension {ext.name} not built ({exc}); continuing without it\n")

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # a plain shared library loaded with ctypes, no PyInit_ symbol

    def get_ext_filename(self, fullname: str) -> str:
        # plain name (no ABI tag): the library does not depend on the Python version
        suffix = ".dll" if sys.platform == "win32" else ".so"
        return os.path.join(*fullname.split(".")) + suffix


def abi_version() -> str:
    """The C interface version, read from its one definition in abi.py (focalkit itself needs torch to import)."""
    match = re.search(r"^ABI_VERSION = (\d+)$", Path(ABI_FILE).read_text(), flags=re.M)
    if match is None:
        raise RuntimeError(f"{ABI_FILE}: no 'ABI_VERSION = <int>' line")
    return match.group(1)


def extensions() -> list[Extension]:
    if os.environ.get("FOCALKIT_NO_EXT") == "1" or sys.platform == "win32":
        return []
    exts = [
        Extension(
            "focalkit.backends.cpu._focal_cpu_base",
            sources=[f"{CSRC}/focal_cpu_base.c"],
            depends=[f"{CSRC}/focal_cpu.c", f"{CSRC}/segmentation_cpu.c", ABI_FILE],
            define_macros=[("FK_ABI_VERSION", abi_version())],
            extra_compile_args=COMMON_ARGS + OPENMP_ARGS,
            extra_link_args=list(OPENMP_ARGS),
        )
    ]
    if platform.machine().lower() in ("x86_64", "amd64"):
        exts.append(
            Extension(
                "focalkit.backends.cpu._focal_cpu_avx2",
                sources=[f"{CSRC}/focal_cpu_avx2.c"],
                depends=[f"{CSRC}/focal_cpu.c", f"{CSRC}/segmentation_cpu.c", ABI_FILE],
                define_macros=[("FK_ABI_VERSION", abi_version())],
                extra_compile_args=COMMON_ARGS + OPENMP_ARGS + ["-mavx2", "-mfma", "-mf16c"],
                extra_link_args=list(OPENMP_ARGS),
            )
        )
        exts.append(
            Extension(
                "focalkit.backends.cpu._focal_cpu_avx512",
                sources=[f"{CSRC}/focal_cpu_avx512.c"],
                depends=[f"{CSRC}/focal_cpu.c", f"{CSRC}/segmentation_cpu.c", ABI_FILE],
                define_macros=[("FK_ABI_VERSION", abi_version())],
                extra_compile_args=COMMON_ARGS + OPENMP_ARGS + AVX512_ARGS,
                extra_link_args=list(OPENMP_ARGS),
            )
        )
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
