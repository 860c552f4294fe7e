// paramops kernels: what the torch bindings (cpu/ops.cpp: the single-tensor
// ops, cpu/multi.cpp: multi_init_, cuda/ops.cpp: the CUDA kernels) share: the
// argument checks, the per-call parameters (Job builders) and the version
// bump are device-agnostic; the CPU driver (run, choose_isa, parallel_blocks)
// is the CPU's. Definitions live in cpu/ops.cpp, except the small inline
// pieces below. (The directory is cpu/ because setup.py builds csrc/cpu/*.cpp
// in every build, CPU-only or CUDA.)
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "cpu/job.h"

namespace paramops {
namespace cpu {

constexpr int64_t kGrain = 32768;  // elements: below 2 * kGrain, one thread
constexpr int64_t kBlock = 65536;  // elements per block handed to a thread

// torch's in-place ops bump the autograd version counter (ADInplaceOrView) before they
// write, so that autograd notices a tensor saved for backward being modified; custom ops get
// no such kernel, so the kernels do it, after their checks and before writing. For an
// inference tensor outside inference mode this raises torch's own error, as torch does.
inline void bump_version(const at::Tensor& t) { t.unsafeGetTensorImpl()->bump_version(); }

using GenFn = void (*)(const Job&, int64_t, int64_t, void*, int64_t);

struct Isa {
  const char* name;
  GenFn gen;
};

// PARAMOPS_CPU_ISA=avx512|avx2|base forces one path (read at every call, so
// tests can switch); unset, empty or "auto" takes the best the CPU has.
Isa choose_isa();

// IEEE defaults (round to nearest even, no flush-to-zero/denormals-are-zero)
// for the checks and the per-call parameters on the calling thread, so that
// e.g. torch.set_flush_denormal(True) changes neither a check nor a value.
// The generators do the same on every worker thread (generate.h).
struct IeeeDefaults {
#if defined(__x86_64__) || defined(__i386__)
  unsigned saved;
  IeeeDefaults() : saved(__builtin_ia32_stmxcsr()) { __builtin_ia32_ldmxcsr(0x1F80u); }
  ~IeeeDefaults() { __builtin_ia32_ldmxcsr(saved); }
#endif
};

// Whom a check message names. The single-tensor ops say "self" and "std";
// multi_init_ names its entry: "tensors[3]", "std of tensors[3]". Built only
// when a check fails (TORCH_CHECK evaluates its message lazily).
struct Subject {
  const char* op;      // "normal_", "multi_init_", ...
  int64_t index = -1;  // the entry of multi_init_; -1 for a single-tensor op
  std::string self() const { return index < 0 ? "self" : "tensors[" + std::to_string(index) + "]"; }
  std::string of() const { return index < 0 ? "" : " of tensors[" + std::to_string(index) + "]"; }
};

// Messages match paramops/_checks.py (which multi_init_'s Python side uses too):
// numbers as Python's repr() prints a float, dtypes as torch.<name>.
std::string py_float(double v);
const char* dtype_name(int dt);
std::string torch_dtype(at::ScalarType st);
std::string torch_layout(at::Layout l);  // as str(torch.layout) prints it

// Checks layout, dtype, device (that of the kernel: the CPU's or CUDA's) and
// internal overlap; returns the paramops::DType.
int check_self(const at::Tensor& self, const Subject& s, c10::DeviceType device = c10::DeviceType::CPU);
void check_offset(const at::Tensor& self, int64_t offset, const Subject& s);

// Check the parameters of one op on a tensor of DType dt and build its Job
// (parameters rounded to the compute type).
Job uniform_job(int dt, double a, double b, int64_t seed, int64_t stream, const Subject& s);
Job normal_job(int dt, double mean, double std, int64_t seed, int64_t stream, const Subject& s);
Job trunc_normal_job(int dt, double mean, double std, double a, double b, int64_t seed,
                     int64_t stream, const Subject& s);
// Checks the value of fill_ (finite, representable in dt).
void check_fill(int dt, double value, const Subject& s);

// What a kernel of the single ops does before it writes, on any device: the
// checks (self, then the parameters as make_job(dtype, subject) checks them and
// builds the Job, then the offset), then the version bump. The caller holds
// IeeeDefaults.
template <class MakeJob>
Job prepare_random(const Subject& s, const at::Tensor& self, int64_t offset, c10::DeviceType device,
                   const MakeJob& make_job) {
  const int dt = check_self(self, s, device);
  const Job job = make_job(dt, s);
  check_offset(self, offset, s);
  bump_version(self);
  return job;
}
// fill_'s: self, the value, the version bump.
inline void prepare_fill(const Subject& s, const at::Tensor& self, double value, c10::DeviceType device) {
  const int dt = check_self(self, s, device);
  check_fill(dt, value, s);
  bump_version(self);
}

// Tensor.fill_ below autograd, as the write of fill_ (and of multi_init_'s strided fill
// entries): the op as a whole is what autograd sees, and its kernel bumped the version
// counter already. The value is converted as c10::Scalar converts it.
inline void fill_below_autograd(const at::Tensor& self, double value) {
  at::AutoDispatchBelowADInplaceOrView guard;
  at::Tensor t = self;
  t.fill_(value);
}

// The kernels of the four single ops for one device, from its policy D:
//   D::kDevice                         the device type the checks expect;
//   D::write(self, job, offset, op)    writes a checked random op (device guard included);
//   D::fill(self, value)               writes a checked fill_ (numel > 0).
// Both bindings (cpu/ops.cpp, cuda/ops.cpp) register SingleOps<their policy>::uniform etc.,
// so the checks, the version bump and the order they run in are one piece of code.
template <class D>
struct SingleOps {
  template <class MakeJob>
  static void random(const char* op, const at::Tensor& self, int64_t offset, const MakeJob& make_job) {
    IeeeDefaults fp_defaults;  // the checks and the host-side parameters (trunc_normal_'s Phi)
    const Job job = prepare_random(Subject{op}, self, offset, D::kDevice, make_job);
    D::write(self, job, offset, op);
  }
  static void uniform(const at::Tensor& self, double a, double b, int64_t seed, int64_t stream, int64_t offset) {
    random("uniform_", self, offset, [&](int dt, const Subject& s) {
      return uniform_job(dt, a, b, seed, stream, s);
    });
  }
  static void normal(const at::Tensor& self, double mean, double std, int64_t seed, int64_t stream,
                     int64_t offset) {
    random("normal_", self, offset, [&](int dt, const Subject& s) {
      return normal_job(dt, mean, std, seed, stream, s);
    });
  }
  static void trunc_normal(const at::Tensor& self, double mean, double std, double a, double b, int64_t seed,
                           int64_t stream, int64_t offset) {
    random("trunc_normal_", self, offset, [&](int dt, const Subject& s) {
      return trunc_normal_job(dt, mean, std, a, b, seed, stream, s);
    });
  }
  static void fill(const at::Tensor& self, double value) {
    IeeeDefaults fp_defaults;
    prepare_fill(Subject{"fill_"}, self, value, D::kDevice);
    if (self.numel() == 0) return;
    D::fill(self, value);
  }
};

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
