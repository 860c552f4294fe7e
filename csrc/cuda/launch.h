// paramops CUDA kernels: host launch functions (cuda/kernels.cu), torch-free
// and CUDA-header-free: streams travel as void* (a cudaStream_t), errors as
// the cudaError_t code (0 = cudaSuccess). Every launch checks its own error.
#pragma once
#include <stdint.h>

#include "cuda/generate.cuh"
#include "cuda/tied.cuh"

namespace paramops {
namespace cuda {

// The number of SMs of `device`; < 0 on error (the negated cudaError_t).
int sm_count(int device);
// cudaGetErrorString.
const char* error_string(int err);

// Elements [offset, offset + n) of g's stream into the contiguous `out`.
int launch_contig(const Gen& g, void* out, int64_t offset, int64_t n, int sms, void* stream);
// The same into a strided output at `base`, dims coalesced (innermost first,
// dims.nd <= kMaxDims).
int launch_strided(const Gen& g, void* base, const Dims& dims, int64_t offset, int64_t n, int sms,
                   void* stream);
// More dims: `dims_dev` is device memory holding size[nd] then stride[nd].
int launch_strided_many(const Gen& g, void* base, int nd, const int64_t* dims_dev, int64_t offset,
                        int64_t n, int sms, void* stream);
// Transposed-like layouts (use_tiled): tiles through shared memory; outer
// dims (coalesced dims 2..) in the parameters (nd <= kMaxDims) ...
int launch_tiled(const Gen& g, void* base, const Tiled<Dims>& td, int64_t offset, int sms, void* stream);
// ... or in device memory (outer_dev: size[nd] then stride[nd]; outer = the
// product of those sizes).
int launch_tiled_many(const Gen& g, void* base, const TileShape& t, int nd, const int64_t* outer_dev,
                      int64_t outer, int64_t offset, int sms, void* stream);
// multi_init_'s contiguous entries, all kinds and dtypes in one launch:
// entries_dev[n] and calls_start_dev[n + 1] in device memory, total = calls_start[n] > 0.
int launch_multi(const MultiEntry* entries_dev, const int64_t* calls_start_dev, int64_t n, int64_t total,
                 int sms, void* stream);
// tied_grad_'s groups in one launch: entries_dev[n], start_dev[n + 1] (total = start[n] > 0)
// and the address list in device memory.
int launch_tied(const TiedEntry* entries_dev, const int64_t* start_dev, const uint64_t* addrs_dev, int64_t n,
                int64_t total, int sms, void* stream);

}  // namespace cuda
}  // namespace paramops
