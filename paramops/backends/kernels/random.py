"""Single-tensor kernel of paramops' uniform_/normal_/trunc_normal_ (paramops stream v1).

``generate_(t, dist, params, seed, stream, offset)`` writes elements [offset, offset + numel)
of the stream into ``t`` in logical (row-major) order, for any strides, in place.

Layout of the work: program p takes BLOCK // L consecutive Philox calls (L = 4 elements per
call in binary32, 2 in binary64), starting at call ``offset // L``; the values of a call are
interleaved into element order, and element j of the tensor (global index offset + j) is
stored when 0 <= j < numel. An element's value depends only on its global index, never on
BLOCK or the grid (the tests vary BLOCK). Indices are int64 throughout and relative to the
first call, so offsets up to 2^63 - numel and tensors over 2^31 elements work.

Strides: the tensor's dims are coalesced (size-1 dims dropped, adjacent dims merged where
the outer one steps exactly over the inner one, as csrc/cpu/ops.cpp does). A contiguous
tensor becomes one dim of stride 1 (the fast path: plain offsets); otherwise each element's
memory offset is unravelled from its logical index over up to MAX_DIMS coalesced dims,
passed as scalar arguments (nothing is allocated). Views with more coalesced dims (rare:
MAX_DIMS non-mergeable dims) are split along their outermost dim, one launch per index.

Parameters reach the kernel as the int32 halves of their bits (binary64: hi and lo; binary32
compute: the binary32 bits in lo), seed and stream as the int32 halves of their uint64
value. Every such argument is in int32 range, so Triton types them all as i32 whatever the
value (a Python int is i32, i64 or u64 by value, and a Python float is fp32), and they are
not specialized, so the kernel compiles once per (dist, dtype, dims, BLOCK).
"""
import contextlib
import struct

import torch
import triton
import triton.language as tl

from paramops.core import codes as K
from paramops.spec import reference as R
from paramops.backends.dims import coalesce

from . import stream as S

MAX_DIMS = 6
DEFAULT_BLOCK = 1024  # elements per program
NUM_WARPS = 4
OUT_CODE = {torch.float32: K.F32, torch.float64: K.F64, torch.float16: K.F16, torch.bfloat16: K.BF16}
# the kernels' launch options (checked to exist in triton 3.6 and 3.9): no contraction of
# a * b + c into an fma by the compiler; the spec's fmas are explicit.
LAUNCH = {"num_warps": NUM_WARPS, "enable_fp_fusion": False}

_SCALARS = ["numel", "offset", "seed_lo", "seed_hi", "stream_lo", "stream_hi"] + [
    f"p{k}{h}" for k in range(6) for h in ("lo", "hi")] + [
    f"size{k}" for k in range(MAX_DIMS)] + [f"stride{k}" for k in range(MAX_DIMS)]


@triton.jit
def _unravel(j, size0, size1, size2, size3, size4, size5,
             stride0, stride1, stride2, stride3, stride4, stride5, NDIM: tl.constexpr):
    """Memory offset (elements) of logical index j over NDIM coalesced dims, which sit in
    slots MAX_DIMS - NDIM .. MAX_DIMS - 1 (the innermost in slot 5)."""
    rem = j
    off = tl.zeros(j.shape, tl.int64)
    if NDIM > 1:
        off += (rem % size5) * stride5
        rem = rem // size5
    else:
        off += rem * stride5
    if NDIM > 2:
        off += (rem % size4) * stride4
        rem = rem // size4
    elif NDIM == 2:
        off += rem * stride4
    if NDIM > 3:
        off += (rem % size3) * stride3
        rem = rem // size3
    elif NDIM == 3:
        off += rem * stride3
    if NDIM > 4:
        off += (rem % size2) * stride2
        rem = rem // size2
    elif NDIM == 4:
        off += rem * stride2
    if NDIM > 5:
        off += (rem % size1) * stride1
        rem = rem // size1
        off += rem * stride0
    elif NDIM == 5:
        off += rem * stride1
    return off


