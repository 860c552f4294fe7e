"""Deferred initialization (the fused mode): record init calls, run them later in few
multi-tensor launches.

While a Capture is active on a thread:

- the paramops single ops (which is what paramops.init and a patched torch.nn.init call)
  and the Tensor methods normal_, uniform_, fill_ and zero_ on tensors paramops can write
  are *recorded*, not run. Their seeds are drawn when they are recorded, in call order, so
  the values equal those of running the same calls one by one through paramops;
- any other op that touches the memory of a pending tensor first runs the pending work on
  that memory (view ops and ops that read only metadata, such as empty_like, do not). The
  readers that never reach the dispatcher (Tensor.numpy, tolist, __array__, __dlpack__,
  untyped_storage, storage: pickling and torch.save read through the last two) are wrapped
  on torch.Tensor while any capture is active, and do the same;
- a record that overlaps pending work on the same memory is queued in a later *wave*,
  except that a record on exactly the same view as the latest pending one replaces it (its
  values would be overwritten anyway, e.g. nn.Linear's kaiming init before HF's normal_).

flush() runs wave after wave, each as one torch.ops.paramops.multi_init_ call per device.

With the extension, all of this runs in C++ (csrc/cpu/capture.cpp: the ops' kernels record,
a dispatcher fallback guards the memory), at about a microsecond per op. Without it, the
Python engine below does the same as a TorchDispatchMode.

resolve (the keyed mode): resolve(records, final) sees the records of a flush first, as a
list of (tensor, kind) in record order, and returns one entry per record: None to keep its
seed, stream and offset, or a new (seed, stream, offset). final: no record will follow.
"""
import itertools
import threading

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .backends.python import bump
from .core import codes as K
from .core import ext as _ext
from .core import seeds as _seeds
from .spec import checks as _checks

_untyped_storage = torch._C.TensorBase.untyped_storage  # unwrapped, for our own use
_tls = threading.local()


def storage_key(t):
    """The identity of t's memory: its storage's address (CPU and CUDA allocations share one
    virtual address space, so addresses do not collide across devices)."""
    return _untyped_storage(t).data_ptr()


def span(t):
    """Byte range [lo, hi) of its storage that `t` (numel > 0) can touch."""
    es = t.element_size()
    lo = t.storage_offset() * es
    ext = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return lo, lo + ext * es


def view_of(t):
    """The identity of t's view of its storage."""
    return t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype


# ------------------------------------------------------------------ the raw readers
_RAW_READERS = ("numpy", "tolist", "__array__", "__dlpack__", "untyped_storage", "storage")
_raw = {"users": 0, "saved": {}}
_raw_lock = threading.Lock()


def _reader(fn):
    def reader(self, *args, **kwargs):
        stack = getattr(_tls, "stack", ())
        if stack:
            stack[0]._flush_touching(self)  # every active Capture's pending work on its memory
        return fn(self, *args, **kwargs)

    reader.__name__, reader.__doc__, reader.__wrapped__ = fn.__name__, fn.__doc__, fn
    return reader


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


