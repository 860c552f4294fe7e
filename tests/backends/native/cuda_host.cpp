// Host emulation of the CUDA kernels (tests/test_cuda_kernels.py): the kernel
// bodies of csrc/cuda/generate.cuh, compiled by g++, run over an emulated
// grid (every block, every thread, one after another) into host buffers.
// Built at test time: g++ -O2 -ffp-contract=off -std=c++17 -shared -fPIC -I csrc.
//
// The per-call parameters are rounded here as the Job builders of
// csrc/cpu/ops.cpp round them (the tests compare with the CPU ops, so a
// difference shows).
#include <stdint.h>
#include <string.h>

#include <vector>

#include "cuda/generate.cuh"
#include "cuda/tied.cuh"

using namespace paramops;
using namespace paramops::cuda;

namespace {

void params_of(int dist, int dtype, const double* p, float* pf, double* pd) {
  for (int k = 0; k < 6; ++k) {
    pf[k] = 0.0f;
    pd[k] = 0.0;
  }
  if (dist == KIND_UNIFORM) {
    pd[0] = p[0];
    pd[1] = p[1] - p[0];
    pf[0] = (float)p[0];
    pf[1] = (float)p[1] - (float)p[0];
  } else if (dist == KIND_NORMAL) {
    pd[0] = p[0];
    pd[1] = p[1];
    pf[0] = (float)p[0];
    pf[1] = (float)p[1];
  } else if (dist == KIND_TRUNC) {
    const double lo = dtype_bound(p[2], dtype, true), hi = dtype_bound(p[3], dtype, false);
    const TruncSetup t = trunc_setup(p[0], p[1], p[2], p[3], dtype == DT_F64);
    const double q[6] = {t.pa, t.dp, p[0], t.sstd, lo, hi};
    for (int k = 0; k < 6; ++k) {
      pd[k] = q[k];
      pf[k] = (float)q[k];
    }
  }
}

Gen make_gen(int dist, int dtype, const double* p, uint64_t seed, uint64_t stream) {
  Gen g;
  memset(&g, 0, sizeof g);
  g.kind = dist;
  g.dtype = dtype;
  g.seed = seed;
  g.stream = stream;
  params_of(dist, dtype, p, g.pf, g.pd);
  gen_set_keys(g);
  return g;
}

#define DISPATCH(BODY)                                                         \
  switch (g.dtype * 3 + g.kind) {                                              \
    case DT_F32 * 3 + KIND_UNIFORM: { const int D = KIND_UNIFORM, DT = DT_F32; BODY; } break; \
    case DT_F32 * 3 + KIND_NORMAL: { const int D = KIND_NORMAL, DT = DT_F32; BODY; } break;   \
    case DT_F32 * 3 + KIND_TRUNC: { const int D = KIND_TRUNC, DT = DT_F32; BODY; } break;     \
    case DT_F64 * 3 + KIND_UNIFORM: { const int D = KIND_UNIFORM, DT = DT_F64; BODY; } break; \
    case DT_F64 * 3 + KIND_NORMAL: { const int D = KIND_NORMAL, DT = DT_F64; BODY; } break;   \
    case DT_F64 * 3 + KIND_TRUNC: { const int D = KIND_TRUNC, DT = DT_F64; BODY; } break;     \
    case DT_F16 * 3 + KIND_UNIFORM: { const int D = KIND_UNIFORM, DT = DT_F16; BODY; } break; \
    case DT_F16 * 3 + KIND_NORMAL: { const int D = KIND_NORMAL, DT = DT_F16; BODY; } break;   \
    case DT_F16 * 3 + KIND_TRUNC: { const int D = KIND_TRUNC, DT = DT_F16; BODY; } break;     \
    case DT_BF16 * 3 + KIND_UNIFORM: { const int D = KIND_UNIFORM, DT = DT_BF16; BODY; } break; \
    case DT_BF16 * 3 + KIND_NORMAL: { const int D = KIND_NORMAL, DT = DT_BF16; BODY; } break;   \
    case DT_BF16 * 3 + KIND_TRUNC: { const int D = KIND_TRUNC, DT = DT_BF16; BODY; } break;     \
    default: return -1;                                                        \
  }

template <class DM>
int run_tiled(const Gen& g, char* base, const Tiled<DM>& td, int64_t offset, int grid, int block) {
  int64_t outer = 1;
  for (int k = 0; k < td.outer.nd; ++k) outer *= td.outer.size[k];
  const uint64_t ntiles = tile_count(td.t, outer);
  std::vector<uint64_t> smem(kTileSmem);
  for (int b = 0; b < grid; ++b) {
    for (uint64_t tile = b; tile < ntiles; tile += grid) {
      memset(smem.data(), 0xFF, smem.size() * 8);  // unwritten shared memory shows as NaN
      for (int t = 0; t < block; ++t) {
        DISPATCH((tiled_gen<D, DT>(g, td, offset, tile, t, block, smem.data())))
      }
      for (int t = 0; t < block; ++t) {
        const int ES = esize_of(g.dtype);
        if (ES == 2) tiled_store<2>(base, td, tile, t, block, smem.data());
        if (ES == 4) tiled_store<4>(base, td, tile, t, block, smem.data());
        if (ES == 8) tiled_store<8>(base, td, tile, t, block, smem.data());
      }
    }
  }
  return 0;
}

template <class DM>
int run_strided(const Gen& g, char* base, const DM& dims, int64_t offset, int64_t n, int grid, int block) {
  for (int b = 0; b < grid; ++b) {
    for (int t = 0; t < block; ++t) {
      DISPATCH((strided_body<D, DT>(g, base, dims, offset, n, b, t, grid, block)))
    }
  }
  return 0;
}

}  // namespace

