"""multi_init_: initialize a whole list of tensors with one op call.

    paramops.multi_init_([w1, w2, b1], ["normal", "normal", "fill"],
                         [(0.0, 0.02), (0.0, 0.02), (0.0,)])

Tensor i gets exactly the bits that the single op (paramops.uniform_, normal_,
trunc_normal_, fill_) writes with the same seed, stream and offset. The op,
torch.ops.paramops.multi_init_(tensors, plan, params), takes its per-tensor metadata as two
tensors, in the style of apex's multi_tensor_apply:

  plan    int64 [n, 4]: (kind, seed, stream, offset) of tensor i in row i
          (kind 0 uniform, 1 normal, 2 trunc_normal, 3 fill; seed, stream and offset are
          ignored for fill)
  params  float64 [n, 4]: its parameters, zero-padded: (a, b) for uniform, (mean, std) for
          normal, (mean, std, a, b) for trunc_normal, (value,) for fill

Both are always CPU tensors, also when `tensors` are on a GPU: the metadata is read on the
host. Any strides are accepted, so one row expanded to [n, 4] (stride 0) serves every
tensor for free. Its CPU kernel (csrc/cpu/multi.cpp) writes all contiguous tensors in one
parallel pass.

This module also holds the op's Python side: the argument checks (the reference backend
and meta tensors; the C++ kernel raises the same messages), the reference
implementation and the fake kernel, which paramops/_ops.py registers.
"""
import array
import numbers
import operator

import numpy as np
import torch

from . import _checks

SCHEMA = "(Tensor(a!)[] tensors, Tensor plan, Tensor params) -> ()"
PLAN_ROW = "one row (kind, seed, stream, offset) per tensor"
PARAMS_ROW = "one row of 4 parameters per tensor"

UNIFORM, NORMAL, TRUNC, FILL = 0, 1, 2, 3
_DIST = {UNIFORM: "uniform", NORMAL: "normal", TRUNC: "trunc_normal"}
_CODES = {"uniform": UNIFORM, "uniform_": UNIFORM, "normal": NORMAL, "normal_": NORMAL,
          "trunc_normal": TRUNC, "trunc_normal_": TRUNC, "fill": FILL, "fill_": FILL,
          "constant": FILL, "constant_": FILL}
_ARITY = {UNIFORM: 2, NORMAL: 2, TRUNC: 4, FILL: 1}
_FORM = {UNIFORM: "(a, b)", NORMAL: "(mean, std)", TRUNC: "(mean, std, a, b)", FILL: "(value,)"}
_PAD = {k: (0.0,) * (4 - n) for k, n in _ARITY.items()}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class Table:
    """Columns of the int64 metadata table that paramops::_multi_table returns (multi_init_'s
    host preparation, used by the Triton backend): one row per non-empty entry, in list
    order. Mirrors csrc/cpu/multi_table.cpp; kept here, free of triton, for the fake kernel."""
    INDEX, ADDR, NUMEL, OFFSET, SEED, STREAM, KIND, DTYPE, STRIDE, P0 = range(10)
    W = P0 + 6
    NOT_ONE_RUN = 0  # STRIDE of an entry that is not one strided run (single-tensor path)


_OP_NAME = "multi_init_"
_OP = "paramops." + _OP_NAME


# ------------------------------------------------------------------ op checks
# The same checks, in the same order and with the same messages, as csrc/cpu/multi.cpp
# (the tests compare them): plan, then params (layout, dtype, device, shape); then entry
# by entry its kind, device, the single op's checks naming "tensors[i]"; then that no two
# entries share memory.

def _check_table(t, name, dtype, n, per):
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


def _check_tables(plan, params, n):
    _check_table(plan, "plan", torch.int64, n, PLAN_ROW)
    _check_table(params, "params", torch.float64, n, PARAMS_ROW)


def _kind_error(i, kind):
    return ValueError(f"{_OP}: kinds[{i}] must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), "
                      f"got {kind}")


# the single ops' parameter checks, by kind, naming "tensors[i]"
_PARAM_CHECKS = {UNIFORM: _checks.uniform_params, NORMAL: _checks.normal_params,
                 TRUNC: _checks.trunc_normal_params, FILL: _checks.fill_params}


def _check_tensor(t, i):
    _checks.is_tensor(_OP_NAME, t, f"tensors[{i}]")


def _check_same_device(t, i, dev0):
    if t.device != dev0:
        raise RuntimeError(f"{_OP}: tensors[{i}] is on {t.device} but tensors[0] is on {dev0}; "
                           "all tensors must be on one device")