# ------------------------------------------------------------------ the Capture
class Capture:
    """Records init calls; see the module docstring.

    resolve: optional callable(records, final), run at flush time before the records are
      written; the keyed mode uses it to give seeds and streams by name.
    watch: optional set of storage keys; the keys among them that any op (recorded or
      run) writes are collected in `written`.
    eager: write every record as soon as it is taken: the same calls, one by one (the
      reference of the tests and the bench).
    """

    def __init__(self, resolve=None, watch=None, eager=False):
        self.resolve, self.watch, self.eager = resolve, watch, eager
        self.written = set()
        self._id = self._engine = None
        self._done = (0, 0)

    def __enter__(self):
        _wrap_readers(True)
        try:
            if _ext.C is not None:
                watch = None if self.watch is None else list(self.watch)
                self._id = _ext.C.capture_enter(self.resolve, watch, bool(self.eager))
            else:
                self._engine = PyEngine(self.resolve, self.watch, self.eager).__enter__()
        except BaseException:
            _wrap_readers(False)
            raise
        _tls.stack = getattr(_tls, "stack", ()) + (self,)
        return self

    def __exit__(self, exc_type, exc, tb):
        stack = getattr(_tls, "stack", ())
        if not stack or stack[-1] is not self:
            # Refused before anything changes, so that the right order can still follow.
            raise RuntimeError("paramops: Captures must be exited in the reverse order of entering them, on their thread")
        _tls.stack = stack[:-1]
        try:
            if self._id is not None:
                cid, self._id = self._id, None
                recorded, flushes, written = _ext.C.capture_exit(cid)
            else:
                eng, self._engine = self._engine, None
                eng.__exit__(exc_type, exc, tb)
                recorded, flushes, written = eng.recorded, eng.flushes, eng.written
            self._done = (recorded, flushes)
            self.written = set(written)
        finally:
            _wrap_readers(False)

    def _stats(self):
        if self._id is not None:
            return _ext.C.capture_info(self._id)
        if self._engine is not None:
            return self._engine.recorded, self._engine.flushes, sum(map(len, self._engine.pending.values()))
        return (*self._done, 0)

    @property
    def pending(self):
        """Records not written yet."""
        return self._stats()[2]

    @property
    def recorded(self):
        """Records taken so far."""
        return self._stats()[0]

    @property
    def flushes(self):
        """Multi-tensor launches (waves) made so far."""
        return self._stats()[1]

    def flush(self):
        """Run the pending records now."""
        if self._id is not None:
            _ext.C.capture_flush(self._id)
        elif self._engine is not None:
            self._engine.flush()

    def _flush_touching(self, t):
        if _ext.C is not None:
            _ext.C.capture_flush_touching(t)
        else:
            for cap in getattr(_tls, "stack", ()):
                if cap._engine is not None:
                    cap._engine.flush_touching([t])


# ------------------------------------------------------------------ the Python engine
class Record:
    __slots__ = ("tensor", "kind", "params", "seed", "stream", "offset", "key", "wave", "seq", "_geom")

    def __init__(self, tensor, kind, params, seed, stream, offset):
        self.tensor, self.kind, self.params = tensor, kind, params
        self.seed, self.stream, self.offset = seed, stream, offset
        self._geom = None

    def geom(self):
        """(lo, hi, view): the byte range it writes, and the view's identity; computed once."""
        if self._geom is None:
            self._geom = (*span(self.tensor), view_of(self.tensor))
        return self._geom


def _tensors(args, kwargs):
    for a in itertools.chain(args, kwargs.values()):
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    yield b


_aten = torch.ops.aten
# Ops that take a pending tensor but never read or write its values (as csrc/cpu/capture.cpp).
_METADATA_ONLY = {
    _aten.empty_like.default, _aten.new_empty.default, _aten.new_empty_strided.default,
    _aten.new_zeros.default, _aten.new_ones.default, _aten.new_full.default,
    _aten.zeros_like.default, _aten.ones_like.default, _aten.full_like.default,
    _aten.sym_size.int, _aten.sym_stride.int, _aten.sym_numel.default, _aten.sym_storage_offset.default,
    _aten.is_same_size.default, _aten._has_compatible_shallow_copy_type.default,
}
_MUTATED = {}


def _mutated_args(func):
    """Positions and names of the arguments `func` writes to (from its schema), cached."""
    m = _MUTATED.get(func)
    if m is None:
        m = tuple((i, a.name) for i, a in enumerate(func._schema.arguments)
                  if a.alias_info is not None and a.alias_info.is_write)
        _MUTATED[func] = m
    return m


