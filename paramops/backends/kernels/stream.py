"""paramops stream v1 as Triton device functions.

The same sequence of operations as csrc/paramops/philox.h and transforms.h (the spec is
docs/stream.md), operation by operation, so that a Triton kernel writes the bits the C++
CPU kernels write. Rules, from the GPU issue:

* every fma of the spec is ``tl.fma``; every other ``a * b + c`` stays two operations, and
  the kernels are launched with ``enable_fp_fusion=False`` so that no compiler contracts
  them;
* division and square root are correctly rounded: ``tl.div_rn`` / ``tl.sqrt_rn`` in
  binary32 (Triton's plain ``/`` on fp32 lowers to an approximate division on NVIDIA);
  in binary64 Triton's ``/`` and ``tl.sqrt`` are already ``div.rn.f64`` / ``sqrt.rn.f64``
  (``div_rn``/``sqrt_rn`` accept only fp32);
* integer-to-float conversions only of values below 2^24 (2^53), which are exact;
* negation as a multiplication by -1 (exact, and it flips the sign of a zero: older Triton
  lowers unary minus on floats to ``0 - x``, which maps +0 to +0);
* constants come from paramops/_constants.py (the generated twin of constants.h), and are
  materialized with an explicit dtype (``tl.full``): a bare Python float is a binary32
  constant in some Triton versions, which would round a binary64 coefficient.

Lanes are uint32 tensors, 64-bit words uint64 tensors.
"""
import triton
import triton.language as tl

from paramops.core import codes as C
from paramops.spec import constants as K



def _table(name):
    """A coefficient table of _constants.py (lowest degree first) and its length, as constexprs
    (the interpreter cannot take len() of a constexpr tuple)."""
    c = getattr(K, name)
    return tl.constexpr(c), tl.constexpr(len(c))


# Polynomial coefficient tables
LOG_P_F32, LOG_P_F32_N = _table("LOG_P_F32")
LOG_P_F64, LOG_P_F64_N = _table("LOG_P_F64")
SIN_F32, SIN_F32_N = _table("SIN_F32")
SIN_F64, SIN_F64_N = _table("SIN_F64")
COS_F32, COS_F32_N = _table("COS_F32")
COS_F64, COS_F64_N = _table("COS_F64")
PPND_A_F32, PPND_A_F32_N = _table("PPND_A_F32")
PPND_B_F32, PPND_B_F32_N = _table("PPND_B_F32")
PPND_C_F32, PPND_C_F32_N = _table("PPND_C_F32")
PPND_D_F32, PPND_D_F32_N = _table("PPND_D_F32")
PPND_E_F32, PPND_E_F32_N = _table("PPND_E_F32")
PPND_F_F32, PPND_F_F32_N = _table("PPND_F_F32")
PPND_A_F64, PPND_A_F64_N = _table("PPND_A_F64")
PPND_B_F64, PPND_B_F64_N = _table("PPND_B_F64")
PPND_C_F64, PPND_C_F64_N = _table("PPND_C_F64")
PPND_D_F64, PPND_D_F64_N = _table("PPND_D_F64")
PPND_E_F64, PPND_E_F64_N = _table("PPND_E_F64")
PPND_F_F64, PPND_F_F64_N = _table("PPND_F_F64")
LN2_HI_F32 = tl.constexpr(K.LN2_HI_F32)
LN2_LO_F32 = tl.constexpr(K.LN2_LO_F32)
LN2_HI_F64 = tl.constexpr(K.LN2_HI_F64)
LN2_LO_F64 = tl.constexpr(K.LN2_LO_F64)
PPND_SPLIT1_F32 = tl.constexpr(K.PPND_SPLIT1_F32)
PPND_SPLIT1_F64 = tl.constexpr(K.PPND_SPLIT1_F64)
PPND_CONST1_F32 = tl.constexpr(K.PPND_CONST1_F32)
PPND_CONST1_F64 = tl.constexpr(K.PPND_CONST1_F64)
PPND_CONST2_F32 = tl.constexpr(K.PPND_CONST2_F32)
PPND_CONST2_F64 = tl.constexpr(K.PPND_CONST2_F64)

