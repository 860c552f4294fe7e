"""paramops.init: a drop-in replacement for ``torch.nn.init`` (torch 2.13) on paramops' ops.

    import paramops.init as init            # instead of: import torch.nn.init as init
    init.kaiming_uniform_(w, a=math.sqrt(5))
    with paramops.patched():                 # or: route torch.nn.init itself (see paramops.patching)
        model = MyModel()

Every function has torch's signature, defaults, return value (the tensor passed in),
exceptions, warnings and ``__torch_function__`` protocol. Only the random values differ:
they come from paramops stream v1 (docs/stream.md), so they are the same bits on every
device, thread count and backend.

Seeds. Every random call draws ONE 64-bit seed (``paramops.draw_seed``) from ``generator``
or, when ``generator`` is None, from torch's default CPU generator -- also for CUDA tensors.
``torch.manual_seed(s)`` (which seeds the CPU generator) therefore makes paramops.init
reproducible on every device, and ``init.normal_(w)`` after ``torch.manual_seed(s)`` is
bitwise ``paramops.normal_(w, seed=s0)`` with ``s0`` the seed ``draw_seed()`` returns after
the same ``torch.manual_seed(s)``.

One op per init. Each random init of a tensor is exactly one ``torch.ops.paramops`` call on
the user's tensor: uniform_, xavier_uniform_ and kaiming_uniform_ one ``uniform_`` (with the
computed bound), normal_, xavier_normal_ and kaiming_normal_ one ``normal_``, trunc_normal_
one ``trunc_normal_``; constant_, ones_ and zeros_ one ``fill_``. eye_ and dirac_ are a
``fill_(0)`` of the tensor and a ``fill_(1)`` of a strided view of it (its diagonal, resp. the
centre taps of the per-group diagonals). orthogonal_ draws a paramops normal into a
temporary, takes ``torch.linalg.qr`` of it as torch does (sign correction, transpose when
rows < cols), scales by ``gain`` and copies the result in. sparse_ is one paramops normal of
the tensor, then zeroes ``ceil(sparsity * rows)`` random rows in every column with one
``scatter_``; the rows come from a paramops uniform draw of the same seed on stream 1.

Delegation. Where paramops cannot serve a call that torch accepts, the call goes to torch's
own function (saved when this module was imported, before any patching), so it behaves
exactly like torch, errors included: integer, bool, complex and quantized dtypes; sparse,
nested and other non-strided layouts; devices other than cpu and cuda; tensor subclasses
with their own ``__torch_function__``/``__torch_dispatch__``; tensors with internal overlap;
a generator that is not a ``torch.Generator`` of
the tensor's device type; parameters that are not plain real numbers (e.g. tensors); and
parameter values paramops' checks reject but torch accepts or rejects in its own way (e.g.
``uniform_`` with ``a == b``, which torch fills with ``a``; non-finite values; ``std <= 0``
or bounds too far in the tail for ``trunc_normal_``; values that overflow the float32
compute type). Where torch raises, the same exception
is raised before anything is written and before any seed is drawn (with torch 2.13; an older
torch's trunc_normal_, delegated to, writes before it raises for bounds its dtype cannot hold). Each delegation is counted (``fallback_count()``,
``fallback_counts()``, ``reset_fallback_counts()``) so tests can assert that real models
never fall back. Meta tensors are handed to torch too (a no-op, with torch's checks) and
are not counted.

Known differences from torch besides the values (none of them raise where torch does not):
* sparse_ takes the zeroed rows from ``generator`` (stream 1 of the call's seed); torch
  draws them from the default generator whatever ``generator`` is.
* dirac_ with a non-integer ``groups`` and orthogonal_ with a ``gain`` that cannot multiply a
  tensor raise torch's exception before writing; torch writes zeros resp. Q first.
* An inference tensor written outside inference mode raises torch's RuntimeError before
  anything is written (torch's in-place ops write, then raise).
* trunc_normal_'s values always lie in [a, b] of the tensor's dtype (torch compares against
  a and b rounded to the dtype, which for float16/bfloat16 can lie outside [a, b]).
"""
import collections
import math
import numbers
import sys
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch
import torch.nn.init as _torch_init
from torch import Tensor

from . import ops as _pops
from .core import seeds as _seeds
from .spec import checks as _checks

__all__ = list(_torch_init.__all__)

