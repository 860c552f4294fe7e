"""Seeds, streams and offsets as the ops carry them, and generators as handles.

* seed and stream are 64-bit patterns: a Python int in [-2**63, 2**64), carried as the
  signed int64 of the op schemas (values from 2**63 on taken modulo 2**64). Anything else
  is refused by name: a non-integer is a TypeError, an int outside the range a ValueError.
* A generator reaches the ops as its handle (generator_handle): torch.compile cannot trace
  a torch.Generator argument, but it bakes the handle in as a constant (guarded on the
  generator's identity), so a compiled call draws from the generator at every run.
* Without `seed`, an op draws one from the generator, or from torch's default CPU
  generator: the value torch.randint(-2**63, 2**63 - 1, (), dtype=torch.int64,
  generator=g) gives (docs/stream.md §5). The ops draw it themselves, after their checks;
  draw_seed is the same draw for Python code.
"""
import operator
import weakref

import torch

from . import ext as _ext

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
_U64 = 1 << 64


def as_int64(op, name, v):
    """v, an integer in [-2**63, 2**64), as a signed int64; errors name paramops.<op>'s `name`."""
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"paramops.{op}: {name} must be an int, got {type(v).__name__}") from None
    if not I64_MIN <= i < _U64:
        raise ValueError(f"paramops.{op}: {name} must lie in [-2**63, 2**64), got {i}")
    return i - _U64 if i > I64_MAX else i


# ------------------------------------------------------------------ generator handles
_handles = weakref.WeakKeyDictionary()  # generator -> handle (without the extension)
_generators = {}  # handle -> weakref to its generator
_next = [1]


def generator_handle(generator):
    """The int the ops take for torch.Generator `generator`: the same while it lives, never
    reused. (Marked as a constant result for torch.compile, as
    torch._dynamo.assume_constant_result marks it: the handle is baked into the graph.)"""
    if _ext.C is not None:
        return _ext.C.generator_handle(generator)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    h = _handles.get(generator)
    if h is None:
        h = _handles[generator] = _next[0]
        _next[0] += 1
        _generators[h] = weakref.ref(generator)
    return h


generator_handle._dynamo_marked_constant = True  # what assume_constant_result sets (no dynamo import)


def generator_of(op, handle):
    """The generator of a handle (None for None): the Python port of csrc/cpu/seeds.cpp's."""
    if handle is None:
        return None
    g = _generators.get(handle)
    g = g() if g is not None else None
    if g is None:
        raise ValueError(f"paramops.{op}: generator {handle} is not the handle of a live torch.Generator (pass "
                         "generator=g to the paramops functions, or paramops.generator_handle(g) to torch.ops.paramops)")
    return g


def draw_seeds(generator, n):
    """n seeds from `generator` (None: torch's default CPU generator), as n successive
    draws: a list of ints. One CPU draw of n values equals n scalar draws (torch fills a
    CPU randint tensor element by element, in order)."""
    if n <= 0:
        return []
    if generator is None or generator.device.type == "cpu":
        return torch.randint(I64_MIN, I64_MAX, (n,), dtype=torch.int64, generator=generator).tolist()
    return [int(torch.randint(I64_MIN, I64_MAX, (), dtype=torch.int64, generator=generator, device=generator.device))
            for _ in range(n)]


def draw_seed(generator=None):
    """One 64-bit seed from `generator`, or from torch's default CPU generator: the seed an
    op draws when it is given none."""
    if _ext.C is not None:
        return _ext.C.draw_seed(None if generator is None else generator_handle(generator))
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return draw_seeds(generator, 1)[0]