# Powers of two (exact in every float type used)
P2_M1022 = tl.constexpr(2.0 ** -1022)
P2_M126 = tl.constexpr(2.0 ** -126)
P2_M64 = tl.constexpr(2.0 ** -64)
P2_M53 = tl.constexpr(2.0 ** -53)
P2_M51 = tl.constexpr(2.0 ** -51)
P2_M32 = tl.constexpr(2.0 ** -32)
P2_M24 = tl.constexpr(2.0 ** -24)
P2_M22 = tl.constexpr(2.0 ** -22)

# Kind codes and output dtypes: paramops/core/codes.py (generated with csrc/paramops/codes.h).
UNIFORM = tl.constexpr(C.UNIFORM)
NORMAL = tl.constexpr(C.NORMAL)
TRUNC = tl.constexpr(C.TRUNC)
FILL = tl.constexpr(C.FILL)
OUT_F32 = tl.constexpr(C.F32)
OUT_F64 = tl.constexpr(C.F64)
OUT_F16 = tl.constexpr(C.F16)
OUT_BF16 = tl.constexpr(C.BF16)


# ---------------------------------------------------------------- helpers
@triton.jit
def cst(x, v: tl.constexpr):
    """The constant v in the dtype of x (exact: tl.full materializes it in that dtype)."""
    return tl.full([], v, x.dtype)


@triton.jit
def horner(x, C: tl.constexpr, N: tl.constexpr):
    """Horner with explicit fma from the highest coefficient (constants.h); C has N entries."""
    p = tl.full(x.shape, C[N - 1], x.dtype)
    for k in tl.static_range(N - 2, -1, -1):
        p = tl.fma(p, x, tl.full([], C[k], x.dtype))
    return p


@triton.jit
def div(a, b):
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    else:
        return a / b


@triton.jit
def sqrt(x):
    if x.dtype == tl.float32:
        return tl.sqrt_rn(x)
    else:
        return tl.sqrt(x)


@triton.jit
def neg(x):
    return x * -1.0


@triton.jit
def u32(v: tl.constexpr):
    return tl.full([], v, tl.uint32)


@triton.jit
def u64(v: tl.constexpr):
    return tl.full([], v, tl.uint64)


