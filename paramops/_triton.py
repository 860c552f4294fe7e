"""The Triton backend of torch.ops.paramops (GPU issue #4).

IMPL maps each op name to a function with the op's schema signature and the semantics of
the reference (paramops/_ops.py, paramops/multi.py) and of the C++ kernels: the same
checks first (same messages, nothing written on failure), then the autograd version bump
(as csrc/cpu/ops_common.h bump_version), then the write. The kernels (paramops.kernels,
imported on first use: importing triton is slow, and under TRITON_INTERPRET=1 it must be
set before the import) write the bits the C++ CPU kernels write, on any device Triton runs
on; on CPU tensors only under TRITON_INTERPRET=1 (how the tests run them).

paramops/_backend.py decides where IMPL is registered; this module registers nothing.
"""
import torch

from . import _checks
from . import multi as _multi

_kernels = None


def _k():
    global _kernels
    if _kernels is None:
        from . import kernels
        from .kernels import multi, random  # noqa: F401  (loads the submodules)

        _kernels = kernels
    return _kernels


def _bump(t):
    """Bump t's autograd version counter, as torch's in-place ops (and the C++ kernels) do.

    An inference tensor has no counter: inside inference mode there is nothing to bump;
    outside, torch refuses an in-place update of it, and so do we, with torch's own error
    (raised by an in-place no-op on an empty view of it)."""
    if t.is_inference():
        if not torch.is_inference_mode_enabled():
            t.as_strided((0,), (1,)).zero_()
        return
    torch.autograd.graph.increment_version(t)


def _below_autograd():
    # Tensor.fill_ inside the op must not bump the counter a second time, nor be seen by
    # autograd (the op as a whole is what autograd sees), as in csrc/cpu/ops.cpp fill_cpu.
    return torch._C._AutoDispatchBelowADInplaceOrView()


def uniform_(self, a, b, *, seed, stream=0, offset=0):
    _checks.uniform(self, a, b, offset)
    _bump(self)
    _k().random.generate_(self, "uniform", (a, b), seed, stream, offset)


def normal_(self, mean, std, *, seed, stream=0, offset=0):
    _checks.normal(self, mean, std, offset)
    _bump(self)
    _k().random.generate_(self, "normal", (mean, std), seed, stream, offset)


def trunc_normal_(self, mean, std, a, b, *, seed, stream=0, offset=0):
    _checks.trunc_normal(self, mean, std, a, b, offset)
    _bump(self)
    _k().random.generate_(self, "trunc_normal", (mean, std, a, b), seed, stream, offset)


def fill_(self, value):
    _checks.fill(self, value)
    _bump(self)
    if self.numel():
        with _below_autograd():
            self.fill_(value)  # torch's own kernel: the bandwidth reference


def multi_init_(tensors, plan, params):
    _multi.validate(tensors, plan, params)
    for t in tensors:  # all checked: nothing written yet
        _bump(t)
    with _below_autograd():
        _k().multi.multi_init_(tensors, plan, params)


IMPL = {"uniform_": uniform_, "normal_": normal_, "trunc_normal_": trunc_normal_, "fill_": fill_,
        "multi_init_": multi_init_}
