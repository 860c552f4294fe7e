"""multi_init_ for a list of tensors in few launches (apex multi_tensor_apply style).

Per-entry metadata is one int64 table (a device tensor, one row per entry, built on the host
and copied in one transfer); each program handles one chunk of one entry:

  row: addr, numel, offset, seed, stream, kind, stride, chunk0, p0 .. p5
    addr    data_ptr() of the entry (its element 0)
    stride  the element stride of its single coalesced dim (1 when contiguous)
    chunk0  index of the entry's first chunk among its launch's programs (cumulative)
    p0..p5  parameter bits in the compute type (random kinds, as kernels/random.py's
            job_params), or for fill the bits of the value as Tensor.fill_ rounds it
            (in the output dtype) in p0

Program pid finds its entry by binary search over chunk0 (ceil(log2(entries)) loads, no
per-chunk table: metadata stays O(number of tensors)) and its chunk k = pid - chunk0; chunk k
covers BLOCK // L Philox calls from call offset // L + k * BLOCK // L (fill: BLOCK elements).

Grouping: one launch per output dtype, with the kind (uniform, normal, trunc_normal, fill)
selected inside the kernel by a scalar branch (uniform over a program, so no divergence).
The alternative, one launch for everything with the dtype also chosen at run time, would
put all 4 dtypes x 4 kinds (16 specializations of the transforms, the trunc_normal ones
large) into one kernel: long compiles and high register pressure for every program,
for saving at most 3 launches. A dtype fixes the compute type and the pointer type, so
the entry's int64 address is cast to one typed pointer (int16 for float16/bfloat16, whose
bits are computed with integer operations).

Entries whose memory is not one strided run (coalesced dims > 1, e.g. w.t() or
channels_last) go through the single-tensor kernel (kernels/random.py) or Tensor.fill_.
"""
import numpy as np
import torch
import triton
import triton.language as tl

from paramops import multi as M

from . import random as RK
from . import stream as S

W = 14  # columns of a metadata row
ADDR, NUMEL, OFFSET, SEED, STREAM, KIND, STRIDE, CHUNK0, P0 = range(9)
DEFAULT_BLOCK = RK.DEFAULT_BLOCK
# the same, as constexprs for the kernel
_W, _ADDR, _NUMEL, _OFFSET, _SEED, _STREAM, _KIND, _STRIDE, _CHUNK0, _P0 = (
    tl.constexpr(v) for v in (W, ADDR, NUMEL, OFFSET, SEED, STREAM, KIND, STRIDE, CHUNK0, P0))


@triton.jit
def _entry(meta_ptr, n_entries, pid, NBITS: tl.constexpr):
    """The largest e < n_entries with chunk0[e] <= pid (chunk0 ascending, chunk0[0] = 0)."""
    e = (pid * 0).to(tl.int64)
    for b in tl.static_range(NBITS - 1, -1, -1):
        cand = e + (1 << b)
        c0 = tl.load(meta_ptr + cand * _W + _CHUNK0, mask=cand < n_entries, other=pid + 1)
        e = tl.where(c0 <= pid, cand, e)
    return e


@triton.jit
def _random(ptr, row, j, mask, idx, rel, c_first, DIST: tl.constexpr, OUT: tl.constexpr, F64: tl.constexpr):
    seed = tl.load(row + _SEED)
    stream = tl.load(row + _STREAM)
    if F64:
        p0 = tl.load(row + _P0).to(tl.float64, bitcast=True)
        p1 = tl.load(row + _P0 + 1).to(tl.float64, bitcast=True)
        p2 = tl.load(row + _P0 + 2).to(tl.float64, bitcast=True)
        p3 = tl.load(row + _P0 + 3).to(tl.float64, bitcast=True)
        p4 = tl.load(row + _P0 + 4).to(tl.float64, bitcast=True)
        p5 = tl.load(row + _P0 + 5).to(tl.float64, bitcast=True)
    else:
        p0 = tl.load(row + _P0).to(tl.uint32).to(tl.float32, bitcast=True)
        p1 = tl.load(row + _P0 + 1).to(tl.uint32).to(tl.float32, bitcast=True)
        p2 = tl.load(row + _P0 + 2).to(tl.uint32).to(tl.float32, bitcast=True)
        p3 = tl.load(row + _P0 + 3).to(tl.uint32).to(tl.float32, bitcast=True)
        p4 = tl.load(row + _P0 + 4).to(tl.uint32).to(tl.float32, bitcast=True)
        p5 = tl.load(row + _P0 + 5).to(tl.uint32).to(tl.float32, bitcast=True)
    # uint32 halves: int64 -> uint32 truncates (the sign bits of >> 32 are cut off)
    v = S.values(c_first + rel, stream.to(tl.uint32), (stream >> 32).to(tl.uint32),
                 seed.to(tl.uint32), (seed >> 32).to(tl.uint32),
                 p0, p1, p2, p3, p4, p5, DIST, F64)
    S.store(ptr, idx, v, mask, OUT)


