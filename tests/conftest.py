"""Shared helpers: the backends under test and bit-level comparison."""
import importlib
import os

import pytest
import torch

# Without a GPU the Triton kernels run on the CPU through Triton's interpreter. triton.jit
# reads this when a kernel is defined, so it must be set before paramops.kernels is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
from torch.utils._python_dispatch import TorchDispatchMode

import paramops
from paramops import _ops

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
HAS_CPP = paramops.backend_info()["cpu"] == "cpp"
requires_cpp = pytest.mark.skipif(not HAS_CPP, reason="C++ extension not built")

# (op name, positional parameters) for the random ops
CASES = {
    "uniform_": (-0.5, 2.0),
    "normal_": (0.3, 1.7),
    "trunc_normal_": (0.1, 1.3, -2.0, 2.5),
}


def call(backend, op, t, *args, **kw):
    """Run op on t (for multi_init_: the tensor list) with the given backend: "python" = the
    reference, "triton" = paramops._triton.IMPL called directly, anything else ("cpp",
    "dispatch") = torch.ops dispatch."""
    if backend == "python":
        _ops.REFERENCE[op](t, *args, **kw)
    elif backend == "triton":
        from paramops import _triton
        _triton.IMPL[op](t, *args, **kw)
    else:
        getattr(torch.ops.paramops, op)(t, *args, **kw)
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
