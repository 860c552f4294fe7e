// paramops CPU generator, tiled for auto-vectorization. Torch-free.
//
// Included once by each kernels_<isa>.cpp after its `#pragma GCC target`,
// with PARAMOPS_ISA defined to the namespace name (avx512, avx2, base). All
// helpers have internal linkage, so no copy compiled for one ISA can be
// picked by the linker for another; only <isa>::generate is exported.
//
// A tile is up to T Philox calls. Loop 1 computes the four lanes of each call
// into four arrays, loop 2 applies the transform lane array by lane array,
// loop 3 interleaves (element 4c + l <- lane l of call c; float64: 2c + l),
// rounds to the output dtype and stores the part of the tile that lies in
// [first, first + n). All loops are straight-line (selects, no branches) so
// that GCC vectorizes them across calls.
#include "paramops/philox.h"
#include "paramops/transforms.h"
#include "cpu/job.h"
#if defined(PARAMOPS_ISA_AVX512)
#include <immintrin.h>
#endif

#ifndef PARAMOPS_ISA
#error "define PARAMOPS_ISA before including cpu/generate.h"
#endif

namespace paramops {
namespace cpu {
namespace PARAMOPS_ISA {
namespace {

#ifndef PARAMOPS_TILE
#define PARAMOPS_TILE 128
#endif
constexpr int T = PARAMOPS_TILE;  // Philox calls per tile

// ---------------------------------------------------------------- loop 1
#if defined(PARAMOPS_ISA_AVX512)
// philox4x32_10 (philox.h), the same operations in AVX-512 intrinsics, eight
// calls per vector: each 32-bit word lives in the low half of a 64-bit lane,
// vpmuludq multiplies the low halves (the upper halves are don't-care) and
// yields hi:lo in one instruction, and one ternary-logic op does hi ^ c ^ k.
// GCC's auto-vectorization of philox4x32_10 emits widening shuffles or
// vpmullq instead (measured: uniform 14% and normal 6% slower). Bit-identical:
// the bitwise tests run every ISA against the reference.
static inline void philox_tile(uint64_t cb, int nc, uint64_t stream, uint64_t seed,
                               uint32_t* __restrict x0, uint32_t* __restrict x1,
                               uint32_t* __restrict x2, uint32_t* __restrict x3) {
  const __m512i M0 = _mm512_set1_epi64(0xD2511F53u), M1 = _mm512_set1_epi64(0xCD9E8D57u);
  const __m512i iota = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i s2 = _mm512_set1_epi64((long long)stream);
  const __m512i s3 = _mm512_srli_epi64(s2, 32);
  // The lane arrays hold T entries and T is a multiple of 8, so the last
  // vector may compute up to 7 calls past nc; their lanes are never read.
  for (int j = 0; j < nc; j += 8) {
    const __m512i call = _mm512_add_epi64(_mm512_set1_epi64((long long)(cb + (uint64_t)j)), iota);
    __m512i c0 = call, c1 = _mm512_srli_epi64(call, 32), c2 = s2, c3 = s3;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      const __m512i p0 = _mm512_mul_epu32(c0, M0), p1 = _mm512_mul_epu32(c2, M1);
      const __m512i n0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1,
                                                   _mm512_set1_epi64(k0), 0x96);
      const __m512i n2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3,
                                                   _mm512_set1_epi64(k1), 0x96);
      c0 = n0;
      c1 = p1;
      c2 = n2;
      c3 = p0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(x0 + j), _mm512_cvtepi64_epi32(c0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(x1 + j), _mm512_cvtepi64_epi32(c1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(x2 + j), _mm512_cvtepi64_epi32(c2));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(x3 + j), _mm512_cvtepi64_epi32(c3));
  }
}
static_assert(PARAMOPS_TILE % 8 == 0, "the AVX-512 Philox tile computes 8 calls at a time");
#else
static inline void philox_tile(uint64_t cb, int nc, uint64_t stream, uint64_t seed,
                               uint32_t* __restrict x0, uint32_t* __restrict x1,
                               uint32_t* __restrict x2, uint32_t* __restrict x3) {
  for (int j = 0; j < nc; ++j) {
    Lanes l = philox4x32_10(cb + (uint64_t)j, stream, seed);
    x0[j] = l.x0;
    x1[j] = l.x1;
    x2[j] = l.x2;
    x3[j] = l.x3;
  }
}
#endif

// ---------------------------------------------------------------- loop 2, binary32
static inline void uniform_f32(const uint32_t* __restrict x, float* __restrict v, int n,
                               float a, float range) {
  for (int j = 0; j < n; ++j) v[j] = uniform_value_f32(x[j], a, range);
}

static inline void normal_f32(const uint32_t* __restrict xr, const uint32_t* __restrict xa,
                              float* __restrict v0, float* __restrict v1, int n, float mean,
                              float std) {
  for (int j = 0; j < n; ++j) {
    float z0, z1;
    box_muller_f32(xr[j], xa[j], z0, z1);
    v0[j] = normal_value_f32(z0, mean, std);
    v1[j] = normal_value_f32(z1, mean, std);
  }
}

static inline void trunc_f32(const uint32_t* __restrict x, float* __restrict v, int n,
                             const float* p) {
  const float pa = p[0], dp = p[1], mean = p[2], sstd = p[3], lo = p[4], hi = p[5];
  for (int j = 0; j < n; ++j) v[j] = trunc_value_f32(x[j], pa, dp, mean, sstd, lo, hi);
}

// ---------------------------------------------------------------- loop 2, binary64
// One call = two elements: words w01 = (x0, x1) and w23 = (x2, x3).
static inline void uniform_f64(const uint32_t* __restrict x0, const uint32_t* __restrict x1,
                               const uint32_t* __restrict x2, const uint32_t* __restrict x3,
                               double* __restrict v0, double* __restrict v1, int n, double a,
                               double range) {
  for (int j = 0; j < n; ++j) {
    v0[j] = uniform_value_f64(join64(x0[j], x1[j]), a, range);
    v1[j] = uniform_value_f64(join64(x2[j], x3[j]), a, range);
  }
}

static inline void normal_f64(const uint32_t* __restrict x0, const uint32_t* __restrict x1,
                              const uint32_t* __restrict x2, const uint32_t* __restrict x3,
                              double* __restrict v0, double* __restrict v1, int n,
                              double mean, double std) {
  for (int j = 0; j < n; ++j) {
    double z0, z1;
    box_muller_f64(join64(x0[j], x1[j]), join64(x2[j], x3[j]), z0, z1);
    v0[j] = normal_value_f64(z0, mean, std);
    v1[j] = normal_value_f64(z1, mean, std);
  }
}

static inline void trunc_f64(const uint32_t* __restrict xlo, const uint32_t* __restrict xhi,
                             double* __restrict v, int n, const double* p) {
  const double pa = p[0], dp = p[1], mean = p[2], sstd = p[3], lo = p[4], hi = p[5];
  for (int j = 0; j < n; ++j) v[j] = trunc_value_f64(join64(xlo[j], xhi[j]), pa, dp, mean, sstd, lo, hi);
}

// ---------------------------------------------------------------- loop 3
struct OutF32 {
  typedef float type;
  static const bool is_f32 = true;
  static inline float cv(float v) { return v; }
};
// f16_bits (transforms.h) without branches, so that the conversion loop
// vectorizes. Normal halves: the same carry trick. Subnormal halves (|x| <
// 2^-14): x + 0.5f rounds x to a multiple of 2^-24 (the float16 subnormal
// step) to nearest even, and its low mantissa bits are then the half's bits.
// Equal to f16_bits for all 2^32 inputs (checked exhaustively), also under
// FTZ/DAZ (a float32 subnormal input gives 0 either way).
static inline uint16_t f16_bits_sel(float x) {
  const uint32_t b = f32_bits(x);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const uint32_t a = b & 0x7FFFFFFFu;
  const uint32_t hn = (a + 0xFFFu + ((a >> 13) & 1u) - 0x38000000u) >> 13;
  const uint32_t hs = f32_bits(f32_from(a) + 0.5f) - 0x3F000000u;
  uint32_t h = a >= 0x38800000u ? hn : hs;
  h = a >= 0x477FF000u ? 0x7C00u : h;
  h |= sign;
  h = a > 0x7F800000u ? 0x7E00u : h;
  return (uint16_t)h;
}

struct OutF16 {
  typedef uint16_t type;
  static const bool is_f32 = false;
  static inline uint16_t cv(float v) { return f16_bits_sel(v); }
};
struct OutBF16 {
  typedef uint16_t type;
  static const bool is_f32 = false;
  static inline uint16_t cv(float v) { return bf16_bits(v); }
};

// Rounds lane arrays to float16/bfloat16 bits (a plain map, vectorizes).
template <class Out>
static inline void convert_rows(const float (*v)[T], uint16_t (*h)[T], int nc) {
  for (int l = 0; l < 4; ++l) {
    for (int j = 0; j < nc; ++j) h[l][j] = Out::cv(v[l][j]);
  }
}

// Stores elements [e0, e1) of a tile whose element e is lane e % L of call
// e / L (L = 4 for binary32, 2 for binary64), element e to o[(e - e0) * stride].
template <int L, class O>
static inline void store_tile(const O (*v)[T], int nc, int e0, int e1, O* o, int64_t stride) {
  if (stride == 1 && e0 == 0 && e1 == L * nc) {
    for (int j = 0; j < nc; ++j) {
      for (int l = 0; l < L; ++l) o[L * j + l] = v[l][j];
    }
    return;
  }
  alignas(64) O buf[L * T];
  for (int j = 0; j < nc; ++j) {
    for (int l = 0; l < L; ++l) buf[L * j + l] = v[l][j];
  }
  const O* b = buf + e0;
  const int m = e1 - e0;
  if (stride == 1) {
    for (int e = 0; e < m; ++e) o[e] = b[e];
  } else {
    for (int e = 0; e < m; ++e) o[e * stride] = b[e];
  }
}

// ---------------------------------------------------------------- driver
// Elements [first, first + n); element i is lane i % L of call i / L.
template <int Dist_, class Out>
static void gen_f32(const Job& job, int64_t first, int64_t n, typename Out::type* out,
                    int64_t stride) {
  alignas(64) uint32_t x[4][T];
  alignas(64) float v[4][T];
  alignas(64) uint16_t h[4][T];
  typedef typename Out::type O;
  const int64_t end = first + n;
  uint64_t c = (uint64_t)(first >> 2);
  const uint64_t cend = ((uint64_t)end + 3) >> 2;  // end + 3 may pass INT64_MAX
  while (c < cend) {
    const int nc = (int)(cend - c < (uint64_t)T ? cend - c : (uint64_t)T);
    philox_tile(c, nc, job.stream, job.seed, x[0], x[1], x[2], x[3]);
    if (Dist_ == KIND_UNIFORM) {
      for (int l = 0; l < 4; ++l) uniform_f32(x[l], v[l], nc, job.pf[0], job.pf[1]);
    } else if (Dist_ == KIND_NORMAL) {
      normal_f32(x[0], x[1], v[0], v[1], nc, job.pf[0], job.pf[1]);
      normal_f32(x[2], x[3], v[2], v[3], nc, job.pf[0], job.pf[1]);
    } else {
      for (int l = 0; l < 4; ++l) trunc_f32(x[l], v[l], nc, job.pf);
    }
    const int64_t g0 = (int64_t)c * 4;  // global index of tile element 0
    const int e0 = (int)(first > g0 ? first - g0 : 0);
    const int e1 = (int)(end - g0 < 4 * (int64_t)nc ? end - g0 : 4 * (int64_t)nc);
    O* o = out + (g0 + e0 - first) * stride;
    if (Out::is_f32) {
      store_tile<4>((const O(*)[T])v, nc, e0, e1, o, stride);
    } else {
      convert_rows<Out>(v, h, nc);
      store_tile<4>((const O(*)[T])h, nc, e0, e1, o, stride);
    }
    c += (uint64_t)nc;
  }
}

template <int Dist_>
static void gen_f64(const Job& job, int64_t first, int64_t n, double* out, int64_t stride) {
  alignas(64) uint32_t x[4][T];
  alignas(64) double v[2][T];
  const int64_t end = first + n;
  uint64_t c = (uint64_t)(first >> 1);
  const uint64_t cend = ((uint64_t)end + 1) >> 1;
  while (c < cend) {
    const int nc = (int)(cend - c < (uint64_t)T ? cend - c : (uint64_t)T);
    philox_tile(c, nc, job.stream, job.seed, x[0], x[1], x[2], x[3]);
    if (Dist_ == KIND_UNIFORM) {
      uniform_f64(x[0], x[1], x[2], x[3], v[0], v[1], nc, job.pd[0], job.pd[1]);
    } else if (Dist_ == KIND_NORMAL) {
      normal_f64(x[0], x[1], x[2], x[3], v[0], v[1], nc, job.pd[0], job.pd[1]);
    } else {
      trunc_f64(x[0], x[1], v[0], nc, job.pd);
      trunc_f64(x[2], x[3], v[1], nc, job.pd);
    }
    const int64_t g0 = (int64_t)c * 2;
    const int e0 = (int)(first > g0 ? first - g0 : 0);
    const int e1 = (int)(end - g0 < 2 * (int64_t)nc ? end - g0 : 2 * (int64_t)nc);
    store_tile<2>((const double(*)[T])v, nc, e0, e1, out + (g0 + e0 - first) * stride, stride);
    c += (uint64_t)nc;
  }
}

template <int Dist_>
static void gen_dist(const Job& job, int64_t first, int64_t n, void* out, int64_t stride) {
  switch (job.dtype) {
    case DT_F32:
      gen_f32<Dist_, OutF32>(job, first, n, (float*)out, stride);
      break;
    case DT_F16:
      gen_f32<Dist_, OutF16>(job, first, n, (uint16_t*)out, stride);
      break;
    case DT_BF16:
      gen_f32<Dist_, OutBF16>(job, first, n, (uint16_t*)out, stride);
      break;
    default:
      gen_f64<Dist_>(job, first, n, (double*)out, stride);
      break;
  }
}

}  // namespace

void generate(const Job& job, int64_t first, int64_t n, void* out, int64_t stride) {
  if (n <= 0) return;
#if defined(__x86_64__) || defined(__i386__)
  // The IEEE defaults while we compute (round to nearest even, no flush or
  // denormals-are-zero, exceptions masked), whatever this thread had set
  // (e.g. torch.set_flush_denormal(True) on the calling thread only), so that
  // neither that state nor the thread count can change a value.
  const unsigned saved_csr = __builtin_ia32_stmxcsr();
  __builtin_ia32_ldmxcsr(0x1F80u);
#endif
  switch (job.kind) {
    case KIND_UNIFORM:
      gen_dist<KIND_UNIFORM>(job, first, n, out, stride);
      break;
    case KIND_NORMAL:
      gen_dist<KIND_NORMAL>(job, first, n, out, stride);
      break;
    default:
      gen_dist<KIND_TRUNC>(job, first, n, out, stride);
      break;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_ldmxcsr(saved_csr);
#endif
}

}  // namespace PARAMOPS_ISA
}  // namespace cpu
}  // namespace paramops
