"""multi_init_ for a list of tensors in few launches (apex multi_tensor_apply style).

Per-entry metadata is one int64 table (a device tensor, one row per entry, copied in one
transfer); each program handles one chunk of one entry. Its rows are those of the multi
table the op's C++ kernel hands to a Python writer (csrc/cpu/table.cpp defines the layout;
paramops/core/codes.py TABLE_* names its columns), grouped by dtype, with one column appended:

  row: index, addr, numel, offset, seed, stream, kind, dtype, stride, p0 .. p5, chunk0
    addr    data_ptr() of the entry (its element 0)
    stride  the element stride of its single coalesced dim (1 when contiguous); NOT_ONE_RUN
            (0) for entries whose memory is not one strided run, which never reach the kernel
    p0..p5  parameter bits in the compute type (random kinds, as kernels/random.py's
            param_bits), or for fill the bits of the value as Tensor.fill_ rounds it
            (in the output dtype) in p0
    chunk0  index of the entry's first chunk among its launch's programs (cumulative)

launch() groups the rows by dtype and computes chunk0 with numpy, no per-entry Python for
one-run entries.

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
channels_last) go through the single-tensor kernel (kernels/random.py); the op's kernel
fills the strided fill entries itself.
"""
import numpy as np
import torch
import triton
import triton.language as tl

from paramops.core import codes as C

from . import random as RK
from . import stream as S

INDEX, ADDR, NUMEL, OFFSET, SEED, STREAM, KIND, DTYPE, STRIDE, P0 = (
    C.TABLE_INDEX, C.TABLE_ADDR, C.TABLE_NUMEL, C.TABLE_OFFSET, C.TABLE_SEED, C.TABLE_STREAM, C.TABLE_KIND,
    C.TABLE_DTYPE, C.TABLE_STRIDE, C.TABLE_P0)
TABLE_W, NOT_ONE_RUN = C.TABLE_W, C.NOT_ONE_RUN
# The kernel's rows: the table's columns, then CHUNK0.
CHUNK0 = TABLE_W
W = TABLE_W + 1
DEFAULT_BLOCK = RK.DEFAULT_BLOCK
# the same, as constexprs for the kernel
_W, _ADDR, _NUMEL, _OFFSET, _SEED, _STREAM, _KIND, _STRIDE, _CHUNK0, _P0 = (
    tl.constexpr(v) for v in (W, ADDR, NUMEL, OFFSET, SEED, STREAM, KIND, STRIDE, CHUNK0, P0))


@triton.jit
def find_row(meta_ptr, n_rows, pid, NBITS: tl.constexpr, ROW_W: tl.constexpr, COL: tl.constexpr):
    """The largest e < n_rows with meta[e, COL] <= pid (that column ascending, 0 in row 0):
    a program's row of a chunked metadata table (here and in kernels/tied.py)."""
    e = (pid * 0).to(tl.int64)
    for b in tl.static_range(NBITS - 1, -1, -1):
        cand = e + (1 << b)
        c0 = tl.load(meta_ptr + cand * ROW_W + COL, mask=cand < n_rows, other=pid + 1)
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
    e = find_row(meta_ptr, n_entries, pid, NBITS, _W, _CHUNK0)
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
_F64 = C.F64
_DTYPES = {code: dtype for dtype, code in RK.OUT_CODE.items()}


def _groups(rows, block):
    """The kernel's metadata (int64 [m, W]: rows sorted by dtype, CHUNK0 filled) and the
    launches, as (dtype, first row, rows, chunks), for the one-run rows of a table."""
    m = len(rows)
    meta = np.empty((m, W), np.int64)
    dt = rows[:, DTYPE]
    if m > 1 and (dt[1:] < dt[:-1]).any():
        meta[:, :TABLE_W] = rows[np.argsort(dt, kind="stable")]
    else:  # already grouped (one dtype: the common case)
        meta[:, :TABLE_W] = rows
    dt, off, n = meta[:, DTYPE], meta[:, OFFSET], meta[:, NUMEL]
    lg = np.where(dt == _F64, 1, 2)  # log2 of the elements per Philox call
    # calls = ceil((off + n) / L) - floor(off / L), chunks = ceil(calls * L / block): in shifts,
    # without forming off + n + L - 1 (off + n may be 2^63 - 1); n > 0
    calls = ((off + n - 1) >> lg) + 1 - (off >> lg)
    chunks = (((calls << lg) - 1) >> (block.bit_length() - 1)) + 1
    end = np.cumsum(chunks)
    first = np.concatenate(([0], np.flatnonzero(dt[1:] != dt[:-1]) + 1))  # the first row of each dtype
    last = np.append(first[1:], m)
    base = np.concatenate(([0], end[last[:-1] - 1]))  # chunks before each group
    meta[:, CHUNK0] = end - chunks - (base[0] if len(first) == 1 else np.repeat(base, last - first))
    groups = [(_DTYPES[int(dt[f])], int(f), int(e - f), int(end[e - 1] - b))
              for f, e, b in zip(first.tolist(), last.tolist(), base.tolist())]
    return meta, groups


def launch(tensors, rows, block=DEFAULT_BLOCK):
    """Write every entry of a multi_init_ call whose checks, seeds and version bumps are done,
    from its multi table (an int64 tensor or array, csrc/cpu/table.cpp).

    One-run entries of one output dtype share one launch; the rest go through the
    single-tensor kernel with the table's parameter bits. block: elements per program."""
    if block < 4 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 4, got {block}")
    rows = rows.numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows, np.int64)
    if not len(rows):
        return
    device = tensors[int(rows[0, INDEX])].device
    one_run = rows[:, STRIDE] != NOT_ONE_RUN
    all_one_run = bool(one_run.all())
    with RK.on_device(device):
        for r in ([] if all_one_run else rows[~one_run].tolist()):  # rare: w.t(), channels_last, ...
            t = tensors[r[INDEX]]
            RK._launch(RK.out_view(t), 0, RK.coalesce(t), r[NUMEL], r[OFFSET], r[SEED], r[STREAM], r[P0:P0 + 6],
                       r[KIND], r[DTYPE], block)
        if not all_one_run:
            rows = rows[one_run]
            if not len(rows):
                return
        meta, groups = _groups(rows, block)
        meta = torch.from_numpy(meta)
        if device.type != "cpu":
            meta = meta.to(device)  # one transfer for all groups
        for dtype, first, count, nchunks in groups:
            multi_kernel[(nchunks,)](meta[first:], count, OUT=RK.OUT_CODE[dtype], NBITS=max(1, count.bit_length()),
                                     BLOCK=block, **RK.LAUNCH)