# The annotations torch uses, so that inspect.signature() compares equal.
_NonlinearityType = getattr(_torch_init, "_NonlinearityType", str)
_FanMode = getattr(_torch_init, "_FanMode", str)
_R = getattr(_torch_init, "_R", None) or TypeVar("_R")
_P = getattr(_torch_init, "_P", None) or ParamSpec("_P")

# Pure helpers: torch's own function objects (nothing to replace, nothing to patch).
calculate_gain = _torch_init.calculate_gain
_calculate_fan_in_and_fan_out = _torch_init._calculate_fan_in_and_fan_out
_calculate_correct_fan = _torch_init._calculate_correct_fan

# The private no-grad helpers torch has, which patch() replaces as well.
_PRIVATE = tuple(n for n in ("_no_grad_uniform_", "_no_grad_normal_", "_no_grad_trunc_normal_",
                             "_no_grad_fill_", "_no_grad_zero_") if hasattr(_torch_init, n))


def _original(name):
    """torch's function `name`, as defined in torch/nn/init.py (not someone's patch of it)."""
    fn = getattr(_torch_init, name)
    if getattr(fn, "__module__", None) == "torch.nn.init":
        return fn
    # Imported while somebody had patched torch.nn.init (e.g. transformers' guard_torch_init_functions):
    # transformers keeps the originals in a dict.
    saved = getattr(sys.modules.get("transformers.initialization"), "TORCH_INIT_FUNCTIONS", {})
    fn = saved.get(name) if isinstance(saved, dict) else None
    if getattr(fn, "__module__", None) == "torch.nn.init":
        return fn
    raise ImportError(f"paramops.init: torch.nn.init.{name} is patched ({getattr(_torch_init, name)!r}); "
                      "import paramops before patching torch.nn.init")


#: torch's original functions, saved at import (before any patching); delegation calls these.
_TORCH = {name: _original(name) for name in (*__all__, *_PRIVATE)}

# ------------------------------------------------------------------ delegation bookkeeping
_fallbacks = collections.Counter()


def fallback_count(name=None):
    """How many calls were delegated to torch.nn.init (all, or those of function `name`)."""
    return sum(_fallbacks.values()) if name is None else _fallbacks[name]


def fallback_counts():
    """{function name: number of calls delegated to torch.nn.init} since the last reset."""
    return dict(_fallbacks)


def reset_fallback_counts():
    _fallbacks.clear()


def _delegate(name, fn, tensor, *args, **kwargs):
    """Call torch's `fn`; counted unless the tensor is a meta tensor (a no-op in torch)."""
    if not (isinstance(tensor, torch.Tensor) and tensor.is_meta):
        _fallbacks[name] += 1
    return fn(tensor, *args, **kwargs)


# ------------------------------------------------------------------ what paramops can serve
# A call goes straight to the paramops op, whose kernel checks everything (dtype, layout,
# device, internal overlap, a neg bit, the parameters' values: csrc/cpu/checks.cpp) before
# it draws a seed or writes; when the op refuses, the call goes to torch instead. What
# stays in Python is what the op cannot see: tensor subclasses whose methods are not
# torch's, and a generator torch would refuse.
_LIMITS = {dt: (float(torch.finfo(dt).min), float(torch.finfo(dt).max)) for dt in _checks.FLOAT_DTYPES}
_DEFAULT_DISPATCH = torch.Tensor.__torch_dispatch__
_PLAIN = frozenset({torch.Tensor, torch.nn.Parameter})
_plain_classes = {}
# torch < 2.13 samples trunc_normal_ by inverse CDF and clamps to [a, b] last, which raises for
# bounds outside the dtype's range; torch 2.13 samples by rejection and calls uniform_(a, b)
# when [a, b] holds little mass. Each has its own conditions for raising (see _trunc_normal).
_TRUNC_CLAMPS = "clamp_" in _TORCH["_no_grad_trunc_normal_"].__code__.co_names
_ops = torch.ops.paramops
_uniform_op, _normal_op, _trunc_op, _fill_op = (_ops.uniform_.default, _ops.normal_.default,
                                                _ops.trunc_normal_.default, _ops.fill_.default)
_TORCH_TAKES = -1  # the generator argument torch must handle


