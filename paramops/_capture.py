"""Deferred initialization: record init calls, run them later in few multi-tensor launches.

`Capture` is a TorchDispatchMode. While it is active:

- calls of the paramops single-tensor ops (which is what paramops.init and a patched
  torch.nn.init make) and the Tensor methods normal_, uniform_, fill_ and zero_ on float
  tensors are *recorded*, not run. Their seeds are drawn when they are recorded, in call
  order, so the values equal those of running the same calls one by one through paramops;
- any other op that touches the memory of a pending tensor first flushes the pending work
  on that memory (view ops and ops that read only metadata, such as empty_like, do not).
  The readers that never reach the dispatcher (Tensor.numpy, tolist, __array__,
  __dlpack__, untyped_storage, storage: pickling and torch.save read through the last
  two) are wrapped on torch.Tensor while any capture is active, and flush the same way;
- a record that overlaps pending work on the same memory is queued in a later *wave*,
  except that a record on exactly the same view as the latest pending one replaces it (its
  values would be overwritten anyway, e.g. nn.Linear's kaiming init before HF's normal_).

`flush()` runs wave after wave, each as one torch.ops.paramops.multi_init_ call per device.
"""
import itertools
import threading

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._python_dispatch import _get_current_dispatch_mode as _current_mode

from . import _checks
from .multi import _CODES as KIND_OF  # noqa: F401  (kind code by name, "normal_" included; for ops.py)
from .multi import _DIST, FILL, NORMAL, TRUNC, UNIFORM
from .ops import _i64, draw_seed

_aten = torch.ops.aten
# Ops that take a pending tensor but never read or write its values.
_METADATA_ONLY = {
    _aten.empty_like.default, _aten.new_empty.default, _aten.new_empty_strided.default,
    _aten.new_zeros.default, _aten.new_ones.default, _aten.new_full.default,
    _aten.zeros_like.default, _aten.ones_like.default, _aten.full_like.default,
    _aten.sym_size.int, _aten.sym_stride.int, _aten.sym_numel.default, _aten.sym_storage_offset.default,
    _aten.is_same_size.default, _aten._has_compatible_shallow_copy_type.default,
}
# Tensor methods that read memory without going through the dispatcher.
_RAW_READERS = ("numpy", "tolist", "__array__", "__dlpack__", "untyped_storage", "storage")
_untyped_storage = torch._C.TensorBase.untyped_storage  # unwrapped, for our own use

_tls = threading.local()


def recording():
    """The Capture that a paramops op called now would reach first, or None: the innermost
    one, when it is the current dispatch mode and not busy with its own work."""
    stack = getattr(_tls, "stack", None)
    if not stack:
        return None
    cap = stack[-1]
    if cap._busy or cap._running or _current_mode() is not cap:
        return None
    return cap


class Record:
    __slots__ = ("tensor", "kind", "params", "seed", "stream", "offset", "key", "wave", "seq", "_geom")

    def __init__(self, tensor, kind, params, seed, stream, offset):
        self.tensor, self.kind, self.params = tensor, kind, params
        self.seed, self.stream, self.offset = seed, stream, offset
        self._geom = None

    def geom(self):
        """(lo, hi, view): the byte range it writes, and the view's identity; computed once."""
        if self._geom is None:
            t = self.tensor
            lo, hi = _span(t)
            self._geom = (lo, hi, (t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype))
        return self._geom

    def __repr__(self):
        return (f"Record({_DIST.get(self.kind, 'fill')}{self.params}, shape={tuple(self.tensor.shape)}, "
                f"{self.tensor.dtype}, seed={self.seed}, stream={self.stream}, wave={self.wave})")


def storage_key(t):
    """The identity of t's memory: its storage's address (CPU and CUDA allocations share one
    virtual address space, so addresses do not collide across devices)."""
    return _untyped_storage(t).data_ptr()


def _span(t):
    """Byte range [lo, hi) of storage that `t` (numel > 0) can touch."""
    es = t.element_size()
    lo = t.storage_offset() * es
    ext = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return lo, lo + ext * es


def _tensors(args, kwargs):
    for a in itertools.chain(args, kwargs.values()):
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    yield b


_MUTATED = {}


def _mutated_args(func):
    """Positions and names of the arguments `func` writes to (from its schema), cached."""
    m = _MUTATED.get(func)
    if m is None:
        m = tuple((i, a.name) for i, a in enumerate(func._schema.arguments)
                  if a.alias_info is not None and a.alias_info.is_write)
        _MUTATED[func] = m
    return m


def run_records(records):
    """Write `records` (no two overlapping): one multi-tensor op call per device."""
    if not records:
        return
    groups = {}
    for r in records:
        groups.setdefault(r.tensor.device, []).append(r)
    for group in groups.values():
        _run_group(group)


