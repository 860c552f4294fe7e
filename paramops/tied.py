"""Tied parameters: find them, and sum their gradients exactly (docs/tied.md).

    paramops.find_tied(model)        # [["head.weight", "emb.weight"], ...]
    paramops.tied_grad_(w.grad, [g0, g1, g2], accumulate=True)
    paramops.tied_grads_([(d0, [a, b]), paramops.TiedGroup(d1, [c], scale=0.5)])

tied_grad_ and tied_grads_ are thin layers over torch.ops.paramops.tied_grad_: many groups
in one op call per device (one parallel pass on the CPU), the sources of a group summed in
list order in float32 (float64 when the sources or the destination are float64), scaled,
added to the destination in add mode and rounded once to the destination's dtype; every
backend gives the same bits (paramops/spec/tied.py is the spec).
"""
import numbers
from typing import NamedTuple

import torch

from . import registration  # noqa: F401  (defines torch.ops.paramops.*)

__all__ = ["TiedGroup", "find_tied", "tied_grad_", "tied_grads_"]
_TABLES = ("_parameters", "_buffers")

_op = torch.ops.paramops.tied_grad_.default


class TiedGroup(NamedTuple):
    """One group of tied_grads_: `dest` gets the sum of `sources` (times `scale`; added to
    dest's values when `accumulate`), and so does every tensor in `copies`."""
    dest: torch.Tensor
    sources: list
    scale: float = 1.0
    accumulate: bool = False
    copies: tuple = ()


def _group(i, g):
    if isinstance(g, TiedGroup):
        return g
    if not isinstance(g, (tuple, list)) or not 2 <= len(g) <= 5:
        raise TypeError(f"paramops.tied_grads_: groups[{i}] must be a TiedGroup or a tuple (dest, sources"
                        f"[, scale, accumulate, copies]), got {type(g).__name__}")
    return TiedGroup(*g)


def _check(g, where):
    op = "paramops.tied_grad" + ("s_" if where else "_")
    at = f" of groups[{where[0]}]" if where else ""
    if not isinstance(g.dest, torch.Tensor):
        raise TypeError(f"{op}: dest{at} must be a torch.Tensor, got {type(g.dest).__name__}")
    if not isinstance(g.sources, (list, tuple)) or not g.sources:
        raise TypeError(f"{op}: sources{at} must be a non-empty list or tuple of tensors, got "
                        f"{type(g.sources).__name__}" + (" of length 0" if isinstance(g.sources, (list, tuple))
                                                          else ""))
    for k, t in enumerate(g.sources):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: sources[{k}]{at} must be a torch.Tensor, got {type(t).__name__}")
    if isinstance(g.scale, bool) or not isinstance(g.scale, numbers.Real):
        raise TypeError(f"{op}: scale{at} must be a real number, got {type(g.scale).__name__}")
    if not isinstance(g.accumulate, bool):
        raise TypeError(f"{op}: accumulate{at} must be a bool, got {type(g.accumulate).__name__}")
    copies = (g.copies,) if isinstance(g.copies, torch.Tensor) else g.copies
    if not isinstance(copies, (list, tuple)):
        raise TypeError(f"{op}: copies{at} must be a tensor or a list or tuple of tensors, got "
                        f"{type(g.copies).__name__}")
    for k, t in enumerate(copies):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: copies[{k}]{at} must be a torch.Tensor, got {type(t).__name__}")
    return tuple(copies)


def tied_grads_(groups):
    """Sum the sources of every group into its destination (TiedGroup), one op call per
    device. Copies on another device than their group's dest get its result by copy_, which
    moves the bits unchanged. Bad input raises before anything is written."""
    if not isinstance(groups, (list, tuple)):
        raise TypeError(f"paramops.tied_grads_: groups must be a list or tuple, got {type(groups).__name__}")
    gs = [_group(i, g) for i, g in enumerate(groups)]
    _run(gs, [_check(g, (i,)) for i, g in enumerate(gs)])


def tied_grad_(dest, sources, *, scale=1.0, accumulate=False, copies=()):
    """dest = round(sum(sources) * scale [+ dest]) for one group (see tied_grads_); returns dest."""
    g = TiedGroup(dest, sources, scale, accumulate, copies)
    _run([g], [_check(g, ())])
    return dest


def _run(gs, copies):
    calls = {}  # device -> (out, grads, counts, copies, scales, accumulate)
    remote = []
    for g, cp in zip(gs, copies):
        dev = g.dest.device
        here = [c for c in cp if c.device == dev]
        remote.extend((g.dest, c) for c in cp if c.device != dev)
        c = calls.setdefault(dev, ([], [], [], [], [], []))
        c[0].append(g.dest)
        c[0].extend(here)
        c[1].extend(g.sources)
        c[2].append(len(g.sources))
        c[3].append(1 + len(here))
        c[4].append(float(g.scale))
        c[5].append(g.accumulate)
    for dest, c in remote:  # checked before any call writes
        if c.shape != dest.shape or c.dtype != dest.dtype or c.layout != torch.strided:
            raise ValueError(f"paramops.tied_grad_: a copy on {c.device} ({list(c.shape)}, {c.dtype}) must have "
                             f"its dest's shape and dtype ({list(dest.shape)}, {dest.dtype})")
    for call in calls.values():
        _op(*call)
    with torch.no_grad():
        for dest, c in remote:
            c.copy_(dest)


def find_tied(module):
    """The groups of fully qualified names (parameters and buffers) that reach one tensor:
    tensors shared by assignment and whole submodules shared by attribute. Groups come in
    the order named_modules() first reaches them; each is sorted."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"paramops.find_tied: module must be a torch.nn.Module, got {type(module).__name__}")
    names = {}  # id -> [names], in first-reached order
    for prefix, m in module.named_modules(remove_duplicate=False):
        for kind in _TABLES:
            for name, t in getattr(m, kind).items():
                if t is not None:
                    names.setdefault(id(t), []).append(f"{prefix}.{name}" if prefix else name)
    return [sorted(set(ns)) for ns in names.values() if len(set(ns)) > 1]


def holders(module):
    """id(tensor) -> [(module, "_parameters" or "_buffers", name)]: every place that holds each
    parameter and buffer, in modules() order (a submodule shared by attribute is one module)."""
    out = {}
    for m in module.modules():
        for kind in _TABLES:
            for name, t in getattr(m, kind).items():
                if t is not None:
                    out.setdefault(id(t), []).append((m, kind, name))
    return out
