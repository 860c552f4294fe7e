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

_ALL_IDS = frozenset(_ORIGINAL_IDS) | frozenset(_REPLACEMENT_IDS)
# module name -> (id(module), len(module.__dict__), the keys that held an init function when
# it was scanned). A module is scanned again only when it is a new object or its namespace
# changed size (a new binding), so patched() costs well under 1 ms instead of ~15 ms (1,100
# modules). Rebinding an existing attribute of a scanned module to an init function at run
# time is the one case not found.
_scanned = {}

_lock = threading.RLock()
_depth = 0
_records = []  # (container, key, is_dict, old, new) of every binding patch() changed


def _swap(ids, old, new):
    """Rebind every module attribute (and transformers' dict entry) that is old[name] to new[name]."""
    changed = []

    def visit(container, is_dict, keys=None):
        items = container if is_dict else getattr(container, "__dict__", None)
        if not isinstance(items, dict):
            return
        for key in (list(items) if keys is None else keys):
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

    for mod_name, module in list(sys.modules.items()):
        if module is None or mod_name in _SKIP_MODULES:
            continue
        try:
            visit(module, False, _keys_of(mod_name, module))
        except Exception:  # an exotic object in sys.modules
            continue
    hf = sys.modules.get(_TRANSFORMERS)
    table = getattr(hf, "__dict__", {}).get("TORCH_INIT_FUNCTIONS") if hf is not None else None
    if isinstance(table, dict):
        visit(table, True)
    return changed


def _keys_of(mod_name, module):
    """The attribute names of `module` that may hold an init function (see _scanned)."""
    items = getattr(module, "__dict__", None)
    if not isinstance(items, dict):
        return ()
    entry = _scanned.get(mod_name)
    if entry is not None and entry[0] == id(module) and entry[1] == len(items):
        return entry[2]
    keys = tuple(k for k, v in list(items.items()) if id(v) in _ALL_IDS)
    _scanned[mod_name] = (id(module), len(items), keys)
    return keys


def _restore():
    # Bindings patch() changed (also in modules since dropped from sys.modules), unless someone
    # rebound them since; then every copy captured while patched, wherever the scan finds it.
    for container, key, is_dict, old, new in reversed(_records):
        current = container.get(key) if is_dict else getattr(container, key, None)
        if current is new:
            if is_dict:
                container[key] = old
            else:
                setattr(container, key, old)
    _records.clear()
    _swap(_REPLACEMENT_IDS, REPLACEMENTS, ORIGINALS)


def patch():
    """Make torch.nn.init (and the bindings of its functions elsewhere) use paramops.init.

    Reference-counted: nested calls only count; the first one patches."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
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
