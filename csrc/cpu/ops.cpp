// paramops CPU kernels: the torch binding. Argument checks, per-call
// parameters (rounded to the compute type), the choice of instruction set and
// the split of the logical element range over threads. The numbers come from
// the torch-free generators in kernels_<isa>.cpp (generate.h).
//
// The op schemas are defined in Python (paramops/_ops.py) before this module
// is imported; this file only registers CPU kernels for them.
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/job.h"
#include "paramops/transforms.h"

namespace paramops {
namespace cpu {
namespace {

constexpr int64_t kGrain = 32768;  // elements per parallel_for task, at least

using GenFn = void (*)(const Job&, int64_t, int64_t, void*, int64_t);

// ---------------------------------------------------------------- ISA
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("fma");
}
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// PARAMOPS_CPU_ISA=avx512|avx2|base forces one path (read at every call, so
// tests can switch); unset, empty or "auto" takes the best the CPU has.
GenFn choose_isa() {
  static const bool has512 = cpu_has_avx512();
  static const bool has2 = cpu_has_avx2();
  const char* env = std::getenv("PARAMOPS_CPU_ISA");
  if (env == nullptr || env[0] == '\0' || std::strcmp(env, "auto") == 0) {
    return has512 ? avx512::generate : has2 ? avx2::generate : base::generate;
  }
  if (std::strcmp(env, "avx512") == 0) {
    TORCH_CHECK(has512, "paramops: PARAMOPS_CPU_ISA=avx512, but this CPU lacks "
                "AVX-512 (F, DQ, VL, BW) or FMA");
    return avx512::generate;
  }
  if (std::strcmp(env, "avx2") == 0) {
    TORCH_CHECK(has2, "paramops: PARAMOPS_CPU_ISA=avx2, but this CPU lacks AVX2 or FMA");
    return avx2::generate;
  }
  if (std::strcmp(env, "base") == 0) return base::generate;
  TORCH_CHECK(false, "paramops: PARAMOPS_CPU_ISA must be avx512, avx2, base or auto, got '",
              env, "'");
  return nullptr;
}

// ---------------------------------------------------------------- checks
const char* dtype_name(int dt) {
  switch (dt) {
    case DT_F16: return "float16";
    case DT_BF16: return "bfloat16";
    case DT_F32: return "float32";
    default: return "float64";
  }
}
const char* compute_name(int dt) { return dt == DT_F64 ? "float64" : "float32"; }

// Checks self and returns its paramops::DType.
int check_self(const at::Tensor& self, const char* op) {
  int dt = -1;
  switch (self.scalar_type()) {
    case at::kHalf: dt = DT_F16; break;
    case at::kBFloat16: dt = DT_BF16; break;
    case at::kFloat: dt = DT_F32; break;
    case at::kDouble: dt = DT_F64; break;
    default:
      TORCH_CHECK_TYPE(false, "paramops.", op,
                       ": self must be a float16, bfloat16, float32 or float64 tensor, got ",
                       self.scalar_type());
  }
  TORCH_CHECK_TYPE(self.layout() == at::kStrided, "paramops.", op,
                   ": self must be a dense (strided) tensor, got layout ", self.layout());
  TORCH_CHECK(self.device().is_cpu(), "paramops.", op,
              ": the CPU kernel got a tensor on ", self.device());
  TORCH_CHECK(at::has_internal_overlap(self) != at::MemOverlap::Yes, "paramops.", op,
              ": self has overlapping elements in memory (e.g. from expand()); write into a "
              "tensor with distinct elements");
  return dt;
}

void check_finite(double v, const char* op, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(v), "paramops.", op, ": ", name, " must be finite, got ", v);
}

void check_offset(const at::Tensor& self, int64_t offset, const char* op) {
  TORCH_CHECK_VALUE(offset >= 0, "paramops.", op, ": offset must be >= 0, got ", offset);
  TORCH_CHECK_VALUE(offset <= std::numeric_limits<int64_t>::max() - self.numel(), "paramops.", op,
                    ": offset + numel overflows int64 (offset=", offset,
                    ", numel=", self.numel(), ")");
}

// ---------------------------------------------------------------- driver
struct Dim {
  int64_t size, stride;
};

// Dims of size 1 dropped, adjacent dims merged where the outer one steps over
// the inner one exactly (stride[d] == size[d+1] * stride[d+1]).
std::vector<Dim> coalesce(const at::Tensor& t) {
  std::vector<Dim> dims;
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t size = t.size(d), stride = t.stride(d);
    if (size == 1) continue;
    if (!dims.empty() && dims.back().stride == size * stride) {
      dims.back() = {dims.back().size * size, stride};
    } else {
      dims.push_back({size, stride});
    }
  }
  return dims;
}

