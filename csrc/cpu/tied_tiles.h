// paramops tied_grad_ on the CPU: the loops, torch-free (job.h TiedPlan).
//
// Included once by each kernels_<isa>.cpp after its `#pragma GCC target`, so each
// instruction set gets its own vectorized copy, <isa>::tied_piece; tied_cpu.cpp
// picks one with the generators' choose_isa() (PARAMOPS_CPU_ISA included).
//
// Two shapes of loop, the same numbers (paramops/tied.h; every loop is elementwise,
// so vectorizing it changes no value):
// * up to kDirectK sources of the common dtype pairs: one loop over the elements
//   that reads every source at each element (K and the dtypes fixed at compile time),
//   so that all K + 1 streams advance together, as torch's own add does;
// * otherwise tiles of 16 elements (64 for 16-bit sources): the sources are
//   added into the tile one after another. Measured on the 2-vCPU EPYC VM
//   (2026-12-03): tiles of 256+ elements read each stream in bursts that the
//   hardware prefetcher follows badly (K = 2 float32, 38.6M elements: 17-20 ms
//   against 12 ms for one loop); with 16 elements, K = 12 costs 12.4 ms against
//   16.7 ms at 256.
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

// acc = p (first) or acc + p, for source code DT (a constant: the switches fold).
template <class A, int DT>
void tied_add(A* __restrict acc, const void* __restrict p, int64_t n, bool first) {
  if (first) {
    for (int64_t i = 0; i < n; ++i) acc[i] = tied_load<A>(p, DT, i);
  } else {
    for (int64_t i = 0; i < n; ++i) acc[i] = acc[i] + tied_load<A>(p, DT, i);
  }
}

template <class A>
void tied_add_any(A* acc, const void* p, int dt, int64_t n, bool first) {
  switch (dt) {
    case DT_F16: tied_add<A, DT_F16>(acc, p, n, first); break;
    case DT_BF16: tied_add<A, DT_BF16>(acc, p, n, first); break;
    case DT_F32: tied_add<A, DT_F32>(acc, p, n, first); break;
    default:
      if constexpr (std::is_same_v<A, double>) tied_add<A, DT_F64>(acc, p, n, first);
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

template <class A, int64_t kTiedTile>
void tied_run(const TiedPlan& p, int64_t first, int64_t m) {
  alignas(64) A acc[kTiedTile];
  const A s = static_cast<A>(p.scale);
  for (int64_t t = 0; t < m; t += kTiedTile) {
    const int64_t n = m - t < kTiedTile ? m - t : kTiedTile, e = first + t;
    for (int k = 0; k < p.nsrc; ++k) tied_add_any<A>(acc, p.src[k] + e * p.ssz, p.sdt, n, k == 0);
    if (s != A(1)) {
      for (int64_t i = 0; i < n; ++i) acc[i] = acc[i] * s;
    }
    if (p.add) tied_plus_dest_any<A>(acc, p.rd + e * p.dsz, p.ddt, n);
    for (int k = 0; k < p.ndst; ++k) tied_out_any<A>(p.dst[k] + e * p.dsz, p.ddt, acc, n);
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
  // tile sizes measured (K = 12, 9M elements): float32 16 elements, bfloat16 64 (16: 1.5-2x slower)
  if (p.f64) {
    tied_run<double, 16>(p, first, n);
  } else if (p.ssz == 2) {
    tied_run<float, 64>(p, first, n);
  } else {
    tied_run<float, 16>(p, first, n);
  }
}

}  // namespace PARAMOPS_ISA
}  // namespace cpu
}  // namespace paramops
