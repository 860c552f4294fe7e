"""User-facing single-tensor init functions.

Each checks its arguments (before anything is written or any seed is drawn), draws a
64-bit seed from torch's generator unless `seed=` is given, and calls the
torch.ops.paramops op. Values depend only on (seed, stream, element index, parameters,
dtype): see docs/stream.md.
"""
import torch

from . import _checks

_U64 = 1 << 64


def _i64(v):
    """An int taken modulo 2^64, as the signed int64 the op schemas carry."""
    v = int(v) % _U64
    return v - _U64 if v >= 1 << 63 else v


def draw_seed(generator=None):
    """One 64-bit seed from `generator`, or from torch's default CPU generator."""
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(-(1 << 63), (1 << 63) - 1, (), dtype=torch.int64, generator=generator,
                             device=device))


def _run(op, tensor, args, generator, seed, stream, offset):
    if tensor.device.type == "meta":
        return tensor  # deferred init: a no-op, as in torch.nn.init
    s = _i64(draw_seed(generator) if seed is None else seed)
    with torch.no_grad():
        op(tensor, *args, seed=s, stream=_i64(stream), offset=int(offset))
    return tensor


def uniform_(tensor, a=0.0, b=1.0, *, generator=None, seed=None, stream=0, offset=0):
    """Fill `tensor` with U[a, b) draws of paramops stream v1."""
    a, b = float(a), float(b)
    _checks.uniform(tensor, a, b, offset)
    return _run(torch.ops.paramops.uniform_, tensor, (a, b), generator, seed, stream, offset)


def normal_(tensor, mean=0.0, std=1.0, *, generator=None, seed=None, stream=0, offset=0):
    """Fill `tensor` with N(mean, std^2) draws (Box-Muller) of paramops stream v1."""
    mean, std = float(mean), float(std)
    _checks.normal(tensor, mean, std, offset)
    return _run(torch.ops.paramops.normal_, tensor, (mean, std), generator, seed, stream, offset)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, *, generator=None, seed=None, stream=0, offset=0):
    """Fill `tensor` with N(mean, std^2) truncated to [a, b] (absolute bounds, as torch),
    in one pass by inverse CDF. Every output value lies in [a, b] in its own dtype."""
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    _checks.trunc_normal(tensor, mean, std, a, b, offset)
    return _run(torch.ops.paramops.trunc_normal_, tensor, (mean, std, a, b), generator, seed, stream, offset)


def fill_(tensor, value):
    """Fill `tensor` with `value` (rounded to its dtype)."""
    value = float(value)
    _checks.fill(tensor, value)
    if tensor.device.type != "meta":
        with torch.no_grad():
            torch.ops.paramops.fill_(tensor, value)
    return tensor


constant_ = fill_