def _plain(tensor):
    """Whether the op may take `tensor`: a torch.Tensor whose methods are torch's own. A subclass
    with its own __torch_dispatch__ would not know the op; one with its own __torch_function__
    gets the call first (torch.overrides) and reaches here with its protocol disabled."""
    cls = type(tensor)
    if cls in _PLAIN:
        return True
    ok = _plain_classes.get(cls)
    if ok is None:
        ok = _plain_classes[cls] = (issubclass(cls, torch.Tensor)
                                    and getattr(cls, "__torch_dispatch__", _DEFAULT_DISPATCH) is _DEFAULT_DISPATCH)
    return ok and not torch.overrides.has_torch_function((tensor,))


def _generator(generator, device_type):
    """The op's handle of `generator` for a tensor on `device_type`, or _TORCH_TAKES when torch
    must take the call (not a torch.Generator, or one of another device type: torch raises
    its own error). A constant for torch.compile, as the handle is (paramops.core.seeds)."""
    if not isinstance(generator, torch.Generator) or generator.device.type != device_type:
        return _TORCH_TAKES
    return _seeds.generator_handle(generator)


_generator._dynamo_marked_constant = True


def _served(op, tensor, *args, generator=None):
    """Run paramops `op` (a torch.ops.paramops overload) on `tensor`: True, or False when it
    refuses the call (then nothing was drawn or written, and torch takes it)."""
    try:
        if generator is None:
            op(tensor, *args)  # (a keyword argument costs the call a microsecond)
        else:
            op(tensor, *args, generator=generator)
    except Exception:
        _refused(tensor)
        return False
    return True


def _rejected(e):
    """An argument check of paramops (raised before any seed is drawn or anything is written)."""
    return isinstance(e, (ValueError, TypeError)) and str(e).startswith("paramops.")


def _accepts(check, *args):
    try:
        check(*args)
    except (ValueError, TypeError) as e:
        if _rejected(e):
            return False
        raise
    return True


def _check_writable(tensor):
    """torch's error for an in-place write to an inference tensor outside inference mode, raised
    before writing (torch's in-place ops write first and raise when they bump the version)."""
    if tensor.is_inference() and not torch.is_inference_mode_enabled():
        _checks.writable(tensor)


def _servable(tensor, generator=None):
    """For the composite inits (eye_, dirac_, orthogonal_, sparse_), which run several ops:
    whether paramops can write `tensor` as torch would (else torch takes the call)."""
    if not _plain(tensor) or tensor.dtype not in _LIMITS or tensor.layout != torch.strided:
        return False
    if tensor.device.type not in ("cpu", "cuda"):
        return False  # meta included: torch's no-op with torch's checks
    if generator is not None and _generator(generator, tensor.device.type) == _TORCH_TAKES:
        return False
    if tensor.is_nested or tensor.is_neg() or tensor.is_conj():
        return False
    return torch._debug_has_internal_overlap(tensor) != 1


def _call(fn, tensor, *args, **kwargs):
    """Run a paramops function on `tensor`; False (nothing drawn, nothing written) if its
    checks refuse the call."""
    _check_writable(tensor)
    try:
        fn(tensor, *args, **kwargs)
    except (ValueError, TypeError) as e:
        if _rejected(e):
            return False
        raise
    return True


def _uniform_bounds_ok(dtype, a, b):
    """torch's uniform_ checks (DistributionTemplates.h) for float dtypes, for a <= b."""
    lo, hi = _LIMITS[dtype]
    return lo <= a <= hi and lo <= b <= hi and b - a <= hi


_EXACT_INT = 1 << 53


def _real(x):
    """`x` as a float if it is a plain real number torch would take as a double, else None
    (torch takes the call: a tensor, a bool, an int a double cannot hold exactly, ...)."""
    t = type(x)
    if t is float:
        return x
    if t is int:
        return float(x) if -_EXACT_INT <= x <= _EXACT_INT else None
    if isinstance(x, (bool, torch.Tensor)) or not isinstance(x, numbers.Real):
        return None
    if isinstance(x, numbers.Integral):
        return float(x) if -_EXACT_INT <= int(x) <= _EXACT_INT else None
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return None


# ------------------------------------------------------------------ the single-op primitives
def _refused(tensor):
    """The op refused the call (nothing was drawn or written): torch takes it, except that an
    inference tensor written outside inference mode raises torch's error now, before anything
    is written (torch writes, then raises). Called in the except clause: re-raises there."""
    if isinstance(tensor, torch.Tensor) and tensor.is_inference() and not torch.is_inference_mode_enabled():
        raise  # noqa: PLE0704  (the op's exception: torch's own message)


