"""The public ops: uniform_, normal_, trunc_normal_, fill_ (constant_) and multi_init_.

A thin layer over torch.ops.paramops: each function converts its arguments and makes one
op call. The op does the rest, the same way on every backend: its checks (before anything
is written), the seed draw when `seed` is not given (from `generator`, or torch's default
CPU generator), the autograd version bump, and the write (or, in fused mode, the record).
Values depend only on (seed, stream, element index, parameters, dtype): docs/stream.md.

Types are strict, as the op schemas are: a parameter that is not a real number, a seed,
stream or offset that is not an integer, and a generator that is not a torch.Generator
are TypeErrors naming the argument; a seed or stream outside [-2**63, 2**64) is a
ValueError. These are worked out on the error path only: a call that succeeds does no
Python work beyond the call.
"""
import numbers
import operator

import torch

from . import registration  # noqa: F401  (defines torch.ops.paramops.*)
from .core import codes as K
from .core import seeds as _seeds
from .core.seeds import draw_seed, generator_handle
from .spec import checks as _checks

__all__ = ["uniform_", "normal_", "trunc_normal_", "fill_", "constant_", "multi_init_", "draw_seed",
           "generator_handle"]

_ops = torch.ops.paramops
_uniform, _normal, _trunc_normal, _fill, _multi = (
    _ops.uniform_.default, _ops.normal_.default, _ops.trunc_normal_.default, _ops.fill_.default,
    _ops.multi_init_.default)
_I64_MIN, _I64_MAX, _U64 = -(1 << 63), (1 << 63) - 1, 1 << 64


# ------------------------------------------------------------------ the error path
def _real(op, name, v):
    """Whether v passes as a float argument (what the op schema takes); TypeError if not."""
    if isinstance(v, numbers.Real) or (isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_complex()):
        return
    raise TypeError(f"paramops.{op}: {name} must be a real number, got {type(v).__name__}")


def _int(op, name, v, wrap):
    """v as the op's int64 argument, or an error naming it. wrap: a 64-bit pattern (seed,
    stream) taken modulo 2**64 from [-2**63, 2**64); else (offset) an int64."""
    if v is None and name == "seed":
        return None
    if wrap:
        return _seeds.as_int64(op, name, v)
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"paramops.{op}: {name} must be an int, got {type(v).__name__}") from None
    if i > _I64_MAX:
        raise ValueError(f"paramops.{op}: offset + numel overflows int64")
    if i < _I64_MIN:
        raise ValueError(f"paramops.{op}: offset must be >= 0, got {i}")
    return i


def _bits(v):
    """A 64-bit pattern from 2**63 on as the int64 the op carries (anything else as is: the op
    refuses it, and the error path names it)."""
    return v - _U64 if type(v) is int and _I64_MAX < v < _U64 else v


def _handle(op, generator):
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"paramops.{op}: generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    return generator_handle(generator)


def _redo(e, fn, op, tensor, params, seed, generator, stream, offset):
    """After the op call failed with `e`: raise the error that names the bad argument, or
    make the call again with arguments converted (a seed or stream from 2**63 on) when that
    was all, or re-raise `e` (the op's own checks: nothing was written)."""
    _checks.is_tensor(op, tensor)
    for name, v in params.items():
        _real(op, name, v)
    kw = {"seed": _int(op, "seed", seed, True), "generator": _handle(op, generator),
          "stream": _int(op, "stream", stream, True), "offset": _int(op, "offset", offset, False)}
    if isinstance(e, NotImplementedError):
        _checks.device(op, tensor)
    if (kw["seed"] != seed or kw["stream"] != stream) and "Expected a value of type" in str(e):
        fn(tensor, *params.values(), **kw)  # the same call, with the 64-bit patterns as int64
        return
    raise e


# ------------------------------------------------------------------ single ops
_PARAMS = {_uniform: ("uniform_", ("a", "b")), _normal: ("normal_", ("mean", "std")),
           _trunc_normal: ("trunc_normal_", ("mean", "std", "a", "b"))}


def _single(fn, tensor, params, seed, generator, stream, offset):
    """One op call. (Keyword arguments cost the op call a microsecond: they are passed only
    when given.)"""
    try:
        if seed is None and generator is None and stream == 0 and offset == 0:
            fn(tensor, *params)
        else:
            fn(tensor, *params, seed=_bits(seed), generator=None if generator is None else generator_handle(generator),
               stream=_bits(stream), offset=offset)
    except Exception as e:
        op, names = _PARAMS[fn]
        _redo(e, fn, op, tensor, dict(zip(names, params)), seed, generator, stream, offset)
    return tensor


