"""The Python port of the ops' argument checks (csrc/cpu/checks.cpp), with the same
messages, in the same order.

With the extension the C++ kernels check every call, for every backend; these run
without it (the Python kernels of paramops/backends/kernels.py), in the fake kernels
(torch.compile, meta tensors: the data-free checks) and on the error path of the Python
layer (to name a bad argument). Every check runs before anything is written, and every
message names the argument: "self" and "std" for the single ops, "tensors[3]" and "std
of tensors[3]" for multi_init_ (of=" of tensors[3]").
"""
import math

import numpy as np
import torch

from ..core import codes as K
from . import reference as R

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
DEVICES = ("cpu", "cuda", "meta")
_INT64_MAX = (1 << 63) - 1
_MAX = {dt: float(torch.finfo(dt).max) for dt in FLOAT_DTYPES}


def is_tensor(op, t, who="self"):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"paramops.{op}: {who} must be a torch.Tensor, got {type(t).__name__}")


def tensor(op, t, who="self"):
    """csrc/cpu/checks.cpp check_self (the device is the kernel's, so it is not checked here)."""
    is_tensor(op, t, who)
    if t.layout != torch.strided:
        raise TypeError(f"paramops.{op}: {who} must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype not in _MAX:
        raise TypeError(f"paramops.{op}: {who} must be a float16, bfloat16, float32 or float64 tensor, got {t.dtype}")
    if t.device.type != "meta" and torch._debug_has_internal_overlap(t) == 1:
        raise RuntimeError(f"paramops.{op}: {who} has overlapping elements in memory (e.g. from expand()); "
                           "write into a tensor with distinct elements")


def device(op, t, who="self"):
    """A device without a backend (the ops' kernels exist for cpu and cuda, fake ones for meta)."""
    if t.device.type not in DEVICES:
        raise RuntimeError(f"paramops.{op}: no backend for device '{t.device}' of {who}; "
                           f"paramops runs on {', '.join(DEVICES)}")


def _inference_message():
    """torch's own message for an in-place write to an inference tensor outside inference mode."""
    with torch.inference_mode():
        probe = torch.empty(0)
    try:
        probe.zero_()
    except RuntimeError as e:
        return str(e).split("\n")[0]
    return "Inplace update to inference tensor outside InferenceMode is not allowed."


_INFERENCE = _inference_message()


def writable(t):
    """torch's error for an in-place write to an inference tensor outside inference mode, before
    anything is written (torch's in-place ops write first, then raise). Raised here, not by an
    in-place no-op: inside a dispatch mode, below autograd, that no-op would not raise."""
    if t.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(_INFERENCE)


def offset(op, off, numel, of=""):
    if off < 0:
        raise ValueError(f"paramops.{op}: offset{of} must be >= 0, got {off}")
    if off > _INT64_MAX - numel:
        raise ValueError(f"paramops.{op}: offset + numel{of} overflows int64")


def _finite(op, of, **params):
    for name, v in params.items():
        if not math.isfinite(v):
            raise ValueError(f"paramops.{op}: {name}{of} must be finite, got {v!r}")


def _fits(op, dtype, of, **params):
    """A parameter must be a value of the output dtype (|v| at most its largest finite value)."""
    for name, v in params.items():
        if not abs(v) <= _MAX[dtype]:
            raise ValueError(f"paramops.{op}: {name} {v!r}{of} overflows {dtype}")


def _compute(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------- parameters, per kind
def uniform_params(op, dtype, a, b, of=""):
    a, b = float(a), float(b)
    _finite(op, of, a=a, b=b)
    if not a < b:
        raise ValueError(f"paramops.{op}: a{of} must be less than b, got a={a!r}, b={b!r}")
    _fits(op, dtype, of, a=a, b=b)
    if not b - a <= _MAX[dtype]:
        raise ValueError(f"paramops.{op}: b - a{of} overflows {dtype}")
    if dtype != torch.float64:
        with np.errstate(over="ignore"):
            overflow = not np.isfinite(np.float32(b) - np.float32(a))  # the range in the compute type
        if overflow:
            raise ValueError(f"paramops.{op}: b - a{of} overflows torch.float32")


def normal_params(op, dtype, mean, std, of=""):
    mean, std = float(mean), float(std)
    _finite(op, of, mean=mean, std=std)
    if not std >= 0:
        raise ValueError(f"paramops.{op}: std{of} must be >= 0, got {std!r}")
    _fits(op, dtype, of, mean=mean, std=std)


def trunc_normal_params(op, dtype, mean, std, a, b, of=""):
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    _finite(op, of, mean=mean, std=std)
    for name, v in (("a", a), ("b", b)):
        if math.isnan(v):
            raise ValueError(f"paramops.{op}: {name}{of} must not be nan")
    if not std > 0:
        raise ValueError(f"paramops.{op}: std{of} must be > 0, got {std!r}")
    _fits(op, dtype, of, mean=mean, std=std)
    if not a < b:
        raise ValueError(f"paramops.{op}: a{of} must be less than b, got a={a!r}, b={b!r}")
    ta, tb = R.trunc_bound(a, dtype), R.trunc_bound(b, dtype)
    if R.dtype_bound(ta, dtype, True) > R.dtype_bound(tb, dtype, False):
        raise ValueError(f"paramops.{op}: no {dtype} value lies in [a, b] = [{a!r}, {b!r}]{of}")
    _, _, _, ok, tail = R.trunc_setup(mean, std, ta, tb, dtype == torch.float64)
    if tail:
        raise ValueError(
            f"paramops.{op}: [a, b] = [{a!r}, {b!r}]{of} lies too far in the tail of the normal "
            f"distribution (mean={mean!r}, std={std!r}) to sample in {_compute(dtype)}")
    if not ok:
        raise ValueError(
            f"paramops.{op}: [a, b] = [{a!r}, {b!r}]{of} is too narrow for the normal distribution "
            f"(mean={mean!r}, std={std!r}) to sample by inverse CDF: Phi((b - mean) / std) - "
            "Phi((a - mean) / std) is 0 in float64")


def fill_params(op, dtype, value, of=""):
    value = float(value)
    _finite(op, of, value=value)
    _fits(op, dtype, of, value=value)


_PARAMS = {K.UNIFORM: uniform_params, K.NORMAL: normal_params, K.TRUNC: trunc_normal_params, K.FILL: fill_params}


def kind_params(op, kind, dtype, p, of=""):
    """The checks of kind `kind` (K.UNIFORM ...) on parameters p (at least its arity)."""
    _PARAMS[kind](op, dtype, *p[:K.ARITY[kind]], of=of)


# ---------------------------------------------------------------- the single ops, data-free
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


# ---------------------------------------------------------------- multi_init_
# The checks of csrc/cpu/multi.cpp prepare_multi, in its order and with its messages: plan,
# then params (layout, dtype, device, shape); then entry by entry its kind, device, the
# single ops' checks naming "tensors[i]", its offset; then that no two entries share
# memory; then writability.
MULTI = "multi_init_"
_OP = "paramops." + MULTI
PLAN_ROW = "one row (kind, seed, stream, offset) per tensor"
PARAMS_ROW = "one row of 4 parameters per tensor"


def _table(t, name, dtype, n, per):
    """plan / params: an [n, 4] tensor of `dtype` on the CPU, any strides."""
    if t.layout != torch.strided:
        raise TypeError(f"{_OP}: {name} must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype != dtype:
        raise TypeError(f"{_OP}: {name} must be a {dtype} tensor, got {t.dtype}")
    if t.device.type != "cpu":
        raise RuntimeError(f"{_OP}: {name} must be a CPU tensor (it is read on the host, also for tensors on "
                           f"another device), got a tensor on {t.device}")
    if t.dim() != 2 or t.shape[0] != n or t.shape[1] != 4:
        raise ValueError(f"{_OP}: {name} must have shape [{n}, 4] ({per}), got {list(t.shape)}")


def multi_tables(plan, params, n):
    _table(plan, "plan", torch.int64, n, PLAN_ROW)
    _table(params, "params", torch.float64, n, PARAMS_ROW)


def kind_code(i, kind):
    if not 0 <= kind < K.NUM_KINDS:
        raise ValueError(f"{_OP}: kinds[{i}] must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), "
                         f"got {kind}")


def same_device(t, i, dev0):
    if t.device != dev0:
        raise RuntimeError(f"{_OP}: tensors[{i}] is on {t.device} but tensors[0] is on {dev0}; "
                           "all tensors must be on one device")


def multi(tensors, plan, params):
    """Every check of multi_init_; raises before anything is written."""
    n = len(tensors)
    multi_tables(plan, params, n)
    if not n:
        return
    rows, prm = plan.tolist(), params.tolist()
    dev0 = None
    for i, t in enumerate(tensors):
        kind, offset_ = rows[i][K.PLAN_KIND], rows[i][K.PLAN_OFFSET]
        kind_code(i, kind)
        who = f"tensors[{i}]"
        is_tensor(MULTI, t, who)
        if dev0 is None:
            dev0 = t.device
        same_device(t, i, dev0)
        tensor(MULTI, t, who)
        kind_params(MULTI, kind, t.dtype, prm[i], of=" of " + who)
        if kind != K.FILL:
            offset(MULTI, offset_, t.numel(), " of " + who)
    if dev0.type != "meta":
        disjoint(tensors)
    for t in tensors:
        writable(t)


def multi_fake(tensors, plan, params):
    """The checks that need no data of `tensors` (plan and params, kinds, one device): the fake
    kernel's. Under a FakeTensorMode (torch.compile, opcheck) plan holds no values, so the
    kinds are checked only when it is a real tensor."""
    from torch._subclasses.fake_tensor import is_fake

    n = len(tensors)
    multi_tables(plan, params, n)
    if not n:
        return
    kinds = None if is_fake(plan) else plan[:, K.PLAN_KIND].tolist()
    dev0 = tensors[0].device
    for i, t in enumerate(tensors):
        if kinds is not None:
            kind_code(i, kinds[i])
        same_device(t, i, dev0)


# Disjointness, exact: entries may interleave (w[:, :k] and w[:, k:], w[:, ::2] and
# w[:, 1::2]) as long as no byte is shared. The algorithm of csrc/cpu/multi.cpp.
def _layout(t):
    isz = t.element_size()
    dims = sorted(((n, s * isz) for n, s in zip(t.shape, t.stride()) if n > 1), key=lambda d: -d[1])
    return isz, dims


def _span(lay, d):
    isz, dims = lay
    return isz + sum((n - 1) * s for n, s in dims[d:])


def _sets_overlap(x, xd, xb, y, yd, yb):
    """Whether the strided byte-interval sets x (dims from xd, start xb) and y share a byte."""
    xs, ys = _span(x, xd), _span(y, yd)
    if xb >= yb + ys or yb >= xb + xs:
        return False
    nxd, nyd = len(x[1]), len(y[1])
    xe, ye = xd == nxd, yd == nyd
    if xe and ye:
        return True
    if (xe or xd + 1 == nxd) and (ye or yd + 1 == nyd):
        st = y[1][yd][1] if xe else x[1][xd][1]
        if (xe or x[1][xd][1] == st) and (ye or y[1][yd][1] == st):
            nx = 1 if xe else x[1][xd][0]
            ny = 1 if ye else y[1][yd][0]
            tlo = max((yb - xb - x[0]) // st + 1, -(ny - 1))
            thi = min(-(-(yb - xb + y[0]) // st) - 1, nx - 1)
            return tlo <= thi
    split_x = ye or (not xe and x[1][xd][1] >= y[1][yd][1])
    a, ad, ab, o, od, ob = (x, xd, xb, y, yd, yb) if split_x else (y, yd, yb, x, xd, xb)
    n, st = a[1][ad]
    inner, os_ = _span(a, ad + 1), _span(o, od)
    k0 = max(0, (ob - ab - inner) // st + 1)
    k1 = min(n - 1, -(-(ob + os_ - ab) // st) - 1)
    for k in range(k0, k1 + 1):
        if _sets_overlap(a, ad + 1, ab + k * st, o, od, ob):
            return True
    return False


def tensors_overlap(a, b):
    """Whether tensors a and b (numel > 0) share a byte of memory."""
    pa, pb = a.data_ptr(), b.data_ptr()
    origin = min(pa, pb)
    return _sets_overlap(_layout(a), 0, pa - origin, _layout(b), 0, pb - origin)


def extent(t):
    """The bytes [lo, hi) that a non-empty tensor can touch."""
    p, isz = t.data_ptr(), t.element_size()
    reach = [(n - 1) * s for n, s in zip(t.shape, t.stride())]
    return p + sum(r for r in reach if r < 0) * isz, p + (sum(r for r in reach if r > 0) + 1) * isz


def disjoint(tensors):
    """Raise for the first entry j that shares memory with an earlier entry i (smallest i)."""
    ext = []
    for i, t in enumerate(tensors):
        if t.numel() == 0:
            continue
        ext.append((*extent(t), i))
    ext.sort()
    reach, hit = 0, False
    for lo, hi, _ in ext:
        if lo < reach:
            hit = True
            break
        reach = max(reach, hi)
    if not hit:
        return
    best = None  # (j, i)
    active = []
    for lo, hi, i in ext:
        active = [e for e in active if e[1] > lo]
        for e in active:
            pair = (max(e[2], i), min(e[2], i))
            if (best is None or pair < best) and tensors_overlap(tensors[pair[1]], tensors[pair[0]]):
                best = pair
        active.append((lo, hi, i))
    if best is not None:
        raise RuntimeError(f"{_OP}: tensors[{best[1]}] and tensors[{best[0]}] overlap in memory; the entries "
                           "would be written concurrently, so each must have memory of its own")


# ---------------------------------------------------------------- tied_grad_
# The checks of csrc/cpu/tied.cpp check_tied, in its order and with its messages: the
# group lists, then group by group its sources and destinations, then (with data) that no
# destination shares memory with a source or another destination, then writability.
TIED = "tied_grad_"
_TOP = "paramops." + TIED


def _shape(t):
    return list(t.shape)


def _tied_tensor(t, who, dev0, write):
    is_tensor(TIED, t, who)
    if t.layout != torch.strided:
        raise TypeError(f"{_TOP}: {who} must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype not in _MAX:
        raise TypeError(f"{_TOP}: {who} must be a float16, bfloat16, float32 or float64 tensor, got {t.dtype}")
    if t.device != dev0:
        raise RuntimeError(f"{_TOP}: {who} is on {t.device} but out[0] is on {dev0}; one call takes the "
                           "tensors of one device")
    if write and t.device.type != "meta" and torch._debug_has_internal_overlap(t) == 1:
        raise RuntimeError(f"{_TOP}: {who} has overlapping elements in memory (e.g. from expand()); "
                           "write into a tensor with distinct elements")


def tied_groups(out, grads, counts, copies, scales, accumulate):
    """The data-free checks of tied_grad_; returns the groups [(dests, sources, scale, accumulate)]."""
    n = len(counts)
    if not len(copies) == len(scales) == len(accumulate) == n:
        raise ValueError(f"{_TOP}: counts, copies, scales and accumulate must have one entry per group, got "
                         f"{n}, {len(copies)}, {len(scales)} and {len(accumulate)}")
    for g in range(n):
        if counts[g] < 1:
            raise ValueError(f"{_TOP}: group {g} is empty: counts[{g}] must be >= 1, got {counts[g]}")
        if copies[g] < 1:
            raise ValueError(f"{_TOP}: group {g} has no destination: copies[{g}] must be >= 1, got {copies[g]}")
    if sum(counts) != len(grads):
        raise ValueError(f"{_TOP}: counts add up to {sum(counts)} but grads has {len(grads)} tensors")
    if sum(copies) != len(out):
        raise ValueError(f"{_TOP}: copies add up to {sum(copies)} but out has {len(out)} tensors")
    groups, i, j = [], 0, 0
    if n:
        is_tensor(TIED, out[0], "out[0] (group 0)")
    dev0 = out[0].device if n else None
    for g in range(n):
        src, dst = grads[i:i + counts[g]], out[j:j + copies[g]]
        for k, t in enumerate(src):
            who = f"grads[{i + k}] (group {g})"
            _tied_tensor(t, who, dev0, False)
            if k and (t.shape != src[0].shape or t.dtype != src[0].dtype):
                what, a, b = (("shape", _shape(t), _shape(src[0])) if t.shape != src[0].shape
                              else ("dtype", t.dtype, src[0].dtype))
                raise ValueError(f"{_TOP}: {who} has {what} {a} but grads[{i}], the group's first source, "
                                 f"has {b}")
        for k, t in enumerate(dst):
            who = f"out[{j + k}] (group {g})"
            _tied_tensor(t, who, dev0, True)
            if t.shape != src[0].shape:
                raise ValueError(f"{_TOP}: {who} has shape {_shape(t)} but the group's sources have "
                                 f"{_shape(src[0])}")
            if k and t.dtype != dst[0].dtype:
                raise ValueError(f"{_TOP}: {who} has dtype {t.dtype} but out[{j}], the group's first "
                                 f"destination, has {dst[0].dtype}")
        s = float(scales[g])
        acc = torch.float64 if torch.float64 in (src[0].dtype, dst[0].dtype) else torch.float32
        if not math.isfinite(s):
            raise ValueError(f"{_TOP}: scales[{g}] must be finite, got {s!r}")
        if not abs(s) <= _MAX[acc]:
            raise ValueError(f"{_TOP}: scales[{g}] {s!r} overflows {acc}, the group's accumulator")
        groups.append((dst, src, s, bool(accumulate[g])))
        i, j = i + counts[g], j + copies[g]
    return groups


def _tied_alias(out, grads):
    """Raise for the first destination (list order) that shares memory with a source (the
    smallest such index first) or with an earlier destination."""
    tagged = [(t, 0, i) for i, t in enumerate(grads)] + [(t, 1, j) for j, t in enumerate(out)]
    ext = []
    for t, kind, i in tagged:
        if t.numel() == 0:
            continue
        ext.append((*extent(t), kind, i))
    ext.sort()
    best, active = None, []
    for lo, hi, kind, i in ext:
        active = [e for e in active if e[1] > lo]
        for e in active:
            (_, _, k1, i1), (k2, i2) = e, (kind, i)
            if k1 == 0 and k2 == 0:
                continue  # two sources: both only read
            # the pair as (destination j, 0: a source / 1: an earlier destination, its index)
            if k1 == 1 and k2 == 1:
                key = (max(i1, i2), 1, min(i1, i2))
            else:
                key = (i1, 0, i2) if k1 == 1 else (i2, 0, i1)
            if (best is None or key < best) and tensors_overlap(
                    out[key[0]], (grads if key[1] == 0 else out)[key[2]]):
                best = key
        active.append((lo, hi, kind, i))
    if best is None:
        return
    j, kind, i = best
    if kind == 0:
        raise RuntimeError(f"{_TOP}: out[{j}] and grads[{i}] overlap in memory; a destination must not "
                           "alias a source")
    raise RuntimeError(f"{_TOP}: out[{i}] and out[{j}] overlap in memory; each destination must have "
                       "memory of its own")


def tied(out, grads, counts, copies, scales, accumulate):
    """Every check of tied_grad_; raises before anything is written. Returns the groups."""
    groups = tied_groups(out, grads, counts, copies, scales, accumulate)
    if out and out[0].device.type != "meta":
        _tied_alias(out, grads)
    for t in out:
        writable(t)
    return groups
