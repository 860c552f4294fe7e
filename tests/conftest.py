"""Shared helpers: the backends under test and bit-level comparison.

tests/ mirrors the package: core/, spec/, backends/ for its lower layers, then one file per
upper module (test_registration, test_ops*, test_init*, test_patching, test_capture,
test_model*, test_compile), bench/ for paramops.bench.
"""
import contextlib
import importlib
import os
import sys

import pytest
import torch

# Without a GPU the Triton kernels run on the CPU through Triton's interpreter. triton.jit
# reads this when a kernel is defined, so it must be set before paramops.backends.kernels
# is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `from conftest import ...` in subfolders

import paramops  # noqa: E402
from paramops import capture as _capture  # noqa: E402
from paramops import registration  # noqa: E402
from paramops.backends import python as _pykernels  # noqa: E402
from paramops.backends import reference as _refwriter  # noqa: E402
from paramops.core import ext  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
HAS_CPP = ext.C is not None
requires_cpp = pytest.mark.skipif(not HAS_CPP, reason="C++ extension not loaded")

# (op name, positional parameters) for the random ops
CASES = {
    "uniform_": (-0.5, 2.0),
    "normal_": (0.3, 1.7),
    "trunc_normal_": (0.1, 1.3, -2.0, 2.5),
}

#: the Python port of the ops' kernels over the reference writer: what runs without the extension
PYTHON_KERNELS = _pykernels.make(_refwriter.Writer())


@contextlib.contextmanager
def served_by(device, backend):
    """Serve `device` tensors with `backend` ("cpp", "triton", "python") for the block."""
    before = registration.backend(device)
    registration.register(device, backend)
    try:
        yield
    finally:
        registration.register(device, before)


def call(backend, op, t, *args, **kw):
    """Run op on t (for multi_init_: the tensor list) with the given backend:

      "python"  the Python kernels (paramops/backends/python.py with the reference writer),
                called directly: the configuration without the extension;
      "triton"  the op, its device served by the Triton writer for the call (with the
                extension: the C++ kernel's checks, then Triton);
      "refwriter" the op, its device served by the reference writer (with the extension:
                the C++ kernel's checks, then the Python reference);
      anything else ("cpp", "dispatch"): the op as registered."""
    if backend == "python":
        PYTHON_KERNELS[op](t, *args, **kw)
        return t
    fn = getattr(torch.ops.paramops, op)
    if backend in ("triton", "refwriter") and HAS_CPP:
        first = t[0] if isinstance(t, (list, tuple)) and t else t
        dev = first.device.type if isinstance(first, torch.Tensor) and first.device.type == "cuda" else "cpu"
        with served_by(dev, "triton" if backend == "triton" else "python"):
            fn(t, *args, **kw)
        return t
    if backend == "triton":  # without the extension: the Python kernels over the Triton writer
        from paramops.backends import triton
        _pykernels.make(triton.Writer())[op](t, *args, **kw)
        return t
    fn(t, *args, **kw)
    return t


def bits(t):
    """Integer view of a float tensor, for exact comparison (NaN-safe)."""
    itype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return t.contiguous().view(itype)


def assert_bitwise(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    ba, bb = bits(a), bits(b)
    if not torch.equal(ba, bb):
        idx = (ba != bb).nonzero()[:5].tolist()
        raise AssertionError(f"{int((ba != bb).sum())} of {a.numel()} elements differ, first at {idx}: "
                             f"{a.reshape(-1)[:0]}{[a[tuple(i)].item() for i in idx]} vs {[b[tuple(i)].item() for i in idx]}")


def poisoned(shape, dtype, **kw):
    return torch.full(shape, float("nan"), dtype=dtype, **kw)


def require(module):
    """Import an optional dependency or skip; with PARAMOPS_REQUIRE_ALL=1 (set by .ci/run)
    a missing one fails instead, so CI cannot pass by skipping."""
    if os.environ.get("PARAMOPS_REQUIRE_ALL") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


class Recorder(TorchDispatchMode):
    """Records every torch.ops.paramops.* call: (op name, the tensor it writes)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "paramops":
            self.calls.append((func.__name__.split(".")[0], args[0]))
        return func(*args, **(kwargs or {}))


@pytest.fixture(autouse=True)
def _no_capture_leaks():
    """A test that leaves a Capture active would defer every later test's inits on this
    thread: fail that test, not the ones after it."""
    yield
    leaked = getattr(_capture._tls, "stack", ())
    cpp = ext.C.capture_state() if ext.C is not None else (0, False)
    if leaked or cpp != (0, False):
        pytest.fail(f"a Capture is still active after the test (Python stack {len(leaked)}, C++ {cpp})")
