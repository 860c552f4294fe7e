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

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/job.h"
#include "cpu/ops_common.h"
#include "paramops/transforms.h"

namespace paramops {
namespace cpu {

// ---------------------------------------------------------------- ISA
namespace {
#if defined(__x86_64__) || defined(__i386__)
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
#else
bool cpu_has_avx512() { return false; }
bool cpu_has_avx2() { return false; }
#endif
}  // namespace

Isa choose_isa() {
  static const bool has512 = cpu_has_avx512();
  static const bool has2 = cpu_has_avx2();
  const char* env = std::getenv("PARAMOPS_CPU_ISA");
  if (env == nullptr || env[0] == '\0' || std::strcmp(env, "auto") == 0) {
    if (has512) return {"avx512", avx512::generate};
    if (has2) return {"avx2", avx2::generate};
    return {"base", base::generate};
  }
  if (std::strcmp(env, "avx512") == 0) {
    TORCH_CHECK(has512, "paramops: PARAMOPS_CPU_ISA=avx512 is not supported by this CPU "
                "(it needs AVX-512 F, DQ, VL, BW and FMA)");
    return {"avx512", avx512::generate};
  }
  if (std::strcmp(env, "avx2") == 0) {
    TORCH_CHECK(has2, "paramops: PARAMOPS_CPU_ISA=avx2 is not supported by this CPU "
                "(it needs AVX2 and FMA)");
    return {"avx2", avx2::generate};
  }
  if (std::strcmp(env, "base") == 0) return {"base", base::generate};
  TORCH_CHECK(false, "paramops: PARAMOPS_CPU_ISA must be avx512, avx2, base or auto, got '",
              env, "'");
  return {nullptr, nullptr};
}

// ---------------------------------------------------------------- checks
// Messages match paramops/_checks.py (the Python side), so numbers are
// printed as Python's repr() prints a float and dtypes as torch.<name>;
// multi_init_ names its entry (Subject, ops_common.h) as paramops/multi.py does.
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

// Checks self and returns its paramops::DType.
int check_self(const at::Tensor& self, const Subject& s, c10::DeviceType device) {
  const char* op = s.op;
  TORCH_CHECK_TYPE(self.layout() == at::kStrided, "paramops.", op, ": ", s.self(),
                   " must be a dense (strided) tensor, got layout ", torch_layout(self.layout()));
  int dt = -1;
  switch (self.scalar_type()) {
    case at::kHalf: dt = DT_F16; break;
    case at::kBFloat16: dt = DT_BF16; break;
    case at::kFloat: dt = DT_F32; break;
    case at::kDouble: dt = DT_F64; break;
    default:
      TORCH_CHECK_TYPE(false, "paramops.", op, ": ", s.self(),
                       " must be a float16, bfloat16, float32 or float64 tensor, got ",
                       torch_dtype(self.scalar_type()));
  }
  TORCH_CHECK(self.device().type() == device, "paramops.", op, ": the ",
              device == c10::DeviceType::CPU ? "CPU" : "CUDA", " kernel got a tensor on ",
              self.device().str());
  TORCH_CHECK(at::has_internal_overlap(self) != at::MemOverlap::Yes, "paramops.", op, ": ",
              s.self(), " has overlapping elements in memory (e.g. from expand()); write into a "
              "tensor with distinct elements");
  return dt;
}

namespace {
void check_finite(double v, const Subject& s, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(v), "paramops.", s.op, ": ", name, s.of(), " must be finite, got ",
                    py_float(v));
}

// A parameter the kernels use in the compute type (float for 16/32-bit outputs)
// must stay finite there, or the values would be inf/NaN.
void check_fits_compute(double v, int dt, const Subject& s, const char* name) {
  TORCH_CHECK_VALUE(dt == DT_F64 || std::isfinite(static_cast<float>(v)), "paramops.", s.op, ": ",
                    name, " ", py_float(v), s.of(), " overflows torch.float32");
}
}  // namespace

void check_offset(const at::Tensor& self, int64_t offset, const Subject& s) {
  const char* op = s.op;
  // std::to_string, not an ostream: on the GPU box (torch 2.11, g++ 13) streaming an
  // integer into c10::str from this library crashed in libstdc++'s num_put.
  TORCH_CHECK_VALUE(offset >= 0, "paramops.", op, ": offset", s.of(), " must be >= 0, got ",
                    std::to_string(offset));
  TORCH_CHECK_VALUE(offset <= std::numeric_limits<int64_t>::max() - self.numel(), "paramops.", op,
                    ": offset + numel", s.of(), " overflows int64");
}

// ---------------------------------------------------------------- driver
namespace {
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

// Writes a rows x cols block (row r at buf + r * ld) column by column, so that
// consecutive stores go to consecutive rows (the smaller stride).
template <class E>
void write_block(const void* buf, int64_t rows, int64_t cols, int64_t ld, char* dst,
                 int64_t s_r, int64_t s_c) {
  const E* src = static_cast<const E*>(buf);
  E* d = reinterpret_cast<E*>(dst);
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) d[r * s_r + c * s_c] = src[r * ld + c];
  }
}

