// paramops CPU kernels: the CPU writer. The choice of instruction set, the split
// of the logical element range over threads, and the strided layouts; the numbers
// come from the torch-free generators in kernels_<isa>.cpp (generate.h).
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#include "cpu/job.h"

namespace paramops {
namespace cpu {

constexpr int64_t kGrain = 32768;  // elements: below 2 * kGrain, one thread
constexpr int64_t kBlock = 65536;  // elements per block handed to a thread

using GenFn = void (*)(const Job&, int64_t, int64_t, void*, int64_t);
using TiedFn = void (*)(const TiedPlan&, int64_t, int64_t);

struct Isa {
  const char* name;
  GenFn gen;
  TiedFn tied;
};

// PARAMOPS_CPU_ISA=avx512|avx2|base forces one path (read at every call, so
// tests can switch); unset, empty or "auto" takes the best the CPU has.
Isa choose_isa();

// Writes elements [offset, offset + numel) of job's stream into self, any
// strides, threads included.
void run(const at::Tensor& self, const Job& job, int64_t offset, GenFn gen);

// Runs fn(b, e) over [0, n) in blocks of `block` that at::parallel_for's
// threads take one after another from a shared counter, so that a thread whose
// core is busy with something else does less of the work instead of holding
// up the op (at::parallel_for alone gives each thread one fixed share).
// Values do not depend on who computes which block.
template <class F>
void parallel_blocks(int64_t n, int64_t block, int64_t grain, const F& fn) {
  const int64_t nblocks = (n + block - 1) / block;
  const int64_t nthreads = std::min<int64_t>(at::get_num_threads(), nblocks);
  if (n < 2 * grain || nthreads <= 1 || at::in_parallel_region()) {
    fn(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, nthreads, 1, [&](int64_t, int64_t) {
    for (int64_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < nblocks;) {
      fn(k * block, std::min(n, (k + 1) * block));
    }
  });
}

}  // namespace cpu
}  // namespace paramops