# do_not_specialize: the scalars are plain values (no ==1 / divisibility specializations,
# no recompiles per seed or shape).
@triton.jit(do_not_specialize=_SCALARS)
def random_kernel(out_ptr, numel, offset, seed_lo, seed_hi, stream_lo, stream_hi,
                  p0lo, p0hi, p1lo, p1hi, p2lo, p2hi, p3lo, p3hi, p4lo, p4hi, p5lo, p5hi,
                  size0, size1, size2, size3, size4, size5,
                  stride0, stride1, stride2, stride3, stride4, stride5,
                  DIST: tl.constexpr, OUT: tl.constexpr, NDIM: tl.constexpr, BLOCK: tl.constexpr):
    F64: tl.constexpr = OUT == S.OUT_F64
    L: tl.constexpr = 2 if F64 else 4
    CALLS: tl.constexpr = BLOCK // L
    pid = tl.program_id(0).to(tl.int64)
    n = numel.to(tl.int64)
    off0 = offset.to(tl.int64)
    c_first = off0 // L
    skip = off0 - c_first * L  # elements of the first call before `offset`
    rel = pid * CALLS + tl.arange(0, CALLS).to(tl.int64)  # calls, relative to c_first
    p0 = S.param(p0lo, p0hi, F64)
    p1 = S.param(p1lo, p1hi, F64)
    p2 = S.param(p2lo, p2hi, F64)
    p3 = S.param(p3lo, p3hi, F64)
    p4 = S.param(p4lo, p4hi, F64)
    p5 = S.param(p5lo, p5hi, F64)
    v = S.values(c_first + rel, stream_lo.to(tl.uint32, bitcast=True), stream_hi.to(tl.uint32, bitcast=True),
                 seed_lo.to(tl.uint32, bitcast=True), seed_hi.to(tl.uint32, bitcast=True),
                 p0, p1, p2, p3, p4, p5, DIST, F64)
    j = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64) - skip  # element index in the tensor
    mask = (j >= 0) & (j < n)
    if NDIM == 0:
        idx = j
    else:
        idx = _unravel(j, size0.to(tl.int64), size1.to(tl.int64), size2.to(tl.int64), size3.to(tl.int64),
                       size4.to(tl.int64), size5.to(tl.int64), stride0.to(tl.int64), stride1.to(tl.int64),
                       stride2.to(tl.int64), stride3.to(tl.int64), stride4.to(tl.int64),
                       stride5.to(tl.int64), NDIM)
    S.store(out_ptr, idx, v, mask, OUT)




# ---------------------------------------------------------------- host side
def halves(v):
    """(lo, hi) of a 64-bit pattern v (any int, taken modulo 2^64), each as an int32 value."""
    v &= (1 << 64) - 1
    lo, hi = v & 0xFFFFFFFF, v >> 32
    return (lo - (1 << 32) if lo >= 1 << 31 else lo), (hi - (1 << 32) if hi >= 1 << 31 else hi)


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def param_bits(p, dtype):
    """The six per-call parameters p (paramops.spec.reference.job_params: the Job of
    csrc/cpu/checks.cpp, in the compute type) as bit patterns: binary64 bits for float64
    outputs, binary32 bits otherwise."""
    bits = f64_bits if dtype == torch.float64 else f32_bits
    return [bits(x) for x in p]


def _element(t, eoff):
    """A one-element view of t's storage at element offset eoff from t's first element: its
    data_ptr() is the base address the kernel indexes from."""
    return t.as_strided((1,), (1,), t.storage_offset() + eoff)