// Transposed-like layouts (the second-innermost dim has the smaller stride,
// e.g. w.t() or channels_last): writing rows one by one would touch a new
// cache line (and often a new page) per element. Instead, blocks of B rows x
// C columns are generated into a small buffer (logical order) and written out
// column by column.
void run_blocked(const std::vector<Dim>& dims, char* data, int64_t esize, const Job& job,
                 int64_t offset, GenFn gen) {
  const Dim inner = dims.back(), rowd = dims[dims.size() - 2];
  const std::vector<Dim> outer(dims.begin(), dims.end() - 2);
  const int64_t R = rowd.size, L = inner.size;
  const int64_t C = std::min<int64_t>(L, 256);
  const int64_t B = std::min<int64_t>(R, std::max<int64_t>(32, 4096 / C));  // B * C <= 8192
  const int64_t nb = (R + B - 1) / B;
  int64_t O = 1;
  for (const Dim& d : outer) O *= d.size;
  const int64_t group = B * L;  // elements per group
  const int64_t grain = std::max<int64_t>(1, kGrain / group);
  const int64_t block = std::max<int64_t>(1, kBlock / group);
  parallel_blocks(O * nb, block, grain, [&](int64_t g0, int64_t g1) {
    std::vector<unsigned char> buf(static_cast<size_t>(B * C * esize));
    std::vector<int64_t> ix(outer.size());
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t o = g / nb, r0 = (g % nb) * B, rows = std::min(B, R - r0);
      const int64_t first = (o * R + r0) * L;  // logical index of (o, r0, 0)
      const int64_t off = unravel(outer, o, ix) + r0 * rowd.stride;
      for (int64_t c0 = 0; c0 < L; c0 += C) {
        const int64_t cols = std::min(C, L - c0);
        if (cols == L) {  // whole rows: one logically contiguous run
          gen(job, offset + first, rows * L, buf.data(), 1);
        } else {
          for (int64_t r = 0; r < rows; ++r) {
            gen(job, offset + first + r * L + c0, cols, buf.data() + r * cols * esize, 1);
          }
        }
        char* dst = data + (off + c0 * inner.stride) * esize;
        switch (esize) {
          case 2: write_block<uint16_t>(buf.data(), rows, cols, cols, dst, rowd.stride, inner.stride); break;
          case 4: write_block<uint32_t>(buf.data(), rows, cols, cols, dst, rowd.stride, inner.stride); break;
          default: write_block<uint64_t>(buf.data(), rows, cols, cols, dst, rowd.stride, inner.stride); break;
        }
      }
    }
  });
}

}  // namespace

