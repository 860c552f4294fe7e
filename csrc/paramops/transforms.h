// paramops stream v1: from Philox lanes to values. The spec is docs/stream.md;
// paramops/spec/reference.py is the same sequence of operations in torch.
//
// Compute type: float for float16/bfloat16/float32 outputs, double for float64.
// Only +, -, *, fma, correctly rounded / and sqrt, exact conversions and bit
// operations appear, so every backend produces the same bits.
#pragma once
#include "paramops/common.h"
#include "paramops/codes.h"
#include "paramops/constants.h"

namespace paramops {

// ---------------------------------------------------------------- uniforms
PARAMOPS_HD uint64_t join64(uint32_t lo, uint32_t hi) { return ((uint64_t)hi << 32) | lo; }

// [0, 1): the top 24 (53) bits times 2^-24 (2^-53). Exact.
PARAMOPS_HD float u01_f32(uint32_t x) { return (float)(int32_t)(x >> 8) * 0x1p-24f; }
PARAMOPS_HD double u01_f64(uint64_t x) { return (double)(int64_t)(x >> 11) * 0x1p-53; }

// (0, 1]: RN((x + 1/2) / 2^32) (RN((x + 1/2) / 2^64)) with one rounding (the fma).
PARAMOPS_HD float uopen_f32(uint32_t x) {
  return fmaf((float)(int32_t)(x >> 8), 0x1p-24f, ((float)(int32_t)(x & 0xFFu) + 0.5f) * 0x1p-32f);
}
PARAMOPS_HD double uopen_f64(uint64_t x) {
  return fma((double)(int64_t)(x >> 11), 0x1p-53, ((double)(int32_t)(x & 0x7FFu) + 0.5) * 0x1p-64);
}

// ---------------------------------------------------------------- log
// Natural log of a positive normal x. x = m 2^e, m in [sqrt2/2, sqrt2),
// s = (m-1)/(m+1), log m = 2s + 2s z P(z) with z = s^2.
PARAMOPS_HD float log_f32(float x) {
  uint32_t b = f32_bits(x);
  int32_t e = (int32_t)(b >> 23) - 127;
  uint32_t mb = (b & 0x007FFFFFu) | 0x3F800000u;
  bool big = mb > 0x3FB504F3u;
  mb = big ? mb - 0x00800000u : mb;
  e = big ? e + 1 : e;
  float f = f32_from(mb) - 1.0f;
  float s = f / (2.0f + f);
  float z = s * s;
  float s2 = s + s;
  float lnm = fmaf(s2, z * k::LOG_P_F32(z), s2);
  float ef = (float)e;
  return fmaf(ef, k::LN2_HI_F32, fmaf(ef, k::LN2_LO_F32, lnm));
}
PARAMOPS_HD double log_f64(double x) {
  uint64_t b = f64_bits(x);
  int64_t e = (int64_t)(b >> 52) - 1023;
  uint64_t mb = (b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  bool big = mb > 0x3FF6A09E667F3BCDull;
  mb = big ? mb - 0x0010000000000000ull : mb;
  e = big ? e + 1 : e;
  double f = f64_from(mb) - 1.0;
  double s = f / (2.0 + f);
  double z = s * s;
  double s2 = s + s;
  double lnm = fma(s2, z * k::LOG_P_F64(z), s2);
  double ef = (double)e;
  return fma(ef, k::LN2_HI_F64, fma(ef, k::LN2_LO_F64, lnm));
}

// ---------------------------------------------------------------- sin/cos
// Angle 2 pi w / 2^24 (w = x >> 8), split as quadrant q and t in [-1/2, 1/2):
// angle = (q + t) pi / 2.
PARAMOPS_HD void sincos_f32(uint32_t x, float& s, float& c) {
  uint32_t w = (x >> 8) + (1u << 21);
  uint32_t q = (w >> 22) & 3u;
  float t = (float)((int32_t)(w & 0x3FFFFFu) - (1 << 21)) * 0x1p-22f;
  float t2 = t * t;
  float sp = t * k::SIN_F32(t2);
  float cp = k::COS_F32(t2);
  float cc = (q & 1u) ? sp : cp;
  float ss = (q & 1u) ? cp : sp;
  c = (q == 1u || q == 2u) ? -cc : cc;
  s = (q & 2u) ? -ss : ss;
}
// Angle 2 pi w / 2^53 (w = x >> 11).
PARAMOPS_HD void sincos_f64(uint64_t x, double& s, double& c) {
  uint64_t w = (x >> 11) + (1ull << 50);
  uint64_t q = (w >> 51) & 3u;
  double t = (double)((int64_t)(w & 0x7FFFFFFFFFFFFull) - (1ll << 50)) * 0x1p-51;
  double t2 = t * t;
  double sp = t * k::SIN_F64(t2);
  double cp = k::COS_F64(t2);
  double cc = (q & 1u) ? sp : cp;
  double ss = (q & 1u) ? cp : sp;
  c = (q == 1u || q == 2u) ? -cc : cc;
  s = (q & 2u) ? -ss : ss;
}

// ---------------------------------------------------------------- normal
// Box-Muller: radius from lane xr, angle from lane xa.
PARAMOPS_HD void box_muller_f32(uint32_t xr, uint32_t xa, float& z0, float& z1) {
  float r = sqrtf(log_f32(uopen_f32(xr)) * -2.0f);
  float s, c;
  sincos_f32(xa, s, c);
  z0 = r * c;
  z1 = r * s;
}
PARAMOPS_HD void box_muller_f64(uint64_t xr, uint64_t xa, double& z0, double& z1) {
  double r = sqrt(log_f64(uopen_f64(xr)) * -2.0);
  double s, c;
  sincos_f64(xa, s, c);
  z0 = r * c;
  z1 = r * s;
}

// ---------------------------------------------------------------- inverse normal CDF
// Wichura's AS241 (PPND16) for p in (0, 1); p <= 0 or p >= 1 is treated as the
// smallest normal number away from the edge.
PARAMOPS_HD float ppnd_f32(float p) {
  float q = p - 0.5f;
  float r = fmaf(-q, q, k::PPND_CONST1_F32);
  float zc = (q * k::PPND_A_F32(r)) / k::PPND_B_F32(r);
  float pm = 1.0f - p;
  pm = p < pm ? p : pm;
  pm = pm < 0x1p-126f ? 0x1p-126f : pm;
  float rt = sqrtf(-log_f32(pm));
  float t1 = rt - k::PPND_CONST2_F32;
  float t2 = rt - 5.0f;
#if defined(__CUDA_ARCH__)
  // GPU: rt > 5 (p < 1.4e-11) is all but never taken, so evaluate only the
  // branch taken (the same operations, hence the same bits): one division and
  // two polynomials less per element.
  float zt = rt <= 5.0f ? k::PPND_C_F32(t1) / k::PPND_D_F32(t1) : k::PPND_E_F32(t2) / k::PPND_F_F32(t2);
#else
  float z1 = k::PPND_C_F32(t1) / k::PPND_D_F32(t1);
  float z2 = k::PPND_E_F32(t2) / k::PPND_F_F32(t2);
  float zt = rt <= 5.0f ? z1 : z2;
#endif
  zt = q < 0.0f ? -zt : zt;
  return fabsf(q) <= k::PPND_SPLIT1_F32 ? zc : zt;
}
PARAMOPS_HD double ppnd_f64(double p) {
  double q = p - 0.5;
  double r = fma(-q, q, k::PPND_CONST1_F64);
  double zc = (q * k::PPND_A_F64(r)) / k::PPND_B_F64(r);
  double pm = 1.0 - p;
  pm = p < pm ? p : pm;
  pm = pm < 0x1p-1022 ? 0x1p-1022 : pm;
  double rt = sqrt(-log_f64(pm));
  double t1 = rt - k::PPND_CONST2_F64;
  double t2 = rt - 5.0;
#if defined(__CUDA_ARCH__)
  double zt = rt <= 5.0 ? k::PPND_C_F64(t1) / k::PPND_D_F64(t1) : k::PPND_E_F64(t2) / k::PPND_F_F64(t2);
#else
  double z1 = k::PPND_C_F64(t1) / k::PPND_D_F64(t1);
  double z2 = k::PPND_E_F64(t2) / k::PPND_F_F64(t2);
  double zt = rt <= 5.0 ? z1 : z2;
#endif
  zt = q < 0.0 ? -zt : zt;
  return fabs(q) <= k::PPND_SPLIT1_F64 ? zc : zt;
}

// ---------------------------------------------------------------- per-element values
// The distributions' last steps (docs/stream.md §4), shared by the CPU
// generator (cpu/generate.h) and the CUDA kernels (cuda/generate.cuh).
// uniform_: fma(u01, c(b) - c(a), c(a)).
PARAMOPS_HD float uniform_value_f32(uint32_t x, float a, float range) { return fmaf(u01_f32(x), range, a); }
PARAMOPS_HD double uniform_value_f64(uint64_t w, double a, double range) { return fma(u01_f64(w), range, a); }
// normal_: a Box-Muller variate z scaled, fma(z, c(std), c(mean)).
PARAMOPS_HD float normal_value_f32(float z, float mean, float std) { return fmaf(z, std, mean); }
PARAMOPS_HD double normal_value_f64(double z, double mean, double std) { return fma(z, std, mean); }
// trunc_normal_: PPND of fma(uopen, c(dp), c(pa)), scaled, clamped into [c(lo), c(hi)].
PARAMOPS_HD float trunc_value_f32(uint32_t x, float pa, float dp, float mean, float sstd, float lo, float hi) {
  float z = ppnd_f32(fmaf(uopen_f32(x), dp, pa));
  float w = fmaf(z, sstd, mean);
  w = w < lo ? lo : w;
  w = w > hi ? hi : w;
  return w;
}
PARAMOPS_HD double trunc_value_f64(uint64_t x, double pa, double dp, double mean, double sstd, double lo,
                                   double hi) {
  double z = ppnd_f64(fma(uopen_f64(x), dp, pa));
  double w = fma(z, sstd, mean);
  w = w < lo ? lo : w;
  w = w > hi ? hi : w;
  return w;
}

// ---------------------------------------------------------------- output rounding
// float -> bfloat16 / float16 bits, round to nearest even (as torch's .to()).
PARAMOPS_HD uint16_t bf16_bits(float x) {
  uint32_t b = f32_bits(x);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)0x7FC0u;
  b += 0x7FFFu + ((b >> 16) & 1u);
  return (uint16_t)(b >> 16);
}
PARAMOPS_HD uint16_t f16_bits(float x) {
  uint32_t b = f32_bits(x);
  uint32_t sign = (b >> 16) & 0x8000u;
  uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return (uint16_t)0x7E00u;               // NaN
  if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);     // rounds to inf
  if (a >= 0x38800000u) {                                       // normal half
    uint32_t m = a + 0xFFFu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((m - 0x38000000u) >> 13));
  }
  // subnormal half: RNE(x * 2^24) with x = mant 2^(e-150), mant 24 bits
  int32_t shift = 126 - (int32_t)(a >> 23);                     // >= 14
  if (shift > 24) return (uint16_t)sign;
  uint32_t mant = (a & 0x007FFFFFu) | 0x00800000u;
  uint32_t r = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  r += (rem > half || (rem == half && (r & 1u))) ? 1u : 0u;
  return (uint16_t)(sign | r);
}

