"""The pure-Python reference of paramops stream v1, written with torch tensor ops.

It is the fallback backend (any device torch supports) and the spec the tests hold the
compiled kernels to. It follows csrc/paramops/{philox,transforms}.h operation by
operation; docs/stream.md describes the same steps in prose. Readability first: it
recomputes what it needs and makes no attempt at speed beyond vectorizing.

Lanes and words are held as int64 tensors with values in [0, 2^32) resp. split into
(lo, hi) pairs, since torch has no full uint64 arithmetic.
"""
import functools
import math
import struct

import numpy as np
import torch

from ..core import codes as _codes
from . import constants as K
from .fmath import fma32, fma64, fma_scalar, horner

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
I64 = torch.int64


# ------------------------------------------------------------------ Philox4x32-10
def _mulhilo(a, m):
    """(hi, lo) of a * m for int64 tensors a < 2^32 and a 32-bit constant m, without overflow."""
    x1 = a * (m & 0xFFFF)
    x2 = a * (m >> 16)
    t = x1 + ((x2 & 0xFFFF) << 16)
    return (x2 >> 16) + (t >> 32), t & M32


def philox(calls, stream, seed):
    """Philox4x32-10 lanes (x0, x1, x2, x3) for int64 tensor `calls` (call indices >= 0)."""
    seed &= M64
    stream &= M64
    c0 = calls & M32
    c1 = (calls >> 32) & M32
    c2 = torch.full_like(calls, stream & M32)
    c3 = torch.full_like(calls, stream >> 32)
    k0, k1 = seed & M32, seed >> 32
    for _ in range(10):
        hi0, lo0 = _mulhilo(c0, 0xD2511F53)
        hi1, lo1 = _mulhilo(c2, 0xCD9E8D57)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


# ------------------------------------------------------------------ compute types
class _F32:
    dtype = torch.float32
    fma = staticmethod(fma32)
    mant, bias, sqrt2_bits = 23, 127, 0x3FB504F3
    min_normal = 2.0 ** -126
    LOG_P, SIN, COS = K.LOG_P_F32, K.SIN_F32, K.COS_F32
    LN2_HI, LN2_LO = K.LN2_HI_F32, K.LN2_LO_F32
    PPND = (K.PPND_A_F32, K.PPND_B_F32, K.PPND_C_F32, K.PPND_D_F32, K.PPND_E_F32, K.PPND_F_F32)
    PPND_SPLIT1, PPND_CONST1, PPND_CONST2 = K.PPND_SPLIT1_F32, K.PPND_CONST1_F32, K.PPND_CONST2_F32

    @staticmethod
    def bits(x):
        return x.view(torch.int32).to(I64) & M32

    @staticmethod
    def from_bits(b):
        return b.to(torch.int32).view(torch.float32)

    @staticmethod
    def cast(v):
        """RN of a Python float to binary32, as an exact Python float."""
        return struct.unpack("f", struct.pack("f", v))[0]


class _F64(_F32):
    dtype = torch.float64
    fma = staticmethod(fma64)
    mant, bias, sqrt2_bits = 52, 1023, 0x3FF6A09E667F3BCD
    min_normal = 2.0 ** -1022
    LOG_P, SIN, COS = K.LOG_P_F64, K.SIN_F64, K.COS_F64
    LN2_HI, LN2_LO = K.LN2_HI_F64, K.LN2_LO_F64
    PPND = (K.PPND_A_F64, K.PPND_B_F64, K.PPND_C_F64, K.PPND_D_F64, K.PPND_E_F64, K.PPND_F_F64)
    PPND_SPLIT1, PPND_CONST1, PPND_CONST2 = K.PPND_SPLIT1_F64, K.PPND_CONST1_F64, K.PPND_CONST2_F64

    @staticmethod
    def bits(x):
        return x.view(I64)

    @staticmethod
    def from_bits(b):
        return b.view(torch.float64)

    @staticmethod
    def cast(v):
        return float(v)


def compute_type(dtype):
    return _F64 if dtype == torch.float64 else _F32


