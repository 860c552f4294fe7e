"""torch.ops.paramops: the op schemas, their fake kernels, and which backend serves each
device (chosen once, at import; docs/architecture.md).

The schemas live here, not in the .so, so the ops exist without the compiled extension.
Each op has one kernel per device: with the extension, its C++ kernel (checks, seed,
version bump, fused-mode capture: csrc/cpu/single.h, multi.cpp) over a writer; without it,
the Python port of that kernel (paramops/backends/kernels.py). register(device, backend)
is the one way a kernel gets registered. The writers:

  cpp     the C++ CPU generators (CPU tensors)
  cuda    the extension's CUDA kernels (CUDA tensors, a build with CUDA)
  triton  the Triton kernels (CUDA tensors; CPU ones only under TRITON_INTERPRET=1)
  python  the Python reference (any device)

CPU tensors: cpp, else python. CUDA tensors: cuda, else triton (when installed), else
python. PARAMOPS_BACKEND forces a choice (paramops/_ext.py): cpp, cuda or triton for the
device it names (an import error when missing), python for every device (and the
extension is not loaded). Every backend writes the same bits (docs/stream.md).
"""
import importlib.util

import torch

from .backends import python as _pykernels
from .backends import reference as _reference
from .core import ext as _ext
from .spec import checks as _checks

_TAIL = "*, int? seed=None, int? generator=None, int stream=0, int offset=0"
SCHEMAS = {
    "uniform_": f"(Tensor(a!) self, float a, float b, {_TAIL}) -> ()",
    "normal_": f"(Tensor(a!) self, float mean, float std, {_TAIL}) -> ()",
    "trunc_normal_": f"(Tensor(a!) self, float mean, float std, float a, float b, {_TAIL}) -> ()",
    "fill_": "(Tensor(a!) self, float value) -> ()",
    "multi_init_": "(Tensor(a!)[] tensors, Tensor plan, Tensor params, *, int? generator=None, "
                   "bool draw_seeds=False) -> ()",
    "tied_grad_": "(Tensor(a!)[] out, Tensor[] grads, int[] counts, int[] copies, float[] scales, "
                  "bool[] accumulate) -> ()",
}
# The random ops draw from torch's generator when given no seed: for torch.compile they are
# seeded ops (never deduplicated, never moved across each other).
_SEEDED = ("uniform_", "normal_", "trunc_normal_", "multi_init_")

for _name, _schema in SCHEMAS.items():
    torch.library.define(f"paramops::{_name}", _schema,
                         tags=(torch.Tag.nondeterministic_seeded,) if _name in _SEEDED else ())

# An init is not differentiable: autograd passes the ops through (as if under torch.no_grad,
# which is how torch.nn.init runs its in-place ops), and their kernels bump the version
# counter, so that a tensor saved for backward and initialized again still makes backward fail.
_autograd = torch.library.Library("paramops", "IMPL")
for _name in SCHEMAS:
    _autograd.impl(_name, torch.library.fallthrough_kernel, "Autograd")


# ------------------------------------------------------------------ fake kernels: the data-free checks
def _fake_uniform(self, a, b, *, seed=None, generator=None, stream=0, offset=0):
    _checks.uniform(self, a, b, offset)


def _fake_normal(self, mean, std, *, seed=None, generator=None, stream=0, offset=0):
    _checks.normal(self, mean, std, offset)


def _fake_trunc_normal(self, mean, std, a, b, *, seed=None, generator=None, stream=0, offset=0):
    _checks.trunc_normal(self, mean, std, a, b, offset)


def _fake_fill(self, value):
    _checks.fill(self, value)


def _fake_multi(tensors, plan, params, *, generator=None, draw_seeds=False):
    from torch._subclasses.fake_tensor import is_fake

    if is_fake(plan) or is_fake(params):  # torch.compile, opcheck: the plan holds no values
        _checks.multi_fake(tensors, plan, params)
    else:  # meta tensors: every check that needs no data of the tensors
        _checks.multi(tensors, plan, params)


def _fake_tied(out, grads, counts, copies, scales, accumulate):
    _checks.tied_groups(out, grads, counts, copies, scales, accumulate)


for _name, _fn in {"uniform_": _fake_uniform, "normal_": _fake_normal, "trunc_normal_": _fake_trunc_normal,
                   "fill_": _fake_fill, "multi_init_": _fake_multi, "tied_grad_": _fake_tied}.items():
    torch.library.register_fake(f"paramops::{_name}")(_fn)


# ------------------------------------------------------------------ the backends
def triton_installed():
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["triton"] = None
        return False


def cuda_built():
    return _ext.C is not None and _ext.C.cuda_built()


def _writer(backend):
    if backend == "python":
        return _reference.Writer()
    if backend == "triton":
        from .backends import triton
        return triton.Writer()
    raise ValueError(f"paramops: {backend!r} is a C++ writer")


_KEYS = {"cpu": ("CPU", "SparseCPU", "SparseCsrCPU"), "cuda": ("CUDA", "SparseCUDA", "SparseCsrCUDA")}
_libs = {}  # device -> torch.library.Library of the Python kernels (without the extension)
_chosen = {}  # device -> backend


def register(device, backend):
    """Serve `device` ("cpu", "cuda") tensors with `backend`'s writer: every op's kernel
    (C++ with the extension, else its Python port) for the device's dispatch keys (the
    sparse ones too, whose tensors the checks refuse by name). May be called again to
    switch (the tests do)."""
    if _ext.C is not None:
        _ext.C.register(device, None if backend in ("cpp", "cuda") else _writer(backend))
    else:
        if backend in ("cpp", "cuda"):
            raise ImportError(f"paramops: the {backend} backend needs paramops._C, which is not loaded")
        old = _libs.pop(device, None)
        if old is not None:
            old._destroy()
        lib = _libs[device] = torch.library.Library("paramops", "IMPL")
        kernels = _pykernels.make(_writer(backend))
        for name, fn in kernels.items():
            for key in _KEYS[device]:
                lib.impl(name, fn, key)
        if device == "cpu":  # views with the negative bit, on any device (see negative_kernels)
            for name, fn in _pykernels.negative_kernels(kernels).items():
                lib.impl(name, fn, "Negative")
    _chosen[device] = backend


def _choose_cuda(forced):
    if forced == "python":
        return "python"
    if forced == "cuda":
        if not cuda_built():
            raise ImportError("PARAMOPS_BACKEND=cuda but paramops._C has no CUDA kernels (build it on a "
                              "machine with a CUDA torch and nvcc: ./dev.sh setup)")
        return "cuda"
    if forced == "triton":
        if not triton_installed():
            raise ImportError("PARAMOPS_BACKEND=triton but triton is not installed")
        return "triton"
    if cuda_built():
        return "cuda"
    return "triton" if triton_installed() else "python"


def backend(device):
    """The backend registered for `device` tensors ("cpp", "cuda", "triton", "python")."""
    return _chosen[device]


def backend_info():
    """Which backend serves each device, what else is available, and why."""
    info = {"cpu": _chosen["cpu"], "cuda": _chosen["cuda"] if torch.cuda.is_available() else None,
            "forced": _ext.FORCED}
    if _ext.C is not None:
        info["cpu_isa"] = _ext.C.cpu_isa()
    info["available"] = {"cpp": _ext.C is not None, "cuda": cuda_built(), "triton": triton_installed(),
                         "python": True}
    if _ext.ERROR:
        info["cpp_error"] = _ext.ERROR
    return info


register("cpu", "cpp" if _ext.C is not None else "python")
register("cuda", _choose_cuda(_ext.FORCED))
