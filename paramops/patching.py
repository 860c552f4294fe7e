"""patch(), unpatch(), patched(): route torch.nn.init through paramops.init.

    with paramops.patched():
        model = MyModel()            # nn.Linear, nn.Conv*, transformers models, ... init through paramops

patch() replaces, in every module in ``sys.modules``, each module attribute that is (by
identity) one of torch's original ``torch.nn.init`` functions -- the public ones of
``torch.nn.init.__all__`` and its ``_no_grad_*`` helpers -- with paramops.init's function of
the same name. That covers ``torch.nn.init`` itself and the names modules bound at import
(``torch.nn.modules.activation`` does ``from torch.nn.init import xavier_uniform_``), and
also the dict ``transformers.initialization.TORCH_INIT_FUNCTIONS`` through which
transformers 5 calls torch's init. References held elsewhere (lists, class attributes,
default arguments, closures) are not found and keep calling torch.

The installed functions are private copies of paramops.init's functions (same code, same
globals, so the same behaviour and signature): ``torch.nn.init.normal_`` is not the object
``paramops.init.normal_`` while patched. That lets unpatch() tell the bindings it must undo
-- including ones captured while patched, e.g. by a module first imported inside a
``patched()`` block -- from deliberate ``from paramops.init import normal_`` imports, which it
leaves alone.

Cost. A scan of every module (~3,000 with transformers imported) takes milliseconds, so
it runs only when something may have changed. The modules are scanned once and their
bindings kept; later calls scan only the modules added to ``sys.modules`` since (its
length and last entry tell), and a reference count tells when a binding may have appeared
elsewhere: torch's function gained a reference that no known binding explains (patch()),
or a copy is still referenced after its bindings were restored (unpatch()). Only then are
all modules scanned again. So a patched() block costs tens of microseconds.

patch() is reference-counted: only the first call patches, and only the unpatch() that
balances it restores (``unpatch(force=True)`` restores at once); ``patched()`` nests and
restores on exceptions. Patching is process-wide (all threads).
"""
import contextlib
import sys
import threading
import types

from . import init as _init

#: the names patched: torch.nn.init's public functions and its private no-grad helpers
NAMES = tuple(dict.fromkeys((*_init.__all__, *_init._PRIVATE)))
NAMES = tuple(n for n in NAMES if _init._TORCH[n] is not getattr(_init, n))  # calculate_gain is torch's own

_TRANSFORMERS = "transformers.initialization"
_SKIP_MODULES = frozenset({__name__, _init.__name__})


def _copy(fn):
    """A distinct function object with fn's code, globals, defaults, closure and metadata."""
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = dict(fn.__kwdefaults__) if fn.__kwdefaults__ else None
    new.__dict__.update(fn.__dict__)
    new.__qualname__ = fn.__qualname__
    new.__module__ = fn.__module__
    new.__doc__ = fn.__doc__
    new.__annotations__ = dict(fn.__annotations__)
    new.__paramops_patch__ = fn  # the paramops.init function it stands for
    return new


#: torch's functions (saved by paramops.init at import) and what patch() puts in their place
ORIGINALS = {n: _init._TORCH[n] for n in NAMES}
REPLACEMENTS = {n: _copy(getattr(_init, n)) for n in NAMES}
_ORIGINAL_IDS = {id(f): n for n, f in ORIGINALS.items()}
_REPLACEMENT_IDS = {id(f): n for n, f in REPLACEMENTS.items()}
_ALL_IDS = {**_ORIGINAL_IDS, **_REPLACEMENT_IDS}
# The functions, as fixed tuples: reference counts are always read by iterating these, so
# that the counting itself adds the same references every time.
_ORIG_FNS = tuple(ORIGINALS.values())
_COPY_FNS = tuple(REPLACEMENTS.values())
_ALL_FNS = _ORIG_FNS + _COPY_FNS

_lock = threading.RLock()
_depth = 0
_records = []  # (container, key, is_dict, old, new) of every binding patch() changed

# ------------------------------------------------------------------ what the scans found
_known = {}    # module name -> the module object scanned under that name
_holders = {}  # module name -> (module, every key that held an init function at some scan)
_fp = [None]   # sys.modules' (length, last name, last module) at the last scan
_refs = {}     # id(function) -> its reference count when the bindings were last all known


def _holder_keys(module):
    items = getattr(module, "__dict__", None)
    if not isinstance(items, dict):
        return ()
    return tuple(k for k, v in list(items.items()) if id(v) in _ALL_IDS)


