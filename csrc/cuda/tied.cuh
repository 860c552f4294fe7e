// paramops CUDA kernels: tied_grad_'s body, torch-free (as generate.cuh: a PARAMOPS_HD
// function of block and thread indices, which tests/backends/native/cuda_host.cpp runs
// on the host over an emulated grid, bit for bit against the CPU kernels).
//
// One launch for every group of a call, any dtypes: the groups' elements are laid end
// to end (start[k]: the first element of group k, prefix sums of their numels), one
// thread per element in a grid-stride loop, the group found by binary search. The
// numbers of an element are paramops/tied.h's: which thread computes it changes nothing.
#pragma once
#include "paramops/tied.h"

namespace paramops {
namespace cuda {

// One group (packed on the host; one H2D copy with start[] and the address list).
struct TiedEntry {
  int64_t numel;      // > 0
  int64_t src0, nsrc; // the sources' addresses: addrs[src0 .. src0 + nsrc)
  int64_t dst0, ndst; // the destinations' addresses (contiguous ones)
  uint64_t rd;        // add mode: the destination's values (contiguous), else 0
  uint64_t scale;     // the scale's bits in the accumulator (binary64 when f64)
  int32_t sdt, ddt;   // DT_* of the sources and destinations
  int32_t f64, add;
};

// The largest k < n with start[k] <= q (start[0] = 0, ascending).
PARAMOPS_HD int64_t tied_find(const int64_t* start, int64_t n, int64_t q) {
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (start[mid] <= q) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// Element i of group e.
PARAMOPS_HD void tied_element(const TiedEntry& e, const uint64_t* addrs, int64_t i) {
  const void* const* src = reinterpret_cast<const void* const*>(addrs + e.src0);
  void* const* dst = reinterpret_cast<void* const*>(addrs + e.dst0);
  if (e.f64) {
    double acc = tied_load_f64(src[0], e.sdt, i);
    for (int64_t k = 1; k < e.nsrc; ++k) acc = acc + tied_load_f64(src[k], e.sdt, i);
    const double s = f64_from(e.scale);
    if (s != 1.0) acc = acc * s;
    if (e.add) acc = tied_load_f64(reinterpret_cast<const void*>(e.rd), e.ddt, i) + acc;
    for (int64_t d = 0; d < e.ndst; ++d) tied_store_f64(dst[d], e.ddt, i, acc);
  } else {
    float acc = tied_load_f32(src[0], e.sdt, i);
    for (int64_t k = 1; k < e.nsrc; ++k) acc = acc + tied_load_f32(src[k], e.sdt, i);
    const float s = f32_from((uint32_t)e.scale);
    if (s != 1.0f) acc = acc * s;
    if (e.add) acc = tied_load_f32(reinterpret_cast<const void*>(e.rd), e.ddt, i) + acc;
    for (int64_t d = 0; d < e.ndst; ++d) tied_store_f32(dst[d], e.ddt, i, acc);
  }
}

// Thread `thread` of block `block`: elements block * block_dim + thread, then every
// grid * block_dim after it.
PARAMOPS_HD void tied_body(const TiedEntry* entries, const int64_t* start, const uint64_t* addrs, int64_t n,
                           int64_t total, uint64_t block, uint64_t thread, uint64_t grid, uint64_t block_dim) {
  for (uint64_t q = block * block_dim + thread; q < (uint64_t)total; q += grid * block_dim) {
    const int64_t k = tied_find(start, n, (int64_t)q);
    tied_element(entries[k], addrs, (int64_t)q - start[k]);
  }
}

// ---------------------------------------------------------------- host helper
// A group's entry: the scale rounded to the accumulator (binary64 when the sources or
// the destination are float64), addresses from src0 / dst0 of the address list.
PARAMOPS_HD TiedEntry make_tied_entry(int64_t numel, int sdt, int ddt, double scale, bool add, int64_t src0,
                                      int64_t nsrc, int64_t dst0, int64_t ndst, uint64_t rd) {
  TiedEntry e;
  e.numel = numel;
  e.sdt = sdt;
  e.ddt = ddt;
  e.f64 = tied_acc(sdt, ddt) == DT_F64;
  e.add = add;
  e.scale = e.f64 ? f64_bits(scale) : (uint64_t)f32_bits((float)scale);
  e.src0 = src0;
  e.nsrc = nsrc;
  e.dst0 = dst0;
  e.ndst = ndst;
  e.rd = add ? rd : 0;
  return e;
}

#if defined(__CUDACC__)
__global__ void tied_kernel(const TiedEntry* entries, const int64_t* start, const uint64_t* addrs, int64_t n,
                            int64_t total) {
  tied_body(entries, start, addrs, n, total, blockIdx.x, threadIdx.x, gridDim.x, blockDim.x);
}
#endif

}  // namespace cuda
}  // namespace paramops