def _run_group(records):
    import array

    # The op's plan (kind, seed, stream, offset) and params (zero-padded to 4) rows, built
    # in arrays and handed over without a copy.
    plan, params = array.array("q"), array.array("d")
    plan_extend, params_extend = plan.extend, params.extend
    pad = {1: (0.0, 0.0, 0.0), 2: (0.0, 0.0), 4: ()}
    for r in records:
        plan_extend((r.kind, r.seed, r.stream, r.offset))
        p = r.params
        params_extend(p)
        params_extend(pad[len(p)])
    n = len(records)
    with torch.no_grad():
        torch.ops.paramops.multi_init_([r.tensor for r in records],
                                       torch.frombuffer(plan, dtype=torch.int64).view(n, 4),
                                       torch.frombuffer(params, dtype=torch.float64).view(n, 4))


def _reader(fn):
    def reader(self, *args, **kwargs):
        for cap in getattr(_tls, "stack", ()):
            if cap.pending and not cap._busy:
                cap._busy = True
                try:
                    cap.flush_touching([self])
                finally:
                    cap._busy = False
        return fn(self, *args, **kwargs)

    reader.__name__, reader.__doc__, reader.__wrapped__ = fn.__name__, fn.__doc__, fn
    return reader


_raw = {"users": 0, "saved": {}}
_raw_lock = threading.Lock()


def _wrap_readers(on):
    """Reference-counted: wrap the raw readers on torch.Tensor while any capture is active."""
    with _raw_lock:
        _raw["users"] += 1 if on else -1
        if on and _raw["users"] == 1:
            for name in _RAW_READERS:
                _raw["saved"][name] = torch.Tensor.__dict__.get(name)  # None: inherited from TensorBase
                setattr(torch.Tensor, name, _reader(getattr(torch.Tensor, name)))
        elif not on and _raw["users"] == 0:
            for name, orig in _raw["saved"].items():
                if orig is None:
                    delattr(torch.Tensor, name)
                else:
                    setattr(torch.Tensor, name, orig)
            _raw["saved"].clear()


class Capture(TorchDispatchMode):
    """Records init calls; see the module docstring.

    resolve: optional callable(records, final) run at flush time, before the records are
      written; the keyed mode uses it to replace seeds and streams by name.
    watch: optional set of storage keys; the keys among them that any op (recorded or
      run) writes are added to `self.written`.
    eager: write every record as soon as it is taken: the same calls, one by one.
    """

    def __init__(self, resolve=None, watch=None, eager=False):
        super().__init__()
        self.eager = eager  # run each record at once (the one-by-one reference for tests/bench)
        self.pending = {}  # storage key -> list of Record
        self.resolve = resolve
        self.watch = watch
        self.written = set()
        self.recorded = 0  # records taken, for tests and stats
        self.flushes = 0   # multi-tensor launches made
        self._seq = 0
        self._running = False
        self._busy = False  # inside paramops' own bookkeeping: the wrapped readers pass through

    # ------------------------------------------------------------------ context
    def __enter__(self):
        super().__enter__()
        _wrap_readers(True)
        _tls.stack = getattr(_tls, "stack", ()) + (self,)
        return self

    def __exit__(self, exc_type, exc, tb):
        _tls.stack = _tls.stack[:-1]
        super().__exit__(exc_type, exc, tb)
        try:
            self.flush(final=True)  # outside the mode: an outer capture, if any, sees the writes
        finally:
            _wrap_readers(False)

    # ------------------------------------------------------------------ recording
    def record(self, tensor, kind, params, seed, stream=0, offset=0):
        """Queue one init of `tensor` (numel > 0, float dtype, validated)."""
        r = Record(tensor, kind, params, _i64(seed), _i64(stream), offset)
        key = storage_key(tensor)
        r.key = key
        r.seq = self._seq
        self._seq += 1
        self.recorded += 1
        if self.watch is not None and key in self.watch:
            self.written.add(key)
        recs = self.pending.get(key)
        if recs is None:
            r.wave = 0
            self.pending[key] = recs = [r]
            if self.eager:
                self.flush([key])
            return r
        lo, hi, view = r.geom()
        overlap = [p for p in recs if p.geom()[0] < hi and lo < p.geom()[1]]
        if not overlap:
            r.wave = 0
        else:
            last = max(overlap, key=lambda p: (p.wave, p.seq))
            if last.geom()[2] == view and all(p.wave < last.wave or p is last for p in overlap):
                r.wave = last.wave  # same view, nothing queued after it on this memory: replace it
                recs.remove(last)
            else:
                r.wave = last.wave + 1
        recs.append(r)
        if self.eager:
            self.flush([key])
        return r

    # ------------------------------------------------------------------ flushing
    def flush(self, keys=None, final=False):
        """Run the pending records (all, or those on the given storage keys), wave by wave.

        final: no more records will come (the context is closing); passed to `resolve`.
        """
        keys = list(self.pending) if keys is None else [k for k in keys if k in self.pending]
        recs = sorted((r for k in keys for r in self.pending[k]), key=lambda r: r.seq)
        if not recs:
            return
        if self.resolve is not None:
            self.resolve(recs, final)  # may raise: then nothing is dropped
        for k in keys:
            del self.pending[k]
        self._running = True
        try:
            for w in sorted({r.wave for r in recs}):
                run_records([r for r in recs if r.wave == w])
                self.flushes += 1
        finally:
            self._running = False

    def flush_touching(self, tensors):
        keys = set()
        for t in tensors:
            if t.device.type == "meta":
                continue
            try:
                k = storage_key(t)
            except (RuntimeError, NotImplementedError):  # no storage (sparse, nested, ...)
                continue
            if k in self.pending:
                keys.add(k)
        if keys:
            self.flush(keys)

    # ------------------------------------------------------------------ dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._running or self._busy:
            return func(*args, **kwargs)
        self._busy = True
        try:
            handler = _HANDLERS.get(func)
            if handler is not None:
                done = handler(self, *args, **kwargs)
                if done is not _NOT_HANDLED:
                    return done
            if self.pending and func not in _METADATA_ONLY and not func.is_view:
                self.flush_touching(list(_tensors(args, kwargs)))
            if self.watch is not None:
                self._note_writes(func, args, kwargs)
        finally:
            self._busy = False
        return func(*args, **kwargs)

    def _note_writes(self, func, args, kwargs):
        for i, name in _mutated_args(func):
            t = args[i] if i < len(args) else kwargs.get(name)
            for x in (t if isinstance(t, (list, tuple)) else (t,)):
                if isinstance(x, torch.Tensor) and x.device.type != "meta":
                    k = storage_key(x)
                    if k in self.watch:
                        self.written.add(k)