def sqrt(x):
    """Correctly rounded square root.

    torch.sqrt on the CPU is not correctly rounded (torch 2.13's AVX-512 path is off by
    one ulp for ~15% of float32 inputs), so the reference takes numpy's, which uses the
    IEEE hardware instruction."""
    return torch.from_numpy(np.sqrt(x.detach().cpu().numpy())).to(x.device)


# ------------------------------------------------------------------ uniforms
def u01_f32(x):
    return (x >> 8).to(torch.float32) * 2.0 ** -24


def uopen_f32(x):
    return fma32((x >> 8).to(torch.float32), 2.0 ** -24, ((x & 0xFF).to(torch.float32) + 0.5) * 2.0 ** -32)


def u01_f64(lo, hi):
    return ((hi << 21) | (lo >> 11)).to(torch.float64) * 2.0 ** -53


def uopen_f64(lo, hi):
    w = ((hi << 21) | (lo >> 11)).to(torch.float64)
    return fma64(w, 2.0 ** -53, ((lo & 0x7FF).to(torch.float64) + 0.5) * 2.0 ** -64)


# ------------------------------------------------------------------ log, sin/cos
def log(C, x):
    """Natural log of positive normal x (transforms.h log_f32/log_f64)."""
    b = C.bits(x)
    e = (b >> C.mant) - C.bias
    mb = (b & ((1 << C.mant) - 1)) | (C.bias << C.mant)
    big = mb > C.sqrt2_bits
    mb = torch.where(big, mb - (1 << C.mant), mb)
    e = e + big.to(I64)
    f = C.from_bits(mb) - 1.0
    s = f / (2.0 + f)
    z = s * s
    s2 = s + s
    lnm = C.fma(s2, z * horner(C.fma, C.LOG_P, z), s2)
    ef = e.to(C.dtype)
    return C.fma(ef, C.LN2_HI, C.fma(ef, C.LN2_LO, lnm))


def _sincos(C, w, qshift):
    """sin, cos of the angle (q + t) pi/2 from W = w + 2^(qshift-1) (transforms.h sincos_*)."""
    half = 1 << (qshift - 1)
    w = w + half
    q = (w >> qshift) & 3
    t = ((w & ((1 << qshift) - 1)) - half).to(C.dtype) * 2.0 ** -qshift
    t2 = t * t
    sp = t * horner(C.fma, C.SIN, t2)
    cp = horner(C.fma, C.COS, t2)
    odd = (q & 1) == 1
    cc = torch.where(odd, sp, cp)
    ss = torch.where(odd, cp, sp)
    c = torch.where((q == 1) | (q == 2), -cc, cc)
    s = torch.where((q & 2) == 2, -ss, ss)
    return s, c


def box_muller_f32(xr, xa):
    r = sqrt(log(_F32, uopen_f32(xr)) * -2.0)
    s, c = _sincos(_F32, xa >> 8, 22)
    return r * c, r * s


def box_muller_f64(rlo, rhi, alo, ahi):
    r = sqrt(log(_F64, uopen_f64(rlo, rhi)) * -2.0)
    s, c = _sincos(_F64, (ahi << 21) | (alo >> 11), 51)
    return r * c, r * s


# ------------------------------------------------------------------ inverse normal CDF
def ppnd(C, p):
    A, B, Cc, D, E, F = C.PPND
    q = p - 0.5
    r = C.fma(-q, q, C.PPND_CONST1)
    zc = (q * horner(C.fma, A, r)) / horner(C.fma, B, r)
    pm = 1.0 - p
    pm = torch.where(p < pm, p, pm)
    pm = torch.clamp_min(pm, C.min_normal)
    rt = sqrt(-log(C, pm))
    t1 = rt - C.PPND_CONST2
    t2 = rt - 5.0
    z1 = horner(C.fma, Cc, t1) / horner(C.fma, D, t1)
    z2 = horner(C.fma, E, t2) / horner(C.fma, F, t2)
    zt = torch.where(rt <= 5.0, z1, z2)
    zt = torch.where(q < 0, -zt, zt)
    return torch.where(q.abs() <= C.PPND_SPLIT1, zc, zt)