# ---------------------------------------------------------------- Philox4x32-10
@triton.jit
def philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (philox.h): uint32 counter words c0..c3, uint32 key k0, k1."""
    m0 = u32(0xD2511F53)
    m1 = u32(0xCD9E8D57)
    w0 = u32(0x9E3779B9)
    w1 = u32(0xBB67AE85)
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(c0, m0)
        lo0 = c0 * m0
        hi1 = tl.umulhi(c2, m1)
        lo1 = c2 * m1
        n0 = hi1 ^ c1 ^ k0
        n2 = hi0 ^ c3 ^ k1
        c0 = n0
        c1 = lo1
        c2 = n2
        c3 = lo0
        k0 = k0 + w0
        k1 = k1 + w1
    return c0, c1, c2, c3


@triton.jit
def philox_calls(call, stream_lo, stream_hi, seed_lo, seed_hi):
    """Lanes of Philox calls `call` (int64 >= 0) with the uint32 halves of stream and seed."""
    c0 = call.to(tl.uint32)
    c1 = (call >> 32).to(tl.uint32)
    c2 = tl.zeros(call.shape, tl.uint32) + stream_lo
    c3 = tl.zeros(call.shape, tl.uint32) + stream_hi
    return philox(c0, c1, c2, c3, seed_lo, seed_hi)


@triton.jit
def join64(lo, hi):
    return (hi.to(tl.uint64) << 32) | lo.to(tl.uint64)


# ---------------------------------------------------------------- uniforms
@triton.jit
def u01_f32(x):
    return (x >> 8).to(tl.int32).to(tl.float32) * P2_M24


@triton.jit
def u01_f64(w):
    return (w >> 11).to(tl.int64).to(tl.float64) * P2_M53


@triton.jit
def uopen_f32(x):
    hi = (x >> 8).to(tl.int32).to(tl.float32)
    lo = ((x & 0xFF).to(tl.int32).to(tl.float32) + 0.5) * P2_M32
    return tl.fma(hi, cst(hi, P2_M24), lo)


@triton.jit
def uopen_f64(w):
    hi = (w >> 11).to(tl.int64).to(tl.float64)
    lo = ((w & 0x7FF).to(tl.int64).to(tl.float64) + 0.5) * P2_M64
    return tl.fma(hi, cst(hi, P2_M53), lo)


# ---------------------------------------------------------------- log
@triton.jit
def log_f32(x):
    b = x.to(tl.uint32, bitcast=True)
    e = (b >> 23).to(tl.int32) - 127
    mb = (b & 0x007FFFFF) | 0x3F800000
    big = mb > 0x3FB504F3
    mb = tl.where(big, mb - 0x00800000, mb)
    e = tl.where(big, e + 1, e)
    f = mb.to(tl.float32, bitcast=True) - 1.0
    s = div(f, f + 2.0)
    z = s * s
    s2 = s + s
    lnm = tl.fma(s2, z * horner(z, LOG_P_F32, LOG_P_F32_N), s2)
    ef = e.to(tl.float32)
    return tl.fma(ef, cst(ef, LN2_HI_F32), tl.fma(ef, cst(ef, LN2_LO_F32), lnm))


@triton.jit
def log_f64(x):
    b = x.to(tl.uint64, bitcast=True)
    e = (b >> 52).to(tl.int64) - 1023
    mb = (b & u64(0x000FFFFFFFFFFFFF)) | u64(0x3FF0000000000000)
    big = mb > u64(0x3FF6A09E667F3BCD)
    mb = tl.where(big, mb - u64(0x0010000000000000), mb)
    e = tl.where(big, e + 1, e)
    f = mb.to(tl.float64, bitcast=True) - 1.0
    s = div(f, f + 2.0)
    z = s * s
    s2 = s + s
    lnm = tl.fma(s2, z * horner(z, LOG_P_F64, LOG_P_F64_N), s2)
    ef = e.to(tl.float64)
    return tl.fma(ef, cst(ef, LN2_HI_F64), tl.fma(ef, cst(ef, LN2_LO_F64), lnm))


# ---------------------------------------------------------------- sin/cos
@triton.jit
def _rotate(t, q, SIN: tl.constexpr, SIN_N: tl.constexpr, COS: tl.constexpr, COS_N: tl.constexpr):
    t2 = t * t
    sp = t * horner(t2, SIN, SIN_N)
    cp = horner(t2, COS, COS_N)
    odd = (q & 1) != 0
    cc = tl.where(odd, sp, cp)
    ss = tl.where(odd, cp, sp)
    c = tl.where((q == 1) | (q == 2), neg(cc), cc)
    s = tl.where((q & 2) != 0, neg(ss), ss)
    return s, c


@triton.jit
def sincos_f32(x):
    """(sin, cos) of the angle 2 pi (x >> 8) / 2^24 (transforms.h sincos_f32)."""
    w = (x >> 8) + u32(2097152)
    q = (w >> 22) & 3
    t = ((w & 0x3FFFFF).to(tl.int32) - 2097152).to(tl.float32) * P2_M22
    return _rotate(t, q, SIN_F32, SIN_F32_N, COS_F32, COS_F32_N)


@triton.jit
def sincos_f64(x):
    w = (x >> 11) + u64(1125899906842624)
    q = (w >> 51) & 3
    t = ((w & u64(0x7FFFFFFFFFFFF)).to(tl.int64) - 1125899906842624).to(tl.float64) * P2_M51
    return _rotate(t, q, SIN_F64, SIN_F64_N, COS_F64, COS_F64_N)


# ---------------------------------------------------------------- normal
@triton.jit
def box_muller_f32(xr, xa):
    r = sqrt(log_f32(uopen_f32(xr)) * -2.0)
    s, c = sincos_f32(xa)
    return r * c, r * s


@triton.jit
def box_muller_f64(xr, xa):
    r = sqrt(log_f64(uopen_f64(xr)) * -2.0)
    s, c = sincos_f64(xa)
    return r * c, r * s


# ---------------------------------------------------------------- inverse normal CDF
@triton.jit
def _ppnd(p, q, rt, A: tl.constexpr, B: tl.constexpr, C: tl.constexpr, D: tl.constexpr,
          E: tl.constexpr, F: tl.constexpr, N: tl.constexpr, CONST1: tl.constexpr, CONST2: tl.constexpr,
          SPLIT1: tl.constexpr):
    # A .. F: the AS241 tables, N coefficients each
    r = tl.fma(neg(q), q, cst(q, CONST1))
    zc = div(q * horner(r, A, N), horner(r, B, N))
    t1 = rt - cst(rt, CONST2)
    t2 = rt - 5.0
    z1 = div(horner(t1, C, N), horner(t1, D, N))
    z2 = div(horner(t2, E, N), horner(t2, F, N))
    zt = tl.where(rt <= 5.0, z1, z2)
    zt = tl.where(q < 0.0, neg(zt), zt)
    return tl.where(tl.abs(q) <= cst(q, SPLIT1), zc, zt)


@triton.jit
def ppnd_f32(p):
    """Wichura's AS241 (transforms.h ppnd_f32)."""
    q = p - 0.5
    pm = 1.0 - p
    pm = tl.where(p < pm, p, pm)
    pm = tl.where(pm < P2_M126, cst(pm, P2_M126), pm)
    rt = sqrt(neg(log_f32(pm)))
    return _ppnd(p, q, rt, PPND_A_F32, PPND_B_F32, PPND_C_F32, PPND_D_F32, PPND_E_F32, PPND_F_F32,
                 PPND_A_F32_N, PPND_CONST1_F32, PPND_CONST2_F32, PPND_SPLIT1_F32)


