"""The Triton backend of torch.ops.paramops (GPU issue #4).

IMPL maps each op name to a function with the op's schema signature and the semantics of
the reference (paramops/_ops.py, paramops/multi.py) and of the C++ kernels: the same
checks first (same messages, nothing written on failure), then the autograd version bump
(as csrc/cpu/ops_common.h bump_version), then the write. The kernels (paramops.kernels,
imported on first use: importing triton is slow, and under TRITON_INTERPRET=1 it must be
set before the import) write the bits the C++ CPU kernels write, on any device Triton runs
on; on CPU tensors only under TRITON_INTERPRET=1 (how the tests run them).

multi_init_'s host work (checks, version bumps, the per-entry metadata) is the C++
paramops::_multi_table op when paramops._C is loaded (also in a CPU-only build: it reads only
metadata), else Python (paramops.multi.validate, kernels/multi.py's table()); both give the
same table, the same messages and one version bump per tensor.

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


# Whether multi_init_ takes its table from paramops::_multi_table (the C++ kernel of
# paramops._C): None decides by the dispatch table (registered exactly when _C is loaded);
# True / False force it (the tests compare both paths).
USE_TABLE_OP = None


def _table_op():
    if USE_TABLE_OP is not None:
        return USE_TABLE_OP
    return torch._C._dispatch_has_kernel_for_dispatch_key("paramops::_multi_table", "CompositeExplicitAutograd")


def multi_init_(tensors, plan, params):
    K = _k()
    if _table_op():
        # C++: every check (multi_init_'s messages), then the version bumps; ~1 us per entry
        table = torch.ops.paramops._multi_table(tensors, plan, params)
    else:
        _multi.validate(tensors, plan, params)
        for t in tensors:  # all checked: nothing written yet
            _bump(t)
        table = K.multi.table(tensors, plan, params)
    with _below_autograd():
        K.multi.launch(tensors, table, params)


IMPL = {"uniform_": uniform_, "normal_": normal_, "trunc_normal_": trunc_normal_, "fill_": fill_,
        "multi_init_": multi_init_}
