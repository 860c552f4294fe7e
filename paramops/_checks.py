"""Argument checks shared by the public functions and the Python backend.

Every check runs before anything is written, and every message names the argument.
The C++ kernels (csrc/cpu/ops.cpp) raise the same messages for direct torch.ops calls.
"""
import math

import numpy as np
import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
DEVICES = ("cpu", "cuda", "meta")
_INT64_MAX = (1 << 63) - 1


def tensor(op, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"paramops.{op}: self must be a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided:
        raise TypeError(f"paramops.{op}: self must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"paramops.{op}: self must be a float16, bfloat16, float32 or float64 tensor, got {t.dtype}")
    if t.device.type not in DEVICES:
        raise RuntimeError(
            f"paramops.{op}: no backend for device '{t.device}' of self; paramops runs on {', '.join(DEVICES)}")
    if t.device.type != "meta" and torch._debug_has_internal_overlap(t) == 1:
        raise RuntimeError(
            f"paramops.{op}: self has overlapping elements in memory (e.g. from expand()); "
            "write into a tensor with distinct elements")


def finite(op, **params):
    for name, v in params.items():
        if not math.isfinite(v):
            raise ValueError(f"paramops.{op}: {name} must be finite, got {v}")


def offset(op, off, numel):
    if off < 0:
        raise ValueError(f"paramops.{op}: offset must be >= 0, got {off}")
    if off + numel > _INT64_MAX:
        raise ValueError(f"paramops.{op}: offset + numel overflows int64")


def _compute(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


# A double rounds to inf in float32 (round to nearest even) iff |v| >= this: the midpoint
# between FLT_MAX and 2^128.
_F32_OVERFLOW = float.fromhex("0x1.ffffffp127")


def fits_compute(op, dtype, **params):
    """Parameters the kernels round to the compute type must stay finite there."""
    if dtype == torch.float64:
        return
    for name, v in params.items():
        if abs(v) >= _F32_OVERFLOW:
            raise ValueError(f"paramops.{op}: {name} {v} overflows torch.float32")


def uniform(t, a, b, off):
    tensor("uniform_", t)
    finite("uniform_", a=a, b=b)
    if not a < b:
        raise ValueError(f"paramops.uniform_: a must be less than b, got a={a}, b={b}")
    c = _compute(t.dtype)
    ftype = np.float64 if c == torch.float64 else np.float32
    with np.errstate(over="ignore"):
        overflow = not np.isfinite(ftype(b) - ftype(a))  # the range as the kernels compute it
    if overflow:
        raise ValueError(f"paramops.uniform_: b - a overflows {c}")
    offset("uniform_", off, t.numel())


def normal(t, mean, std, off):
    tensor("normal_", t)
    finite("normal_", mean=mean, std=std)
    if std < 0:
        raise ValueError(f"paramops.normal_: std must be >= 0, got {std}")
    fits_compute("normal_", t.dtype, mean=mean, std=std)
    offset("normal_", off, t.numel())


def trunc_normal(t, mean, std, a, b, off):
    from . import _reference as R

    tensor("trunc_normal_", t)
    finite("trunc_normal_", mean=mean, std=std, a=a, b=b)
    if not std > 0:
        raise ValueError(f"paramops.trunc_normal_: std must be > 0, got {std}")
    fits_compute("trunc_normal_", t.dtype, mean=mean, std=std)
    if not a < b:
        raise ValueError(f"paramops.trunc_normal_: a must be less than b, got a={a}, b={b}")
    if R.dtype_bound(a, t.dtype, True) > R.dtype_bound(b, t.dtype, False):
        raise ValueError(f"paramops.trunc_normal_: no {t.dtype} value lies in [a, b] = [{a}, {b}]")
    if not R.trunc_setup(mean, std, a, b, t.dtype == torch.float64)[3]:
        raise ValueError(
            f"paramops.trunc_normal_: [a, b] = [{a}, {b}] lies too far in the tail of the normal "
            f"distribution (mean={mean}, std={std}) to sample in {_compute(t.dtype)}")
    offset("trunc_normal_", off, t.numel())


def fill(t, value):
    tensor("fill_", t)
    finite("fill_", value=value)
    if abs(value) > torch.finfo(t.dtype).max:
        raise ValueError(f"paramops.fill_: value {value} overflows {t.dtype}")