@triton.jit
def ppnd_f64(p):
    q = p - 0.5
    pm = 1.0 - p
    pm = tl.where(p < pm, p, pm)
    pm = tl.where(pm < cst(pm, P2_M1022), cst(pm, P2_M1022), pm)
    rt = sqrt(neg(log_f64(pm)))
    return _ppnd(p, q, rt, PPND_A_F64, PPND_B_F64, PPND_C_F64, PPND_D_F64, PPND_E_F64, PPND_F_F64,
                 PPND_A_F64_N, PPND_CONST1_F64, PPND_CONST2_F64, PPND_SPLIT1_F64)


# ---------------------------------------------------------------- per-call parameters
@triton.jit
def param(lo, hi, F64: tl.constexpr):
    """A parameter from the int32 halves of its bits: binary64 (hi:lo) or binary32 (lo)."""
    if F64:
        bits = (hi.to(tl.uint32, bitcast=True).to(tl.uint64) << 32) | lo.to(tl.uint32, bitcast=True).to(tl.uint64)
        return bits.to(tl.float64, bitcast=True)
    else:
        return lo.to(tl.uint32, bitcast=True).to(tl.float32, bitcast=True)


# ---------------------------------------------------------------- distributions
@triton.jit
def _trunc(u, p0, p1, p2, p3, p4, p5, F64: tl.constexpr):
    # p = (pa, dp, mean, sstd, lo, hi), all in the compute type
    if F64:
        z = ppnd_f64(tl.fma(u, p1, p0))
    else:
        z = ppnd_f32(tl.fma(u, p1, p0))
    w = tl.fma(z, p3, p2)
    w = tl.where(w < p4, p4, w)
    w = tl.where(w > p5, p5, w)
    return w


@triton.jit
def values_f32(x0, x1, x2, x3, p0, p1, p2, p3, p4, p5, DIST: tl.constexpr):
    """The four binary32 values of one Philox call (elements 4c .. 4c+3)."""
    if DIST == UNIFORM:  # p = (c(a), c(b) - c(a))
        v0 = tl.fma(u01_f32(x0), p1, p0)
        v1 = tl.fma(u01_f32(x1), p1, p0)
        v2 = tl.fma(u01_f32(x2), p1, p0)
        v3 = tl.fma(u01_f32(x3), p1, p0)
    elif DIST == NORMAL:  # p = (c(mean), c(std))
        z0, z1 = box_muller_f32(x0, x1)
        z2, z3 = box_muller_f32(x2, x3)
        v0 = tl.fma(z0, p1, p0)
        v1 = tl.fma(z1, p1, p0)
        v2 = tl.fma(z2, p1, p0)
        v3 = tl.fma(z3, p1, p0)
    else:
        v0 = _trunc(uopen_f32(x0), p0, p1, p2, p3, p4, p5, False)
        v1 = _trunc(uopen_f32(x1), p0, p1, p2, p3, p4, p5, False)
        v2 = _trunc(uopen_f32(x2), p0, p1, p2, p3, p4, p5, False)
        v3 = _trunc(uopen_f32(x3), p0, p1, p2, p3, p4, p5, False)
    return v0, v1, v2, v3


