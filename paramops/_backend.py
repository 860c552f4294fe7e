"""Backend choice, made once at import.

CPU tensors:  the C++ extension (paramops._C) when it is built, else the Python reference.
CUDA tensors: the CUDA kernels of the extension when it was built with CUDA, else the
              Triton kernels (paramops.kernels) when triton is installed, else the Python
              reference (torch ops on the GPU).

Every backend writes the same bits (docs/stream.md), so the choice changes speed only.
PARAMOPS_BACKEND forces one:

  auto    (default) the orders above; a missing or broken extension warns once
  cpp     CPU tensors through the C++ extension (an error if it does not load); CUDA as auto
  cuda    CUDA tensors through the extension's CUDA kernels (an error if it has none); CPU as auto
  triton  CUDA tensors through Triton (an error if triton is not installed); CPU as auto
  python  the Python reference for every device

`python -m paramops info` prints the choice and what was available.
"""
import importlib.util
import os
import warnings

import torch

from . import _ops

CHOICES = ("auto", "cpp", "cuda", "triton", "python")
_state = {"cpu": None, "cuda": None, "forced": None, "cpp_error": None, "cuda_built": False}


def _import_C(required):
    """paramops._C, or None (with a warning under auto) when it does not load."""
    try:
        from . import _C
        return _C
    except (ImportError, OSError) as e:
        if required:
            raise ImportError(f"PARAMOPS_BACKEND={_state['forced']} but paramops._C failed to load: {e}") from e
        _state["cpp_error"] = str(e)
        warnings.warn(f"paramops: C++ extension not available ({e}); using the Python reference "
                      "(build it with ./dev.sh or `python setup.py build_ext --inplace`)", stacklevel=4)
        return None


def triton_installed():
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["triton"] = None
        return False


def _cuda_built(C):
    built = getattr(C, "cuda_built", None) if C is not None else None
    return bool(built()) if callable(built) else False


def _choose_cuda(choice, C):
    """The backend that serves CUDA tensors: "cuda", "triton" or "python"."""
    if choice == "python":
        return "python"
    if choice == "cuda":
        if not _cuda_built(C):
            raise ImportError("PARAMOPS_BACKEND=cuda but paramops._C has no CUDA kernels (build it on a "
                              "machine with a CUDA torch and nvcc: ./dev.sh setup)")
        return "cuda"
    if choice == "triton":
        if not triton_installed():
            raise ImportError("PARAMOPS_BACKEND=triton but triton is not installed")
        return "triton"
    if _cuda_built(C):
        return "cuda"
    return "triton" if triton_installed() else "python"


def _register_cuda(backend, C):
    if backend == "cuda":
        C.register_cuda()
    elif backend == "triton":
        from . import _triton
        _ops.register("cuda", _triton.IMPL)
    else:
        _ops.register("cuda")


def _load():
    choice = os.environ.get("PARAMOPS_BACKEND", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"PARAMOPS_BACKEND must be one of {', '.join(CHOICES)}, got {choice!r}")
    _state["forced"] = choice
    C = None if choice == "python" else _import_C(required=choice == "cpp")
    _state["cpu"] = "cpp" if C is not None else "python"
    if C is None:
        _ops.register("cpu")
    _state["cuda_built"] = _cuda_built(C)
    _state["cuda"] = _choose_cuda(choice, C)
    _register_cuda(_state["cuda"], C)


def cuda_backend():
    """The backend registered for CUDA tensors ("cuda", "triton" or "python"), GPU or not."""
    return _state["cuda"]


def backend_info():
    """Which backend serves each device, what else is available, and why."""
    info = {"cpu": _state["cpu"], "cuda": _state["cuda"] if torch.cuda.is_available() else None,
            "forced": _state["forced"]}
    if _state["cpu"] == "cpp":
        from . import _C
        isa = getattr(_C, "cpu_isa", None)
        if callable(isa):
            info["cpu_isa"] = isa()
    info["available"] = {"cpp": _state["cpu"] == "cpp", "cuda": _state["cuda_built"],
                         "triton": triton_installed(), "python": True}
    if _state["cpp_error"]:
        info["cpp_error"] = _state["cpp_error"]
    return info


_load()
