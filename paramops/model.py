"""Model-level initialization: fused_init, init_module, materialize, keyed streams.

    with paramops.fused_init():            # collect every init call made while building
        model = Model()                    # ... and run them in a few fused launches at exit
    paramops.init_module(model)            # re-run the model's own init logic, fused
    paramops.init_module(model, seed=7)    # keyed: each tensor's stream comes from its name
    model = paramops.materialize(meta_model, device="cpu", seed=7)

Keyed mode (seed= given). A tensor's values depend only on (seed, its fully qualified
name, its init call), not on which other modules exist or in what order they run:
the k-th random init (k = 0, 1, ...) that reaches the parameter or buffer named `name`
(as in model.named_parameters()/named_buffers(); a sub-view counts for the tensor that
contains it) uses seed `seed` and stream `stream_key(name)` for k = 0, else
`stream_key(f"{name}#{k}")`, where stream_key is the first 8 bytes of
BLAKE2b(UTF-8 name, digest_size=8) read as a little-endian signed int64
(docs/keyed.md). Constant inits need no key. Random draws into tensors that are not
parameters or buffers of the model (temporaries) keep the seed drawn from torch's
generator.
"""
import contextlib
import hashlib
import itertools
import sys
import warnings
from collections import defaultdict

import torch
from torch import nn

from . import capture as _capture
from .capture import storage_key
from .core import codes as K
from .core import seeds as _seeds
from .tied import holders


def stream_key(name):
    """The stream of tensor `name` in keyed mode (see the module docstring)."""
    d = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(d, "little", signed=True)


# --------------------------------------------------------------------------- names

def _named_tensors(module):
    """(fqn, tensor) of every parameter and buffer, each tensor once, as named_parameters does."""
    seen = set()
    for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        yield name, t


class _Names:
    """Which named tensor a record writes: an exact view, else the smallest one containing it."""

    def __init__(self):
        self.by_key = defaultdict(list)  # storage key -> [(lo, hi, view, name)]

    def add(self, module):
        for name, t in _named_tensors(module):
            if t.device.type == "meta" or t.numel() == 0:
                continue
            lo, hi = _capture.span(t)
            view = _capture.view_of(t)
            entries = self.by_key[storage_key(t)]
            if not any(e[2] == view for e in entries):
                entries.append((lo, hi, view, name))
        return self

    def name_of(self, t):
        """The name of the tensor that record tensor t writes (None: not a named one)."""
        entries = self.by_key.get(storage_key(t))
        if not entries:
            return None
        rlo, rhi = _capture.span(t)
        rview = _capture.view_of(t)
        for lo, hi, view, name in entries:
            if view == rview:
                return name
        inside = [e for e in entries if e[0] <= rlo and rhi <= e[1]]
        return min(inside, key=lambda e: e[1] - e[0])[3] if inside else None


class _Keyed:
    """Resolver for Capture: replaces (seed, stream) of random records by name."""

    def __init__(self, seed, names=None, tree=None):
        self.seed = _seeds.as_int64("fused_init", "seed", seed)
        self.names = names  # fixed _Names (init_module, materialize), or None: from `tree`
        self.tree = tree
        self.count = defaultdict(int)

    def __call__(self, records, final):
        """records: (tensor, kind) pairs in record order (paramops.capture's resolve)."""
        names = self.names
        if names is None:
            if not final:
                self.tree.check_unnamed(records)
            names = self.tree.names()
        out = []
        for t, kind in records:
            name = None if kind == K.FILL else names.name_of(t)
            if name is None:
                out.append(None)
                continue
            k = self.count[name]
            self.count[name] += 1
            out.append((self.seed, stream_key(name if k == 0 else f"{name}#{k}"), 0))
        return out