@triton.jit
def values_f64(x0, x1, x2, x3, p0, p1, p2, p3, p4, p5, DIST: tl.constexpr):
    """The two binary64 values of one Philox call (elements 2c, 2c+1)."""
    w01 = join64(x0, x1)
    w23 = join64(x2, x3)
    if DIST == UNIFORM:
        v0 = tl.fma(u01_f64(w01), p1, p0)
        v1 = tl.fma(u01_f64(w23), p1, p0)
    elif DIST == NORMAL:
        z0, z1 = box_muller_f64(w01, w23)
        v0 = tl.fma(z0, p1, p0)
        v1 = tl.fma(z1, p1, p0)
    else:
        v0 = _trunc(uopen_f64(w01), p0, p1, p2, p3, p4, p5, True)
        v1 = _trunc(uopen_f64(w23), p0, p1, p2, p3, p4, p5, True)
    return v0, v1


@triton.jit
def values(call, stream_lo, stream_hi, seed_lo, seed_hi, p0, p1, p2, p3, p4, p5,
           DIST: tl.constexpr, F64: tl.constexpr):
    """Values of calls `call` ([B] int64), interleaved in element order: [4B] (binary32) or
    [2B] (binary64); element e of the result is global element L * call[0] + e."""
    x0, x1, x2, x3 = philox_calls(call, stream_lo, stream_hi, seed_lo, seed_hi)
    if F64:
        v0, v1 = values_f64(x0, x1, x2, x3, p0, p1, p2, p3, p4, p5, DIST)
        return tl.interleave(v0, v1)
    else:
        v0, v1, v2, v3 = values_f32(x0, x1, x2, x3, p0, p1, p2, p3, p4, p5, DIST)
        return tl.interleave(tl.interleave(v0, v2), tl.interleave(v1, v3))


# ---------------------------------------------------------------- output rounding
@triton.jit
def bf16_bits(x):
    """binary32 -> bfloat16 bits, round to nearest even (transforms.h bf16_bits), as uint32."""
    b = x.to(tl.uint32, bitcast=True)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return tl.where(nan, u32(0x7FC0), r)


@triton.jit
def f16_bits(x):
    """binary32 -> float16 bits, round to nearest even (transforms.h f16_bits), as uint32.
    The branches of transforms.h become selects; the subnormal shift is clamped into its
    range so that no lane shifts by 32 or more."""
    b = x.to(tl.uint32, bitcast=True)
    sign = (b >> 16) & 0x8000
    a = b & 0x7FFFFFFF
    # normal half
    m = a + 0xFFF + ((a >> 13) & 1)
    hn = sign | ((m - 0x38000000) >> 13)
    # subnormal half: RNE(x * 2^24), x = mant 2^(e-150)
    shift = 126 - (a >> 23).to(tl.int32)
    sh = tl.minimum(tl.maximum(shift, 14), 24).to(tl.uint32)
    mant = (a & 0x007FFFFF) | 0x00800000
    r = mant >> sh
    rem = mant & ((u32(1) << sh) - 1)
    half = u32(1) << (sh - 1)
    up = (rem > half) | ((rem == half) & ((r & 1) != 0))
    hs = sign | (r + tl.where(up, u32(1), u32(0)))
    hs = tl.where(shift > 24, sign, hs)
    h = tl.where(a >= 0x38800000, hn, hs)
    h = tl.where(a >= 0x477FF000, sign | 0x7C00, h)
    return tl.where(a > 0x7F800000, u32(0x7E00), h)


@triton.jit
def store(ptr, idx, v, mask, OUT: tl.constexpr):
    """Stores values v (compute type) rounded to the output dtype at ptr[idx]. float16 and
    bfloat16 outputs are written through an int16 pointer (the bits of transforms.h)."""
    if OUT == OUT_F16:
        tl.store(ptr + idx, f16_bits(v).to(tl.uint16).to(tl.int16, bitcast=True), mask=mask)
    elif OUT == OUT_BF16:
        tl.store(ptr + idx, bf16_bits(v).to(tl.uint16).to(tl.int16, bitcast=True), mask=mask)
    else:
        tl.store(ptr + idx, v, mask=mask)