# ------------------------------------------------------------------ per-call constants (Python floats)
def _f64_from_bits(u):
    return struct.unpack("<d", struct.pack("<Q", u))[0]


def exp_neg(x):
    """exp(x) for x <= 0 (transforms.h exp_neg_f64)."""
    if x < -745.5:
        return 0.0
    n = fma_scalar(x, K.INV_LN2_F64, 6755399441055744.0) - 6755399441055744.0
    r = fma_scalar(-n, K.LN2_HI_F64, x)
    r = fma_scalar(-n, K.LN2_LO_F64, r)
    p = horner(fma_scalar, K.EXP_P, r)
    ni = int(n)
    n1 = ni >> 1
    n2 = ni - n1
    return (p * _f64_from_bits((n1 + 1023) << 52)) * _f64_from_bits((n2 + 1023) << 52)


def normal_cdf(x):
    """Phi(x) for finite x (transforms.h normal_cdf)."""
    y = abs(x)
    if y <= K.CODY_SPLIT1:
        s = x * x
        return 0.5 + (x * horner(fma_scalar, K.CODY_N1, s)) / horner(fma_scalar, K.CODY_D1, s)
    if y >= 38.4674:
        tail = 0.0
    else:
        if y <= K.SQRT_32:
            t = horner(fma_scalar, K.CODY_N2, y) / horner(fma_scalar, K.CODY_D2, y)
        else:
            s = 1.0 / (y * y)
            t = (K.INV_SQRT_2PI - (s * horner(fma_scalar, K.CODY_N3, s)) / horner(fma_scalar, K.CODY_D3, s)) / y
        ysq = float(math.trunc(y * 16.0)) * 0.0625
        d = (y - ysq) * (y + ysq)
        tail = (exp_neg(ysq * ysq * -0.5) * exp_neg(d * -0.5)) * t
    return 1.0 - tail if x > 0.0 else tail


@functools.lru_cache(maxsize=1024)
def trunc_setup(mean, std, a, b, f64):
    """(pa, dp, sstd, ok, tail) as transforms.h trunc_setup (bounds already trunc_bound's)."""
    al, be = (a - mean) / std, (b - mean) / std
    flip = al + be > 0.0
    lo, hi = (-be, -al) if flip else (al, be)
    pa = normal_cdf(lo)
    pb = normal_cdf(hi)
    dp = pb - pa
    tail = not pb >= (2.0 ** -1000 if f64 else 2.0 ** -100)
    return pa, dp, (-std if flip else std), not tail and dp > 0.0, tail


def dtype_max(dtype):
    """The largest finite value of dtype (transforms.h dtype_max)."""
    return float(torch.finfo(dtype).max)


def trunc_bound(a, dtype):
    """trunc_normal_'s bound as used (transforms.h trunc_bound): +-inf is the dtype's extreme."""
    if math.isinf(a):
        return -dtype_max(dtype) if a < 0 else dtype_max(dtype)
    return a


@functools.lru_cache(maxsize=1024)
def dtype_bound(a, dtype, up):
    """Smallest value of dtype >= a (up) or largest <= a, as a Python float (transforms.h)."""
    if dtype == torch.float64:
        return a
    direction = math.inf if up else -math.inf
    f = _F32.cast(a)
    if (f < a) if up else (f > a):
        f = torch.nextafter(torch.tensor(f, dtype=torch.float32), torch.tensor(direction, dtype=torch.float32)).item()
    if dtype == torch.float32:
        return f
    h = torch.tensor(f, dtype=torch.float32).to(dtype)
    if (h.item() < f) if up else (h.item() > f):
        bits = h.view(torch.int16).to(I64).item() & 0xFFFF
        mag, neg = bits & 0x7FFF, bool(bits & 0x8000)
        if mag == 0:
            bits = 1 if up else 0x8001
        else:
            bits = bits - 1 if neg == up else bits + 1
        h = torch.tensor(bits - (1 << 16) if bits >= 0x8000 else bits, dtype=torch.int16).view(dtype)
    return h.item()