// ---------------------------------------------------------------- output dtypes (codes.h: DT_*)

PARAMOPS_HD float bf16_value(uint16_t h) { return f32_from((uint32_t)h << 16); }
PARAMOPS_HD float f16_value(uint16_t h) {
  uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
  uint32_t e = ((uint32_t)h >> 10) & 0x1Fu, m = (uint32_t)h & 0x3FFu;
  if (e == 0x1Fu) return f32_from(sign | 0x7F800000u | (m << 13));
  if (e != 0u) return f32_from(sign | ((e + 112u) << 23) | (m << 13));
  float v = (float)(int32_t)m * 0x1p-24f;  // subnormal: exact
  return sign ? -v : v;
}
// Neighbours in a sign-magnitude binary format (finite x).
PARAMOPS_HD uint32_t bits_next(uint32_t b, uint32_t sign_bit, bool up) {
  uint32_t mag = b & (sign_bit - 1u);
  bool neg = (b & sign_bit) != 0u;
  if (mag == 0u) return up ? 1u : (sign_bit | 1u);
  return (neg == up) ? b - 1u : b + 1u;
}

// The smallest value of `dtype` >= a (up) or the largest <= a (down), as a
// double; +-inf when there is none. Used for trunc_normal_'s clamp bounds.
PARAMOPS_HD double dtype_bound(double a, int dtype, bool up) {
  if (dtype == DT_F64) return a;
  float f = (float)a;
  if (up ? (double)f < a : (double)f > a) f = f32_from(bits_next(f32_bits(f), 0x80000000u, up));
  if (dtype == DT_F32) return (double)f;
  uint16_t h = dtype == DT_F16 ? f16_bits(f) : bf16_bits(f);
  float v = dtype == DT_F16 ? f16_value(h) : bf16_value(h);
  if (up ? v < f : v > f) {
    h = (uint16_t)bits_next(h, 0x8000u, up);
    v = dtype == DT_F16 ? f16_value(h) : bf16_value(h);
  }
  return (double)v;
}