class PyEngine(TorchDispatchMode):
    """The fused mode without the extension: a TorchDispatchMode with csrc/cpu/capture.cpp's
    semantics (module docstring)."""

    def __init__(self, resolve=None, watch=None, eager=False):
        super().__init__()
        self.eager, self.resolve, self.watch = eager, resolve, watch
        self.pending = {}  # storage key -> list of Record
        self.written = set()
        self.recorded = self.flushes = self._seq = 0
        self._busy = False  # our own bookkeeping runs: ops pass through, nothing records

    def __exit__(self, exc_type, exc, tb):
        super().__exit__(exc_type, exc, tb)
        outer = [c._engine for c in getattr(_tls, "stack", ()) if c._engine is not None]
        for o in outer:  # the outer Captures see these writes: their own records first
            o.flush_keys(list(self.pending))
            if o.watch is not None:
                o.written.update(k for k in self.pending if k in o.watch)
        self.flush(final=True)

    # ------------------------------------------------------------------ recording
    def record(self, tensor, kind, params, seed, stream=0, offset=0):
        """Queue one init of `tensor` (numel > 0, checked, version bumped)."""
        r = Record(tensor, kind, tuple(params) + (0.0,) * (K.PARAMS_W - len(params)), seed, stream,
                   0 if kind == K.FILL else offset)
        key = r.key = storage_key(tensor)
        r.seq = self._seq
        self._seq += 1
        self.recorded += 1
        if self.watch is not None and key in self.watch:
            self.written.add(key)
        recs = self.pending.setdefault(key, [])
        lo, hi, view = r.geom()
        overlap = [p for p in recs if p.geom()[0] < hi and lo < p.geom()[1]]
        r.wave = 0
        if overlap:
            last = max(overlap, key=lambda p: (p.wave, p.seq))
            if last.geom()[2] == view and all(p.wave < last.wave or p is last for p in overlap):
                r.wave = last.wave  # same view, nothing queued after it on this memory: replace it
                recs.remove(last)
            else:
                r.wave = last.wave + 1
        recs.append(r)
        if self.eager:
            self.flush_keys([key])

    # ------------------------------------------------------------------ flushing
    def flush(self, final=False):
        self.flush_keys(list(self.pending), final)

    def flush_keys(self, keys, final=False):
        """Run the pending records on the given storage keys, wave by wave."""
        keys = [k for k in keys if k in self.pending]
        recs = sorted((r for k in keys for r in self.pending[k]), key=lambda r: r.seq)
        if not recs:
            return
        busy, self._busy = self._busy, True
        try:
            if self.resolve is not None:  # may raise: then nothing is dropped
                got = self.resolve([(r.tensor, r.kind) for r in recs], final)
                for r, g in zip(recs, got):
                    if g is not None:
                        r.seed, r.stream, r.offset = g
            for k in keys:
                del self.pending[k]
            for w in sorted({r.wave for r in recs}):
                _run_waves([r for r in recs if r.wave == w])
                self.flushes += 1
        finally:
            self._busy = busy

    def flush_touching(self, tensors):
        if self._busy or not self.pending:
            return
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
            self.flush_keys(keys)

    # ------------------------------------------------------------------ dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._busy:
            return func(*args, **kwargs)
        self._busy = True
        try:
            handler = _HANDLERS.get(func)
            if handler is not None:
                done = handler(self, *args, **kwargs)
                if done is not _NOT_HANDLED:
                    return done
            if self.pending and func not in _METADATA_ONLY and not func.is_view:
                self._busy = False
                self.flush_touching(list(_tensors(args, kwargs)))
                self._busy = True
            if self.watch is not None:
                for i, name in _mutated_args(func):
                    t = args[i] if i < len(args) else kwargs.get(name)
                    for x in (t if isinstance(t, (list, tuple)) else (t,)):
                        if isinstance(x, torch.Tensor) and x.device.type != "meta" and storage_key(x) in self.watch:
                            self.written.add(storage_key(x))
        finally:
            self._busy = False
        return func(*args, **kwargs)


def _run_waves(records):
    """Write `records` (no two overlapping): one multi_init_ call per device."""
    groups = {}
    for r in records:
        groups.setdefault(r.tensor.device, []).append(r)
    with torch.no_grad():
        for group in groups.values():
            plan = torch.tensor([(r.kind, r.seed, r.stream, r.offset) for r in group], dtype=torch.int64)
            params = torch.tensor([r.params for r in group], dtype=torch.float64)
            torch.ops.paramops.multi_init_([r.tensor for r in group], plan, params)