def _scan(name, module, count=False):
    """Record which keys of `module` hold an init function. count: the module is new since the
    reference counts were taken, so its bindings are references they do not include."""
    if module is None or name in _SKIP_MODULES:
        return
    _known[name] = module
    try:
        keys = _holder_keys(module)
    except Exception:  # an exotic object in sys.modules
        keys = ()
    if keys and count:
        for k in keys:
            if id(module.__dict__.get(k)) in _refs:
                _refs[id(module.__dict__.get(k))] += 1
    # A key stays known once it held an init function: a wrapper may hold its place for a
    # while (transformers' guard_torch_init_functions), and the function come back to it.
    held = _holders.get(name)
    if held is not None and held[0] is module:
        keys = tuple(dict.fromkeys((*held[1], *keys)))
    if keys:
        _holders[name] = (module, keys)
    elif held is not None:
        del _holders[name]  # another module now has this name


def _scan_new():
    """Scan the modules added to sys.modules since the last scan: they are at its end (a dict
    keeps insertion order), after every entry that was there then. False when a name now
    holds another module than the one scanned (then only a full scan knows the bindings)."""
    mods = sys.modules
    if not mods:
        return True
    last = next(reversed(mods))
    fp = (len(mods), last, id(mods.get(last)))
    if fp == _fp[0]:
        return True
    added = len(mods) - (_fp[0][0] if _fp[0] else 0)
    seen, ok = 0, True
    for name in reversed(list(mods)):
        m = mods.get(name)
        known = _known.get(name)
        if seen >= added and known is m:
            break
        seen += 1
        if known is not m:
            ok = ok and known is None
            _scan(name, m, count=True)
    _fp[0] = fp
    return ok


def _scan_all():
    _known.clear()
    for name, module in list(sys.modules.items()):
        _scan(name, module)
    mods = sys.modules
    last = next(reversed(mods)) if mods else None
    _fp[0] = (len(mods), last, id(mods.get(last)))


def _refs_now(fns):
    return {id(f): sys.getrefcount(f) for f in fns}


def _bound(fns):
    """Whether every reference to `fns` that a binding may hold is one the scans know:
    their reference counts are as they were when last all known."""
    return all(sys.getrefcount(f) == _refs.get(id(f)) for f in fns)


def _swap(ids, old, new):
    """Rebind every known module attribute (and transformers' dict entry) that is old[name]
    to new[name]; the changes made."""
    changed = []

    def visit(container, is_dict, keys):
        items = container if is_dict else getattr(container, "__dict__", None)
        if not isinstance(items, dict):
            return
        for key in keys:
            value = items.get(key)
            name = ids.get(id(value))
            if name is None or value is not old[name]:
                continue
            try:
                if is_dict:
                    container[key] = new[name]
                else:
                    setattr(container, key, new[name])
            except (AttributeError, TypeError):
                continue  # a read-only attribute: leave it
            changed.append((container, key, is_dict, value, new[name]))

    for module, keys in list(_holders.values()):
        visit(module, False, keys)
    hf = sys.modules.get(_TRANSFORMERS)
    table = getattr(hf, "__dict__", {}).get("TORCH_INIT_FUNCTIONS") if hf is not None else None
    if isinstance(table, dict):
        visit(table, True, list(table))
    return changed


def _undo_records():
    """Restore the bindings patch() changed (also in modules since dropped from sys.modules),
    unless someone rebound them since."""
    for container, key, is_dict, old, new in reversed(_records):
        current = container.get(key) if is_dict else getattr(container, key, None)
        if current is new:
            if is_dict:
                container[key] = old
            else:
                setattr(container, key, old)
    _records.clear()


def _restore():
    # (No local variable may hold a function when the reference counts are compared.)
    _undo_records()
    ok = _scan_new()  # then every copy captured while patched that the scans find
    _swap(_REPLACEMENT_IDS, REPLACEMENTS, ORIGINALS)
    if not (ok and _bound(_COPY_FNS)):  # a copy is referenced where no known binding explains it
        _scan_all()
        _swap(_REPLACEMENT_IDS, REPLACEMENTS, ORIGINALS)


def patch():
    """Make torch.nn.init (and the bindings of its functions elsewhere) use paramops.init.

    Reference-counted: nested calls only count; the first one patches."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            if not (_scan_new() and _bound(_ORIG_FNS)):  # a reference no known binding explains
                _scan_all()
                _refs.update(_refs_now(_ORIG_FNS))
            _records.extend(_swap(_ORIGINAL_IDS, ORIGINALS, REPLACEMENTS))


def unpatch(force=False):
    """Undo one patch() (all of them with force=True); the last one restores torch's functions.

    Returns True if torch's functions are in place afterwards. Without a pending patch(), a no-op."""
    global _depth
    with _lock:
        if _depth == 0:
            return True
        _depth = 0 if force else _depth - 1
        if _depth == 0:
            _restore()
            _refs.update(_refs_now(_ALL_FNS))  # every binding is known now (and no local holds one)
        return _depth == 0


def is_patched():
    """True between a patch() and the unpatch() that balances it."""
    return _depth > 0


@contextlib.contextmanager
def patched():
    """patch() for the duration of a with-block; restores on exit, also on exceptions."""
    patch()
    try:
        yield
    finally:
        unpatch()


_scan_all()
_refs.update(_refs_now(_ALL_FNS))