// The largest finite value of `dtype`, as a double.
PARAMOPS_HD double dtype_max(int dtype) {
  switch (dtype) {
    case DT_F16: return 65504.0;
    case DT_BF16: return (double)bf16_value(0x7F7Fu);
    case DT_F32: return (double)f32_from(0x7F7FFFFFu);
    default: return f64_from(0x7FEFFFFFFFFFFFFFull);
  }
}

// trunc_normal_'s bound as it is used: an infinite bound is the dtype's extreme finite
// value, so that the truncated distribution is exactly the normal restricted to what the
// dtype can hold (no value is ever +-inf); a finite bound as given.
PARAMOPS_HD double trunc_bound(double a, int dtype) {
  if ((f64_bits(a) & 0x7FFFFFFFFFFFFFFFull) == 0x7FF0000000000000ull) return a < 0.0 ? -dtype_max(dtype) : dtype_max(dtype);
  return a;
}

// ---------------------------------------------------------------- per-call constants (double)
// exp(x) for x <= 0: Cody-Waite reduction, degree-13 Taylor polynomial.
PARAMOPS_HD double exp_neg_f64(double x) {
  if (x < -745.5) return 0.0;
  double n = fma(x, k::INV_LN2_F64, 0x1.8p52) - 0x1.8p52;  // nearest integer
  double r = fma(-n, k::LN2_HI_F64, x);
  r = fma(-n, k::LN2_LO_F64, r);
  double p = k::EXP_P(r);
  int64_t ni = (int64_t)n;
  int64_t n1 = ni >> 1, n2 = ni - n1;  // floor division: both stay >= -540
  double s1 = f64_from((uint64_t)(n1 + 1023) << 52);
  double s2 = f64_from((uint64_t)(n2 + 1023) << 52);
  return (p * s1) * s2;
}