class _Tree:
    """Tracks the modules built inside fused_init(seed=...), to name their tensors at the end."""

    def __init__(self):
        self.modules = {}      # id -> module, in first-seen order
        self.children = set()  # ids of modules registered as a child
        self.storages = set()  # storage keys of registered parameters and buffers
        from torch.nn.modules import module as M
        self.handles = [M.register_module_module_registration_hook(self._on_module),
                        M.register_module_parameter_registration_hook(self._on_tensor),
                        M.register_module_buffer_registration_hook(self._on_tensor)]

    def _track(self, m):
        self.modules.setdefault(id(m), m)

    def _on_module(self, module, name, sub):
        self._track(module)
        if sub is not None:
            self._track(sub)
            self.children.add(id(sub))

    def _on_tensor(self, module, name, t):
        self._track(module)
        if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.numel() > 0:
            self.storages.add(storage_key(t))

    def names(self):
        names = _Names()
        for i, m in self.modules.items():
            if i not in self.children:
                names.add(m)
        return names

    def check_unnamed(self, records):
        for t, kind in records:
            if kind != K.FILL and storage_key(t) in self.storages:
                raise RuntimeError(
                    "paramops.fused_init(seed=...): a parameter whose keyed init is pending was read "
                    f"({tuple(t.shape)}, {t.dtype}) before the model was complete, so its name "
                    "(the key of its stream) is not known yet. Build the model first and call "
                    "paramops.init_module(model, seed=...), or use fused_init() without seed.")

    def close(self):
        for h in self.handles:
            h.remove()


# --------------------------------------------------------------------------- user API

def _check_seed(fn, seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"paramops.{fn}: seed must be an int or None, got {type(seed).__name__}")


@contextlib.contextmanager
def fused_init(seed=None):
    """Collect the init calls made in the block and run them in a few fused launches.

    torch.nn.init is patched to paramops.init for the block, and Tensor.normal_/uniform_/
    fill_/zero_ on float tensors are collected too. Anything that touches a tensor whose
    init is pending first runs that init, so construction code sees the values. Values
    equal those of the same calls made one by one through paramops (seeds are drawn from
    torch's generator in call order) unless `seed` is given: then parameters and buffers
    of the modules built in the block are keyed by name (see the module docstring).
    Yields the Capture (its .flush() runs the pending work early).
    """
    from .patching import patched

    _check_seed("fused_init", seed)
    tree = _Tree() if seed is not None else None
    try:
        with patched(), _capture.Capture(resolve=_Keyed(seed, tree=tree) if tree else None) as cap:
            yield cap
    finally:
        if tree is not None:
            tree.close()


def _post_order(module):
    seen, out = set(), []

    def visit(m):
        if id(m) in seen:
            return
        seen.add(id(m))
        for c in m.children():
            visit(c)
        out.append(m)

    visit(module)
    return out


def _hf_models(module):
    """The outermost transformers PreTrainedModels in `module` (if transformers is imported)."""
    tf = sys.modules.get("transformers")
    base = getattr(tf, "PreTrainedModel", None) if tf is not None else None
    if base is None:
        return []
    found = []

    def visit(m):
        if isinstance(m, base):
            found.append(m)
            return
        for c in m.children():
            visit(c)

    visit(module)
    return found


@contextlib.contextmanager
def _first_holders_only(module):
    """The rule for tied tensors (docs/tied.md): a tensor that several modules hold (a tie
    by assignment, `head.weight = emb.weight`) is initialized by the first of them in
    named_modules() order only, which is the module whose init the eager build keeps: the
    tie is made after construction, from the earlier module (the input embedding) to the
    later one (the head). For the block, every later holder sees a meta-device stand-in of
    the same shape and dtype, so its init logic runs (its other tensors are initialized as
    usual) but writes nothing to the shared one. (A submodule shared by attribute is one
    module: its init runs once.)"""
    swaps = []
    for places in holders(module).values():
        for m, kind, name in places[1:]:
            table = getattr(m, kind)
            t = table[name]
            stand_in = torch.empty_like(t, device="meta")
            if isinstance(t, nn.Parameter):
                stand_in = nn.Parameter(stand_in, requires_grad=t.requires_grad)
            swaps.append((table, name, t))
            table[name] = stand_in
    try:
        yield
    finally:
        for table, name, t in swaps:
            table[name] = t


