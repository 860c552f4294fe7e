// paramops tied_grad_ on the CPU: the tile loops, torch-free (job.h TiedPlan).
//
// Included once by each kernels_<isa>.cpp after its `#pragma GCC target`, so each
// instruction set gets its own vectorized copy, <isa>::tied_piece; tied_cpu.cpp
// picks one with the generators' choose_isa() (PARAMOPS_CPU_ISA included). A
// tile of elements stays in L1: the sources are added into it one after another,
// then the scale, the destination's values (add mode) and the rounded stores.
// Every loop is elementwise, so vectorizing it changes no value (paramops/tied.h).
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

constexpr int64_t kTiedTile = 256;

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

template <class A>
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

}  // namespace

void tied_piece(const TiedPlan& p, int64_t first, int64_t n) {
  if (p.f64) {
    tied_run<double>(p, first, n);
  } else {
    tied_run<float>(p, first, n);
  }
}

}  // namespace PARAMOPS_ISA
}  // namespace cpu
}  // namespace paramops
