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


# Every check names its subject the way the op calls it: the single-tensor ops check
# "self" (no suffix on parameter names), multi_init_ checks "tensors[i]" and names its
# parameters "std of tensors[i]" (of=" of tensors[i]"), as csrc/cpu/ops_common.h's Subject.

def is_tensor(op, t, who="self"):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"paramops.{op}: {who} must be a torch.Tensor, got {type(t).__name__}")


def tensor(op, t, who="self"):
    is_tensor(op, t, who)
    if t.layout != torch.strided:
        raise TypeError(f"paramops.{op}: {who} must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"paramops.{op}: {who} must be a float16, bfloat16, float32 or float64 tensor, got {t.dtype}")
    if t.device.type not in DEVICES:
        raise RuntimeError(
            f"paramops.{op}: no backend for device '{t.device}' of {who}; paramops runs on {', '.join(DEVICES)}")
    if t.device.type != "meta" and torch._debug_has_internal_overlap(t) == 1:
        raise RuntimeError(
            f"paramops.{op}: {who} has overlapping elements in memory (e.g. from expand()); "
            "write into a tensor with distinct elements")


def finite(op, of="", **params):
    for name, v in params.items():
        if not math.isfinite(v):
            raise ValueError(f"paramops.{op}: {name}{of} must be finite, got {v}")


def offset(op, off, numel, of=""):
    if off < 0:
        raise ValueError(f"paramops.{op}: offset{of} must be >= 0, got {off}")
    if off + numel > _INT64_MAX:
        raise ValueError(f"paramops.{op}: offset + numel{of} overflows int64")


def _compute(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


# A double rounds to inf in float32 (round to nearest even) iff |v| >= this: the midpoint
# between FLT_MAX and 2^128.
_F32_OVERFLOW = float.fromhex("0x1.ffffffp127")


def fits_compute(op, dtype, of="", **params):
    """Parameters the kernels round to the compute type must stay finite there."""
    if dtype == torch.float64:
        return
    for name, v in params.items():
        if abs(v) >= _F32_OVERFLOW:
            raise ValueError(f"paramops.{op}: {name} {v}{of} overflows torch.float32")


# ---------------------------------------------------------------- parameters, per dtype
def uniform_params(op, dtype, a, b, of=""):
    finite(op, of, a=a, b=b)
    if not a < b:
        raise ValueError(f"paramops.{op}: a{of} must be less than b, got a={a}, b={b}")
    c = _compute(dtype)
    ftype = np.float64 if c == torch.float64 else np.float32
    with np.errstate(over="ignore"):
        overflow = not np.isfinite(ftype(b) - ftype(a))  # the range as the kernels compute it
    if overflow:
        raise ValueError(f"paramops.{op}: b - a{of} overflows {c}")


def normal_params(op, dtype, mean, std, of=""):
    finite(op, of, mean=mean, std=std)
    if std < 0:
        raise ValueError(f"paramops.{op}: std{of} must be >= 0, got {std}")
    fits_compute(op, dtype, of, mean=mean, std=std)


def trunc_normal_params(op, dtype, mean, std, a, b, of=""):
    from . import _reference as R

    finite(op, of, mean=mean, std=std, a=a, b=b)
    if not std > 0:
        raise ValueError(f"paramops.{op}: std{of} must be > 0, got {std}")
    fits_compute(op, dtype, of, mean=mean, std=std)
    if not a < b:
        raise ValueError(f"paramops.{op}: a{of} must be less than b, got a={a}, b={b}")
    if R.dtype_bound(a, dtype, True) > R.dtype_bound(b, dtype, False):
        raise ValueError(f"paramops.{op}: no {dtype} value lies in [a, b] = [{a}, {b}]{of}")
    if not R.trunc_setup(mean, std, a, b, dtype == torch.float64)[3]:
        raise ValueError(
            f"paramops.{op}: [a, b] = [{a}, {b}]{of} lies too far in the tail of the normal "
            f"distribution (mean={mean}, std={std}) to sample in {_compute(dtype)}")


def fill_params(op, dtype, value, of=""):
    finite(op, of, value=value)
    if abs(value) > torch.finfo(dtype).max:
        raise ValueError(f"paramops.{op}: value {value}{of} overflows {dtype}")


# ---------------------------------------------------------------- the single-tensor ops
def uniform(t, a, b, off):
    tensor("uniform_", t)
    uniform_params("uniform_", t.dtype, a, b)
    offset("uniform_", off, t.numel())


def normal(t, mean, std, off):
    tensor("normal_", t)
    normal_params("normal_", t.dtype, mean, std)
    offset("normal_", off, t.numel())


def trunc_normal(t, mean, std, a, b, off):
    tensor("trunc_normal_", t)
    trunc_normal_params("trunc_normal_", t.dtype, mean, std, a, b)
    offset("trunc_normal_", off, t.numel())


def fill(t, value):
    tensor("fill_", t)
    fill_params("fill_", t.dtype, value)