# ------------------------------------------------------------------ distributions
def _calls(first, n, per_call, device):
    """Call indices covering global elements [first, first + n), and the skip into the first call."""
    c0 = first // per_call
    c1 = (first + n + per_call - 1) // per_call
    return torch.arange(c0, c1, dtype=I64, device=device), first - c0 * per_call


def kind_of(dist):
    """A kind code (paramops.core.codes) from a code or a name ("uniform", "normal", "trunc_normal")."""
    return _codes.KIND_NAME.index(dist) if isinstance(dist, str) else dist


def job_params(dist, params, dtype):
    """The six per-call parameters of csrc/cpu/checks.cpp's uniform_job / normal_job /
    trunc_normal_job, rounded to the compute type (exact Python floats), zero-padded:

      uniform       c(a), c(b) - c(a)  (the difference in compute-type arithmetic)
      normal        c(mean), c(std)
      trunc_normal  c(pa), c(dp), c(mean), c(sstd), c(lo), c(hi)  (trunc_bound, trunc_setup,
                    dtype_bound)

    dist: a kind code or name. Parameters must already be validated (paramops.spec.checks)."""
    kind = kind_of(dist)
    C = compute_type(dtype)
    if kind == _codes.UNIFORM:
        a, b = params
        if C is _F64:
            p = [a, b - a]
        else:
            ca, cb = np.float32(a), np.float32(b)
            p = [float(ca), float(cb - ca)]
    elif kind == _codes.NORMAL:
        p = list(params)
    elif kind == _codes.TRUNC:
        mean, std, a, b = params
        a, b = trunc_bound(a, dtype), trunc_bound(b, dtype)
        pa, dp, sstd, _, _ = trunc_setup(mean, std, a, b, C is _F64)
        p = [pa, dp, mean, sstd, dtype_bound(a, dtype, True), dtype_bound(b, dtype, False)]
    else:
        raise ValueError(f"unknown distribution {dist!r}")
    return [C.cast(x) for x in p] + [0.0] * (6 - len(p))


def generate(dist, params, dtype, n, first, seed, stream, device="cpu"):
    """Values of global elements [first, first + n) as a 1-d tensor of `dtype`.

    dist is a kind code or "uniform" (a, b), "normal" (mean, std) or "trunc_normal" (mean,
    std, a, b). Parameters must already be validated (paramops.spec.checks)."""
    return generate_job(dist, job_params(dist, params, dtype), dtype, n, first, seed, stream, device)


def generate_job(dist, p, dtype, n, first, seed, stream, device="cpu"):
    """generate() from the six per-call parameters p of job_params (what a writer gets)."""
    kind = kind_of(dist)
    C = compute_type(dtype)
    per_call = 2 if C is _F64 else 4
    calls, skip = _calls(first, n, per_call, device)
    x0, x1, x2, x3 = philox(calls, stream, seed)
    if kind == _codes.UNIFORM:
        a, rng = p[0], p[1]
        if C is _F32:
            u = torch.stack([u01_f32(x) for x in (x0, x1, x2, x3)], 1)
        else:
            u = torch.stack([u01_f64(x0, x1), u01_f64(x2, x3)], 1)
        v = C.fma(u, rng, a)
    elif kind == _codes.NORMAL:
        mean, std = p[0], p[1]
        if C is _F32:
            z0, z1 = box_muller_f32(x0, x1)
            z2, z3 = box_muller_f32(x2, x3)
            z = torch.stack([z0, z1, z2, z3], 1)
        else:
            z = torch.stack(box_muller_f64(x0, x1, x2, x3), 1)
        v = C.fma(z, std, mean)
    elif kind == _codes.TRUNC:
        pa, dp, mean, sstd, lo, hi = p
        if C is _F32:
            u = torch.stack([uopen_f32(x) for x in (x0, x1, x2, x3)], 1)
        else:
            u = torch.stack([uopen_f64(x0, x1), uopen_f64(x2, x3)], 1)
        v = C.fma(ppnd(C, C.fma(u, dp, pa)), sstd, mean)
        v = torch.clamp(v, lo, hi)
    else:
        raise ValueError(f"unknown distribution {dist!r}")
    v = v.reshape(-1)[skip:skip + n]
    return v.to(dtype)
