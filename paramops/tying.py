"""tie_gradients: the gradient of a tensor used several times, summed by one fused op in
float32 instead of pairwise by autograd in the tensor's dtype (docs/tied.md).

    with paramops.tie_gradients(model):          # or h = paramops.tie_gradients(model); h.remove()
        loss = model(x).sum()
        loss.backward()                          # tied weights: .grad = the fused sum

How it works. Each call of a module that holds a tied parameter gets the parameter through
its own autograd node (_Use, a view: no copy), so backward delivers every use's gradient
separately. The node keeps it and hands the engine nothing, except the first use of each
backward, which hands a zero-strided placeholder, so that the parameter's AccumulateGrad node
runs; it runs once per backward, after every use of that backward. A hook on the tensor then
replaces the placeholder with the fused sum of the uses' gradients in their arrival order
(paramops.tied_grad_), and AccumulateGrad accumulates it as usual: .grad across backward
calls, post-accumulate-grad hooks, DDP's reducer hooks and zero_grad see a normal gradient.
With main_grad=True the sum is added to an float32 `param.main_grad` instead, and .grad is
left alone (every use hands None). With low_memory=True each gradient is added to a float32
accumulator as it arrives (same order, same bits) instead of being held until the last; the
default does so for float32/float64 tensors, whose gradients are the accumulator's dtype, and
holds 16-bit ones (see tie_gradients).
"""
import torch
from torch import nn

from .tied import find_tied, holders, tied_grad_

__all__ = ["tie_gradients", "TiedHandle"]

_op = torch.ops.paramops.tied_grad_.default
_engine = torch.autograd.Variable._execution_engine


class _Use(torch.autograd.Function):
    """One use of a tied tensor: an alias whose gradient goes to the tensor's collector."""

    @staticmethod
    def forward(ctx, p, tied, member):
        ctx.tied, ctx.member = tied, member
        return p.view_as(p)

    @staticmethod
    def backward(ctx, g):
        return ctx.tied.arrive(g, ctx.member), None, None


def _acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Tied:
    """The collector of one tied tensor, or of one group of copies (members > 1)."""

    def __init__(self, handle, params):
        self.h, self.params = handle, params
        self.copies = len(params) > 1
        p = params[0]
        self.placeholder = torch.zeros((), dtype=p.dtype, device=p.device).expand(p.shape)
        lm = handle.low_memory
        self.accumulate = lm if lm is not None else p.dtype == _acc_dtype(p.dtype)
        self._reset()

    def _reset(self):
        self.parts = [[] for _ in self.params]  # per member, arrival order
        self.acc = None                          # the float32 (float64) accumulator
        self.n = 0
        self.gave = self.queued = False

    # ---------------------------------------------------------------- backward
    def arrive(self, g, member):
        if not self.h.active:  # removed since this forward: plain autograd
            return g
        if g is None:
            return None
        if not self.queued:
            self.queued = True
            _engine.queue_callback(self._end_of_backward)
        h = self.h
        if self.accumulate:
            g = g.to(self.params[0].device)
            if self.acc is None:
                self.acc = torch.empty(g.shape, dtype=_acc_dtype(g.dtype), device=g.device)
            _op([self.acc], [g], [1], [1], [1.0], [self.n > 0])
        else:
            self.parts[member].append(g)
        self.n += 1
        if self.copies or h.main_grad or self.gave:
            return None
        self.gave = True
        return self.placeholder

    def _sources(self, incoming):
        if self.accumulate:
            src = [self.acc]
            if incoming is not None:  # a use outside a holder's call: plain autograd's gradient
                _op([self.acc], [incoming.to(self.acc.device)], [1], [1], [1.0], [True])
            return src
        dev = self.params[0].device
        src = [g.to(dev) for part in self.parts for g in part]
        if incoming is not None:
            src.append(incoming)
        return src

    def hook(self, incoming):
        """The tensor hook before AccumulateGrad (plain ties): the placeholder -> the sum."""
        if self.n == 0 or not self.h.active:
            return None
        p, h = self.params[0], self.h
        if incoming is self.placeholder or h.main_grad:
            incoming = None  # main_grad: a use outside a holder's call keeps plain autograd's .grad
        src = self._sources(incoming)
        self._reset()
        if h.main_grad:
            _op([_main_grad(p)], src, [len(src)], [1], [h.scale], [True])
            return None
        if self.accumulate and src[0].dtype == p.dtype and h.scale == 1.0:
            return src[0]  # the accumulator holds the result already: round(acc * 1) is acc (NaNs aside)
        out = torch.empty(p.shape, dtype=p.dtype, device=p.device)
        _op([out], src, [len(src)], [1], [h.scale], [False])
        return out

    def _end_of_backward(self):
        if not self.copies or self.n == 0:  # plain ties: the hook ran, or AccumulateGrad did not (as
            self._reset()                    # plain autograd, nothing to add)
            return
        src = self._sources(None)
        self._reset()
        h = self.h
        if h.main_grad:
            dests = [_main_grad(p) for p in self.params]
            add = True
        else:
            add = any(p.grad is not None for p in self.params)
            dests = []
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p) if add else torch.empty_like(p)
                dests.append(p.grad)
        with torch.no_grad():
            tied_grad_(dests[0], src, scale=h.scale, accumulate=add, copies=tuple(dests[1:]))


