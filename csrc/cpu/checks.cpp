// paramops kernels: the argument checks (checks.h). Messages match
// paramops/spec/checks.py, the Python port.
#include "cpu/checks.h"

#include <ATen/MemoryOverlap.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "paramops/transforms.h"

namespace paramops {
namespace cpu {

const char* dtype_name(int dt) {
  switch (dt) {
    case DT_F16: return "torch.float16";
    case DT_BF16: return "torch.bfloat16";
    case DT_F32: return "torch.float32";
    default: return "torch.float64";
  }
}
namespace {
const char* compute_name(int dt) { return dt == DT_F64 ? "torch.float64" : "torch.float32"; }
}  // namespace

// repr() of a Python float: the shortest digits that round-trip, fixed
// notation for exponents in [-4, 16), else d.ddde+XX.
std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  for (int p = 0; p < 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*e", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s(buf), digits;
  const size_t epos = s.find('e');
  const int exp = std::atoi(s.c_str() + epos + 1);
  for (size_t k = 0; k < epos; ++k) {
    if (s[k] >= '0' && s[k] <= '9') digits += s[k];
  }
  std::string out = v < 0 || (v == 0 && std::signbit(v)) ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0." + std::string(-exp - 1, '0') + digits;
    } else if ((int)digits.size() <= exp + 1) {
      out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += e;
  }
  return out;
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

std::string torch_layout(at::Layout l) {
  switch (l) {
    case at::kSparse: return "torch.sparse_coo";
    case at::kSparseCsr: return "torch.sparse_csr";
    case at::kSparseCsc: return "torch.sparse_csc";
    case at::kSparseBsr: return "torch.sparse_bsr";
    case at::kSparseBsc: return "torch.sparse_bsc";
    case at::kMkldnn: return "torch._mkldnn";
    default: return "a non-strided layout";
  }
}

std::string torch_dtype(at::ScalarType st) {
  return "torch." + std::string(c10::getDtypeNames(st).first);
}

int check_self(const at::Tensor& self, const Subject& s, c10::DeviceType device) {
  const char* op = s.op;
  TORCH_CHECK_TYPE(self.layout() == at::kStrided, "paramops.", op, ": ", s.self(),
                   " must be a dense (strided) tensor, got layout ", torch_layout(self.layout()));
  const int dt = dtype_code(self.scalar_type());
  TORCH_CHECK_TYPE(dt >= 0, "paramops.", op, ": ", s.self(),
                   " must be a float16, bfloat16, float32 or float64 tensor, got ",
                   torch_dtype(self.scalar_type()));
  TORCH_CHECK(self.device().type() == device, "paramops.", op, ": ", s.self(), " is on ", self.device().str(),
              ", but this kernel serves ", device == c10::DeviceType::CPU ? "CPU" : "CUDA", " tensors");
  TORCH_CHECK(at::has_internal_overlap(self) != at::MemOverlap::Yes, "paramops.", op, ": ", s.self(),
              " has overlapping elements in memory (e.g. from expand()); write into a tensor with "
              "distinct elements");
  return dt;
}

void check_writable(const at::Tensor& self) {
  // bump_version raises torch's own error for an inference tensor outside inference mode;
  // raise it here, before any seed is drawn or anything is written.
  if (self.is_inference() && !c10::InferenceMode::is_enabled()) self.unsafeGetTensorImpl()->bump_version();
}

void check_offset(const at::Tensor& self, int64_t offset, const Subject& s) {
  const char* op = s.op;
  // std::to_string, not an ostream: on the GPU box (torch 2.11, g++ 13) streaming an
  // integer into c10::str from this library crashed in libstdc++'s num_put.
  TORCH_CHECK_VALUE(offset >= 0, "paramops.", op, ": offset", s.of(), " must be >= 0, got ",
                    std::to_string(offset));
  TORCH_CHECK_VALUE(offset <= std::numeric_limits<int64_t>::max() - self.numel(), "paramops.", op,
                    ": offset + numel", s.of(), " overflows int64");
}

namespace {
void check_finite(double v, const Subject& s, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(v), "paramops.", s.op, ": ", name, s.of(), " must be finite, got ",
                    py_float(v));
}

// A parameter must be a value of the output dtype: its magnitude at most the dtype's
// largest finite value (as torch refuses uniform_ bounds and fill_ values beyond it).
void check_fits(double v, int dt, const Subject& s, const char* name) {
  TORCH_CHECK_VALUE(std::fabs(v) <= dtype_max(dt), "paramops.", s.op, ": ", name, " ", py_float(v), s.of(),
                    " overflows ", dtype_name(dt));
}

Job make_job(int kind, int dt) {
  Job job;
  std::memset(&job, 0, sizeof(job));
  job.kind = kind;
  job.dtype = dt;
  return job;
}
}  // namespace

Job uniform_job(int dt, double a, double b, const Subject& s) {
  const char* op = s.op;
  check_finite(a, s, "a");
  check_finite(b, s, "b");
  TORCH_CHECK_VALUE(a < b, "paramops.", op, ": a", s.of(), " must be less than b, got a=", py_float(a),
                    ", b=", py_float(b));
  check_fits(a, dt, s, "a");
  check_fits(b, dt, s, "b");
  TORCH_CHECK_VALUE(b - a <= dtype_max(dt), "paramops.", op, ": b - a", s.of(), " overflows ", dtype_name(dt));
  Job job = make_job(KIND_UNIFORM, dt);
  if (dt == DT_F64) {
    job.pd[0] = a;
    job.pd[1] = b - a;
  } else {
    job.pf[0] = static_cast<float>(a);
    job.pf[1] = static_cast<float>(b) - static_cast<float>(a);  // the range in the compute type
    TORCH_CHECK_VALUE(std::isfinite(job.pf[1]), "paramops.", op, ": b - a", s.of(), " overflows torch.float32");
  }
  return job;
}

Job normal_job(int dt, double mean, double std, const Subject& s) {
  check_finite(mean, s, "mean");
  check_finite(std, s, "std");
  TORCH_CHECK_VALUE(std >= 0.0, "paramops.", s.op, ": std", s.of(), " must be >= 0, got ", py_float(std));
  check_fits(mean, dt, s, "mean");
  check_fits(std, dt, s, "std");
  Job job = make_job(KIND_NORMAL, dt);
  job.pd[0] = mean;
  job.pd[1] = std;
  job.pf[0] = static_cast<float>(mean);
  job.pf[1] = static_cast<float>(std);
  return job;
}

Job trunc_normal_job(int dt, double mean, double std, double a, double b, const Subject& s) {
  const char* op = s.op;
  check_finite(mean, s, "mean");
  check_finite(std, s, "std");
  TORCH_CHECK_VALUE(!std::isnan(a), "paramops.", op, ": a", s.of(), " must not be nan");
  TORCH_CHECK_VALUE(!std::isnan(b), "paramops.", op, ": b", s.of(), " must not be nan");
  TORCH_CHECK_VALUE(std > 0.0, "paramops.", op, ": std", s.of(), " must be > 0, got ", py_float(std));
  check_fits(mean, dt, s, "mean");
  check_fits(std, dt, s, "std");
  TORCH_CHECK_VALUE(a < b, "paramops.", op, ": a", s.of(), " must be less than b, got a=", py_float(a),
                    ", b=", py_float(b));
  const double ta = trunc_bound(a, dt), tb = trunc_bound(b, dt);  // +-inf: the dtype's extremes
  const double lo = dtype_bound(ta, dt, true), hi = dtype_bound(tb, dt, false);
  TORCH_CHECK_VALUE(lo <= hi, "paramops.", op, ": no ", dtype_name(dt), " value lies in [a, b] = [", py_float(a),
                    ", ", py_float(b), "]", s.of());
  const TruncSetup t = trunc_setup(mean, std, ta, tb, dt == DT_F64);
  TORCH_CHECK_VALUE(!t.tail, "paramops.", op, ": [a, b] = [", py_float(a), ", ", py_float(b), "]", s.of(),
                    " lies too far in the tail of the normal distribution (mean=", py_float(mean), ", std=",
                    py_float(std), ") to sample in ", compute_name(dt));
  TORCH_CHECK_VALUE(t.ok, "paramops.", op, ": [a, b] = [", py_float(a), ", ", py_float(b), "]", s.of(),
                    " is too narrow for the normal distribution (mean=", py_float(mean), ", std=", py_float(std),
                    ") to sample by inverse CDF: Phi((b - mean) / std) - Phi((a - mean) / std) is 0 in float64");
  Job job = make_job(KIND_TRUNC, dt);
  const double p[6] = {t.pa, t.dp, mean, t.sstd, lo, hi};
  for (int k = 0; k < 6; ++k) {
    job.pd[k] = p[k];
    job.pf[k] = static_cast<float>(p[k]);
  }
  return job;
}

void check_fill(int dt, double value, const Subject& s) {
  check_finite(value, s, "value");
  check_fits(value, dt, s, "value");
}

Job kind_job(int kind, int dt, const double* p, const Subject& s) {
  switch (kind) {
    case KIND_UNIFORM: return uniform_job(dt, p[0], p[1], s);
    case KIND_NORMAL: return normal_job(dt, p[0], p[1], s);
    case KIND_TRUNC: return trunc_normal_job(dt, p[0], p[1], p[2], p[3], s);
    default: {
      check_fill(dt, p[0], s);
      Job job = make_job(KIND_FILL, dt);
      job.pd[0] = p[0];
      return job;
    }
  }
}

bool kind_params_ok(int kind, int dt, const double* p) {
  try {
    kind_job(kind, dt, p, Subject{"capture"});
    return true;
  } catch (const c10::Error&) {
    return false;
  }
}

}  // namespace cpu
}  // namespace paramops
