"""tied_grad_ in Triton: every group of a call in one launch per (source dtype, destination
dtype), apex multi_tensor_apply style; the numbers of csrc/paramops/tied.h (docs/tied.md).

Metadata: one int64 tensor (one transfer): G rows of W columns, then the addresses.

  row: numel, src0, nsrc, dst0, ndst, rd, scale, add, chunk0
    src0, dst0  where the group's source / destination addresses start in the address list
    rd          the address of the destination's values (add mode), else 0
    scale       the bits of the scale in the accumulator (binary64 when float64 is involved)
    chunk0      the group's first program (cumulative, per launch)

Program pid finds its group by binary search over chunk0 (multi.find_row) and sums BLOCK elements: the
sources one after another into the accumulator, the scale, the destination's values, and
the rounded stores to every destination. Sources that are not contiguous are read from
contiguous copies, and destinations that are not contiguous are written by copy_ from the
result (host side, as the CPU's fused pass does).
"""
import struct

import numpy as np
import torch
import triton
import triton.language as tl

from paramops.core import codes as C

from . import multi as MK
from . import random as RK
from . import stream as S

NUMEL, SRC0, NSRC, DST0, NDST, RD, SCALE, ADD, CHUNK0 = range(9)
W = 9
DEFAULT_BLOCK = 1024
_W, _NUMEL, _SRC0, _NSRC, _DST0, _NDST, _RD, _SCALE, _ADD, _CHUNK0 = (
    tl.constexpr(v) for v in (W, NUMEL, SRC0, NSRC, DST0, NDST, RD, SCALE, ADD, CHUNK0))
CODE = {torch.float32: C.F32, torch.float64: C.F64, torch.float16: C.F16, torch.bfloat16: C.BF16}


