"""Backend choice: the C++ extension when it is built, else the Python reference.

PARAMOPS_BACKEND=auto (default) | cpp | python forces one, read once at import.
A missing or broken extension under `auto` warns once and falls back.
"""
import os
import warnings

import torch

from . import _ops

CHOICES = ("auto", "cpp", "python")
_state = {"cpu": None, "cuda": None, "forced": None, "cpp_error": None}


def _load():
    choice = os.environ.get("PARAMOPS_BACKEND", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"PARAMOPS_BACKEND must be one of {', '.join(CHOICES)}, got {choice!r}")
    _state["forced"] = choice
    cpu = "python"
    if choice != "python":
        try:
            from . import _C  # noqa: F401  (registers the CPU kernels)
            cpu = "cpp"
        except (ImportError, OSError) as e:
            if choice == "cpp":
                raise ImportError(f"PARAMOPS_BACKEND=cpp but paramops._C failed to load: {e}") from e
            _state["cpp_error"] = str(e)
            warnings.warn(f"paramops: C++ extension not available ({e}); using the Python reference "
                          "(build it with ./dev.sh or `python setup.py build_ext --inplace`)", stacklevel=3)
    if cpu == "python":
        _ops.register_reference("cpu")
    _ops.register_reference("cuda")  # GPU kernels: see the GPU backends issue
    _state["cpu"] = cpu
    _state["cuda"] = "python"


def backend_info():
    """Which backend serves each device, and why."""
    info = {"cpu": _state["cpu"], "cuda": _state["cuda"] if torch.cuda.is_available() else None,
            "forced": _state["forced"]}
    if _state["cpu"] == "cpp":
        from . import _C
        isa = getattr(_C, "cpu_isa", None)
        if callable(isa):
            info["cpu_isa"] = isa()
    if _state["cpp_error"]:
        info["cpp_error"] = _state["cpp_error"]
    return info


_load()