def validate(tensors, plan, params):
    """All checks of multi_init_; raises before anything is written."""
    n = len(tensors)
    _check_tables(plan, params, n)
    if not n:
        return
    rows, prm = plan.tolist(), params.tolist()
    dev0 = None
    for i, t in enumerate(tensors):
        kind, _, _, offset = rows[i]
        if kind not in _ARITY:
            raise _kind_error(i, kind)
        _check_tensor(t, i)
        if dev0 is None:
            dev0 = t.device
        _check_same_device(t, i, dev0)
        who = f"tensors[{i}]"
        _checks.tensor(_OP_NAME, t, who)
        of = " of " + who
        _PARAM_CHECKS[kind](_OP_NAME, t.dtype, *prm[i][:_ARITY[kind]], of=of)
        if kind != FILL:
            _checks.offset(_OP_NAME, offset, t.numel(), of)
    if dev0 is not None and dev0.type != "meta":
        check_disjoint(tensors)


# ------------------------------------------------------------------ disjointness
# Exact: entries may interleave (w[:, :k] and w[:, k:], w[:, ::2] and w[:, 1::2]) as long
# as no byte is shared. The same algorithm as csrc/cpu/multi.cpp.

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


def check_disjoint(tensors):
    """Raise for the first entry j that shares memory with an earlier entry i (smallest i)."""
    ext = []
    for i, t in enumerate(tensors):
        if t.numel() == 0:
            continue
        p, isz = t.data_ptr(), t.element_size()
        reach = [(n - 1) * s for n, s in zip(t.shape, t.stride())]
        lo = sum(r for r in reach if r < 0)
        hi = sum(r for r in reach if r > 0)
        ext.append((p + lo * isz, p + (hi + 1) * isz, i))
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


# ------------------------------------------------------------------ reference, fake
def ref_multi_init_(tensors, plan, params):
    """The Python backend of torch.ops.paramops.multi_init_ (any device of `tensors`)."""
    from . import _ops

    validate(tensors, plan, params)
    for t, (kind, seed, stream, offset), p in zip(tensors, plan.tolist(), params.tolist()):
        if kind == FILL:
            if t.numel():
                t.fill_(p[0])
        else:
            _ops._write(t, _DIST[kind], tuple(p[:_ARITY[kind]]), seed, stream, offset)


def fake_multi_init_(tensors, plan, params):
    """Fake kernel: the checks that need no data of `tensors` (plan and params, kinds, one device).

    Under a FakeTensorMode (torch.compile, opcheck) plan holds no values, so the kinds
    are checked only when it is a real tensor (a call on meta tensors). A list that mixes
    meta and other tensors dispatches here (Meta wins), so the device check keeps such a
    call from passing as a no-op."""
    from torch._subclasses.fake_tensor import is_fake

    n = len(tensors)
    _check_tables(plan, params, n)
    if not n:
        return None
    kinds = None if is_fake(plan) else plan[:, 0].tolist()
    dev0 = tensors[0].device
    for i, t in enumerate(tensors):
        if kinds is not None and kinds[i] not in _ARITY:
            raise _kind_error(i, kinds[i])
        _check_same_device(t, i, dev0)
    return None


# ------------------------------------------------------------------ public API
def _kind_code(k, where):
    if isinstance(k, str):
        code = _CODES.get(k)
        if code is None:
            raise ValueError(f"{_OP}: {where} must be 'uniform', 'normal', 'trunc_normal' or 'fill' "
                             f"(or 0, 1, 2, 3), got {k!r}")
        return code
    try:
        code = operator.index(k)
    except TypeError:
        raise TypeError(f"{_OP}: {where} must be a name or an int, got {type(k).__name__}") from None
    if code not in _ARITY:
        raise ValueError(f"{_OP}: {where} must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), "
                         f"got {code}")
    return code


def _length(name, got, want, per):
    if got != want:
        raise ValueError(f"{_OP}: {name} must have {per} ({want}), got {got}")


_KIND_LUT = {**_CODES, **{code: code for code in _ARITY}}  # name or code -> code


def _kinds(kinds, n):
    """(codes, single): single is the code if one kind serves all (codes is then None),
    else None and codes an int64 array of the n codes."""
    if isinstance(kinds, (str, numbers.Integral)):
        return None, _kind_code(kinds, "kinds")
    try:
        kinds = list(kinds)
    except TypeError:
        raise TypeError(f"{_OP}: kinds must be a name, an int or a sequence of them, got {type(kinds).__name__}") from None
    _length("kinds", len(kinds), n, "one entry per tensor")
    if not n:
        return np.zeros(0, np.int64), None
    k0 = kinds[0]
    if type(k0) is str and kinds.count(k0) == n:  # only a str equals a str: all the same name
        return None, _kind_code(k0, "kinds[0]")
    codes = list(map(_KIND_LUT.get, kinds))
    if None in codes or not set(map(type, kinds)) <= {str, int}:
        # a bad entry, or one that only compares equal to a name or code (1.0, True, numpy ints):
        # convert one by one, as the message must name the first bad entry
        codes = [_kind_code(k, f"kinds[{i}]") for i, k in enumerate(kinds)]
    codes = np.array(codes, np.int64)
    if (codes == codes[0]).all():
        return None, int(codes[0])
    return codes, None