@triton.jit
def _load(addr, j, mask, DT: tl.constexpr, F64: tl.constexpr):
    """Elements j of a tensor of code DT at addr, exactly in the accumulator type."""
    if DT == S.OUT_F64:
        return tl.load(addr.to(tl.pointer_type(tl.float64)) + j, mask=mask, other=0.0)
    if DT == S.OUT_F32:
        v = tl.load(addr.to(tl.pointer_type(tl.float32)) + j, mask=mask, other=0.0)
    else:
        h = tl.load(addr.to(tl.pointer_type(tl.int16)) + j, mask=mask, other=0).to(tl.uint16, bitcast=True)
        if DT == S.OUT_BF16:
            v = (h.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
        else:
            v = h.to(tl.float16, bitcast=True).to(tl.float32)
    if F64:
        v = v.to(tl.float64)
    return v


@triton.jit
def _f32_round_odd(x):
    """binary64 -> binary32 truncated toward zero, the last bit set when inexact (tied.h)."""
    f = x.to(tl.float32, fp_downcast_rounding="rtne")
    back = f.to(tl.float64)
    b = f.to(tl.uint32, bitcast=True)
    b = tl.where(tl.abs(back) > tl.abs(x), b - 1, b)
    b = tl.where(back != x, b | 1, b)
    return b.to(tl.float32, bitcast=True)


@triton.jit
def _store(addr, j, v, mask, DT: tl.constexpr, F64: tl.constexpr):
    """v (the accumulator type) rounded once to code DT, canonical NaNs, at addr[j]."""
    if DT == S.OUT_F64:
        nan = (tl.zeros_like(v).to(tl.int64, bitcast=True) + 0x7FF8000000000000).to(tl.float64, bitcast=True)
        tl.store(addr.to(tl.pointer_type(tl.float64)) + j, tl.where(v != v, nan, v), mask=mask)
    else:
        if F64:
            if DT == S.OUT_F32:
                f = v.to(tl.float32, fp_downcast_rounding="rtne")
            else:
                f = _f32_round_odd(v)
        else:
            f = v
        if DT == S.OUT_F32:
            nan = (tl.zeros_like(f).to(tl.uint32, bitcast=True) + 0x7FC00000).to(tl.float32, bitcast=True)
            tl.store(addr.to(tl.pointer_type(tl.float32)) + j, tl.where(f != f, nan, f), mask=mask)
        elif DT == S.OUT_BF16:
            tl.store(addr.to(tl.pointer_type(tl.int16)) + j, S.bf16_bits(f).to(tl.uint16).to(tl.int16, bitcast=True),
                     mask=mask)
        else:
            tl.store(addr.to(tl.pointer_type(tl.int16)) + j, S.f16_bits(f).to(tl.uint16).to(tl.int16, bitcast=True),
                     mask=mask)


@triton.jit
def tied_kernel(meta_ptr, addr_ptr, n_groups, SRC: tl.constexpr, DST: tl.constexpr, F64: tl.constexpr,
                NBITS: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    g = MK.find_row(meta_ptr, n_groups, pid, NBITS, _W, _CHUNK0)
    row = meta_ptr + g * _W
    n = tl.load(row + _NUMEL)
    s0 = tl.load(row + _SRC0)
    ns = tl.load(row + _NSRC)
    d0 = tl.load(row + _DST0)
    nd = tl.load(row + _NDST)
    k = pid - tl.load(row + _CHUNK0)
    j = k * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = j < n
    acc = _load(tl.load(addr_ptr + s0), j, mask, SRC, F64)
    for s in range(1, ns):
        acc = acc + _load(tl.load(addr_ptr + s0 + s), j, mask, SRC, F64)
    bits = tl.load(row + _SCALE)
    if F64:
        scale = bits.to(tl.float64, bitcast=True)
    else:
        scale = bits.to(tl.uint32).to(tl.float32, bitcast=True)
    if scale != 1.0:
        acc = acc * scale
    if tl.load(row + _ADD) != 0:
        acc = _load(tl.load(row + _RD), j, mask, DST, F64) + acc
    for d in range(nd):
        _store(tl.load(addr_ptr + d0 + d), j, acc, mask, DST, F64)


# ---------------------------------------------------------------- host side
def _scale_bits(scale, f64):
    if f64:
        return struct.unpack("<q", struct.pack("<d", scale))[0]
    return struct.unpack("<I", struct.pack("<f", scale))[0]  # rounds the double to binary32


def launch(groups, block=DEFAULT_BLOCK):
    """Write checked tied_grad_ groups [(dests, sources, scale, accumulate)] (versions bumped)."""
    keep, after, launches = [], [], {}
    for dests, sources, scale, add in groups:
        d0 = dests[0]
        n = d0.numel()
        if n == 0:
            continue
        src = [s if s.is_contiguous() else s.contiguous() for s in sources]
        keep.extend(src)
        direct = [d for d in dests if d.is_contiguous()]
        result = direct[0] if direct else torch.empty(d0.shape, dtype=d0.dtype, device=d0.device)
        if not direct:
            direct = [result]
            keep.append(result)
        rd = 0
        if add:
            r = d0 if d0.is_contiguous() else d0.contiguous()
            keep.append(r)
            rd = r.data_ptr()
        if len(direct) < len(dests) or not d0.is_contiguous():
            after.append((dests, result))
        f64 = torch.float64 in (src[0].dtype, d0.dtype)
        key = (src[0].dtype, d0.dtype)
        launches.setdefault(key, []).append((n, [s.data_ptr() for s in src], [d.data_ptr() for d in direct], rd,
                                             _scale_bits(scale, f64), int(add)))
    device = groups[0][0][0].device
    with RK.on_device(device):
        for (sdt, ddt), rows in launches.items():
            addrs, meta, chunk = [], [], 0
            for n, sa, da, rd, sb, add in rows:
                meta.append([n, len(addrs), len(sa), len(addrs) + len(sa), len(da), rd, sb, add, chunk])
                addrs.extend(sa + da)
                chunk += -(-n // block)
            g = len(meta)
            table = torch.from_numpy(np.concatenate([np.asarray(meta, np.int64).reshape(-1),
                                                     np.asarray(addrs, np.int64)]))
            if device.type != "cpu":
                table = table.to(device)
            tied_kernel[(chunk,)](table, table[g * W:], g, SRC=CODE[sdt], DST=CODE[ddt],
                                  F64=torch.float64 in (sdt, ddt), NBITS=max(1, g.bit_length()), BLOCK=block,
                                  **RK.LAUNCH)
    with torch._C._AutoDispatchBelowADInplaceOrView():
        for dests, result in after:
            for d in dests:
                if not d.is_contiguous():
                    d.copy_(result)