// Memory offset (in elements) of logical element `idx`; fills the index of
// each dim into ix.
int64_t unravel(const std::vector<Dim>& dims, int64_t idx, std::vector<int64_t>& ix) {
  int64_t off = 0;
  for (size_t k = dims.size(); k-- > 0;) {
    ix[k] = idx % dims[k].size;
    idx /= dims[k].size;
    off += ix[k] * dims[k].stride;
  }
  return off;
}

// Steps the index over dims [0, nd) by one element (odometer), keeping off.
inline void step(const std::vector<Dim>& dims, size_t nd, std::vector<int64_t>& ix, int64_t& off) {
  for (size_t k = nd; k-- > 0;) {
    off += dims[k].stride;
    if (++ix[k] < dims[k].size) return;
    off -= dims[k].size * dims[k].stride;
    ix[k] = 0;
  }
}

// Scatters m contiguous elements of type E from buf to the strided tensor.
template <class E>
void scatter(const void* buf, int64_t m, char* data, const std::vector<Dim>& dims,
             std::vector<int64_t>& ix, int64_t& off) {
  const E* src = static_cast<const E*>(buf);
  E* dst = reinterpret_cast<E*>(data);
  for (int64_t k = 0; k < m; ++k) {
    dst[off] = src[k];
    step(dims, dims.size(), ix, off);
  }
}

void run(const at::Tensor& self, const Job& job, int64_t offset, GenFn gen) {
  const int64_t numel = self.numel();
  if (numel == 0) return;
  char* data = static_cast<char*>(self.data_ptr());
  const int64_t esize = self.element_size();
  const std::vector<Dim> dims = coalesce(self);

  if (dims.size() <= 1) {  // one run with one stride (or a single element)
    const int64_t stride = dims.empty() ? 1 : dims[0].stride;
    at::parallel_for(0, numel, kGrain, [&](int64_t b, int64_t e) {
      gen(job, offset + b, e - b, data + b * stride * esize, stride);
    });
    return;
  }

  const Dim inner = dims.back();
  if (inner.size >= 64) {
    // Row by row: rows of the innermost (coalesced) dim, written with its stride.
    const std::vector<Dim> outer(dims.begin(), dims.end() - 1);
    at::parallel_for(0, numel, kGrain, [&](int64_t b, int64_t e) {
      std::vector<int64_t> ix(outer.size());
      int64_t col = b % inner.size;
      int64_t row_off = unravel(outer, b / inner.size, ix);
      for (int64_t i = b; i < e;) {
        const int64_t len = std::min(inner.size - col, e - i);
        gen(job, offset + i, len, data + (row_off + col * inner.stride) * esize, inner.stride);
        i += len;
        col = 0;
        step(outer, outer.size(), ix, row_off);
      }
    });
    return;
  }

  // Short rows: generate blocks of logical elements into a small buffer and
  // scatter them, so that the per-call overhead is paid per block, not per row.
  at::parallel_for(0, numel, kGrain, [&](int64_t b, int64_t e) {
    constexpr int64_t kBlock = 2048;
    alignas(64) unsigned char buf[kBlock * 8];
    std::vector<int64_t> ix(dims.size());
    int64_t off = unravel(dims, b, ix);
    for (int64_t i = b; i < e;) {
      const int64_t m = std::min(kBlock, e - i);
      gen(job, offset + i, m, buf, 1);
      switch (esize) {
        case 2: scatter<uint16_t>(buf, m, data, dims, ix, off); break;
        case 4: scatter<uint32_t>(buf, m, data, dims, ix, off); break;
        default: scatter<uint64_t>(buf, m, data, dims, ix, off); break;
      }
      i += m;
    }
  });
}

Job make_job(int dist, int dt, int64_t seed, int64_t stream) {
  Job job;
  std::memset(&job, 0, sizeof(job));
  job.dist = dist;
  job.dtype = dt;
  job.seed = static_cast<uint64_t>(seed);
  job.stream = static_cast<uint64_t>(stream);
  return job;
}

