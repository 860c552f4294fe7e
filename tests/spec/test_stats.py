"""Statistical quality: KS tests, moments and tails, with fixed seeds and large samples."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import paramops
from paramops.spec import reference as R

N = 1_000_000


def _np(t):
    return t.double().numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normal_ks_and_moments(dtype):
    x = _np(paramops.normal_(torch.empty(N, dtype=dtype), 0.5, 2.0, seed=2024))
    assert stats.kstest(x, stats.norm(0.5, 2.0).cdf).pvalue > 1e-3
    se = 2.0 / math.sqrt(N)
    assert abs(x.mean() - 0.5) < 5 * se
    assert abs(x.std() / 2.0 - 1) < 5 * math.sqrt(0.5 / N)
    assert abs(stats.skew(x)) < 5 * math.sqrt(6 / N)
    assert abs(stats.kurtosis(x)) < 5 * math.sqrt(24 / N)


def test_normal_lag_independence():
    """Neighbouring elements (same Philox call, same Box-Muller pair) are uncorrelated."""
    x = _np(paramops.normal_(torch.empty(N), seed=9))
    for lag in (1, 2, 3, 4):
        r = np.corrcoef(x[:-lag], x[lag:])[0, 1]
        assert abs(r) < 5 / math.sqrt(N), lag
    pairs = x.reshape(-1, 2)  # z0 = r cos, z1 = r sin share r
    r2 = np.corrcoef(pairs[:, 0] ** 2, pairs[:, 1] ** 2)[0, 1]
    assert abs(r2) < 5 / math.sqrt(N / 2)


def test_normal_tail_frequencies():
    """Counts beyond 3, 4 and 5 sigma in 2^24 draws match the normal law."""
    n = 1 << 24
    x = _np(paramops.normal_(torch.empty(n), seed=31337))
    for k in (3.0, 4.0, 5.0):
        p = 2 * stats.norm.sf(k)
        expected = n * p
        got = int((np.abs(x) > k).sum())
        assert abs(got - expected) < 6 * math.sqrt(expected) + 1, (k, got, expected)
    assert np.abs(x).max() > 5.0


@pytest.mark.parametrize("C,r_max", [(R._F32, 6.7), (R._F64, 9.4)])
def test_normal_support_reaches_beyond_5_5_sigma(C, r_max):
    """The smallest uniform the radius sees gives |z| > 5.5 at the four axis angles."""
    if C is R._F32:
        r = R.sqrt(R.log(C, R.uopen_f32(torch.tensor([0]))) * -2.0)
        angles = torch.tensor([0, 1 << 30, 2 << 30, 3 << 30])
        s, c = R._sincos(C, angles >> 8, 22)
    else:
        r = R.sqrt(R.log(C, R.uopen_f64(torch.tensor([0]), torch.tensor([0]))) * -2.0)
        angles = torch.tensor([0, 1 << 30, 2 << 30, 3 << 30])
        s, c = R._sincos(C, angles << 21, 51)
    assert r.item() > r_max
    z = torch.cat([r * c, r * s])
    assert z.max().item() > 5.5 and z.min().item() < -5.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_ks_and_range(dtype):
    x = _np(paramops.uniform_(torch.empty(N, dtype=dtype), -3.0, 5.0, seed=77))
    assert x.min() >= -3.0 and x.max() <= 5.0
    assert stats.kstest(x, stats.uniform(-3.0, 8.0).cdf).pvalue > 1e-3
    hist = np.histogram(x, bins=64, range=(-3, 5))[0]
    assert stats.chisquare(hist).pvalue > 1e-3


TRUNC = [(0.0, 1.0, -2.0, 2.0), (0.0, 1.0, 2.0, 3.0), (1.0, 0.5, -1.0, 1.2), (0.0, 1.0, -9.0, -8.0),
         (0.0, 0.02, -0.04, 0.04), (3.0, 2.0, 10.0, 10.5)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mean,std,a,b", TRUNC)
def test_trunc_normal_ks(dtype, mean, std, a, b):
    x = _np(paramops.trunc_normal_(torch.empty(N, dtype=dtype), mean, std, a, b, seed=5))
    assert x.min() >= a and x.max() <= b
    dist = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert stats.kstest(x, dist.cdf).pvalue > 1e-3
    assert abs(x.mean() - dist.mean()) < 5 * dist.std() / math.sqrt(N)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, 2.0, 3.0), (0.0, 1.0, -2.0, 2.0), (0.1, 1.0, -0.3, 0.7)])
def test_trunc_normal_bounds_no_pileup(dtype, mean, std, a, b):
    """No value outside [a, b] after rounding, and the boundary values get only their share."""
    x = paramops.trunc_normal_(torch.empty(N, dtype=dtype), mean, std, a, b, seed=11)
    v = x.double().numpy()
    assert v.min() >= a and v.max() <= b
    dist = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    values, counts = np.unique(v, return_counts=True)
    lo, hi = R.dtype_bound(a, dtype, True), R.dtype_bound(b, dtype, False)
    # probability mass that rounds to lo: [a, midpoint(lo, next value above lo))
    nxt = R.dtype_bound(float(np.nextafter(lo, np.inf)), dtype, True)
    prv = R.dtype_bound(float(np.nextafter(hi, -np.inf)), dtype, False)
    p_lo = dist.cdf((lo + nxt) / 2) - dist.cdf(a)
    p_hi = dist.cdf(b) - dist.cdf((prv + hi) / 2)
    for edge, p in ((lo, p_lo), (hi, p_hi)):
        got = int(counts[values == edge].sum())
        expected = N * p
        assert got <= expected + 6 * math.sqrt(expected) + 3, (edge, got, expected)
        assert got >= expected - 6 * math.sqrt(expected) - 3, (edge, got, expected)