def _main_grad(p):
    mg = getattr(p, "main_grad", None)
    if mg is None:
        mg = p.main_grad = torch.zeros(p.shape, dtype=_acc_dtype(p.dtype), device=p.device)
    return mg


class TiedHandle:
    """What tie_gradients returns: .remove() restores plain autograd; a context manager too.
    .groups: the tied names, one list per tensor or group of copies."""

    def __init__(self, main_grad, low_memory, scale):
        self.main_grad, self.low_memory, self.scale = main_grad, low_memory, scale
        self.active = True
        self.groups = []
        self._hooks = []

    def remove(self):
        self.active = False
        for hk in self._hooks:
            hk.remove()
        self._hooks.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def tie_gradients(module, *, main_grad=False, low_memory=None, params=(), copies=(), scale=1.0):
    """Sum the gradients of every tied parameter of `module` with paramops.tied_grad_.

    Tied parameters are the ones paramops.find_tied reports (shared by assignment, or by a
    submodule shared by attribute), plus the names in `params` (e.g. one layer called many
    times: ALBERT). `copies`: groups of names of separate tensors kept as copies of one
    weight (e.g. on two devices); the sum of all their uses (member order, then arrival
    order) goes to every member's .grad (main_grad), at the end of backward, so they stay
    bitwise equal. scale multiplies each sum (e.g. 1 / micro-batches).

    low_memory: True adds each gradient into the float32 (float64) accumulator as it
    arrives; False holds all K until the last arrives (up to K times the tensor) and sums
    them in one pass; None (default) accumulates for float32/float64 tensors (their
    gradients are already the accumulator's dtype: autograd's memory pattern and cost, and
    the result needs no final pass) and holds 16-bit ones (one pass reads 2 bytes per source
    instead of adding into 4). Every choice gives the same bits. Returns a TiedHandle.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"paramops.tie_gradients: module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(main_grad, bool):
        raise TypeError(f"paramops.tie_gradients: main_grad must be a bool, got {type(main_grad).__name__}")
    if low_memory is not None and not isinstance(low_memory, bool):
        raise TypeError(f"paramops.tie_gradients: low_memory must be a bool or None, got {type(low_memory).__name__}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"paramops.tie_gradients: scale must be a real number, got {type(scale).__name__}")
    named = dict(module.named_parameters(remove_duplicate=False))

    def param(what, n):
        if not isinstance(n, str):
            raise TypeError(f"paramops.tie_gradients: {what} must hold parameter names, got {type(n).__name__}")
        if n not in named:
            raise ValueError(f"paramops.tie_gradients: {what}: {n!r} is not a parameter of the module")
        return named[n]

    groups = []  # (names, [params])
    taken = {}
    for names in find_tied(module):
        ps = [named[n] for n in names if n in named]
        if ps:
            groups.append((names, [ps[0]]))
            taken[id(ps[0])] = names[0]
    if isinstance(params, str) or not isinstance(params, (list, tuple)):
        raise TypeError(f"paramops.tie_gradients: params must be a list or tuple of names, got "
                        f"{type(params).__name__}")
    for n in params:
        p = param("params", n)
        if id(p) not in taken:
            groups.append(([n], [p]))
            taken[id(p)] = n
    if not isinstance(copies, (list, tuple)):
        raise TypeError(f"paramops.tie_gradients: copies must be a list of groups of names, got "
                        f"{type(copies).__name__}")
    for c in copies:
        if isinstance(c, str) or not isinstance(c, (list, tuple)) or len(c) < 2:
            raise ValueError("paramops.tie_gradients: each group of copies must list at least two parameter names")
        ps = [param("copies", n) for n in c]
        for n, p in zip(c, ps):
            if id(p) in taken:
                raise ValueError(f"paramops.tie_gradients: {n!r} is in a group of copies and tied as "
                                 f"{taken[id(p)]!r}: a tensor can be in one group only")
            if p.shape != ps[0].shape or p.dtype != ps[0].dtype:
                raise ValueError(f"paramops.tie_gradients: the copies {c[0]!r} and {n!r} differ in shape or dtype")
            taken[id(p)] = n
        groups.append((list(c), ps))

    h = TiedHandle(main_grad, low_memory, float(scale))
    places = holders(module)
    per_module = {}  # id(module) -> (module, [(attr, param, tied, member)])
    for names, ps in groups:
        ps = [p for p in ps if p.requires_grad]
        if not ps:
            continue
        tied = _Tied(h, ps)
        h.groups.append(names)
        for member, p in enumerate(ps):
            if not tied.copies:
                h._hooks.append(p.register_hook(tied.hook))
            for m, _, attr in places[id(p)]:
                per_module.setdefault(id(m), (m, []))[1].append((attr, p, tied, member))
    for m, uses in per_module.values():
        h._hooks.append(m.register_forward_pre_hook(_swap_in(h, uses)))
        h._hooks.append(m.register_forward_hook(_swap_out(uses), always_call=True))
    return h


def _swap_in(h, uses):
    def pre(m, args):
        if not h.active or not torch.is_grad_enabled():
            return None
        for attr, p, tied, member in uses:
            m._parameters[attr] = _Use.apply(p, tied, member)
        return None
    return pre


def _swap_out(uses):
    def post(m, args, out):
        for attr, p, _, _ in uses:
            m._parameters[attr] = p
        return None
    return post