def _launch(out, base, dims, numel, offset, seed, stream, pbits, kind, code, block):
    if len(dims) > MAX_DIMS:
        (size0, stride0), rest = dims[0], dims[1:]
        inner = numel // size0
        for i in range(size0):
            _launch(out, base + i * stride0, rest, inner, offset + i * inner, seed, stream, pbits, kind, code,
                    block)
        return
    if len(dims) <= 1 and (not dims or dims[0][1] == 1):
        ndim, dims = 0, []
    else:
        ndim = len(dims)
    slots = [(1, 0)] * (MAX_DIMS - ndim) + list(dims)
    L = 2 if code == OUT_CODE[torch.float64] else 4
    calls = -(-(offset + numel) // L) - offset // L
    grid = (triton.cdiv(calls * L, block),)
    args = [numel, offset, *halves(seed), *halves(stream)]
    for b in pbits:
        args += halves(b)
    args += [s for s, _ in slots] + [st for _, st in slots]
    random_kernel[grid](_element(out, base), *args, DIST=kind, OUT=code, NDIM=ndim, BLOCK=block,
                        **LAUNCH)


def out_view(t):
    """What the kernels store into: t, or its int16 view for float16/bfloat16 (their bits
    are computed with integer operations, stream.py)."""
    return t.view(torch.int16) if t.dtype in (torch.float16, torch.bfloat16) else t


def on_device(device):
    """Triton launches on the current CUDA device: make it the tensor's."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def write_(t, kind, p, seed, stream=0, offset=0, block=DEFAULT_BLOCK):
    """Write elements [offset, offset + t.numel()) of the stream of (kind, seed, stream) with
    the six per-call parameters p (paramops.spec.reference.job_params) into t, in place, any
    strides. No argument checks: the op's kernel ran them (paramops/backends/triton.py).

    block: elements per program, a power of two >= 4; the values never depend on it."""
    if block < 4 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 4, got {block}")
    numel = t.numel()
    if numel == 0:
        return t
    with on_device(t.device):
        _launch(out_view(t), 0, coalesce(t), numel, offset, seed, stream, param_bits(p, t.dtype), kind,
                OUT_CODE[t.dtype], block)
    return t


def generate_(t, dist, params, seed, stream=0, offset=0, block=DEFAULT_BLOCK):
    """write_ from the op's parameters: dist "uniform" (a, b), "normal" (mean, std) or
    "trunc_normal" (mean, std, a, b), or its kind code. Parameters must be valid (the
    benchmark below and the tests call this directly)."""
    kind = R.kind_of(dist)
    return write_(t, kind, R.job_params(kind, params, t.dtype), seed, stream, offset, block)


# ---------------------------------------------------------------- benchmark
def _cases(t):
    """(name, fn) pairs writing t: paramops' kernels and torch's own in-place ops."""
    return [
        ("paramops uniform_", lambda: generate_(t, "uniform", (-1.0, 1.0), 1)),
        ("paramops normal_", lambda: generate_(t, "normal", (0.0, 0.02), 1)),
        ("paramops trunc_normal_", lambda: generate_(t, "trunc_normal", (0.0, 0.02, -0.04, 0.04), 1)),
        ("torch uniform_", lambda: t.uniform_(-1.0, 1.0)),
        ("torch normal_", lambda: t.normal_(0.0, 0.02)),
        ("torch fill_", lambda: t.fill_(0.5)),
    ]


def bench(sizes=(1 << 20, 1 << 24, 1 << 28), dtypes=(torch.float32, torch.bfloat16, torch.float64)):
    """Print the write bandwidth (GB/s, CUDA events via triton.testing.do_bench) of paramops'
    kernels against torch's normal_/uniform_/fill_ on the same tensor (GPU only)."""
    from triton.testing import do_bench

    print(f"{'dtype':>9} {'numel':>10} {'op':<24} {'us':>9} {'GB/s':>8}")
    for dtype in dtypes:
        for numel in sizes:
            t = torch.empty(numel, dtype=dtype, device="cuda")
            nbytes = t.numel() * t.element_size()
            for name, fn in _cases(t):
                ms = do_bench(fn)
                print(f"{str(dtype)[6:]:>9} {numel:>10} {name:<24} {ms * 1e3:>9.1f} {nbytes / (ms * 1e-3) / 1e9:>8.1f}")


if __name__ == "__main__":  # python -m paramops.backends.kernels.random
    if not torch.cuda.is_available():
        raise SystemExit("the benchmark needs a GPU")
    bench()