def uniform_(tensor, a=0.0, b=1.0, *, generator=None, seed=None, stream=0, offset=0):
    """Fill `tensor` with U[a, b) draws of paramops stream v1."""
    return _single(_uniform, tensor, (a, b), seed, generator, stream, offset)


def normal_(tensor, mean=0.0, std=1.0, *, generator=None, seed=None, stream=0, offset=0):
    """Fill `tensor` with N(mean, std^2) draws (Box-Muller) of paramops stream v1."""
    return _single(_normal, tensor, (mean, std), seed, generator, stream, offset)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, *, generator=None, seed=None, stream=0, offset=0):
    """Fill `tensor` with N(mean, std^2) truncated to [a, b] (absolute bounds, as torch; either may
    be infinite), in one pass by inverse CDF. Every value lies in [a, b] in its own dtype."""
    return _single(_trunc_normal, tensor, (mean, std, a, b), seed, generator, stream, offset)


def fill_(tensor, value):
    """Fill `tensor` with `value` (rounded to its dtype)."""
    try:
        _fill(tensor, value)
    except Exception as e:
        _checks.is_tensor("fill_", tensor)
        _real("fill_", "value", value)
        if isinstance(e, NotImplementedError):
            _checks.device("fill_", tensor)
        raise
    return tensor


constant_ = fill_


# ------------------------------------------------------------------ multi_init_
_MULTI = "multi_init_"
_OP = "paramops." + _MULTI
_KIND_OF = {}
for _code, _name in enumerate(K.KIND_NAME):
    _KIND_OF[_name] = _KIND_OF[_name + "_"] = _code
_KIND_OF["constant"] = _KIND_OF["constant_"] = K.FILL
_FORM = {K.UNIFORM: "(a, b)", K.NORMAL: "(mean, std)", K.TRUNC: "(mean, std, a, b)", K.FILL: "(value,)"}


def _kind(k, where):
    if isinstance(k, str):
        code = _KIND_OF.get(k)
        if code is None:
            raise ValueError(f"{_OP}: {where} must be 'uniform', 'normal', 'trunc_normal' or 'fill' "
                             f"(or 0, 1, 2, 3), got {k!r}")
        return code
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{_OP}: {where} must be a name or an int, got {type(k).__name__}")
    code = int(k)
    if not 0 <= code < K.NUM_KINDS:
        raise ValueError(f"{_OP}: {where} must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), "
                         f"got {code}")
    return code


def _length(name, got, want, per):
    if got != want:
        raise ValueError(f"{_OP}: {name} must have {per} ({want}), got {got}")


def _kinds(kinds, n):
    """One code for all (an int), or a list of n codes."""
    if isinstance(kinds, (str, numbers.Integral)):
        return _kind(kinds, "kinds")
    if not isinstance(kinds, (list, tuple)):
        try:
            kinds = list(kinds)
        except TypeError:
            raise TypeError(f"{_OP}: kinds must be a name, an int or a sequence of them, got "
                            f"{type(kinds).__name__}") from None
    _length("kinds", len(kinds), n, "one entry per tensor")
    return [_kind(k, f"kinds[{i}]") for i, k in enumerate(kinds)]


def _tuple(p, kind, where):
    """One entry of params: a tuple of the kind's arity of real numbers (a number for fill)."""
    if isinstance(p, numbers.Real):
        p = (p,)
    if isinstance(p, (str, bytes)) or not hasattr(p, "__len__"):
        raise TypeError(f"{_OP}: {where} must be a number or a tuple of numbers, got {type(p).__name__}")
    for v in p:
        if not isinstance(v, numbers.Real):
            raise TypeError(f"{_OP}: {where} must be a tuple of numbers, got {type(v).__name__} in it")
    if len(p) != K.ARITY[kind]:
        raise ValueError(f"{_OP}: {where} for {K.KIND_NAME[kind]} must be {_FORM[kind]}, got {tuple(p)}")
    return [float(v) for v in p] + [0.0] * (K.PARAMS_W - len(p))