def _one_tuple(p, kind, where):
    if isinstance(p, numbers.Real):
        p = (p,)
    try:
        p = tuple(float(v) for v in p)
    except TypeError:
        raise TypeError(f"{_OP}: {where} must be a tuple of numbers, got {type(p).__name__}") from None
    if len(p) != _ARITY[kind]:
        raise ValueError(f"{_OP}: {where} for {_DIST.get(kind, 'fill')} must be {_FORM[kind]}, got {p}")
    return p


def _params(params, codes, single, n):
    """The params tensor, float64 [n, 4]: one row expanded, or one row per tensor."""
    broadcast = isinstance(params, numbers.Real) or (
        not isinstance(params, (str, bytes)) and len(params) > 0 and isinstance(params[0], numbers.Real))
    if broadcast:
        row = None
        for kind in ((single,) if single is not None else np.unique(codes).tolist()):
            p = _one_tuple(params, kind, "params")
            row = p + _PAD[kind]
        return torch.tensor(row if row is not None else (0.0,) * 4, dtype=torch.float64).expand(n, 4)
    params = list(params)
    _length("params", len(params), n, "one tuple per tensor")
    if not n:
        return torch.zeros(0, 4, dtype=torch.float64)
    p0 = params[0]
    if single is not None and isinstance(p0, (tuple, list)) and params.count(p0) == n:
        # one kind, and every tuple equal to the first (the same numbers): one row, expanded
        return torch.tensor(_one_tuple(p0, single, "params[0]") + _PAD[single], dtype=torch.float64).expand(n, 4)
    flat = []
    extend = flat.extend
    kinds = [single] * n if single is not None else codes.tolist()
    arity, pad = _ARITY, _PAD
    for i, (kind, p) in enumerate(zip(kinds, params)):
        if not (type(p) is tuple and len(p) == arity[kind]):
            if not (isinstance(p, (tuple, list)) and len(p) == arity[kind]):
                p = _one_tuple(p, kind, f"params[{i}]")
            p = tuple(map(float, p))
        extend(p)
        extend(pad[kind])
    try:
        flat = array.array("d", flat)
    except TypeError:  # numbers that only convert through float()
        flat = array.array("d", map(float, flat))
    return torch.frombuffer(flat, dtype=torch.float64).view(n, 4)


def _column(name, v, n, conv):
    """An int for all (returned as is) or an int64 array with one entry per tensor."""
    if isinstance(v, numbers.Integral):
        return conv(v)
    out = array.array("q", map(conv, v))
    _length(name, len(out), n, "one entry per tensor")
    return np.frombuffer(out, np.int64) if n else np.zeros(0, np.int64)


def _offsets(offsets, n, codes, single):
    """The offsets column (an int or an int64 array). An offset outside int64 (which the
    op cannot carry) gets the single ops' message, naming the first random entry with one;
    fill entries ignore their offset."""
    def bad(i, off):
        if off < 0:
            return ValueError(f"{_OP}: offset of tensors[{i}] must be >= 0, got {off}")
        return ValueError(f"{_OP}: offset + numel of tensors[{i}] overflows int64")

    if isinstance(offsets, numbers.Integral):
        off = int(offsets)
        if _INT64_MIN <= off <= _INT64_MAX:
            return off
        first = 0 if single is not None else int(np.argmax(codes != FILL)) if (codes != FILL).any() else None
        if single == FILL or first is None:
            return 0
        raise bad(first, off)
    try:
        return _column("offsets", offsets, n, int)
    except OverflowError:
        pass
    offs = [int(x) for x in offsets]
    _length("offsets", len(offs), n, "one entry per tensor")
    for i, off in enumerate(offs):
        if not _INT64_MIN <= off <= _INT64_MAX:
            kind = single if single is not None else codes[i]
            if kind != FILL:
                raise bad(i, off)
            offs[i] = 0
    return np.array(offs, np.int64)


