"""The reference's emulated fma is the correctly rounded fma (checked with exact rationals)."""
from fractions import Fraction

import numpy as np
import torch

from paramops.spec.fmath import fma32, fma64


def _operands(dtype, n, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dtype=torch.float64, generator=g) * torch.exp2(torch.randint(-20, 20, (n,), generator=g).double())
    b = torch.randn(n, dtype=torch.float64, generator=g) * torch.exp2(torch.randint(-20, 20, (n,), generator=g).double())
    a, b = a.to(dtype), b.to(dtype)
    # half the c values nearly cancel a*b: the hard cases for an fma
    near = -(a.double() * b.double()) * (1 + torch.randn(n, dtype=torch.float64, generator=g) * 1e-6)
    far = torch.randn(n, dtype=torch.float64, generator=g)
    c = torch.where(torch.rand(n, generator=g) < 0.5, near, far).to(dtype)
    return a, b, c


def _exact_f32(fr):
    """Correct rounding of a Fraction to float32 (numpy float32 candidates around it)."""
    x = np.float32(float(fr))
    cands = [np.nextafter(x, np.float32(-np.inf)), x, np.nextafter(x, np.float32(np.inf))]
    best = min(cands, key=lambda v: (abs(Fraction(float(v)) - fr), int(np.array(v).view(np.uint32)) & 1))
    return float(best)


def test_fma64_exact():
    a, b, c = _operands(torch.float64, 20000, 1)
    r = fma64(a, b, c)
    for i in range(0, 20000, 3):
        exact = Fraction(a[i].item()) * Fraction(b[i].item()) + Fraction(c[i].item())
        assert r[i].item() == float(exact), i


def test_fma32_exact():
    a, b, c = _operands(torch.float32, 6000, 2)
    r = fma32(a, b, c)
    for i in range(6000):
        exact = Fraction(a[i].item()) * Fraction(b[i].item()) + Fraction(c[i].item())
        assert r[i].item() == _exact_f32(exact), i


def test_fma64_huge_operands():
    """Operands above 2^996 (the Veltkamp split's overflow point) with a finite product."""
    g = torch.Generator().manual_seed(3)
    n = 4000
    big = torch.randn(n, dtype=torch.float64, generator=g) * 1e307
    small = torch.randn(n, dtype=torch.float64, generator=g) * 1e-3
    c = torch.randn(n, dtype=torch.float64, generator=g) * 1e303
    for a, b in ((big, small), (small, big)):
        r = fma64(a, b, c)
        for i in range(0, n, 7):
            exact = Fraction(a[i].item()) * Fraction(b[i].item()) + Fraction(c[i].item())
            assert r[i].item() == float(exact), i
