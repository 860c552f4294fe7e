"""Op schemas, fake kernels and the Python (reference) backend of torch.ops.paramops.

The schemas live here, not in the .so, so the ops exist without the compiled
extension. csrc/cpu/ops.cpp and multi.cpp only register CPU kernels for them;
multi_init_'s checks, reference and fake kernel are in paramops/multi.py.
_multi_table (multi_init_'s preparation for the Triton backend) has only the C++ kernel of
csrc/cpu/multi_table.cpp: without paramops._C it has no kernel, and paramops/_triton.py
does that work in Python instead.
"""
import torch

from . import _checks
from . import _reference as R
from . import multi as _multi

SCHEMAS = {
    "uniform_": "(Tensor(a!) self, float a, float b, *, int seed, int stream=0, int offset=0) -> ()",
    "normal_": "(Tensor(a!) self, float mean, float std, *, int seed, int stream=0, int offset=0) -> ()",
    "trunc_normal_": (
        "(Tensor(a!) self, float mean, float std, float a, float b, *, int seed, int stream=0, int offset=0) -> ()"),
    "fill_": "(Tensor(a!) self, float value) -> ()",
    "multi_init_": _multi.SCHEMA,
    # multi_init_'s host-side preparation (checks, version bumps) returning its int64 metadata
    # table, for the Triton backend (csrc/cpu/multi_table.cpp: the layout; paramops/_triton.py).
    # It writes no tensor, so the schema declares no mutation.
    "_multi_table": "(Tensor[] tensors, Tensor plan, Tensor params) -> Tensor",
}

for _name, _schema in SCHEMAS.items():
    torch.library.define(f"paramops::{_name}", _schema)


def _fake(*args, **kwargs):
    return None


def _fake_multi_table(tensors, plan, params):
    """Fake kernel of _multi_table: multi_init_'s data-free checks, then an (empty) int64 CPU table
    with one row per non-empty entry (columns: paramops.multi.Table)."""
    _multi.fake_multi_init_(tensors, plan, params)
    return plan.new_empty((sum(1 for t in tensors if t.numel() != 0), _multi.Table.W))


_FAKES = {"multi_init_": _multi.fake_multi_init_, "_multi_table": _fake_multi_table}
for _name in SCHEMAS:
    torch.library.register_fake(f"paramops::{_name}")(_FAKES.get(_name, _fake))


def _write(self, dist, params, seed, stream, offset):
    if self.numel() == 0:
        return
    v = R.generate(dist, params, self.dtype, self.numel(), offset, seed, stream, device=self.device)
    self.copy_(v.view(self.shape))


def ref_uniform_(self, a, b, *, seed, stream=0, offset=0):
    _checks.uniform(self, a, b, offset)
    _write(self, "uniform", (a, b), seed, stream, offset)


def ref_normal_(self, mean, std, *, seed, stream=0, offset=0):
    _checks.normal(self, mean, std, offset)
    _write(self, "normal", (mean, std), seed, stream, offset)


def ref_trunc_normal_(self, mean, std, a, b, *, seed, stream=0, offset=0):
    _checks.trunc_normal(self, mean, std, a, b, offset)
    _write(self, "trunc_normal", (mean, std, a, b), seed, stream, offset)


def ref_fill_(self, value):
    _checks.fill(self, value)
    self.fill_(value)


REFERENCE = {"uniform_": ref_uniform_, "normal_": ref_normal_, "trunc_normal_": ref_trunc_normal_,
             "fill_": ref_fill_, "multi_init_": _multi.ref_multi_init_}


def register(device_type, impls=None):
    """Serve `device_type` ("cpu", "cuda") with Python kernels: `impls` (op name -> function,
    e.g. paramops._triton.IMPL), by default the Python reference."""
    for name, fn in (REFERENCE if impls is None else impls).items():
        torch.library.impl(f"paramops::{name}", device_type)(fn)