// ---------------------------------------------------------------- ops
void uniform_cpu(const at::Tensor& self, double a, double b, int64_t seed, int64_t stream,
                 int64_t offset) {
  const char* op = "uniform_";
  const int dt = check_self(self, op);
  check_finite(a, op, "a");
  check_finite(b, op, "b");
  TORCH_CHECK_VALUE(a < b, "paramops.uniform_: a must be less than b, got a=", a, ", b=", b);
  Job job = make_job(DIST_UNIFORM, dt, seed, stream);
  if (dt == DT_F64) {
    job.pd[0] = a;
    job.pd[1] = b - a;
    TORCH_CHECK_VALUE(std::isfinite(job.pd[1]), "paramops.uniform_: b - a overflows float64 (a=",
                      a, ", b=", b, ")");
  } else {
    job.pf[0] = static_cast<float>(a);
    job.pf[1] = static_cast<float>(b) - static_cast<float>(a);
    TORCH_CHECK_VALUE(std::isfinite(job.pf[1]), "paramops.uniform_: b - a overflows float32 (a=",
                      a, ", b=", b, ")");
  }
  check_offset(self, offset, op);
  GenFn gen = choose_isa();
  run(self, job, offset, gen);
}

void normal_cpu(const at::Tensor& self, double mean, double std, int64_t seed, int64_t stream,
                int64_t offset) {
  const char* op = "normal_";
  const int dt = check_self(self, op);
  check_finite(mean, op, "mean");
  check_finite(std, op, "std");
  TORCH_CHECK_VALUE(std >= 0.0, "paramops.normal_: std must be >= 0, got ", std);
  Job job = make_job(DIST_NORMAL, dt, seed, stream);
  job.pd[0] = mean;
  job.pd[1] = std;
  job.pf[0] = static_cast<float>(mean);
  job.pf[1] = static_cast<float>(std);
  check_offset(self, offset, op);
  GenFn gen = choose_isa();
  run(self, job, offset, gen);
}

void trunc_normal_cpu(const at::Tensor& self, double mean, double std, double a, double b,
                      int64_t seed, int64_t stream, int64_t offset) {
  const char* op = "trunc_normal_";
  const int dt = check_self(self, op);
  check_finite(mean, op, "mean");
  check_finite(std, op, "std");
  check_finite(a, op, "a");
  check_finite(b, op, "b");
  TORCH_CHECK_VALUE(std > 0.0, "paramops.trunc_normal_: std must be > 0, got ", std);
  TORCH_CHECK_VALUE(a < b, "paramops.trunc_normal_: a must be less than b, got a=", a, ", b=", b);
  const double lo = dtype_bound(a, dt, true), hi = dtype_bound(b, dt, false);
  TORCH_CHECK_VALUE(lo <= hi, "paramops.trunc_normal_: no ", dtype_name(dt),
                    " value lies in [a, b] (a=", a, ", b=", b, ")");
  const TruncSetup s = trunc_setup(mean, std, a, b, dt == DT_F64);
  TORCH_CHECK_VALUE(s.ok, "paramops.trunc_normal_: [a, b] lies too far in the tail of the normal "
                    "distribution to sample in ", compute_name(dt), " (mean=", mean, ", std=", std,
                    ", a=", a, ", b=", b, ")");
  Job job = make_job(DIST_TRUNC, dt, seed, stream);
  const double p[6] = {s.pa, s.dp, mean, s.sstd, lo, hi};
  for (int k = 0; k < 6; ++k) {
    job.pd[k] = p[k];
    job.pf[k] = static_cast<float>(p[k]);
  }
  check_offset(self, offset, op);
  GenFn gen = choose_isa();
  run(self, job, offset, gen);
}

void fill_cpu(const at::Tensor& self, double value) {
  const char* op = "fill_";
  const int dt = check_self(self, op);
  check_finite(value, op, "value");
  double max = 0.0;
  switch (dt) {
    case DT_F16: max = 65504.0; break;
    case DT_BF16: max = static_cast<double>(bf16_value(0x7F7Fu)); break;
    case DT_F32: max = static_cast<double>(std::numeric_limits<float>::max()); break;
    default: max = std::numeric_limits<double>::max(); break;
  }
  TORCH_CHECK_VALUE(std::fabs(value) <= max, "paramops.fill_: value ", value, " overflows ",
                    dtype_name(dt));
  if (self.numel() == 0) return;
  // Below autograd: the op as a whole is what autograd sees.
  at::AutoDispatchBelowADInplaceOrView guard;
  at::Tensor t = self;
  t.fill_(value);
}

}  // namespace
}  // namespace cpu
}  // namespace paramops

TORCH_LIBRARY_IMPL(paramops, CPU, m) {
  m.impl("uniform_", &paramops::cpu::uniform_cpu);
  m.impl("normal_", &paramops::cpu::normal_cpu);
  m.impl("trunc_normal_", &paramops::cpu::trunc_normal_cpu);
  m.impl("fill_", &paramops::cpu::fill_cpu);
}

// `from paramops import _C` loads this library (and so runs the registration
// above); the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
