// paramops CUDA kernels: the __global__ kernels (cuda/generate.cuh) and their
// host launch functions (cuda/launch.h). No torch: nvcc compiles this file
// alone (tests/test_cuda_kernels.py does, and inspects the PTX).
//
// Build flags that the bits depend on (setup.py NVCC_FLAGS): --fmad=false (no
// contraction of a*b+c; only the explicit fmaf/fma, i.e. fma.rn), and the
// defaults --prec-div=true --prec-sqrt=true --ftz=false spelled out (correctly
// rounded / and sqrt, denormals kept). No --use_fast_math.
//
// Grid: 256 threads per block, as many blocks as fit on the device at once
// (occupancy x SM count), capped by the work; each thread loops grid-stride.
// Values never depend on the grid.
#include <cuda_runtime.h>

#include <atomic>

#include "cuda/launch.h"

namespace paramops {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// Blocks for `work` units of one thread each: enough to fill the device once.
// The occupancy is cached per kernel (one architecture per build).
template <auto Kernel>
int grid_for(uint64_t work, int sms) {
  static std::atomic<int> cached{0};
  int per_sm = cached.load(std::memory_order_relaxed);
  if (per_sm <= 0) {
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, Kernel, kThreads, 0) != cudaSuccess || b <= 0) {
      (void)cudaGetLastError();  // clear it: a later launch reports its own error
      b = 4;
    }
    per_sm = b;
    cached.store(b, std::memory_order_relaxed);
  }
  const uint64_t need = (work + kThreads - 1) / kThreads;
  const uint64_t full = (uint64_t)per_sm * (uint64_t)(sms > 0 ? sms : 1);
  const uint64_t g = need < full ? need : full;
  return (int)(g > 0 ? g : 1);
}

int check_launch() { return (int)cudaGetLastError(); }

template <int D, int DT>
int contig_dt(const Gen& g, void* out, int64_t offset, int64_t n, int sms, cudaStream_t s) {
  const int L = lanes_of(DT);
  const uint64_t calls = end_call(offset, n, L) - first_call(offset, L);
  contig_kernel<D, DT><<<grid_for<contig_kernel<D, DT>>(calls, sms), kThreads, 0, s>>>(g, static_cast<char*>(out), offset, n);
  return check_launch();
}

template <int D, int DT, class DM>
int strided_dt(const Gen& g, void* base, const DM& dims, int64_t offset, int64_t n, int sms, cudaStream_t s) {
  const int L = lanes_of(DT);
  const uint64_t calls = end_call(offset, n, L) - first_call(offset, L);
  strided_kernel<D, DT, DM><<<grid_for<strided_kernel<D, DT, DM>>(calls, sms), kThreads, 0, s>>>(g, static_cast<char*>(base), dims, offset, n);
  return check_launch();
}

template <class DM>
int64_t outer_count(const DM& d) {
  int64_t o = 1;
  for (int k = 0; k < d.nd; ++k) o *= d.size[k];
  return o;
}

template <int D, int DT, class DM>
int tiled_dt(const Gen& g, void* base, const Tiled<DM>& td, int64_t outer, int64_t offset, int sms, cudaStream_t s) {
  const uint64_t ntiles = tile_count(td.t, outer);
  if (ntiles == 0) return 0;
  tiled_kernel<D, DT, DM><<<grid_for<tiled_kernel<D, DT, DM>>(ntiles * kThreads, sms), kThreads, 0, s>>>(
      g, static_cast<char*>(base), td, offset, ntiles);
  return check_launch();
}

