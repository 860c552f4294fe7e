// paramops kernels: the four single-tensor ops, one kernel per device slot
// (writer.h). The same steps, in this order, for every device and backend:
//
//   1. the checks: self, the parameters (building the Job in the compute type),
//      the offset, writability, the generator handle;
//   2. the seed: `seed`, else one drawn from the generator (torch's default CPU
//      generator when none), so a refused call draws nothing;
//   3. the autograd version bump;
//   4. the write: recorded by the active Capture (fused mode, capture.h), else
//      the slot's Writer (fill_: torch's own fill, on every device).
//
// Schemas (paramops/registration.py):
//   uniform_(Tensor(a!) self, float a, float b, *, int? seed=None, int? generator=None,
//            int stream=0, int offset=0) -> ()
//   normal_(..., float mean, float std, ...), trunc_normal_(..., float mean, float std,
//            float a, float b, ...), fill_(Tensor(a!) self, float value) -> ()
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "cpu/capture.h"
#include "cpu/checks.h"
#include "cpu/job.h"
#include "cpu/seeds.h"
#include "cpu/writer.h"

namespace paramops {
namespace cpu {

template <int kSlot>
struct SingleOps {
  template <class MakeJob>
  static void random(const char* op, int kind, const double (&p)[4], const at::Tensor& self,
                     std::optional<int64_t> seed, std::optional<int64_t> generator, int64_t stream, int64_t offset,
                     const MakeJob& make_job) {
    IeeeDefaults fp_defaults;  // the checks and the host-side parameters (trunc_normal_'s Phi)
    const Subject s{op};
    const int dt = check_self(self, s, slot_device(kSlot));
    Job job = make_job(dt, s);
    check_offset(self, offset, s);
    check_writable(self);
    job.seed = static_cast<uint64_t>(seed.has_value() ? *seed : draw_seed(generator_of(generator, s)));
    job.stream = static_cast<uint64_t>(stream);
    bump_version(self);
    if (self.numel() == 0) return;
    if (capture::record(self, kind, p, static_cast<int64_t>(job.seed), stream, offset)) return;
    writer_of(kSlot, op).random(self, job, offset, op);
  }
  static void uniform(const at::Tensor& self, double a, double b, std::optional<int64_t> seed,
                      std::optional<int64_t> generator, int64_t stream, int64_t offset) {
    random("uniform_", KIND_UNIFORM, {a, b, 0.0, 0.0}, self, seed, generator, stream, offset,
           [&](int dt, const Subject& s) { return uniform_job(dt, a, b, s); });
  }
  static void normal(const at::Tensor& self, double mean, double std, std::optional<int64_t> seed,
                     std::optional<int64_t> generator, int64_t stream, int64_t offset) {
    random("normal_", KIND_NORMAL, {mean, std, 0.0, 0.0}, self, seed, generator, stream, offset,
           [&](int dt, const Subject& s) { return normal_job(dt, mean, std, s); });
  }
  static void trunc_normal(const at::Tensor& self, double mean, double std, double a, double b,
                           std::optional<int64_t> seed, std::optional<int64_t> generator, int64_t stream,
                           int64_t offset) {
    random("trunc_normal_", KIND_TRUNC, {mean, std, a, b}, self, seed, generator, stream, offset,
           [&](int dt, const Subject& s) { return trunc_normal_job(dt, mean, std, a, b, s); });
  }
  static void fill(const at::Tensor& self, double value) {
    IeeeDefaults fp_defaults;
    const Subject s{"fill_"};
    const int dt = check_self(self, s, slot_device(kSlot));
    check_fill(dt, value, s);
    check_writable(self);
    bump_version(self);
    if (self.numel() == 0) return;
    if (capture::record(self, KIND_FILL, {value, 0.0, 0.0, 0.0}, 0, 0, 0)) return;
    fill_below_autograd(self, value);
  }
};

}  // namespace cpu
}  // namespace paramops