_NOT_HANDLED = object()


def capturable(t):
    return (isinstance(t, torch.Tensor) and t.dtype in _checks.FLOAT_DTYPES
            and t.device.type in ("cpu", "cuda") and t.layout == torch.strided
            and torch._debug_has_internal_overlap(t) != 1)


def _try(cap, t, kind, params, seed_fn, stream=0, offset=0, check=None, result=None):
    """Record if paramops can serve this call (validated as the op would) and return
    `result` (what the op returns); else _NOT_HANDLED."""
    if not capturable(t):
        return _NOT_HANDLED
    if check is not None:
        try:
            check()
        except (ValueError, TypeError, RuntimeError):
            return _NOT_HANDLED  # run it eagerly: the op (or torch) raises its own error
    if t.numel() > 0:
        cap.record(t, kind, params, seed_fn(), stream, offset)
    return result


# paramops single-tensor ops (schemas in _ops.py): seeds come with the call.
def _p_uniform(cap, t, a, b, *, seed, stream=0, offset=0):
    return _try(cap, t, UNIFORM, (a, b), lambda: seed, stream, offset,
                lambda: _checks.uniform(t, a, b, offset))


def _p_normal(cap, t, mean, std, *, seed, stream=0, offset=0):
    return _try(cap, t, NORMAL, (mean, std), lambda: seed, stream, offset,
                lambda: _checks.normal(t, mean, std, offset))


def _p_trunc(cap, t, mean, std, a, b, *, seed, stream=0, offset=0):
    return _try(cap, t, TRUNC, (mean, std, a, b), lambda: seed, stream, offset,
                lambda: _checks.trunc_normal(t, mean, std, a, b, offset))


def _p_fill(cap, t, value):
    return _try(cap, t, FILL, (value,), lambda: 0, check=lambda: _checks.fill(t, value))


# torch's Tensor methods: paramops semantics, seed drawn from `generator` (torch's default
# CPU generator when None) at record time.
def _a_normal(cap, t, mean=0.0, std=1.0, *, generator=None):
    mean, std = float(mean), float(std)
    return _try(cap, t, NORMAL, (mean, std), lambda: draw_seed(generator),
                check=lambda: _checks.normal(t, mean, std, 0), result=t)


def _a_uniform(cap, t, a=0.0, b=1.0, *, generator=None):
    a, b = float(a), float(b)
    if a == b and capturable(t):  # torch fills `a`
        return _try(cap, t, FILL, (a,), lambda: 0, check=lambda: _checks.fill(t, a), result=t)
    return _try(cap, t, UNIFORM, (a, b), lambda: draw_seed(generator), check=lambda: _checks.uniform(t, a, b, 0),
                result=t)


def _a_fill(cap, t, value):
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.device.type != "cpu" or value.is_complex():
            return _NOT_HANDLED
        value = value.item()
    if isinstance(value, complex):
        return _NOT_HANDLED
    value = float(value)
    return _try(cap, t, FILL, (value,), lambda: 0, check=lambda: _checks.fill(t, value), result=t)


def _a_zero(cap, t):
    return _try(cap, t, FILL, (0.0,), lambda: 0, result=t)


_HANDLERS = {
    torch.ops.paramops.uniform_.default: _p_uniform,
    torch.ops.paramops.normal_.default: _p_normal,
    torch.ops.paramops.trunc_normal_.default: _p_trunc,
    torch.ops.paramops.fill_.default: _p_fill,
    _aten.normal_.default: _a_normal,
    _aten.uniform_.default: _a_uniform,
    _aten.fill_.Scalar: _a_fill,
    _aten.fill_.Tensor: _a_fill,
    _aten.zero_.default: _a_zero,
}
