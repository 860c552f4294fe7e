// paramops CUDA kernels: the CUDA writer (cpu/writer.h; compiled by the host
// compiler as part of the CUDAExtension; the kernels are in cuda/kernels.cu).
//
// The checks, the seeds, multi_init_'s entry preparation and overlap check and
// the version bump are done by the ops' kernels (cpu/single.h, cpu/multi.h) for
// every device, so messages are the same. The writer does the rest: device
// guard, current stream, launch. paramops._C.register("cuda", None) installs it.
#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/job.h"
#include "cpu/multi.h"
#include "cpu/writer.h"
#include "cuda/launch.h"
#include "paramops/transforms.h"

namespace paramops {
namespace cuda {
namespace {

using cpu::Job;
constexpr c10::DeviceType kCUDA = c10::DeviceType::CUDA;

void check_launch(int err, const char* op) {
  TORCH_CHECK(err == 0, "paramops.", op, ": CUDA kernel launch failed: ", error_string(err));
}

// SM count per device index, cached (the grid is sized from it).
int sms_of(int device, const char* op) {
  static std::atomic<int> cache[64] = {};
  if (device >= 0 && device < 64) {
    const int v = cache[device].load(std::memory_order_relaxed);
    if (v > 0) return v;
  }
  const int v = sm_count(device);
  TORCH_CHECK(v > 0, "paramops.", op, ": cudaDeviceGetAttribute(MultiProcessorCount) failed: ",
              error_string(-v));
  if (device >= 0 && device < 64) cache[device].store(v, std::memory_order_relaxed);
  return v;
}

void* current_stream(int device) { return c10::cuda::getCurrentCUDAStream(device).stream(); }

Gen gen_of(const Job& j) {
  Gen g;
  std::memset(&g, 0, sizeof g);
  g.kind = j.kind;
  g.dtype = j.dtype;
  g.seed = j.seed;
  g.stream = j.stream;
  std::memcpy(g.pf, j.pf, sizeof g.pf);
  std::memcpy(g.pd, j.pd, sizeof g.pd);
  gen_set_keys(g);
  return g;
}

// Copies host bytes to `device` with one async H2D copy from pinned memory.
// The pinned buffer comes from (and returns to) torch's caching host
// allocator, which keeps it until the copy on the current stream is done; the
// device buffer is freed into the caching allocator on this stream, so the
// kernels queued after the copy on this stream finish before its reuse.
// Not while the stream is being captured into a CUDA graph: the replays would
// copy from the pinned buffer again, long after it went back to the allocator.
at::Tensor pinned_bytes(int64_t nbytes, const char* op) {
  TORCH_CHECK(c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None, "paramops.",
              op, ": cannot be captured in a CUDA graph here: it copies its metadata from pinned host memory, "
              "which a replay would read again after it was reused (run it outside the capture)");
  return at::empty({nbytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
}

// Sizes then strides of dims [from, m) in device memory (one pinned buffer,
// one async copy; see pinned_bytes).
at::Tensor dims_on_device(const std::vector<int64_t>& size, const std::vector<int64_t>& stride, int from, int m,
                          const at::Device& device, const char* op) {
  const int k = m - from;
  at::Tensor host = pinned_bytes(2 * k * static_cast<int64_t>(sizeof(int64_t)), op);
  int64_t* h = reinterpret_cast<int64_t*>(host.data_ptr());
  for (int i = 0; i < k; ++i) {
    h[i] = size[from + i];
    h[k + i] = stride[from + i];
  }
  return host.to(device, /*non_blocking=*/true);
}

// Writes elements [offset, offset + numel) of g into t (any strides) on the
// current stream of t's device; the caller holds the device guard. Dims are
// coalesced (innermost first); choose_path (cuda/generate.cuh) picks the
// contiguous, tiled (transposed-like) or strided kernel. Dims beyond the
// kernel parameters' capacity travel in device memory.
void write(const at::Tensor& t, const Gen& g, int64_t offset, const char* op) {
  const int64_t n = t.numel();
  if (n == 0) return;
  const int dev = t.get_device();
  const int sms = sms_of(dev, op);
  void* stream = current_stream(dev);
  char* data = static_cast<char*>(t.data_ptr());
  const int nd = static_cast<int>(t.dim());
  std::vector<int64_t> size(nd > 0 ? nd : 1), stride(nd > 0 ? nd : 1);
  const int m = coalesce_dims(nd, t.sizes().data(), t.strides().data(), size.data(), stride.data());
  const int path = choose_path(m, stride.data());
  if (path == PATH_CONTIG) {
    check_launch(launch_contig(g, data, offset, n, sms, stream), op);
    return;
  }
  const int from = path == PATH_TILED ? 2 : 0;  // the dims that the struct or device memory holds
  if (m - from <= kMaxDims) {
    Dims d;
    std::memset(&d, 0, sizeof d);
    d.nd = m - from;
    for (int k = 0; k < d.nd; ++k) {
      d.size[k] = size[from + k];
      d.stride[k] = stride[from + k];
    }
    if (path == PATH_TILED) {
      Tiled<Dims> td;
      td.t = tile_shape(size.data(), stride.data());
      td.outer = d;
      check_launch(launch_tiled(g, data, td, offset, sms, stream), op);
    } else {
      check_launch(launch_strided(g, data, d, offset, n, sms, stream), op);
    }
    return;
  }
  const at::Tensor dims = dims_on_device(size, stride, from, m, t.device(), op);
  const int64_t* dp = reinterpret_cast<const int64_t*>(dims.const_data_ptr());
  if (path == PATH_TILED) {
    int64_t outer = 1;
    for (int k = from; k < m; ++k) outer *= size[k];
    check_launch(launch_tiled_many(g, data, tile_shape(size.data(), stride.data()), m - from, dp, outer, offset,
                                   sms, stream),
                 op);
  } else {
    check_launch(launch_strided_many(g, data, m, dp, offset, n, sms, stream), op);
  }
}

// ---------------------------------------------------------------- multi_init_
// All contiguous entries, every kind and dtype, in one launch: their metadata
// (MultiEntry, 96 bytes each, parameters already in the compute type) and the
// prefix sums of their Philox call counts go to the device in one pinned
// buffer and one async copy; the kernel maps each block's chunk of calls to
// entries by binary search (cuda/generate.cuh). Strided entries take the
// single ops' strided kernel, one launch each, on the same stream.
void multi_write(cpu::Tensors tensors, const cpu::Scratch& sc) {
  constexpr const char* op = "multi_init_";
  if (sc.fused.empty() && sc.strided.empty()) return;
  const int64_t first = sc.fused.empty() ? sc.strided[0].index : sc.fused[0].index;
  const at::Device device = tensors[first].device();
  const c10::cuda::CUDAGuard guard(device);
  const int dev = device.index();

  const int64_t n = static_cast<int64_t>(sc.fused.size());
  if (n > 0) {
    const int64_t meta = n * static_cast<int64_t>(sizeof(MultiEntry));
    at::Tensor host = pinned_bytes(meta + (n + 1) * static_cast<int64_t>(sizeof(int64_t)), op);
    char* hp = static_cast<char*>(host.data_ptr());
    MultiEntry* entries = reinterpret_cast<MultiEntry*>(hp);
    int64_t* calls_start = reinterpret_cast<int64_t*>(hp + meta);
    calls_start[0] = 0;
    for (int64_t k = 0; k < n; ++k) {
      const cpu::Entry& en = sc.fused[k];
      const cpu::Tmpl& tp = sc.tmpls[en.tmpl];
      entries[k] = make_multi_entry(reinterpret_cast<uintptr_t>(en.data), sc.start[k + 1] - sc.start[k],
                                    en.offset, static_cast<uint64_t>(en.seed), static_cast<uint64_t>(en.stream),
                                    tp.kind, tp.job.dtype, tp.job.pf, tp.job.pd, tp.fill_bits);
      calls_start[k + 1] = calls_start[k] + multi_calls(entries[k]);
    }
    const int64_t total = calls_start[n];
    const at::Tensor dbuf = host.to(device, /*non_blocking=*/true);
    const char* dp = static_cast<const char*>(dbuf.const_data_ptr());
    check_launch(launch_multi(reinterpret_cast<const MultiEntry*>(dp), reinterpret_cast<const int64_t*>(dp + meta),
                              n, total, sms_of(dev, op), current_stream(dev)),
                 op);
  }
  for (const cpu::Entry& en : sc.strided) {
    const cpu::Tmpl& tp = sc.tmpls[en.tmpl];
    if (tp.kind != KIND_FILL) {
      Job job = tp.job;
      job.seed = static_cast<uint64_t>(en.seed);
      job.stream = static_cast<uint64_t>(en.stream);
      write(tensors[en.index], gen_of(job), en.offset, op);
    } else {
      cpu::fill_below_autograd(tensors[en.index], tp.fill_value);
    }
  }
}

// ---------------------------------------------------------------- tied_grad_
// Every group in one launch (cuda/tied.cuh): TiedEntry records, the prefix sums of the
// groups' numels and the address list go to the device in one pinned buffer and one
// async copy. The contiguous copies, temporaries and the copy_ into non-contiguous
// destinations are cpu::TiedLayout's (tied_cpu.cpp), as for the CPU's fused pass.
void tied_write(const std::vector<cpu::TiedGroup>& groups) {
  constexpr const char* op = "tied_grad_";
  const at::Device device = groups[0].dst[0].device();
  const c10::cuda::CUDAGuard guard(device);  // the layout's copies run on this device's stream too
  const cpu::TiedLayout lay(groups);
  if (lay.plans.empty()) return;
  std::vector<TiedEntry> entries;
  std::vector<uint64_t> addrs;
  for (size_t k = 0; k < lay.plans.size(); ++k) {
    const cpu::TiedPlan& t = lay.plans[k];
    const int64_t src0 = static_cast<int64_t>(addrs.size());
    for (int j = 0; j < t.nsrc; ++j) addrs.push_back(reinterpret_cast<uintptr_t>(t.src[j]));
    const int64_t dst0 = static_cast<int64_t>(addrs.size());
    for (int j = 0; j < t.ndst; ++j) addrs.push_back(reinterpret_cast<uintptr_t>(t.dst[j]));
    entries.push_back(make_tied_entry(lay.numel[k], t.sdt, t.ddt, t.scale, t.add, src0, t.nsrc, dst0, t.ndst,
                                      reinterpret_cast<uintptr_t>(t.rd)));
  }
  const int dev = device.index();
  const int64_t n = static_cast<int64_t>(entries.size());
  const int64_t eb = n * static_cast<int64_t>(sizeof(TiedEntry)), sb = (n + 1) * 8,
                ab = static_cast<int64_t>(addrs.size()) * 8;
  at::Tensor host = pinned_bytes(eb + sb + ab, op);
  char* hp = static_cast<char*>(host.data_ptr());
  std::memcpy(hp, entries.data(), eb);
  int64_t* start = reinterpret_cast<int64_t*>(hp + eb);
  start[0] = 0;
  for (int64_t k = 0; k < n; ++k) start[k + 1] = start[k] + entries[k].numel;
  std::memcpy(hp + eb + sb, addrs.data(), ab);
  const at::Tensor dbuf = host.to(device, /*non_blocking=*/true);
  const char* dp = static_cast<const char*>(dbuf.const_data_ptr());
  check_launch(launch_tied(reinterpret_cast<const TiedEntry*>(dp), reinterpret_cast<const int64_t*>(dp + eb),
                           reinterpret_cast<const uint64_t*>(dp + eb + sb), n, start[n], sms_of(dev, op),
                           current_stream(dev)),
               op);
  lay.finish();
}

class CudaWriter final : public cpu::Writer {
 public:
  void random(const at::Tensor& self, const Job& job, int64_t offset, const char* op) override {
    const c10::cuda::CUDAGuard guard(self.device());
    write(self, gen_of(job), offset, op);
  }
  void multi(cpu::Tensors tensors, const cpu::Scratch& sc) override { multi_write(tensors, sc); }
  void tied(const std::vector<cpu::TiedGroup>& groups) override { tied_write(groups); }
};

}  // namespace

}  // namespace cuda

namespace cpu {
Writer* cuda_writer() {
  static cuda::CudaWriter w;
  return &w;
}
}  // namespace cpu
}  // namespace paramops
