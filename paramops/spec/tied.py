"""The tied-gradient sum in torch ops: the spec of torch.ops.paramops.tied_grad_ (docs/tied.md),
which every backend matches bit for bit (csrc/paramops/tied.h holds the same numbers).

For one group with sources g_0..g_{K-1}, destination d, scale s and mode `accumulate`, the
value written to d (and to each of its copies) is, elementwise:

    A   = float64 if the sources or d are float64, else float32
    acc = A(g_0) + A(g_1) + ... + A(g_{K-1})     left to right, one rounding per add
    acc = acc * A(s)                             skipped when A(s) == 1 (exact either way)
    acc = A(d) + acc                             only when accumulate
    d   = round_to_nearest_even(acc, d.dtype)    once; a NaN is the canonical quiet NaN

(float64 -> float16/bfloat16 goes through float32 rounded to odd, which is one rounding.)
"""
import torch

CANONICAL_NAN = {torch.float16: 0x7E00, torch.bfloat16: 0x7FC0, torch.float32: 0x7FC00000,
                 torch.float64: 0x7FF8000000000000}
_INT = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
        torch.float64: torch.int64}


def acc_dtype(src_dtype, dst_dtype):
    return torch.float64 if torch.float64 in (src_dtype, dst_dtype) else torch.float32


def scale_in(acc, scale):
    """The scale as the accumulator holds it (a Python float rounded to `acc`)."""
    return torch.tensor(scale, dtype=acc).item()


def _f32_round_odd(x):
    """float64 -> float32, truncated toward zero with the last bit set when inexact."""
    f = x.to(torch.float32)
    back = f.to(torch.float64)
    bits = f.view(torch.int32)
    bits = torch.where(back.abs() > x.abs(), bits - 1, bits)
    bits = torch.where(back != x, bits | 1, bits)
    return bits.view(torch.float32)


def round_to(acc, dtype):
    """acc (float32 or float64) rounded once to `dtype`, NaNs canonical."""
    if acc.dtype == torch.float64 and dtype in (torch.float16, torch.bfloat16):
        out = _f32_round_odd(acc).to(dtype)
    else:
        out = acc.to(dtype)
    nan = torch.tensor(CANONICAL_NAN[dtype], dtype=_INT[dtype], device=out.device).view(dtype)
    return torch.where(out.isnan(), nan, out)


def tied_sum(sources, dest, scale=1.0, accumulate=False):
    """The value tied_grad_ writes for one group: a new tensor of dest's shape and dtype."""
    a = acc_dtype(sources[0].dtype, dest.dtype)
    acc = sources[0].to(a)
    for g in sources[1:]:
        acc = acc + g.to(a)
    s = scale_in(a, scale)
    if s != 1.0:
        acc = acc * torch.tensor(s, dtype=a, device=acc.device)
    if accumulate:
        acc = dest.to(a) + acc
    return round_to(acc, dest.dtype)


def write(groups):
    """Write checked groups [(dests, sources, scale, accumulate)]: the first destination's
    value (its own, in add mode) goes to every destination. Runs below autograd."""
    with torch._C._AutoDispatchBelowADInplaceOrView():
        for dests, sources, scale, accumulate in groups:
            if dests[0].numel() == 0:
                continue
            v = tied_sum(sources, dests[0], scale, accumulate)
            for d in dests:
                d.copy_(v)