def _two(op, torch_name, tensor, a, b, generator, name):
    """uniform_ and normal_ (and the inits that compute their parameters): the paramops op when
    it takes the call, else torch's function. Written out in one function: a tiny tensor's
    init is mostly Python calls."""
    if ((type(tensor) in _PLAIN or _plain(tensor)) and (type(a) is float or _real(a) is not None)
            and (type(b) is float or _real(b) is not None)):
        try:
            if generator is None:
                op(tensor, a, b)  # (a keyword argument costs the call a microsecond)
                return tensor
            h = _generator(generator, tensor.device.type)
            if h != _TORCH_TAKES:
                op(tensor, a, b, generator=h)
                return tensor
        except Exception:
            _refused(tensor)
    return _delegate(name, _TORCH[torch_name], tensor, a, b, generator)


def _uniform(tensor, a, b, generator, name):
    return _two(_uniform_op, "_no_grad_uniform_", tensor, a, b, generator, name)


def _normal(tensor, mean, std, generator, name):
    return _two(_normal_op, "_no_grad_normal_", tensor, mean, std, generator, name)


def _norm_cdf(x):
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def _trunc_normal(tensor, mean, std, a, b, generator, name):
    if _plain(tensor):
        h = None if generator is None else _generator(generator, tensor.device.type)
        p = [_real(v) for v in (mean, std, a, b)]
        if h != _TORCH_TAKES and None not in p and p[1] > 0.0 and p[2] < p[3] and tensor.dtype in _LIMITS:
            fm, fs, fa, fb = p
            if _TRUNC_CLAMPS:  # torch < 2.13: clamp_(min=a, max=b) raises for bounds the dtype cannot hold
                lo, hi = _LIMITS[tensor.dtype]
                torch_ok = lo <= fa and fb <= hi
            else:  # torch 2.13 samples uniform_(a, b) when the mass in [a, b] is small: its checks apply
                mass = _norm_cdf((fb - fm) / fs) - _norm_cdf((fa - fm) / fs)
                torch_ok = mass > 0.3 or _uniform_bounds_ok(tensor.dtype, fa, fb)
            if torch_ok:
                if not (fm < fa - 2 * fs or fm > fb + 2 * fs):
                    if _served(_trunc_op, tensor, fm, fs, fa, fb, generator=h):
                        return tensor
                elif _accepts(_checks.trunc_normal, tensor, fm, fs, fa, fb, 0):
                    # torch warns before it writes (warnings may be errors)
                    warnings.warn(
                        "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                        "The distribution of values may be incorrect.",
                        stacklevel=2,
                    )
                    if _served(_trunc_op, tensor, fm, fs, fa, fb, generator=h):
                        return tensor
    return _delegate(name, _TORCH["_no_grad_trunc_normal_"], tensor, mean, std, a, b, generator=generator)


def _fill(tensor, val, name, torch_fn):
    if (type(tensor) in _PLAIN or _plain(tensor)) and (type(val) is float or _real(val) is not None):
        try:
            _fill_op(tensor, val)
            return tensor
        except Exception:
            _refused(tensor)
    return _delegate(name, torch_fn, tensor, val)


def _zero(tensor, name):
    if type(tensor) in _PLAIN or _plain(tensor):
        try:
            _fill_op(tensor, 0.0)
            return tensor
        except Exception:
            _refused(tensor)
    return _delegate(name, _TORCH["_no_grad_zero_"], tensor)


# ------------------------------------------------------------------ torch.nn.init's private helpers
def _no_grad_uniform_(tensor: Tensor, a: float, b: float, generator: torch.Generator | None = None) -> Tensor:
    return _uniform(tensor, a, b, generator, "_no_grad_uniform_")


def _no_grad_normal_(tensor: Tensor, mean: float, std: float, generator: torch.Generator | None = None) -> Tensor:
    return _normal(tensor, mean, std, generator, "_no_grad_normal_")


def _no_grad_trunc_normal_(tensor: Tensor, mean: float, std: float, a: float, b: float,
                           generator: torch.Generator | None = None) -> Tensor:
    return _trunc_normal(tensor, mean, std, a, b, generator, "_no_grad_trunc_normal_")


def _no_grad_fill_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val, "_no_grad_fill_", _TORCH["_no_grad_fill_"])