void run(const at::Tensor& self, const Job& job, int64_t offset, GenFn gen) {
  const int64_t numel = self.numel();
  if (numel == 0) return;
  char* data = static_cast<char*>(self.data_ptr());
  const int64_t esize = self.element_size();
  const std::vector<Dim> dims = coalesce(self);

  if (dims.size() <= 1) {  // one run with one stride (or a single element)
    const int64_t stride = dims.empty() ? 1 : dims[0].stride;
    parallel_blocks(numel, kBlock, kGrain, [&](int64_t b, int64_t e) {
      gen(job, offset + b, e - b, data + b * stride * esize, stride);
    });
    return;
  }

  const Dim inner = dims.back();
  if (dims[dims.size() - 2].stride < inner.stride) {
    run_blocked(dims, data, esize, job, offset, gen);
    return;
  }
  if (inner.size >= 64) {
    // Row by row: rows of the innermost (coalesced) dim, written with its stride.
    const std::vector<Dim> outer(dims.begin(), dims.end() - 1);
    parallel_blocks(numel, kBlock, kGrain, [&](int64_t b, int64_t e) {
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
  parallel_blocks(numel, kBlock, kGrain, [&](int64_t b, int64_t e) {
    constexpr int64_t kBlock = 2048;
    std::vector<unsigned char> buf(kBlock * 8);
    std::vector<int64_t> ix(dims.size());
    int64_t off = unravel(dims, b, ix);
    for (int64_t i = b; i < e;) {
      const int64_t m = std::min(kBlock, e - i);
      gen(job, offset + i, m, buf.data(), 1);
      switch (esize) {
        case 2: scatter<uint16_t>(buf.data(), m, data, dims, ix, off); break;
        case 4: scatter<uint32_t>(buf.data(), m, data, dims, ix, off); break;
        default: scatter<uint64_t>(buf.data(), m, data, dims, ix, off); break;
      }
      i += m;
    }
  });
}

namespace {
Job make_job(int dist, int dt, int64_t seed, int64_t stream) {
  Job job;
  std::memset(&job, 0, sizeof(job));
  job.dist = dist;
  job.dtype = dt;
  job.seed = static_cast<uint64_t>(seed);
  job.stream = static_cast<uint64_t>(stream);
  return job;
}
}  // namespace

// ---------------------------------------------------------------- parameters
Job uniform_job(int dt, double a, double b, int64_t seed, int64_t stream, const Subject& s) {
  const char* op = s.op;
  check_finite(a, s, "a");
  check_finite(b, s, "b");
  TORCH_CHECK_VALUE(a < b, "paramops.", op, ": a", s.of(), " must be less than b, got a=",
                    py_float(a), ", b=", py_float(b));
  Job job = make_job(DIST_UNIFORM, dt, seed, stream);
  if (dt == DT_F64) {
    job.pd[0] = a;
    job.pd[1] = b - a;
    TORCH_CHECK_VALUE(std::isfinite(job.pd[1]), "paramops.", op, ": b - a", s.of(),
                      " overflows torch.float64");
  } else {
    job.pf[0] = static_cast<float>(a);
    job.pf[1] = static_cast<float>(b) - static_cast<float>(a);
    TORCH_CHECK_VALUE(std::isfinite(job.pf[1]), "paramops.", op, ": b - a", s.of(),
                      " overflows torch.float32");
  }
  return job;
}

Job normal_job(int dt, double mean, double std, int64_t seed, int64_t stream, const Subject& s) {
  check_finite(mean, s, "mean");
  check_finite(std, s, "std");
  TORCH_CHECK_VALUE(std >= 0.0, "paramops.", s.op, ": std", s.of(), " must be >= 0, got ",
                    py_float(std));
  check_fits_compute(mean, dt, s, "mean");
  check_fits_compute(std, dt, s, "std");
  Job job = make_job(DIST_NORMAL, dt, seed, stream);
  job.pd[0] = mean;
  job.pd[1] = std;
  job.pf[0] = static_cast<float>(mean);
  job.pf[1] = static_cast<float>(std);
  return job;
}

Job trunc_normal_job(int dt, double mean, double std, double a, double b, int64_t seed,
                     int64_t stream, const Subject& s) {
  const char* op = s.op;
  check_finite(mean, s, "mean");
  check_finite(std, s, "std");
  check_finite(a, s, "a");
  check_finite(b, s, "b");
  TORCH_CHECK_VALUE(std > 0.0, "paramops.", op, ": std", s.of(), " must be > 0, got ", py_float(std));
  check_fits_compute(mean, dt, s, "mean");
  check_fits_compute(std, dt, s, "std");
  TORCH_CHECK_VALUE(a < b, "paramops.", op, ": a", s.of(), " must be less than b, got a=",
                    py_float(a), ", b=", py_float(b));
  const double lo = dtype_bound(a, dt, true), hi = dtype_bound(b, dt, false);
  TORCH_CHECK_VALUE(lo <= hi, "paramops.", op, ": no ", dtype_name(dt), " value lies in [a, b] = [",
                    py_float(a), ", ", py_float(b), "]", s.of());
  const TruncSetup t = trunc_setup(mean, std, a, b, dt == DT_F64);
  TORCH_CHECK_VALUE(t.ok, "paramops.", op, ": [a, b] = [", py_float(a), ", ", py_float(b), "]",
                    s.of(), " lies too far in the tail of the normal distribution (mean=",
                    py_float(mean), ", std=", py_float(std), ") to sample in ", compute_name(dt));
  Job job = make_job(DIST_TRUNC, dt, seed, stream);
  const double p[6] = {t.pa, t.dp, mean, t.sstd, lo, hi};
  for (int k = 0; k < 6; ++k) {
    job.pd[k] = p[k];
    job.pf[k] = static_cast<float>(p[k]);
  }
  return job;
}

void check_fill(int dt, double value, const Subject& s) {
  check_finite(value, s, "value");
  double max = 0.0;
  switch (dt) {
    case DT_F16: max = 65504.0; break;
    case DT_BF16: max = static_cast<double>(bf16_value(0x7F7Fu)); break;
    case DT_F32: max = static_cast<double>(std::numeric_limits<float>::max()); break;
    default: max = std::numeric_limits<double>::max(); break;
  }
  TORCH_CHECK_VALUE(std::fabs(value) <= max, "paramops.", s.op, ": value ", py_float(value), s.of(),
                    " overflows ", dtype_name(dt));
}

// ---------------------------------------------------------------- ops
namespace {
// The CPU policy of SingleOps (ops_common.h): the checked ops' writes.
struct Cpu {
  static constexpr c10::DeviceType kDevice = c10::DeviceType::CPU;
  static void write(const at::Tensor& self, const Job& job, int64_t offset, const char*) {
    run(self, job, offset, choose_isa().gen);
  }
  static void fill(const at::Tensor& self, double value) { fill_below_autograd(self, value); }
};
using Ops = SingleOps<Cpu>;
}  // namespace
}  // namespace cpu
}  // namespace paramops

TORCH_LIBRARY_IMPL(paramops, CPU, m) {
  m.impl("uniform_", &paramops::cpu::Ops::uniform);
  m.impl("normal_", &paramops::cpu::Ops::normal);
  m.impl("trunc_normal_", &paramops::cpu::Ops::trunc_normal);
  m.impl("fill_", &paramops::cpu::Ops::fill);
}

// Sparse CPU tensors dispatch here, not to CPU: the same kernels, whose
// checks refuse them with the layout message (TypeError) before anything else.
TORCH_LIBRARY_IMPL(paramops, SparseCPU, m) {
  m.impl("uniform_", &paramops::cpu::Ops::uniform);
  m.impl("normal_", &paramops::cpu::Ops::normal);
  m.impl("trunc_normal_", &paramops::cpu::Ops::trunc_normal);
  m.impl("fill_", &paramops::cpu::Ops::fill);
}
TORCH_LIBRARY_IMPL(paramops, SparseCsrCPU, m) {
  m.impl("uniform_", &paramops::cpu::Ops::uniform);
  m.impl("normal_", &paramops::cpu::Ops::normal);
  m.impl("trunc_normal_", &paramops::cpu::Ops::trunc_normal);
  m.impl("fill_", &paramops::cpu::Ops::fill);
}

#if defined(PARAMOPS_CUDA)
namespace paramops {
namespace cuda {
void register_kernels();  // cuda/ops.cpp
}  // namespace cuda
}  // namespace paramops
#endif

// `from paramops import _C` loads this library (and so runs the registrations
// above: the CPU kernels only). The module's functions:
//   cpu_isa(): the name of the code path ("avx512", "avx2", "base") the CPU
//     kernels take now, PARAMOPS_CPU_ISA included;
//   cuda_built(): whether this build has the CUDA kernels (cuda/*.cu);
//   register_cuda(): registers them for the CUDA dispatch key (idempotent), so
//     that Python chooses the backend that serves CUDA tensors; raises
//     RuntimeError in a build without them.
namespace {
PyObject* py_cpu_isa(PyObject*, PyObject*) {
  try {
    return PyUnicode_FromString(paramops::cpu::choose_isa().name);
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  }
}
PyObject* py_cuda_built(PyObject*, PyObject*) {
#if defined(PARAMOPS_CUDA)
  Py_RETURN_TRUE;
#else
  Py_RETURN_FALSE;
#endif
}
PyObject* py_register_cuda(PyObject*, PyObject*) {
#if defined(PARAMOPS_CUDA)
  try {
    paramops::cuda::register_kernels();
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
  Py_RETURN_NONE;
#else
  PyErr_SetString(PyExc_RuntimeError,
                  "paramops: this build of paramops._C has no CUDA kernels (built without CUDA: "
                  "no csrc/cuda/*.cu, a CPU-only torch, no CUDA toolchain or PARAMOPS_NO_CUDA=1)");
  return nullptr;
#endif
}
PyMethodDef methods[] = {
    {"cpu_isa", py_cpu_isa, METH_NOARGS,
     "The CPU code path the kernels take now: 'avx512', 'avx2' or 'base'."},
    {"cuda_built", py_cuda_built, METH_NOARGS,
     "Whether this build of paramops._C has the CUDA kernels."},
    {"register_cuda", py_register_cuda, METH_NOARGS,
     "Register the CUDA kernels of the five ops for the CUDA dispatch key (idempotent). "
     "RuntimeError in a build without CUDA kernels."},
    {nullptr, nullptr, 0, nullptr}};
}  // namespace

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