extern "C" {

// Elements [offset, offset + n) into the contiguous out, grid x block threads.
int ph_contig(int dist, int dtype, const double* p, uint64_t seed, uint64_t stream, void* out,
              int64_t offset, int64_t n, int grid, int block) {
  const Gen g = make_gen(dist, dtype, p, seed, stream);
  for (int b = 0; b < grid; ++b) {
    for (int t = 0; t < block; ++t) {
      DISPATCH((contig_body<D, DT>(g, (char*)out, offset, n, b, t, grid, block)))
    }
  }
  return 0;
}

// The same into a strided output (sizes/strides of the view, outermost first,
// in elements; base = its element 0), dims coalesced and the path chosen as
// cuda/ops.cpp does. force_ptr: the dims (or the tiled path's outer dims) in
// "device memory" (DimsPtr) even when they fit the Dims struct. plain: the
// strided path even where the tiled one would serve. tr, tc > 0: this tile
// instead of tile_shape's. Returns the number of coalesced dims, + 100 when
// the tiled path ran, -1 on a bad tile.
int ph_strided(int dist, int dtype, const double* p, uint64_t seed, uint64_t stream, void* base_, int nd,
               const int64_t* sizes, const int64_t* strides, int64_t offset, int force_ptr, int plain, int tr, int tc,
               int grid, int block) {
  char* base = (char*)base_;
  const Gen g = make_gen(dist, dtype, p, seed, stream);
  int64_t n = 1;
  for (int d = 0; d < nd; ++d) n *= sizes[d];
  std::vector<int64_t> cs(nd + 1), cst(nd + 1);
  const int m = coalesce_dims(nd, sizes, strides, cs.data(), cst.data());
  int path = choose_path(m, cst.data());
  if (plain && path == PATH_TILED) path = PATH_STRIDED;
  if (path == PATH_CONTIG && !force_ptr && !plain) {
    for (int b = 0; b < grid; ++b) {
      for (int t = 0; t < block; ++t) {
        DISPATCH((contig_body<D, DT>(g, base, offset, n, b, t, grid, block)))
      }
    }
    return m;
  }
  const int from = path == PATH_TILED ? 2 : 0;
  Dims dims;
  memset(&dims, 0, sizeof dims);
  const bool fits = m - from <= kMaxDims && !force_ptr;
  if (fits) {
    dims.nd = m - from;
    for (int k = 0; k < dims.nd; ++k) {
      dims.size[k] = cs[from + k];
      dims.stride[k] = cst[from + k];
    }
  }
  const DimsPtr dptr = {m - from, cs.data() + from, cst.data() + from};
  if (path == PATH_TILED) {
    TileShape t = tile_shape(cs.data(), cst.data());
    if (tr > 0) t.tr = tr;
    if (tc > 0) t.tc = tc;
    if ((int64_t)t.tr * (t.tc + 1) > kTileSmem) return -1;
    if (fits) {
      const Tiled<Dims> td = {t, dims};
      run_tiled(g, base, td, offset, grid, block);
    } else {
      const Tiled<DimsPtr> td = {t, dptr};
      run_tiled(g, base, td, offset, grid, block);
    }
    return m + 100;
  }
  if (fits) {
    run_strided(g, base, dims, offset, n, grid, block);
  } else {
    run_strided(g, base, dptr, offset, n, grid, block);
  }
  return m;
}

// tile_shape for these (outermost-first) sizes/strides: out = (tr, tc).
void ph_tile_shape(int nd, const int64_t* sizes, const int64_t* strides, int32_t* out) {
  std::vector<int64_t> cs(nd + 1), cst(nd + 1);
  coalesce_dims(nd, sizes, strides, cs.data(), cst.data());
  const TileShape t = tile_shape(cs.data(), cst.data());
  out[0] = t.tr;
  out[1] = t.tc;
}

// multi_init_'s fused kernel over k entries (all non-empty, contiguous):
// kinds 0-3, params k x 4 (as the op's params table), fill_bits[k] for kind 3.
// Emulates multi_kernel: blocks loop over chunks grid-stride; thread 0's
// chunk range, then every thread. Returns the total number of calls.
int64_t ph_multi(int k, const int* kinds, const int* dtypes, const double* params, const uint64_t* seeds,
                 const uint64_t* streams, const int64_t* offsets, void* const* datas, const int64_t* numels,
                 const uint64_t* fill_bits, int grid, int block) {
  std::vector<MultiEntry> entries(k);
  std::vector<int64_t> calls_start(k + 1);
  calls_start[0] = 0;
  for (int i = 0; i < k; ++i) {
    float pf[6];
    double pd[6];
    params_of(kinds[i], dtypes[i], params + 4 * i, pf, pd);
    entries[i] = make_multi_entry((uint64_t)(uintptr_t)datas[i], numels[i], offsets[i], seeds[i], streams[i],
                                  kinds[i], dtypes[i], pf, pd, fill_bits[i]);
    calls_start[i + 1] = calls_start[i] + multi_calls(entries[i]);
  }
  const int64_t total = calls_start[k];
  const uint64_t nchunks = multi_chunks(total, block);
  for (int b = 0; b < grid; ++b) {
    for (uint64_t c = b; c < nchunks; c += grid) {
      int64_t lo, hi;
      multi_chunk_range(calls_start.data(), k, total, c, block, &lo, &hi);
      for (int t = 0; t < block; ++t) {
        multi_thread(entries.data(), calls_start.data(), total, lo, hi, c, t, block);
      }
    }
  }
  return total;
}

// tied_grad_'s kernel over k groups (contiguous, non-empty): group i has numels[i]
// elements, nsrc[i] sources then ndst[i] destinations in `addrs` (in that order, group
// after group), dtype codes sdt/ddt, scale, add. Emulates tied_kernel over grid x block.
void ph_tied(int k, const int64_t* numels, const int64_t* nsrc, const int64_t* ndst, const int* sdt, const int* ddt,
             const double* scales, const int* adds, void* const* addrs, int grid, int block) {
  std::vector<TiedEntry> entries(k);
  std::vector<int64_t> start(k + 1);
  start[0] = 0;
  int64_t a = 0;
  for (int i = 0; i < k; ++i) {
    entries[i] = make_tied_entry(numels[i], sdt[i], ddt[i], scales[i], adds[i] != 0, a, nsrc[i], a + nsrc[i],
                                 ndst[i], (uint64_t)(uintptr_t)addrs[a + nsrc[i]]);
    a += nsrc[i] + ndst[i];
    start[i + 1] = start[i] + numels[i];
  }
  std::vector<uint64_t> ad(a);
  for (int64_t j = 0; j < a; ++j) ad[j] = (uint64_t)(uintptr_t)addrs[j];
  for (int b = 0; b < grid; ++b) {
    for (int t = 0; t < block; ++t) tied_body(entries.data(), start.data(), ad.data(), k, start[k], b, t, grid, block);
  }
}

// coalesce_dims, for the test of the dims it gives.
int ph_coalesce(int nd, const int64_t* sizes, const int64_t* strides, int64_t* osize, int64_t* ostride) {
  return coalesce_dims(nd, sizes, strides, osize, ostride);
}

}  // extern "C"