def _no_grad_zero_(tensor: Tensor) -> Tensor:
    return _zero(tensor, "_no_grad_zero_")


# ------------------------------------------------------------------ public functions
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    if torch.overrides.has_torch_function_variadic(tensor):
        return torch.overrides.handle_torch_function(
            uniform_, (tensor,), tensor=tensor, a=a, b=b, generator=generator)
    return _two(_uniform_op, "_no_grad_uniform_", tensor, a, b, generator, "uniform_")


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    if torch.overrides.has_torch_function_variadic(tensor):
        return torch.overrides.handle_torch_function(
            normal_, (tensor,), tensor=tensor, mean=mean, std=std, generator=generator)
    return _two(_normal_op, "_no_grad_normal_", tensor, mean, std, generator, "normal_")


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: torch.Generator | None = None) -> Tensor:
    return _trunc_normal(tensor, mean, std, a, b, generator, "trunc_normal_")


def constant_(tensor: Tensor, val: float) -> Tensor:
    if torch.overrides.has_torch_function_variadic(tensor):
        return torch.overrides.handle_torch_function(constant_, (tensor,), tensor=tensor, val=val)
    return _fill(tensor, val, "constant_", _TORCH["_no_grad_fill_"])


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1.0, "ones_", _TORCH["_no_grad_fill_"])


def zeros_(tensor: Tensor) -> Tensor:
    return _zero(tensor, "zeros_")


def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndimension() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    if _servable(tensor):
        with torch.no_grad():
            if _call(_pops.fill_, tensor, 0.0):
                _call(_pops.fill_, tensor.diagonal(), 1.0)
                return tensor
    return _delegate("eye_", _TORCH["eye_"], tensor)


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    dimensions = tensor.ndimension()
    if dimensions not in [3, 4, 5]:
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")

    sizes = tensor.size()

    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")

    if not _servable(tensor):  # meta tensors too: torch's no-op, with its checks
        return _delegate("dirac_", _TORCH["dirac_"], tensor, groups)

    out_chans_per_grp = sizes[0] // groups
    min_dim = min(out_chans_per_grp, sizes[1])

    # torch loops `for g in range(groups): for d in range(min_dim)` and writes
    # tensor[g * out_chans_per_grp + d, d, *centre] = 1: the diagonals of one strided view.
    n_groups = len(range(groups))  # torch's TypeError for a non-integer groups, raised before writing
    ones = None
    if n_groups > 0 and len(range(min_dim)) > 0:
        centre = tuple(s // 2 for s in sizes[2:])
        taps = tensor[(slice(None), slice(None)) + centre]  # [out, in]; torch's IndexError if a dim is empty
        ones = taps.unflatten(0, (n_groups, int(out_chans_per_grp)))[:, :min_dim, :min_dim]
        ones = ones.diagonal(dim1=1, dim2=2)  # [groups, min_dim]
    with torch.no_grad():
        _call(_pops.fill_, tensor, 0.0)
        if ones is not None:
            _call(_pops.fill_, ones, 1.0)
    return tensor


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std  # Calculate uniform bounds from standard deviation

    return _uniform(tensor, -a, a, generator, "xavier_uniform_")


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))

    return _normal(tensor, 0.0, std, generator, "xavier_normal_")


def _kaiming_std(tensor, a, mode, nonlinearity):
    """The kaiming std, as torch computes it; None (after torch's warning) for a zero-element
    tensor, which both kaiming inits leave alone."""
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: _FanMode = "fan_in",
    nonlinearity: _NonlinearityType = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    if torch.overrides.has_torch_function_variadic(tensor):
        return torch.overrides.handle_torch_function(
            kaiming_uniform_, (tensor,), tensor=tensor, a=a, mode=mode, nonlinearity=nonlinearity,
            generator=generator)

    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std  # Calculate uniform bounds from standard deviation
    return _uniform(tensor, -bound, bound, generator, "kaiming_uniform_")


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: _FanMode = "fan_in",
    nonlinearity: _NonlinearityType = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return _normal(tensor, 0, std, generator, "kaiming_normal_")


