"""Exact IEEE arithmetic for the Python reference, in torch.

torch has no fused multiply-add, so the reference emulates it:

* binary32: a*b is exact in binary64; the sum p + c is rounded *to odd* in binary64
  (TwoSum gives the exact error), and rounding that to binary32 is then the correctly
  rounded fma (53 >= 2*24 + 2, Boldo & Melquiond 2008).
* binary64: Dekker's exact product (Veltkamp split) gives a*b = uh + ul; then
  (th, tl) = TwoSum(c, uh), v = RO(tl + ul), fma = RN(th + v) (Boldo & Melquiond,
  "Emulation of FMA and correctly-rounded sums", 2008). Tests compare it with exact
  rational arithmetic.

Scalar (Python float) versions use fractions, which are exact.
"""
from fractions import Fraction

import torch

_INF = float("inf")


def _two_sum(x, y):
    s = x + y
    bb = s - x
    return s, (x - (s - bb)) + (y - bb)


def _round_odd_sum(x, y):
    """x + y rounded to odd in binary64 (x, y float64 tensors)."""
    s, err = _two_sum(x, y)
    even = (s.view(torch.int64) & 1) == 0
    toward = torch.where(err > 0, _INF, -_INF).to(s.dtype)
    return torch.where((err != 0) & even, torch.nextafter(s, toward), s)


def _f64(x):
    return x if isinstance(x, torch.Tensor) and x.dtype == torch.float64 else torch.as_tensor(x, dtype=torch.float64)


def fma32(a, b, c):
    """Correctly rounded fma of binary32 values (tensors or exact-float32 Python floats)."""
    p = _f64(a) * _f64(b)  # exact: 24 + 24 bits
    return _round_odd_sum(p, _f64(c)).to(torch.float32)


_SPLIT_MAX = 2.0 ** 996  # above this, a * (2^27 + 1) would overflow


def _split(a):
    """Veltkamp split a = hi + lo (26 + 27 bits), exact; huge |a| are scaled by 2^-28 around
    it (powers of two: still exact), so no intermediate overflows."""
    big = a.abs() > _SPLIT_MAX
    s = torch.where(big, a * 2.0 ** -28, a)
    t = s * 134217729.0  # 2^27 + 1
    hi = t - (t - s)
    lo = s - hi
    return torch.where(big, hi * 2.0 ** 28, hi), torch.where(big, lo * 2.0 ** 28, lo)


def fma64(a, b, c):
    """Correctly rounded fma of binary64 tensors (a*b and the result finite; no underflow assumed)."""
    a, b, c = _f64(a), _f64(b), _f64(c)
    uh = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    ul = ((ah * bh - uh) + ah * bl + al * bh) + al * bl
    th, tl = _two_sum(c, uh)
    return th + _round_odd_sum(tl, ul)


def fma_scalar(a, b, c):
    """Correctly rounded binary64 fma of Python floats."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def horner(fma, coefs, x):
    """sum coefs[k] x^k by Horner with explicit fma, highest coefficient first."""
    p = coefs[-1]
    for c in reversed(coefs[:-1]):
        p = fma(p, x, c)
    return p
