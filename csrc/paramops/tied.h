// paramops tied_grad_: the per-element numbers (docs/tied.md), torch-free, host+device.
//
// One element of a group: the sources are read exactly into the accumulator type A
// (binary64 when the sources or the destination are float64, else binary32) and
// added in list order, one rounding per add; the sum is multiplied by the scale
// (rounded to A first; skipped when it is exactly 1), then, in add mode, added to the
// destination's value; the result is rounded once, to nearest even, to the
// destination's dtype. A NaN result is the dtype's canonical quiet NaN. No fma, no
// reassociation: build with -ffp-contract=off / --fmad=false (common.h).
#pragma once
#include "paramops/codes.h"
#include "paramops/common.h"
#include "paramops/transforms.h"

namespace paramops {

// The accumulator of a group: DT_F64 or DT_F32.
PARAMOPS_HD int tied_acc(int src_dt, int dst_dt) { return (src_dt == DT_F64 || dst_dt == DT_F64) ? DT_F64 : DT_F32; }

// Element i of p (dtype dt, not float64) as binary32, exactly.
PARAMOPS_HD float tied_load_f32(const void* p, int dt, int64_t i) {
  switch (dt) {
    case DT_F16: return f16_value(static_cast<const uint16_t*>(p)[i]);
    case DT_BF16: return bf16_value(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// Element i of p (any float dtype) as binary64, exactly.
PARAMOPS_HD double tied_load_f64(const void* p, int dt, int64_t i) {
  if (dt == DT_F64) return static_cast<const double*>(p)[i];
  return (double)tied_load_f32(p, dt, i);
}

// binary64 -> binary32 rounded to odd: truncated toward zero, with the last bit set
// when inexact. Rounding that to a format of at most 22 significant bits (float16,
// bfloat16) to nearest even gives the correctly rounded binary64 value: one rounding.
PARAMOPS_HD float f32_round_odd(double x) {
  float f = (float)x;
  double back = (double)f;
  uint32_t b = f32_bits(f);
  double ax = x < 0.0 ? -x : x, ab = back < 0.0 ? -back : back;
  if (ab > ax) b -= 1u;          // rounded away from zero (overflow to inf included): step back
  if (back != x) b |= 1u;        // inexact (a NaN too: canonical below)
  return f32_from(b);
}

// Store a binary32 result (a float32, float16 or bfloat16 destination).
PARAMOPS_HD void tied_store_f32(void* p, int dt, int64_t i, float v) {
  switch (dt) {
    case DT_F16: static_cast<uint16_t*>(p)[i] = f16_bits(v); break;      // NaN: 0x7E00
    case DT_BF16: static_cast<uint16_t*>(p)[i] = bf16_bits(v); break;    // NaN: 0x7FC0
    default: static_cast<float*>(p)[i] = v != v ? f32_from(0x7FC00000u) : v;
  }
}

// Store a binary64 result (any destination).
PARAMOPS_HD void tied_store_f64(void* p, int dt, int64_t i, double v) {
  switch (dt) {
    case DT_F64: static_cast<double*>(p)[i] = v != v ? f64_from(0x7FF8000000000000ull) : v; break;
    case DT_F32: tied_store_f32(p, dt, i, (float)v); break;
    default: tied_store_f32(p, dt, i, f32_round_odd(v));
  }
}

}  // namespace paramops