def _reset(module):
    """Run `module`'s own init logic, children first as construction does; a tied tensor
    gets the init of its first holder only (_first_holders_only)."""
    with _first_holders_only(module):
        _reset_all(module)


def _reset_all(module):
    for m in _post_order(module):
        f = getattr(m, "reset_parameters", None)
        if not callable(f):
            f = getattr(m, "_reset_parameters", None)  # nn.MultiheadAttention, nn.Transformer
        if callable(f):
            f()
    for hf in _hf_models(module):
        for m in hf.modules():
            if getattr(m, "_is_hf_initialized", False):
                m._is_hf_initialized = False
        for t in itertools.chain(hf.parameters(), hf.buffers()):
            if getattr(t, "_is_hf_initialized", False):
                t._is_hf_initialized = False
        hf.init_weights()  # _init_weights on every module, then tie_weights


def init_module(module, fn=None, *, seed=None):
    """(Re-)initialize `module` in place, fused.

    fn=None runs the module's own init logic: reset_parameters() (or _reset_parameters())
    of every submodule, children first, then, for transformers models, init_weights().
    With fn, runs module.apply(fn) instead (e.g. a D2L-style init function that calls
    torch.nn.init). seed: keyed, order-independent init (see the module docstring).
    Returns `module`.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"paramops.init_module: module must be a torch.nn.Module, got {type(module).__name__}")
    if fn is not None and not callable(fn):
        raise TypeError(f"paramops.init_module: fn must be callable, got {type(fn).__name__}")
    _check_seed("init_module", seed)
    _init(module, fn, seed)
    return module


def _init(module, fn, seed, watch=None):
    """init_module's work, arguments checked; returns the Capture (its .written: the keys
    of `watch` that were written)."""
    from .patching import patched

    resolve = _Keyed(seed, names=_Names().add(module)) if seed is not None else None
    cap = _capture.Capture(resolve=resolve, watch=watch)
    with patched(), cap:
        if fn is not None:
            module.apply(fn)
        else:
            _reset(module)
    return cap


def materialize(module, device=None, *, seed=None):
    """Allocate the parameters and buffers of a model built on the meta device on `device`
    and initialize them with the model's own init logic through the fused path.

    Shared (tied) parameters stay shared. Tensors that no init logic writes (e.g. a buffer
    computed in __init__ that reset_parameters does not recompute) are reported in a
    warning and filled with NaN (integers: 0), instead of holding uninitialized memory.
    seed: keyed init (see the module docstring). Returns `module`.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"paramops.materialize: module must be a torch.nn.Module, got {type(module).__name__}")
    _check_seed("materialize", seed)
    if device is None:
        device = torch.get_default_device()
        if device.type == "meta":
            device = torch.device("cpu")
    device = torch.device(device)
    if device.type == "meta":
        raise ValueError("paramops.materialize: device must be a real device, got meta")
    places = holders(module)
    module.to_empty(device=device)
    for group in places.values():  # to_empty makes a new tensor per place: share them again
        m0, kind0, name0 = group[0]
        first = getattr(m0, kind0)[name0]
        for m, kind, name in group[1:]:
            getattr(m, kind)[name] = first
    named = {}
    for name, t in _named_tensors(module):
        if t.device.type != "meta" and t.numel() > 0:
            named.setdefault(storage_key(t), []).append((name, t))
    written = _init(module, None, seed, watch=set(named)).written
    missing = [(n, t) for k, ts in named.items() if k not in written for n, t in ts]
    if missing:
        warnings.warn("paramops.materialize: no init logic wrote " + ", ".join(n for n, _ in missing)
                      + "; they are filled with NaN (integers: 0) instead of uninitialized memory",
                      stacklevel=2)
        with torch.no_grad():
            for _, t in missing:
                t.fill_(float("nan") if t.is_floating_point() or t.is_complex() else 0)
    return module
