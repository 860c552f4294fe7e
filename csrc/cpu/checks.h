// paramops kernels: the argument checks, one implementation of each, shared by
// every op, every device and every backend with the extension (the C++ and CUDA
// writers and the Python writers: Triton, the reference). paramops/spec/checks.py is
// their Python port for the configuration without the extension; the messages
// are the same (tests/spec/test_checks.py compares them).
//
// Each check names its subject the way the op calls it: the single ops check
// "self" and name parameters plainly ("std"), multi_init_ checks "tensors[i]"
// and says "std of tensors[i]". Numbers are printed as Python's repr() prints
// a float, dtypes as torch.<name>.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "cpu/job.h"

namespace paramops {
namespace cpu {

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

// Whom a check message names. Built only when a check fails.
struct Subject {
  const char* op;      // "normal_", "multi_init_", ...
  int64_t index = -1;  // the entry of multi_init_; -1 for a single-tensor op
  std::string self() const { return index < 0 ? "self" : "tensors[" + std::to_string(index) + "]"; }
  std::string of() const { return index < 0 ? "" : " of tensors[" + std::to_string(index) + "]"; }
};

std::string py_float(double v);           // repr() of a Python float
const char* dtype_name(int dt);           // "torch.float16", ... of a DT_* code
std::string torch_dtype(at::ScalarType st);
std::string torch_layout(at::Layout l);   // as str(torch.layout) prints it
std::string shape_str(const at::Tensor& t);  // as list(t.shape) prints it: [3, 4]

// The DT_* code of a float scalar type, -1 for any other.
inline int dtype_code(at::ScalarType st) {
  switch (st) {
    case at::kHalf: return DT_F16;
    case at::kBFloat16: return DT_BF16;
    case at::kFloat: return DT_F32;
    case at::kDouble: return DT_F64;
    default: return -1;
  }
}

// self: strided, a float dtype, on the kernel's device, no internal overlap. Returns
// its DT_* code. (A view with the negative bit never gets here: torch's Negative
// fallback hands the kernel a resolved copy and writes its negation back.)
int check_self(const at::Tensor& self, const Subject& s, c10::DeviceType device);
// An inference tensor outside inference mode: torch's own error, before anything is written.
void check_writable(const at::Tensor& self);
void check_offset(const at::Tensor& self, int64_t offset, const Subject& s);

// The parameters of one kind on a tensor of DT_* code dt, checked; the Job (without
// seed and stream) with them rounded to the compute type. p holds the kind's
// arity of parameters: (a, b), (mean, std), (mean, std, a, b).
Job uniform_job(int dt, double a, double b, const Subject& s);
Job normal_job(int dt, double mean, double std, const Subject& s);
Job trunc_normal_job(int dt, double mean, double std, double a, double b, const Subject& s);
void check_fill(int dt, double value, const Subject& s);
// Any kind: the Job of a random kind (its checks), or check_fill for KIND_FILL.
Job kind_job(int kind, int dt, const double* p, const Subject& s);

// Whether `kind_job` would accept these parameters (no message is built).
bool kind_params_ok(int kind, int dt, const double* p);

}  // namespace cpu
}  // namespace paramops