def _draw_seeds(n, generator, out=None):
    """n seeds (an int64 tensor, `out` if given), equal to n successive draw_seed(generator) calls."""
    from .ops import draw_seed

    device = generator.device if generator is not None else torch.device("cpu")
    if device.type == "cpu":
        # One draw of n values: torch's CPU generator fills a randint tensor element by
        # element in order, so this equals n scalar draws (tests/test_multi.py checks it).
        if out is None:
            out = torch.empty(n, dtype=torch.int64)
        return torch.randint(_INT64_MIN, _INT64_MAX, (n,), generator=generator, out=out)
    seeds = torch.tensor([draw_seed(generator) for _ in range(n)], dtype=torch.int64)
    return seeds if out is None else out.copy_(seeds)


def multi_init_(tensors, kinds, params, *, seeds=None, streams=0, offsets=0, generator=None):
    """Initialize every tensor of `tensors` in one op call; returns the list of tensors.

    kinds: one kind for all or one per tensor, each a name ("uniform", "normal",
      "trunc_normal", "fill"; also "uniform_", "normal_", "trunc_normal_", "fill_",
      "constant") or its code 0, 1, 2, 3.
    params: one tuple for all or a sequence with one tuple per tensor: (a, b) for uniform,
      (mean, std) for normal, (mean, std, a, b) for trunc_normal (absolute bounds),
      (value,) or a number for fill. A flat sequence of numbers is one tuple.
    seeds: None draws one seed per tensor, in list order, from `generator` (or torch's
      default generator) exactly as the single functions do (none for fill), so the result
      equals calling paramops.normal_ & co. on the tensors one by one after the same
      torch.manual_seed.
      An int or a sequence of ints gives the seeds (taken modulo 2^64).
    streams, offsets: an int for all or one per tensor, as in the single functions.

    Tensor i gets the bits of the single op on it with its seed, stream and offset. All
    arguments are checked before anything is written; a failed call draws no seed. On
    meta tensors the call only checks its arguments.

    One kind, one params tuple and int streams/offsets cost no per-tensor Python work: the
    op's plan and params tensors are built by broadcasting, the seeds drawn in one call.
    """
    from .ops import _i64  # not at import time: paramops.ops needs the ops defined (by _ops, which imports us)

    if isinstance(tensors, torch.Tensor):
        raise TypeError(f"{_OP}: tensors must be a sequence of tensors, got a torch.Tensor (pass [t])")
    tensors = tensors if isinstance(tensors, list) else list(tensors)
    n = len(tensors)
    codes, single = _kinds(kinds, n)
    prm = _params(params, codes, single, n)
    streams = _column("streams", streams, n, _i64)
    offsets = _offsets(offsets, n, codes, single)
    if seeds is not None:
        seeds = _column("seeds", seeds, n, _i64)
    if n == 0:
        return tensors

    # plan, [n, 4]: the transpose of a (4, n) array, so that each column is contiguous
    # (the seeds are drawn straight into theirs); the op accepts any strides.
    cols = np.empty((4, n), np.int64)
    cols[0] = single if single is not None else codes
    cols[1] = 0 if seeds is None else seeds
    cols[2] = streams
    cols[3] = offsets
    plan = torch.from_numpy(cols).t()

    t0 = tensors[0]
    if isinstance(t0, torch.Tensor) and t0.device.type == "meta":
        validate(tensors, plan, prm)
        return tensors  # deferred init: a no-op, as in torch.nn.init

    # The op checks everything before it writes; seeds drawn for a call that fails are
    # given back by restoring the generator, so a failed call draws no seed.
    state = gen = None
    if seeds is None:
        # One seed per random entry, in list order; fill entries draw none (as fill_).
        if single is not None:
            nrand = 0 if single == FILL else n
        else:
            rand = codes != FILL
            nrand = int(np.count_nonzero(rand))
        if nrand:
            gen = generator if generator is not None else torch.default_generator
            state = gen.get_state()
            if nrand == n:
                _draw_seeds(n, generator, out=torch.from_numpy(cols[1]))
            else:  # scattered into the rows of the random entries, in order
                torch.from_numpy(cols[1]).masked_scatter_(torch.from_numpy(rand), _draw_seeds(nrand, generator))
    grad = torch.is_grad_enabled()
    try:
        torch._C._set_grad_enabled(False)
        torch.ops.paramops.multi_init_(tensors, plan, prm)
    except BaseException:
        if state is not None:
            gen.set_state(state)
        bad = next((i for i, t in enumerate(tensors) if not isinstance(t, torch.Tensor)), None)
        if bad is None:
            raise
    else:
        return tensors
    finally:
        torch._C._set_grad_enabled(grad)
    # torch's own message for a list with a non-tensor names no index
    _check_tensor(tensors[bad], bad)
