"""Build script for paramops.

torch must already be installed (this file imports it) and is deliberately NOT
listed in install_requires: a bare ``torch`` requirement can make pip pull a
multi-GB CUDA wheel. Install the torch you want first, then build without
isolation so the extension compiles against that torch:

    pip install torch==2.13.0            # or whatever torch the box has
    pip install -e . --no-build-isolation --no-deps
    # or, in place:  python setup.py build_ext --inplace

The C++ extension ``paramops._C`` is built from ``csrc/cpu/*.cpp`` with ninja
(torch.utils.cpp_extension.BuildExtension). When ``csrc/cuda/*.cu`` exist, the
installed torch has CUDA and a CUDA toolchain is found, the CUDA sources
(``csrc/cuda/*.cu`` and the binding ``csrc/cuda/*.cpp``) are added, with
PARAMOPS_CUDA defined, and a CUDAExtension is built instead (as in
pytorch/extension-cpp). Its CUDA kernels are registered only when Python calls
``paramops._C.register_cuda()``.
Set PARAMOPS_NO_CUDA=1 to force a CPU-only build. With no ``csrc/cpu/*.cpp``
no extension is built and paramops runs on its Python backend.
"""
import glob
import os
import sys

from setuptools import setup

try:
    import torch
except ImportError:
    sys.exit("paramops: torch must be installed before building, and the build run without "
             "isolation: pip install -e . --no-build-isolation --no-deps (see setup.py)")
from torch.utils.cpp_extension import (
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)

ROOT = os.path.dirname(os.path.abspath(__file__))

# No -std flag on purpose: BuildExtension appends the standard the installed
# torch's headers need when none is given (c++17 for older torch, c++20 for
# recent releases, whose headers warn or fail under -std=c++17). The kernels
# in csrc/ must therefore compile as C++17 and C++20.
CXX_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp"]
# The bits depend on these (docs/stream.md; tests/test_cuda_kernels.py checks the PTX):
# --fmad=false: no contraction of a*b+c into an fma (only the explicit fmaf/fma);
# correctly rounded division and square root and no flush-to-zero (nvcc's defaults,
# spelled out so that no global setting changes them). Never --use_fast_math.
NVCC_FLAGS = ["-O3", "--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false"]
LINK_FLAGS = ["-fopenmp"]


def _rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


class BuildExt(BuildExtension):
    """BuildExtension with a fixed object dir, so that ninja rebuilds
    incrementally whether the build comes from ``setup.py build_ext`` or from
    ``pip install -e .`` (which would otherwise compile in a fresh temp dir)."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(ROOT, "build", "temp")


def get_extensions():
    cpu_sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "cpu", "*.cpp")))
    cuda_sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))
    cuda_binding = _rel(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cpp")))
    if not cpu_sources:
        print("paramops setup: no csrc/cpu/*.cpp, building no extension")
        return []

    use_cuda = (
        bool(cuda_sources)
        and torch.version.cuda is not None
        and CUDA_HOME is not None
        and os.environ.get("PARAMOPS_NO_CUDA", "0") != "1"
    )
    common = dict(
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_link_args=LINK_FLAGS,
    )
    if use_cuda:
        print(f"paramops setup: CUDAExtension ({len(cuda_sources)} .cu, CUDA_HOME={CUDA_HOME})")
        return [
            CUDAExtension(
                "paramops._C",
                cpu_sources + cuda_binding + cuda_sources,
                extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
                define_macros=[("PARAMOPS_CUDA", "1")],
                **common,
            )
        ]
    print(f"paramops setup: CppExtension ({len(cpu_sources)} .cpp)")
    return [CppExtension("paramops._C", cpu_sources, extra_compile_args=CXX_FLAGS, **common)]


setup(
    name="paramops",
    version="0.1.0",
    description="Fused, reproducible parameter-initialisation ops for PyTorch",
    packages=["paramops", "paramops.core", "paramops.spec", "paramops.backends", "paramops.backends.kernels",
              "paramops.bench"],
    python_requires=">=3.9",
    # torch is intentionally absent: see the module docstring.
    install_requires=[],
    ext_modules=get_extensions(),
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