def _params(params, kinds, n):
    """The params tensor, float64 [n, 4]: one row expanded, or one row per tensor."""
    one = isinstance(params, numbers.Real) or (
        isinstance(params, (tuple, list)) and len(params) > 0 and isinstance(params[0], numbers.Real))
    if one:  # one tuple for all: it must suit every kind used
        for k in ([kinds] if isinstance(kinds, int) else sorted(set(kinds))):
            row = _tuple(params, k, "params")
        return torch.tensor(row, dtype=torch.float64).expand(n, K.PARAMS_W)
    if isinstance(params, (str, bytes)) or not hasattr(params, "__len__"):
        raise TypeError(f"{_OP}: params must be a tuple of numbers or a sequence of them, got "
                        f"{type(params).__name__}")
    for i, p in enumerate(params):  # a bad entry is named before the list's length is
        if isinstance(p, (str, bytes)) or not (isinstance(p, numbers.Real) or hasattr(p, "__len__")):
            raise TypeError(f"{_OP}: params[{i}] must be a number or a tuple of numbers, got {type(p).__name__}")
    _length("params", len(params), n, "one tuple per tensor")
    ks = [kinds] * n if isinstance(kinds, int) else kinds
    return torch.tensor([_tuple(p, k, f"params[{i}]") for i, (p, k) in enumerate(zip(params, ks))],
                        dtype=torch.float64)


def _column(name, v, n, conv):
    """One int for all, or a list of n ints (conv checks and converts one)."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return conv(name, v)
    if not isinstance(v, (list, tuple)):
        try:
            v = list(v)
        except TypeError:
            raise TypeError(f"{_OP}: {name} must be an int or a sequence of ints, got {type(v).__name__}") from None
    _length(name, len(v), n, "one entry per tensor")
    return [conv(f"{name}[{i}]", x) for i, x in enumerate(v)]


def _bits64(name, v):
    if isinstance(v, bool):
        raise TypeError(f"{_OP}: {name} must be an int, got bool")
    return _seeds.as_int64(_MULTI, name, v)


def _offset(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{_OP}: {name} must be an int, got {type(v).__name__}")
    v = int(v)
    if not _I64_MIN <= v <= _I64_MAX:
        raise ValueError(f"{_OP}: {name} must lie in int64 (offset + numel must too), got {v}")
    return v


def multi_init_(tensors, kinds, params, *, seeds=None, streams=0, offsets=0, generator=None):
    """Initialize every tensor of `tensors` in one op call; returns the list of tensors.

    kinds: one kind for all or one per tensor, each a name ("uniform", "normal",
      "trunc_normal", "fill"; also "uniform_", "normal_", "trunc_normal_", "fill_",
      "constant") or its code 0, 1, 2, 3.
    params: one tuple for all or a sequence with one tuple per tensor: (a, b) for uniform,
      (mean, std) for normal, (mean, std, a, b) for trunc_normal (absolute bounds),
      (value,) or a number for fill. A flat sequence of numbers is one tuple.
    seeds: None: the op draws one seed per random tensor, in list order, from `generator`
      (or torch's default generator) exactly as the single functions do (none for fill), so
      the result equals calling paramops.normal_ & co. on the tensors one by one after the
      same torch.manual_seed. An int or a sequence of ints gives the seeds.
    streams, offsets: an int for all or one per tensor, as in the single functions.

    Tensor i gets the bits of the single op on it with its seed, stream and offset. All
    arguments are checked before anything is written; a failed call draws no seed. On
    meta tensors the call only checks its arguments.

    One kind, one params tuple and int seeds/streams/offsets cost no per-tensor Python work:
    the op's plan and params tensors are one row each, expanded.
    """
    if isinstance(tensors, torch.Tensor):
        raise TypeError(f"{_OP}: tensors must be a sequence of tensors, got a torch.Tensor (pass [t])")
    if not isinstance(tensors, list):
        try:
            tensors = list(tensors)
        except TypeError:
            raise TypeError(f"{_OP}: tensors must be a sequence of tensors, got {type(tensors).__name__}") from None
    n = len(tensors)
    codes = _kinds(kinds, n)
    prm = _params(params, codes, n)
    streams = _column("streams", streams, n, _bits64)
    offsets = _column("offsets", offsets, n, _offset)
    if seeds is not None:
        seeds = _column("seeds", seeds, n, _bits64)
    gen = _handle(_MULTI, generator)
    if n == 0:
        return tensors
    cols = (codes, 0 if seeds is None else seeds, streams, offsets)
    if all(isinstance(c, int) for c in cols):
        plan = torch.tensor(list(cols), dtype=torch.int64).expand(n, K.PLAN_W)
    else:
        cols = [c if isinstance(c, list) else [c] * n for c in cols]
        plan = torch.tensor(list(zip(*cols)), dtype=torch.int64)
    try:
        _multi(tensors, plan, prm, generator=gen, draw_seeds=seeds is None)
    except Exception:
        for i, t in enumerate(tensors):  # torch's message for a list with a non-tensor names no index
            _checks.is_tensor(_MULTI, t, f"tensors[{i}]")
        raise
    return tensors
