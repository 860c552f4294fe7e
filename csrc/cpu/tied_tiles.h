// paramops tied_grad_ on the CPU: the loops, torch-free (job.h TiedPlan).
//
// Included once by each kernels_<isa>.cpp after its `#pragma GCC target`, so each
// instruction set gets its own vectorized copy, <isa>::tied_piece; tied_cpu.cpp
// picks one with the generators' choose_isa() (PARAMOPS_CPU_ISA included).
//
// Two shapes of loop, the same numbers (paramops/tied.h; every loop is elementwise,
// so vectorizing it changes no value):
// * up to kDirectK sources of the common dtype pairs: one loop over the elements that
//   reads every source at each element, so that all K + 1 streams advance together, as
//   torch's own add does;
// * otherwise chunks of kChunk elements whose accumulator stays in L2, the sources added
//   in passes of up to 4 (left to right: the order of the adds is the same).
// Measured on the 2-vCPU EPYC VM, one thread, 2026-12-03: K = 12 float32 on 4M elements,
// chunks 7.9 ms against 13-17 ms for pairwise adds; tiles of 16-256 elements that read
// each source in turn took 12-17 ms (12 streams read in short bursts, which the hardware
// prefetcher follows badly), and K = 2 float32 on 38.6M elements read in tiles 17-20 ms
// against 12 ms in one loop.
#include <type_traits>

#include "cpu/job.h"
#include "paramops/tied.h"

#ifndef PARAMOPS_ISA
#error "define PARAMOPS_ISA before including cpu/tied_tiles.h"
#endif