_NOT_HANDLED = object()


def _capturable(t):
    # A mode runs below autograd: what autograd refuses never gets here. (Nor does a view with
    # the negative bit: torch's Negative fallback hands the mode a copy of it, which the mode
    # cannot tell from a fresh tensor. Writes to such views are not deferred correctly by this
    # engine; the C++ one handles them. docs/architecture.md.)
    return (isinstance(t, torch.Tensor) and t.dtype in _checks.FLOAT_DTYPES and t.device.type in ("cpu", "cuda")
            and t.layout == torch.strided and not t.is_neg()
            and not t.is_inference()  # a flush outside inference mode could not write it: run at once
            and torch._debug_has_internal_overlap(t) != 1)


def _take(cap, t, kind, params, seed_fn, stream=0, offset=0, bump_version=False, result=None):
    """Record if paramops can serve this call (checked as the op would check it) and return
    `result` (what the op returns); else _NOT_HANDLED (the op runs, and raises its error)."""
    if not _capturable(t):
        return _NOT_HANDLED
    try:
        _checks.kind_params("capture", kind, t.dtype, params)
        if kind != K.FILL:
            _checks.offset("capture", offset, t.numel())
        seed = seed_fn()
    except (ValueError, TypeError, RuntimeError):
        return _NOT_HANDLED
    if bump_version:
        bump(t)
    if t.numel() > 0:
        cap.record(t, kind, params, seed, stream, offset)
    return result


# paramops single ops (their kernels are not reached: the mode takes the call first, and
# bumps the version counter as the kernel would).
def _p_random(kind):
    def handler(cap, t, *params, seed=None, generator=None, stream=0, offset=0):
        op = K.KIND_NAME[kind] + "_"
        return _take(cap, t, kind, params,
                     lambda: _seeds.draw_seeds(_seeds.generator_of(op, generator), 1)[0] if seed is None else seed,
                     stream, offset, bump_version=True)
    return handler


def _p_fill(cap, t, value):
    return _take(cap, t, K.FILL, (value,), lambda: 0, bump_version=True)


# torch's Tensor methods (below autograd: their version is bumped already): paramops
# semantics, seed drawn from `generator` (torch's default CPU generator when None).
def _a_normal(cap, t, mean=0.0, std=1.0, *, generator=None):
    return _take(cap, t, K.NORMAL, (float(mean), float(std)), lambda: _seeds.draw_seeds(generator, 1)[0], result=t)


def _a_uniform(cap, t, a=0.0, b=1.0, *, generator=None):
    a, b = float(a), float(b)
    if a == b:  # torch fills `a`
        return _take(cap, t, K.FILL, (a,), lambda: 0, result=t)
    return _take(cap, t, K.UNIFORM, (a, b), lambda: _seeds.draw_seeds(generator, 1)[0], result=t)


def _a_fill(cap, t, value):
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.device.type != "cpu" or value.is_complex():
            return _NOT_HANDLED
        value = value.item()
    if isinstance(value, complex):
        return _NOT_HANDLED
    return _take(cap, t, K.FILL, (float(value),), lambda: 0, result=t)


def _a_zero(cap, t):
    return _take(cap, t, K.FILL, (0.0,), lambda: 0, result=t)


_ops = torch.ops.paramops
_HANDLERS = {
    _ops.uniform_.default: _p_random(K.UNIFORM),
    _ops.normal_.default: _p_random(K.NORMAL),
    _ops.trunc_normal_.default: _p_random(K.TRUNC),
    _ops.fill_.default: _p_fill,
    _aten.normal_.default: _a_normal,
    _aten.uniform_.default: _a_uniform,
    _aten.fill_.Scalar: _a_fill,
    _aten.fill_.Tensor: _a_fill,
    _aten.zero_.default: _a_zero,
}