// Phi(x) = P[Z <= x] for finite x, Cody's rational approximations (the
// structure of R's pnorm), evaluated with the polynomials of constants.h.
PARAMOPS_HD double normal_cdf(double x) {
  double y = fabs(x);
  if (y <= k::CODY_SPLIT1) {
    double s = x * x;
    return 0.5 + (x * k::CODY_N1(s)) / k::CODY_D1(s);
  }
  double tail;  // P[Z > y]
  if (y >= 38.4674) {
    tail = 0.0;
  } else {
    double t;
    if (y <= k::SQRT_32) {
      t = k::CODY_N2(y) / k::CODY_D2(y);
    } else {
      double s = 1.0 / (y * y);
      t = (k::INV_SQRT_2PI - (s * k::CODY_N3(s)) / k::CODY_D3(s)) / y;
    }
    double ysq = (double)(int64_t)(y * 16.0) * 0.0625;  // y rounded down to 1/16
    double del = (y - ysq) * (y + ysq);
    tail = (exp_neg_f64(ysq * ysq * -0.5) * exp_neg_f64(del * -0.5)) * t;
  }
  return x > 0.0 ? 1.0 - tail : tail;
}

// trunc_normal_ constants. Standardize the bounds; when the interval leans to
// the right (alpha + beta > 0), sample its mirror image [-beta, -alpha] and
// negate, so that the CDF values stay small and keep their relative precision.
struct TruncSetup {
  double pa;    // Phi(alpha') (after the mirror)
  double dp;    // Phi(beta') - Phi(alpha')
  double sstd;  // std, negated when mirrored
  bool tail;    // Phi(beta') is below 2^-100 (binary32 compute; 2^-1000 for binary64): the
                // interval lies too far in the tail for the compute type
  bool ok;      // neither too far in the tail nor so narrow that dp is 0
};
PARAMOPS_HD TruncSetup trunc_setup(double mean, double std, double a, double b, bool f64) {
  double al = (a - mean) / std, be = (b - mean) / std;
  bool flip = al + be > 0.0;
  double lo = flip ? -be : al, hi = flip ? -al : be;
  TruncSetup t;
  t.pa = normal_cdf(lo);
  double pb = normal_cdf(hi);
  t.dp = pb - t.pa;
  t.sstd = flip ? -std : std;
  t.tail = !(pb >= (f64 ? 0x1p-1000 : 0x1p-100));
  t.ok = !t.tail && t.dp > 0.0;
  return t;
}

}  // namespace paramops