@triton.jit
def multi_kernel(meta_ptr, n_entries, OUT: tl.constexpr, NBITS: tl.constexpr, BLOCK: tl.constexpr):
    F64: tl.constexpr = OUT == S.OUT_F64
    L: tl.constexpr = 2 if F64 else 4
    CALLS: tl.constexpr = BLOCK // L
    pid = tl.program_id(0).to(tl.int64)
    e = _entry(meta_ptr, n_entries, pid, NBITS)
    row = meta_ptr + e * _W
    addr = tl.load(row + _ADDR)
    n = tl.load(row + _NUMEL)
    kind = tl.load(row + _KIND)
    stride = tl.load(row + _STRIDE)
    k = pid - tl.load(row + _CHUNK0)
    if OUT == S.OUT_F32:
        ptr = addr.to(tl.pointer_type(tl.float32))
    elif OUT == S.OUT_F64:
        ptr = addr.to(tl.pointer_type(tl.float64))
    else:
        ptr = addr.to(tl.pointer_type(tl.int16))
    if kind == S.FILL:
        j = k * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        mask = j < n
        bits = tl.load(row + _P0)
        # broadcast the bits as integers, then bitcast: a float 0 + v would turn -0.0 into +0.0
        if OUT == S.OUT_F32:
            val = (tl.zeros([BLOCK], tl.uint32) + bits.to(tl.uint32)).to(tl.float32, bitcast=True)
        elif OUT == S.OUT_F64:
            val = (tl.zeros([BLOCK], tl.int64) + bits).to(tl.float64, bitcast=True)
        else:
            val = tl.zeros([BLOCK], tl.int16) + bits.to(tl.uint16).to(tl.int16, bitcast=True)
        tl.store(ptr + j * stride, val, mask=mask)
    else:
        off0 = tl.load(row + _OFFSET)
        c_first = off0 // L
        skip = off0 - c_first * L
        rel = k * CALLS + tl.arange(0, CALLS).to(tl.int64)
        j = k * BLOCK + tl.arange(0, BLOCK).to(tl.int64) - skip
        mask = (j >= 0) & (j < n)
        idx = j * stride
        if kind == S.UNIFORM:
            _random(ptr, row, j, mask, idx, rel, c_first, S.UNIFORM, OUT, F64)
        elif kind == S.NORMAL:
            _random(ptr, row, j, mask, idx, rel, c_first, S.NORMAL, OUT, F64)
        else:
            _random(ptr, row, j, mask, idx, rel, c_first, S.TRUNC, OUT, F64)


# ---------------------------------------------------------------- host side
_FILL_BITS_DTYPE = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
                    torch.float64: torch.int64}


def fill_bits(value, dtype):
    """The bits Tensor.fill_(value) writes into a `dtype` tensor (as a non-negative int)."""
    t = torch.empty((), dtype=dtype).fill_(value)
    return int(t.view(_FILL_BITS_DTYPE[dtype]).item()) & ((1 << (8 * t.element_size())) - 1)


def _i64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def multi_init_(tensors, plan, params, block=DEFAULT_BLOCK):
    """Write every entry of an already validated multi_init_ call (paramops.multi.validate).

    Entries of one output dtype whose memory is one strided run share one launch; the rest
    go through the single-tensor kernel or Tensor.fill_. block: elements per program."""
    if block < 4 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 4, got {block}")
    rows_by_dtype = {}
    for t, (kind, seed, stream, offset), p in zip(tensors, plan.tolist(), params.tolist()):
        n = t.numel()
        if n == 0:
            continue
        dims = RK.coalesce(t)
        if len(dims) > 1:
            if kind == M.FILL:
                t.fill_(p[0])
            else:
                RK.generate_(t, M._DIST[kind], tuple(p[:M._ARITY[kind]]), seed, stream, offset, block=block)
            continue
        stride = dims[0][1] if dims else 1
        if kind == M.FILL:
            bits = [fill_bits(p[0], t.dtype)] + [0] * 5
            offset = 0
        else:
            bits = RK.job_params(M._DIST[kind], tuple(p[:M._ARITY[kind]]), t.dtype)
        rows_by_dtype.setdefault(t.dtype, []).append(
            [t.data_ptr(), n, offset, _i64(seed), _i64(stream), kind, stride, 0] + [_i64(b) for b in bits])
    if not rows_by_dtype:
        return
    device = tensors[0].device
    groups, table, start = [], [], 0
    for dtype, rows in rows_by_dtype.items():
        L = 2 if dtype == torch.float64 else 4
        chunk0 = 0
        for r in rows:
            r[CHUNK0] = chunk0
            calls = -(-(r[OFFSET] + r[NUMEL]) // L) - r[OFFSET] // L
            chunk0 += triton.cdiv(calls * L, block)
        groups.append((dtype, start, len(rows), chunk0))
        table += rows
        start += len(rows)
    meta = torch.from_numpy(np.array(table, dtype=np.int64).reshape(-1, W))
    with RK.on_device(device):
        if device.type != "cpu":
            meta = meta.to(device)  # one transfer for all groups
        for dtype, first, count, nchunks in groups:
            multi_kernel[(nchunks,)](meta[first:], count, OUT=RK.OUT_CODE[dtype], NBITS=max(1, count.bit_length()),
                                     BLOCK=block, **RK.LAUNCH)