namespace paramops {
namespace cpu {
namespace PARAMOPS_ISA {
namespace {

constexpr int kDirectK = 4;
constexpr int64_t kChunk = 16384;  // elements: 64 KB of float32 accumulator (128 KB float64)

template <class A>
inline A tied_load(const void* p, int dt, int64_t i) {
  if constexpr (std::is_same_v<A, float>) {
    return tied_load_f32(p, dt, i);
  } else {
    return tied_load_f64(p, dt, i);
  }
}

template <class A>
inline void tied_store(void* p, int dt, int64_t i, A v) {
  if constexpr (std::is_same_v<A, float>) {
    tied_store_f32(p, dt, i, v);
  } else {
    tied_store_f64(p, dt, i, v);
  }
}

// acc[0:n] = (first ? s[0] + ... : acc + s[0] + ...) over the KB sources s, of code SDT
// (constants: the loads and the switches fold), left to right.
template <class A, int SDT, int KB>
void tied_batch(A* __restrict acc, const void* const* s, int64_t n, bool first) {
  const void* __restrict p[KB];
  for (int k = 0; k < KB; ++k) p[k] = s[k];
  if (first) {
    for (int64_t i = 0; i < n; ++i) {
      A v = tied_load<A>(p[0], SDT, i);
      for (int k = 1; k < KB; ++k) v = v + tied_load<A>(p[k], SDT, i);
      acc[i] = v;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      A v = acc[i];
      for (int k = 0; k < KB; ++k) v = v + tied_load<A>(p[k], SDT, i);
      acc[i] = v;
    }
  }
}

template <class A, int SDT>
void tied_batch_k(A* acc, const void* const* s, int kb, int64_t n, bool first) {
  switch (kb) {
    case 1: tied_batch<A, SDT, 1>(acc, s, n, first); break;
    case 2: tied_batch<A, SDT, 2>(acc, s, n, first); break;
    case 3: tied_batch<A, SDT, 3>(acc, s, n, first); break;
    default: tied_batch<A, SDT, 4>(acc, s, n, first); break;
  }
}

template <class A>
void tied_batch_any(A* acc, const void* const* s, int sdt, int kb, int64_t n, bool first) {
  switch (sdt) {
    case DT_F16: tied_batch_k<A, DT_F16>(acc, s, kb, n, first); break;
    case DT_BF16: tied_batch_k<A, DT_BF16>(acc, s, kb, n, first); break;
    case DT_F32: tied_batch_k<A, DT_F32>(acc, s, kb, n, first); break;
    default:
      if constexpr (std::is_same_v<A, double>) tied_batch_k<A, DT_F64>(acc, s, kb, n, first);
  }
}

template <class A, int DT>
void tied_out(void* __restrict p, const A* __restrict acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) tied_store<A>(p, DT, i, acc[i]);
}

template <class A>
void tied_out_any(void* p, int dt, const A* acc, int64_t n) {
  switch (dt) {
    case DT_F16: tied_out<A, DT_F16>(p, acc, n); break;
    case DT_BF16: tied_out<A, DT_BF16>(p, acc, n); break;
    case DT_F32: tied_out<A, DT_F32>(p, acc, n); break;
    default:
      if constexpr (std::is_same_v<A, double>) tied_out<A, DT_F64>(p, acc, n);
  }
}

template <class A, int DT>
void tied_plus_dest(A* __restrict acc, const void* __restrict rd, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] = tied_load<A>(rd, DT, i) + acc[i];
}

template <class A>
void tied_plus_dest_any(A* acc, const void* rd, int dt, int64_t n) {
  switch (dt) {
    case DT_F16: tied_plus_dest<A, DT_F16>(acc, rd, n); break;
    case DT_BF16: tied_plus_dest<A, DT_BF16>(acc, rd, n); break;
    case DT_F32: tied_plus_dest<A, DT_F32>(acc, rd, n); break;
    default:
      if constexpr (std::is_same_v<A, double>) tied_plus_dest<A, DT_F64>(acc, rd, n);
  }
}

// Chunks of kChunk elements whose accumulator stays in L2: the sources added in passes of
// up to 4 (so at most 5 streams move at once), then the scale, the destination's values
// and the stores.
template <class A>
void tied_chunks(const TiedPlan& p, int64_t first, int64_t m) {
  static thread_local A acc[kChunk];
  const A sc = static_cast<A>(p.scale);
  const void* s[4];
  for (int64_t t = 0; t < m; t += kChunk) {
    const int64_t n = m - t < kChunk ? m - t : kChunk, e = first + t;
    for (int k = 0; k < p.nsrc; k += 4) {
      const int kb = p.nsrc - k < 4 ? p.nsrc - k : 4;
      for (int j = 0; j < kb; ++j) s[j] = p.src[k + j] + e * p.ssz;
      tied_batch_any<A>(acc, s, p.sdt, kb, n, k == 0);
    }
    if (sc != A(1)) {
      for (int64_t i = 0; i < n; ++i) acc[i] = acc[i] * sc;
    }
    if (p.add) tied_plus_dest_any<A>(acc, p.rd + e * p.dsz, p.ddt, n);
    for (int d = 0; d < p.ndst; ++d) tied_out_any<A>(p.dst[d] + e * p.dsz, p.ddt, acc, n);
  }
}

// One loop over the elements, K sources of code SDT, destinations of code DDT.
template <class A, int SDT, int DDT, int K, bool ADD>
void tied_direct(const TiedPlan& p, int64_t first, int64_t m) {
  const void* __restrict s[K];
  for (int k = 0; k < K; ++k) s[k] = p.src[k] + first * p.ssz;
  const void* __restrict rd = ADD ? p.rd + first * p.dsz : nullptr;
  const A sc = static_cast<A>(p.scale);
  const bool scaled = sc != A(1);
  for (int d = 0; d < p.ndst; ++d) {  // one destination: one pass; copies: the same pass again
    void* __restrict out = p.dst[d] + first * p.dsz;
    for (int64_t i = 0; i < m; ++i) {
      A acc = tied_load<A>(s[0], SDT, i);
      for (int k = 1; k < K; ++k) acc = acc + tied_load<A>(s[k], SDT, i);
      if (scaled) acc = acc * sc;
      if (ADD) acc = tied_load<A>(rd, DDT, i) + acc;
      tied_store<A>(out, DDT, i, acc);
    }
  }
}

template <class A, int SDT, int DDT>
bool tied_direct_k(const TiedPlan& p, int64_t first, int64_t m) {
  // add mode with copies: a second pass would read the first destination after writing it;
  // the tiles compute each element once and store it to every destination
  if (p.add && p.ndst > 1) return false;
  switch (p.nsrc * 2 + (p.add ? 1 : 0)) {
    case 2: tied_direct<A, SDT, DDT, 1, false>(p, first, m); return true;
    case 3: tied_direct<A, SDT, DDT, 1, true>(p, first, m); return true;
    case 4: tied_direct<A, SDT, DDT, 2, false>(p, first, m); return true;
    case 5: tied_direct<A, SDT, DDT, 2, true>(p, first, m); return true;
    case 6: tied_direct<A, SDT, DDT, 3, false>(p, first, m); return true;
    case 7: tied_direct<A, SDT, DDT, 3, true>(p, first, m); return true;
    case 8: tied_direct<A, SDT, DDT, 4, false>(p, first, m); return true;
    case 9: tied_direct<A, SDT, DDT, 4, true>(p, first, m); return true;
    default: return false;
  }
}

// The common pairs: one dtype throughout, and 16-bit sources into float32 (main_grad).
bool tied_try_direct(const TiedPlan& p, int64_t first, int64_t m) {
  if (p.nsrc > kDirectK) return false;
  switch (p.sdt * 4 + p.ddt) {
    case DT_F32 * 4 + DT_F32: return tied_direct_k<float, DT_F32, DT_F32>(p, first, m);
    case DT_BF16 * 4 + DT_BF16: return tied_direct_k<float, DT_BF16, DT_BF16>(p, first, m);
    case DT_F16 * 4 + DT_F16: return tied_direct_k<float, DT_F16, DT_F16>(p, first, m);
    case DT_BF16 * 4 + DT_F32: return tied_direct_k<float, DT_BF16, DT_F32>(p, first, m);
    case DT_F16 * 4 + DT_F32: return tied_direct_k<float, DT_F16, DT_F32>(p, first, m);
    case DT_F64 * 4 + DT_F64: return tied_direct_k<double, DT_F64, DT_F64>(p, first, m);
    default: return false;
  }
}

}  // namespace

void tied_piece(const TiedPlan& p, int64_t first, int64_t n) {
  if (tied_try_direct(p, first, n)) return;
  if (p.f64) {
    tied_chunks<double>(p, first, n);
  } else {
    tied_chunks<float>(p, first, n);
  }
}

}  // namespace PARAMOPS_ISA
}  // namespace cpu
}  // namespace paramops
