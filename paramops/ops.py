"""User-facing single-tensor init functions.

Each checks its arguments (before anything is written or any seed is drawn), draws a
64-bit seed from torch's generator unless `seed=` is given, and calls the
torch.ops.paramops op. Values depend only on (seed, stream, element index, parameters,
dtype): see docs/stream.md.
"""
import threading

import torch

from . import _checks

_U64 = 1 << 64


def _i64(v):
    """An int taken modulo 2^64, as the signed int64 the op schemas carry."""
    v = int(v) % _U64
    return v - _U64 if v >= 1 << 63 else v


_SEED_LO, _SEED_HI = -(1 << 63), (1 << 63) - 1
_PYTHON_KEYS = (torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
                | torch._C.DispatchKeySet(torch._C.DispatchKey.PythonTLSSnapshot))
_seed_buf = threading.local()


def draw_seed(generator=None):
    """One 64-bit seed from `generator`, or from torch's default CPU generator.

    The value is torch.randint(-2**63, 2**63 - 1, (), dtype=torch.int64, generator=...):
    on the CPU it is drawn into a reused 0-d tensor (the same kernel, half the cost)."""
    if generator is not None and generator.device.type != "cpu":
        return int(torch.randint(_SEED_LO, _SEED_HI, (), dtype=torch.int64, generator=generator,
                                 device=generator.device))
    buf = getattr(_seed_buf, "t", None)
    if buf is None:
        buf = _seed_buf.t = torch.empty((), dtype=torch.int64, device="cpu")
    return buf.random_(_SEED_LO, _SEED_HI, generator=generator).item()


def _record(cap, tensor, kind, args, seed, stream=0, offset=0):
    """Fused mode: queue the call in `cap` instead of running it, and bump the autograd
    version counter as torch's in-place ops do (the kernels bump it when they run)."""
    if tensor.numel() > 0:
        cap.record(tensor, kind, args, seed, stream, offset)
    if not tensor.is_inference():
        torch.autograd.graph.increment_version(tensor)
    return tensor


def _run(op, tensor, args, generator, seed, stream, offset):
    if tensor.device.type == "meta":
        return tensor  # deferred init: a no-op, as in torch.nn.init
    cap = _capture.recording()
    if cap is not None:
        # fused mode: the same record the op call would make through the dispatcher, minus
        # the dispatch round trip (the arguments are checked already: a float, strided, cpu or
        # cuda tensor without internal overlap, which is what Capture records)
        with torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEYS):  # the seed draw skips the mode
            s = _i64(draw_seed(generator) if seed is None else seed)
        return _record(cap, tensor, _capture.KIND_OF[op.__name__], args, s, _i64(stream), int(offset))
    s = draw_seed(generator) if seed is None else _i64(seed)
    grad = torch.is_grad_enabled()  # cheaper than `with torch.no_grad()`, which matters for tiny tensors
    torch._C._set_grad_enabled(False)
    try:
        op(tensor, *args, seed=s, stream=_i64(stream) if stream else 0, offset=int(offset))
    finally:
        torch._C._set_grad_enabled(grad)
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
        cap = _capture.recording()
        if cap is not None:
            return _record(cap, tensor, _capture.FILL, (value,), 0)
        with torch.no_grad():
            torch.ops.paramops.fill_(tensor, value)
    return tensor


constant_ = fill_

from . import _capture  # noqa: E402  (imports this module: after the definitions above)
