// paramops stream v1: Philox4x32-10 (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC'11; the Random123 reference) and the key/counter layout.
//
//   key     = (lo32(seed), hi32(seed))
//   counter = (lo32(call), hi32(call), lo32(stream), hi32(stream))
//
// `call` is the Philox call index: element i of a float16/bfloat16/float32
// tensor takes lane i % 4 of call i / 4; element i of a float64 tensor takes
// lanes 2(i % 2) and 2(i % 2)+1 of call i / 2. See docs/stream.md.
#pragma once
#include "paramops/common.h"

namespace paramops {

struct Lanes {
  uint32_t x0, x1, x2, x3;
};

PARAMOPS_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  // The same bits in 32-bit multiplies (as curand): from the 64-bit product,
  // nvcc keeps the whole round in 64-bit registers (mul.lo.s64, xor.b64).
  hi = __umulhi(a, b);
  lo = a * b;
#else
  uint64_t p = (uint64_t)a * (uint64_t)b;
  hi = (uint32_t)(p >> 32);
  lo = (uint32_t)p;
#endif
}

// One round: the two multiplications, the key mixed into the high halves.
PARAMOPS_HD void philox_round(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0, uint32_t k1) {
  uint32_t hi0, lo0, hi1, lo1;
  philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
  philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
  uint32_t n0 = hi1 ^ c1 ^ k0;
  uint32_t n2 = hi0 ^ c3 ^ k1;
  c0 = n0;
  c1 = lo1;
  c2 = n2;
  c3 = lo0;
}

PARAMOPS_HD Lanes philox4x32_10(uint64_t call, uint64_t stream, uint64_t seed) {
  uint32_t c0 = (uint32_t)call, c1 = (uint32_t)(call >> 32);
  uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  Lanes out = {c0, c1, c2, c3};
  return out;
}

// The round keys of a seed: keys[2r], keys[2r + 1] are those of round r (the
// key bumped r times), so that a kernel can take them from its parameters
// instead of bumping them for every call.
PARAMOPS_HD void philox_keys(uint64_t seed, uint32_t keys[20]) {
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    keys[2 * r] = k0;
    keys[2 * r + 1] = k1;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// philox4x32_10 with the round keys of philox_keys.
PARAMOPS_HD Lanes philox4x32_10_keyed(uint64_t call, uint64_t stream, const uint32_t* keys) {
  uint32_t c0 = (uint32_t)call, c1 = (uint32_t)(call >> 32);
  uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) philox_round(c0, c1, c2, c3, keys[2 * r], keys[2 * r + 1]);
  Lanes out = {c0, c1, c2, c3};
  return out;
}

}  // namespace paramops