// Dispatch on (dist, dtype) to F<D, DT>::run(args...).
#define PARAMOPS_DISPATCH(FN, g, ...)                                        \
  switch ((g).dtype * 3 + (g).kind) {                                        \
    case DT_F32 * 3 + KIND_UNIFORM: return FN<KIND_UNIFORM, DT_F32>(__VA_ARGS__); \
    case DT_F32 * 3 + KIND_NORMAL: return FN<KIND_NORMAL, DT_F32>(__VA_ARGS__);   \
    case DT_F32 * 3 + KIND_TRUNC: return FN<KIND_TRUNC, DT_F32>(__VA_ARGS__);     \
    case DT_F64 * 3 + KIND_UNIFORM: return FN<KIND_UNIFORM, DT_F64>(__VA_ARGS__); \
    case DT_F64 * 3 + KIND_NORMAL: return FN<KIND_NORMAL, DT_F64>(__VA_ARGS__);   \
    case DT_F64 * 3 + KIND_TRUNC: return FN<KIND_TRUNC, DT_F64>(__VA_ARGS__);     \
    case DT_F16 * 3 + KIND_UNIFORM: return FN<KIND_UNIFORM, DT_F16>(__VA_ARGS__); \
    case DT_F16 * 3 + KIND_NORMAL: return FN<KIND_NORMAL, DT_F16>(__VA_ARGS__);   \
    case DT_F16 * 3 + KIND_TRUNC: return FN<KIND_TRUNC, DT_F16>(__VA_ARGS__);     \
    case DT_BF16 * 3 + KIND_UNIFORM: return FN<KIND_UNIFORM, DT_BF16>(__VA_ARGS__); \
    case DT_BF16 * 3 + KIND_NORMAL: return FN<KIND_NORMAL, DT_BF16>(__VA_ARGS__);   \
    case DT_BF16 * 3 + KIND_TRUNC: return FN<KIND_TRUNC, DT_BF16>(__VA_ARGS__);     \
    default: return (int)cudaErrorInvalidValue;                              \
  }

}  // namespace

int sm_count(int device) {
  int v = 0;
  const cudaError_t e = cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device);
  return e == cudaSuccess ? v : -(int)e;
}

const char* error_string(int err) { return cudaGetErrorString((cudaError_t)err); }

int launch_contig(const Gen& g, void* out, int64_t offset, int64_t n, int sms, void* stream) {
  if (n <= 0) return 0;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  PARAMOPS_DISPATCH(contig_dt, g, g, out, offset, n, sms, s)
}

int launch_strided(const Gen& g, void* base, const Dims& dims, int64_t offset, int64_t n, int sms,
                   void* stream) {
  if (n <= 0) return 0;
  if (dims.nd < 0 || dims.nd > kMaxDims) return (int)cudaErrorInvalidValue;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  PARAMOPS_DISPATCH(strided_dt, g, g, base, dims, offset, n, sms, s)
}

int launch_strided_many(const Gen& g, void* base, int nd, const int64_t* dims_dev, int64_t offset,
                        int64_t n, int sms, void* stream) {
  if (n <= 0) return 0;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const DimsPtr dims = {nd, dims_dev, dims_dev + nd};
  PARAMOPS_DISPATCH(strided_dt, g, g, base, dims, offset, n, sms, s)
}

int launch_tiled(const Gen& g, void* base, const Tiled<Dims>& td, int64_t offset, int sms, void* stream) {
  if (td.outer.nd < 0 || td.outer.nd > kMaxDims || td.t.tr <= 0 || td.t.tc <= 0 ||
      (int64_t)td.t.tr * (td.t.tc + 1) > kTileSmem) {
    return (int)cudaErrorInvalidValue;
  }
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t outer = outer_count(td.outer);
  PARAMOPS_DISPATCH(tiled_dt, g, g, base, td, outer, offset, sms, s)
}

int launch_tiled_many(const Gen& g, void* base, const TileShape& t, int nd, const int64_t* outer_dev,
                      int64_t outer, int64_t offset, int sms, void* stream) {
  if (t.tr <= 0 || t.tc <= 0 || (int64_t)t.tr * (t.tc + 1) > kTileSmem) return (int)cudaErrorInvalidValue;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  Tiled<DimsPtr> td;
  td.t = t;
  td.outer.nd = nd;
  td.outer.size = outer_dev;
  td.outer.stride = outer_dev + nd;
  PARAMOPS_DISPATCH(tiled_dt, g, g, base, td, outer, offset, sms, s)
}

int launch_multi(const MultiEntry* entries_dev, const int64_t* calls_start_dev, int64_t n, int64_t total,
                 int sms, void* stream) {
  if (n <= 0 || total <= 0) return 0;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  multi_kernel<<<grid_for<multi_kernel>(((uint64_t)total + kMultiUnroll - 1) / kMultiUnroll, sms), kThreads, 0, s>>>(entries_dev, calls_start_dev,
                                                                                n, total);
  return check_launch();
}

int launch_tied(const TiedEntry* entries_dev, const int64_t* start_dev, const uint64_t* addrs_dev, int64_t n,
                int64_t total, int sms, void* stream) {
  if (n <= 0 || total <= 0) return 0;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  tied_kernel<<<grid_for<tied_kernel>((uint64_t)total, sms), kThreads, 0, s>>>(entries_dev, start_dev, addrs_dev, n,
                                                                              total);
  return check_launch();
}

}  // namespace cuda
}  // namespace paramops