def orthogonal_(tensor: Tensor, gain: float = 1, generator: torch.Generator | None = None) -> Tensor:
    if tensor.ndimension() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")

    if tensor.numel() == 0:
        # no-op
        return tensor
    if not _servable(tensor, generator):  # meta tensors too: torch's no-op, with its checks
        return _delegate("orthogonal_", _TORCH["orthogonal_"], tensor, gain, generator)
    rows = tensor.size(0)
    cols = tensor.numel() // rows
    flattened = tensor.new_empty((rows, cols))
    _pops.normal_(flattened, 0.0, 1.0, generator=generator)

    if rows < cols:
        flattened.t_()

    # Compute the qr factorization
    q, r = torch.linalg.qr(flattened)
    # Make Q uniform according to https://arxiv.org/pdf/math-ph/0609050.pdf
    d = torch.diag(r, 0)
    ph = d.sign()
    q *= ph

    if rows < cols:
        q.t_()

    with torch.no_grad():
        target = tensor.view_as(q)  # torch's error for tensors that cannot be viewed so, before writing
        _check_writable(tensor)
        q.mul_(gain)  # the same rounding as torch's tensor.mul_(gain) after the copy; raises before writing
        target.copy_(q)
    return tensor


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator: torch.Generator | None = None) -> Tensor:
    if tensor.ndimension() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")

    if tensor.is_meta:  # torch's no-op, with its checks
        return _delegate("sparse_", _TORCH["sparse_"], tensor, sparsity, std, generator)

    rows, cols = tensor.shape
    num_zeros = math.ceil(sparsity * rows)

    fstd = _real(std)
    if (not _servable(tensor, generator) or fstd is None or not fstd >= 0.0
            or not _accepts(_checks.normal, tensor, 0.0, fstd, 0)):
        return _delegate("sparse_", _TORCH["sparse_"], tensor, sparsity, std, generator)
    # torch zeroes torch.randperm(rows)[:num_zeros] in each column: as many rows as that slice holds
    n_zero = len(range(rows)[:num_zeros])
    seed = _pops.draw_seed(generator)
    with torch.no_grad():
        _call(_pops.normal_, tensor, 0.0, fstd, seed=seed)
        if n_zero > 0 and cols > 0:
            keys = torch.empty((rows, cols), dtype=torch.float64, device=tensor.device)
            _pops.uniform_(keys, 0.0, 1.0, seed=seed, stream=1)
            zero_rows = torch.argsort(keys, dim=0, stable=True)[:n_zero]  # a random subset per column
            tensor.scatter_(0, zero_rows, 0.0)
    return tensor


# ------------------------------------------------------------------ deprecated aliases, as torch
def _make_deprecate(meth: Callable[_P, _R]) -> Callable[_P, _R]:
    new_name = meth.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        warnings.warn(
            f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.",
            FutureWarning,
            stacklevel=2,
        )
        return meth(*args, **kwargs)

    deprecated_init.__doc__ = rf"""
    {old_name}(...)

    .. warning::
        This method is now deprecated in favor of :func:`paramops.init.{new_name}`.

    See :func:`~paramops.init.{new_name}` for details."""
    deprecated_init.__name__ = old_name
    deprecated_init.__qualname__ = old_name
    return deprecated_init


uniform = _make_deprecate(uniform_)
normal = _make_deprecate(normal_)
constant = _make_deprecate(constant_)
eye = _make_deprecate(eye_)
dirac = _make_deprecate(dirac_)
xavier_uniform = _make_deprecate(xavier_uniform_)
xavier_normal = _make_deprecate(xavier_normal_)
kaiming_uniform = _make_deprecate(kaiming_uniform_)
kaiming_normal = _make_deprecate(kaiming_normal_)
orthogonal = _make_deprecate(orthogonal_)
sparse = _make_deprecate(sparse_)


def _document():
    note = ("\n    paramops.init: the same contract as torch.nn.init, with values from paramops stream v1 "
            "(one paramops op per random init, seeded from `generator` or torch's default CPU generator); "
            "calls paramops cannot serve go to torch.nn.init. See the paramops.init module docstring.\n")
    for name in __all__:
        fn = globals()[name]
        if name.endswith("_") and fn is not _TORCH.get(name):
            fn.__doc__ = (_TORCH[name].__doc__ or "") + note


_document()
missing = [n for n in (*__all__, *_PRIVATE) if n not in globals()]
if missing:  # a torch with more public functions than 2.13: fail loudly rather than half-replace
    raise ImportError(f"paramops.init does not implement torch.nn.init.{', '.join(missing)}")
del missing
