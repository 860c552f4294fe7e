// paramops CUDA kernels: the kernel bodies, torch-free.
//
// Every body is a PARAMOPS_HD function of (block index, thread index, grid and
// block dims), so g++ compiles the very same code on the host: tests/native/
// cuda_host.cpp runs it over an emulated grid and compares it bit for bit with
// the CPU kernels (tests/test_cuda_kernels.py). The __global__ wrappers
// (under __CUDACC__, at the end) only read blockIdx/threadIdx and call them.
// The numbers come from paramops/philox.h and transforms.h alone.
//
// Work unit: one thread computes one Philox call (docs/stream.md §2): four
// float16/bfloat16/float32 elements or two float64 elements, in a grid-stride
// loop over the calls that the element range [offset, offset + n) touches
// (partial calls at both ends are masked). Which thread computes which call
// never changes a value. Indices are 64-bit throughout.
//
// Stores: a call's elements are adjacent in a contiguous output; when the
// whole call lies in range and its first element is aligned to the call's
// size, they go out in one 16-byte (float32, float64) or 8-byte (float16,
// bfloat16) store, else element by element. Strided outputs: the logical
// index is unravelled over the coalesced dims (innermost first) once per call;
// the following elements of the call step along the innermost dim.
// Transposed-like outputs (the second-innermost dim has the smaller stride)
// go through shared-memory tiles (tiled_gen/tiled_store). multi_init_: one
// kernel over the concatenated calls of all contiguous entries, any kinds and
// dtypes (multi_thread).
#pragma once
#include "paramops/philox.h"
#include "paramops/transforms.h"

namespace paramops {
namespace cuda {

// The kinds (KIND_*) and dtypes (DT_*) are paramops/codes.h's.

// One call of uniform_/normal_/trunc_normal_: the CPU's Job (cpu/job.h),
// parameters already rounded to the compute type (pf for 16/32-bit outputs,
// pd for float64):
//   uniform: p[0] = c(a), p[1] = c(b) - c(a)
//   normal:  p[0] = c(mean), p[1] = c(std)
//   trunc:   p[0..5] = c(pa), c(dp), c(mean), c(sstd), c(lo), c(hi)
struct Gen {
  int32_t kind;   // KIND_* (not KIND_FILL)
  int32_t dtype;  // DT_* (paramops/codes.h)
  uint64_t seed;
  uint64_t stream;
  float pf[6];
  double pd[6];
  uint32_t keys[20];  // philox_keys(seed): read from the kernel parameters, not bumped per call
};

// Fills g.keys from g.seed (the launchers' callers do, on the host).
PARAMOPS_HD void gen_set_keys(Gen& g) { philox_keys(g.seed, g.keys); }

// Coalesced dims of a strided output, innermost first, in elements. The fixed
// capacity travels in the kernel's parameters; more dims travel in device
// memory (DimsPtr).
constexpr int kMaxDims = 6;
struct Dims {
  static constexpr int kCap = kMaxDims;
  int32_t nd;
  int64_t size[kMaxDims];
  int64_t stride[kMaxDims];
};
struct DimsPtr {
  static constexpr int kCap = 0x7FFFFFFF;
  int32_t nd;
  const int64_t* size;    // nd entries
  const int64_t* stride;  // nd entries
};

// One entry of multi_init_ (packed on the host, one H2D copy for all).
struct MultiEntry {
  uint64_t data;    // device address of element 0 (contiguous)
  int64_t numel;    // > 0
  int64_t offset;   // global index of element 0 (0 for fill)
  uint64_t seed;
  uint64_t stream;
  int32_t kind;     // KIND_*, KIND_FILL included
  int32_t dtype;    // DT_* (paramops/codes.h)
  uint64_t p[6];    // parameters in the compute type: binary64 bits (float64 output) or
                    // binary32 bits in the low word; fill: p[0] = the value's bits in the output dtype
};
static_assert(sizeof(MultiEntry) == 96, "MultiEntry is 96 bytes");

PARAMOPS_HD int lanes_of(int dtype) { return dtype == DT_F64 ? 2 : 4; }
PARAMOPS_HD int esize_of(int dtype) { return dtype == DT_F64 ? 8 : (dtype == DT_F32 ? 4 : 2); }

// Calls [first, end) that elements [offset, offset + n) touch; offset + n <= 2^63 - 1,
// so offset + n + 3 cannot wrap in uint64.
PARAMOPS_HD uint64_t first_call(int64_t offset, int lanes) { return (uint64_t)offset / (uint64_t)lanes; }
PARAMOPS_HD uint64_t end_call(int64_t offset, int64_t n, int lanes) {
  return ((uint64_t)offset + (uint64_t)n + (uint64_t)(lanes - 1)) / (uint64_t)lanes;
}

// ---------------------------------------------------------------- values of one call
// Output words of call c: float32 w[l] = bits of element 4c + l; float16/bfloat16
// w[l] = its 16 bits; float64 (w[0], w[1]) = (lo, hi) of element 2c, (w[2], w[3]) of 2c + 1.
template <int DT>
PARAMOPS_HD uint32_t out_bits_f32(float v) {
  return DT == DT_F32 ? f32_bits(v) : (DT == DT_F16 ? (uint32_t)f16_bits(v) : (uint32_t)bf16_bits(v));
}

template <int D, int DT>
PARAMOPS_HD void call_words(const float* pf, const double* pd, uint64_t c, uint64_t stream,
                            const uint32_t* keys, uint32_t w[4]) {
  const Lanes x = philox4x32_10_keyed(c, stream, keys);
  if (DT == DT_F64) {
    const uint64_t a = join64(x.x0, x.x1), b = join64(x.x2, x.x3);
    double v0, v1;
    if (D == KIND_UNIFORM) {
      v0 = uniform_value_f64(a, pd[0], pd[1]);
      v1 = uniform_value_f64(b, pd[0], pd[1]);
    } else if (D == KIND_NORMAL) {
      double z0, z1;
      box_muller_f64(a, b, z0, z1);
      v0 = normal_value_f64(z0, pd[0], pd[1]);
      v1 = normal_value_f64(z1, pd[0], pd[1]);
    } else {
      v0 = trunc_value_f64(a, pd[0], pd[1], pd[2], pd[3], pd[4], pd[5]);
      v1 = trunc_value_f64(b, pd[0], pd[1], pd[2], pd[3], pd[4], pd[5]);
    }
    const uint64_t b0 = f64_bits(v0), b1 = f64_bits(v1);
    w[0] = (uint32_t)b0;
    w[1] = (uint32_t)(b0 >> 32);
    w[2] = (uint32_t)b1;
    w[3] = (uint32_t)(b1 >> 32);
  } else {
    float v[4];
    if (D == KIND_UNIFORM) {
      v[0] = uniform_value_f32(x.x0, pf[0], pf[1]);
      v[1] = uniform_value_f32(x.x1, pf[0], pf[1]);
      v[2] = uniform_value_f32(x.x2, pf[0], pf[1]);
      v[3] = uniform_value_f32(x.x3, pf[0], pf[1]);
    } else if (D == KIND_NORMAL) {
      float z0, z1, z2, z3;
      box_muller_f32(x.x0, x.x1, z0, z1);
      box_muller_f32(x.x2, x.x3, z2, z3);
      v[0] = normal_value_f32(z0, pf[0], pf[1]);
      v[1] = normal_value_f32(z1, pf[0], pf[1]);
      v[2] = normal_value_f32(z2, pf[0], pf[1]);
      v[3] = normal_value_f32(z3, pf[0], pf[1]);
    } else {
      v[0] = trunc_value_f32(x.x0, pf[0], pf[1], pf[2], pf[3], pf[4], pf[5]);
      v[1] = trunc_value_f32(x.x1, pf[0], pf[1], pf[2], pf[3], pf[4], pf[5]);
      v[2] = trunc_value_f32(x.x2, pf[0], pf[1], pf[2], pf[3], pf[4], pf[5]);
      v[3] = trunc_value_f32(x.x3, pf[0], pf[1], pf[2], pf[3], pf[4], pf[5]);
    }
    w[0] = out_bits_f32<DT>(v[0]);
    w[1] = out_bits_f32<DT>(v[1]);
    w[2] = out_bits_f32<DT>(v[2]);
    w[3] = out_bits_f32<DT>(v[3]);
  }
}

// ---------------------------------------------------------------- stores
PARAMOPS_HD void store16(char* p, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<uint4*>(p) = make_uint4(a, b, c, d);
#else
  const uint32_t t[4] = {a, b, c, d};
  memcpy(p, t, 16);
#endif
}
PARAMOPS_HD void store8(char* p, uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<uint2*>(p) = make_uint2(a, b);
#else
  const uint32_t t[2] = {a, b};
  memcpy(p, t, 8);
#endif
}
// Element l (0 <= l < lanes) of a call's words to p.
template <int ES>
PARAMOPS_HD void store_elem(char* p, const uint32_t w[4], int l) {
  if (ES == 2) {
    *reinterpret_cast<uint16_t*>(p) = (uint16_t)w[l];
  } else if (ES == 4) {
    *reinterpret_cast<uint32_t*>(p) = w[l];
  } else {
    *reinterpret_cast<uint64_t*>(p) = join64(w[2 * l], w[2 * l + 1]);
  }
}

// A call's whole output in one vector store (its first element is aligned).
template <int ES>
PARAMOPS_HD void store_call_vec(char* p, const uint32_t w[4]) {
  if (ES == 2) {
    store8(p, w[0] | (w[1] << 16), w[2] | (w[3] << 16));
  } else {
    store16(p, w[0], w[1], w[2], w[3]);
  }
}

// A contiguous output `out` of n elements; the call's first element has local
// index j0 (may be < 0 or run past n at the ends: those elements are not written).
template <int ES>
PARAMOPS_HD void store_call_contig(char* out, int64_t j0, int64_t n, const uint32_t w[4]) {
  const int L = ES == 8 ? 2 : 4;
  char* p = out + j0 * ES;
  if (j0 >= 0 && j0 + L <= n && ((uintptr_t)p & (uintptr_t)(L * ES - 1)) == 0) {
    store_call_vec<ES>(p, w);  // float32: 4 elements; float64: (lo, hi) x 2
    return;
  }
  for (int l = 0; l < L; ++l) {
    const int64_t j = j0 + l;
    if (j >= 0 && j < n) store_elem<ES>(out + j * ES, w, l);
  }
}

// Memory offset (elements) of logical index j over dims (innermost first);
// *inner = the index in the innermost dim. Every dims index is a constant
// after unrolling (Dims), so the dims stay in the kernel's parameter space.
template <class DM>
PARAMOPS_HD int64_t unravel(const DM& d, int64_t j, int64_t* inner) {
  *inner = j;
  int64_t off = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int k = 0; k < DM::kCap; ++k) {
    if (k >= d.nd) break;
    if (k == d.nd - 1) {  // outermost: no division
      off += j * d.stride[k];
      break;
    }
    const int64_t s = d.size[k];
    const int64_t q = j / s, r = j - q * s;
    if (k == 0) *inner = r;
    off += r * d.stride[k];
    j = q;
  }
  return off;
}

// The call's elements j0 .. j0 + L - 1 that lie in [0, n): the first is
// unravelled, the next ones step along the innermost dim (unravelled again
// when they cross into the next row).
template <int ES, class DM>
PARAMOPS_HD void store_call_strided(char* base, const DM& d, int64_t j0, int64_t n, const uint32_t w[4]) {
  const int L = ES == 8 ? 2 : 4;
  const int64_t isize = d.nd > 0 ? d.size[0] : 1, istride = d.nd > 0 ? d.stride[0] : 0;
  bool started = false;
  int64_t off = 0, inner = 0;
  if (istride == 1 && j0 >= 0 && j0 + L <= n) {  // rows of unit stride (e.g. w[:, :k]): one vector
    off = unravel(d, j0, &inner);                  // store when the call lies in one row, aligned
    char* p = base + off * ES;
    if (inner + L <= isize && ((uintptr_t)p & (uintptr_t)(L * ES - 1)) == 0) {
      store_call_vec<ES>(p, w);
      return;
    }
    started = true;  // element stores from element 0 on, off and inner already set
  }
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int l = 0; l < L; ++l) {
    const int64_t j = j0 + l;
    if (j < 0 || j >= n) continue;
    if (!started) {
      off = unravel(d, j, &inner);
      started = true;
    } else if (l > 0) {
      if (++inner < isize) {
        off += istride;
      } else {
        off = unravel(d, j, &inner);  // crossed into the next row
      }
    }
    store_elem<ES>(base + off * ES, w, l);
  }
}

// ---------------------------------------------------------------- single ops
// Thread (block, thread) of a grid (grid, block) writes the calls
// first + tid, first + tid + grid * block, ... of elements [offset, offset + n).
// Fast path: when every call's first element is aligned to the call's size
// (the same for all calls of a contiguous output), the calls that lie wholly
// in range go out as vector stores with a pointer stepped along, no per-call
// index checks; the partial calls at the two ends (at most one each) are
// taken by threads 0 and 1. Otherwise every call is checked (store_call_contig).
template <int D, int DT>
PARAMOPS_HD void contig_body(const Gen& g, char* out, int64_t offset, int64_t n, uint64_t block,
                             uint64_t thread, uint64_t grid, uint64_t block_dim) {
  const int L = DT == DT_F64 ? 2 : 4, ES = DT == DT_F64 ? 8 : (DT == DT_F32 ? 4 : 2);
  const uint64_t c0 = first_call(offset, L), c1 = end_call(offset, n, L), step = grid * block_dim;
  const uint64_t tid = block * block_dim + thread;
  const uint64_t f0 = ((uint64_t)offset + (uint64_t)(L - 1)) / (uint64_t)L;  // first whole call
  const uint64_t f1 = ((uint64_t)offset + (uint64_t)n) / (uint64_t)L;        // end of the whole calls
  const int phase = (int)((uint64_t)offset % (uint64_t)L);                    // elements before call f0's start
  const bool aligned = (((uintptr_t)out + (uintptr_t)((L - phase) % L) * ES) & (uintptr_t)(L * ES - 1)) == 0;
  if (aligned && f0 < f1) {
    char* p = out + ((int64_t)((f0 + tid) * (uint64_t)L) - offset) * ES;
    const uint64_t pstep = step * (uint64_t)(L * ES);
    for (uint64_t c = f0 + tid; c < f1; c += step, p += pstep) {
      uint32_t w[4];
      call_words<D, DT>(g.pf, g.pd, c, g.stream, g.keys, w);
      store_call_vec<ES>(p, w);
    }
    const uint64_t head_tid = 0, tail_tid = step > 1 ? 1 : 0;
    if (tid == head_tid && c0 < f0) {
      uint32_t w[4];
      call_words<D, DT>(g.pf, g.pd, c0, g.stream, g.keys, w);
      store_call_contig<ES>(out, (int64_t)(c0 * (uint64_t)L) - offset, n, w);
    }
    if (tid == tail_tid && f1 < c1) {
      uint32_t w[4];
      call_words<D, DT>(g.pf, g.pd, f1, g.stream, g.keys, w);
      store_call_contig<ES>(out, (int64_t)(f1 * (uint64_t)L) - offset, n, w);
    }
    return;
  }
  for (uint64_t c = c0 + tid; c < c1; c += step) {
    uint32_t w[4];
    call_words<D, DT>(g.pf, g.pd, c, g.stream, g.keys, w);
    store_call_contig<ES>(out, (int64_t)(c * (uint64_t)L) - offset, n, w);
  }
}

template <int D, int DT, class DM>
PARAMOPS_HD void strided_body(const Gen& g, char* base, const DM& dims, int64_t offset, int64_t n,
                              uint64_t block, uint64_t thread, uint64_t grid, uint64_t block_dim) {
  const int L = DT == DT_F64 ? 2 : 4, ES = DT == DT_F64 ? 8 : (DT == DT_F32 ? 4 : 2);
  const uint64_t c1 = end_call(offset, n, L), step = grid * block_dim;
  for (uint64_t c = first_call(offset, L) + block * block_dim + thread; c < c1; c += step) {
    uint32_t w[4];
    call_words<D, DT>(g.pf, g.pd, c, g.stream, g.keys, w);
    store_call_strided<ES>(base, dims, (int64_t)(c * (uint64_t)L) - offset, n, w);
  }
}

// ---------------------------------------------------------------- transposed layouts
// When the second-innermost coalesced dim (the "row" dim) has the smaller
// memory stride (w.t(), channels_last), consecutive logical elements lie far
// apart in memory and the strided path's stores would not coalesce. The tiled
// path (as the CPU's run_blocked) takes tiles of TR rows x TC columns: phase 1
// computes the tile's calls row by row (logical order) into shared memory,
// phase 2 writes it column by column, so consecutive threads store to
// consecutive rows, i.e. the smaller stride. A call that straddles two rows is
// computed by both rows' tiles (the same bits).
constexpr int kTileElems = 1024;           // TR * TC <= kTileElems
constexpr int kTileSmem = 2 * kTileElems;  // words: TR * (TC + 1) <= 2 * kTileElems

struct TileShape {
  int64_t rows, row_stride;  // the row dim (coalesced dim 1)
  int64_t cols, col_stride;  // the innermost dim (coalesced dim 0)
  int32_t tr, tc;            // tile: tr rows x tc columns
};
template <class DM>
struct Tiled {
  TileShape t;
  DM outer;  // coalesced dims 2.. (innermost first); nd may be 0
};

// The path for an output with m coalesced dims (innermost first): contiguous,
// tiled (the row dim has the smaller stride) or strided.
enum Path { PATH_CONTIG = 0, PATH_STRIDED = 1, PATH_TILED = 2 };
PARAMOPS_HD int choose_path(int m, const int64_t* stride) {
  if (m == 0 || (m == 1 && stride[0] == 1)) return PATH_CONTIG;
  return m >= 2 && stride[1] < stride[0] ? PATH_TILED : PATH_STRIDED;
}

// The tile for rows x cols: up to 32 columns (the whole row if shorter), as many
// rows as fit in kTileElems.
PARAMOPS_HD TileShape tile_shape(const int64_t* size, const int64_t* stride) {
  TileShape t;
  t.cols = size[0];
  t.col_stride = stride[0];
  t.rows = size[1];
  t.row_stride = stride[1];
  int64_t tc = t.cols < 32 ? t.cols : 32;
  int64_t tr = kTileElems / tc;
  tr = tr < t.rows ? tr : t.rows;
  const int64_t wide = kTileElems / tr;  // few rows: wider tiles
  tc = t.cols < wide ? t.cols : wide;
  t.tr = (int32_t)tr;
  t.tc = (int32_t)tc;
  return t;
}

PARAMOPS_HD uint64_t tile_count(const TileShape& t, int64_t outer) {
  const uint64_t nrb = (uint64_t)((t.rows + t.tr - 1) / t.tr), ncb = (uint64_t)((t.cols + t.tc - 1) / t.tc);
  return (uint64_t)outer * nrb * ncb;
}

// Tile `tile` -> (outer index, first row, first column, rows, columns).
struct TilePos {
  int64_t o, r0, c0;
  int rows, cols;
};
PARAMOPS_HD TilePos tile_pos(const TileShape& t, uint64_t tile) {
  const uint64_t ncb = (uint64_t)((t.cols + t.tc - 1) / t.tc), nrb = (uint64_t)((t.rows + t.tr - 1) / t.tr);
  TilePos p;
  const uint64_t cb = tile % ncb, rest = tile / ncb;
  p.o = (int64_t)(rest / nrb);
  p.r0 = (int64_t)(rest % nrb) * t.tr;
  p.c0 = (int64_t)cb * t.tc;
  p.rows = (int)(t.rows - p.r0 < t.tr ? t.rows - p.r0 : t.tr);
  p.cols = (int)(t.cols - p.c0 < t.tc ? t.cols - p.c0 : t.tc);
  return p;
}

template <int ES>
struct WordOf;
template <>
struct WordOf<2> {
  typedef uint16_t type;
};
template <>
struct WordOf<4> {
  typedef uint32_t type;
};
template <>
struct WordOf<8> {
  typedef uint64_t type;
};

// Phase 1: the tile's elements, row r at smem[r * (tc + 1)] (logical order).
template <int D, int DT, class DM>
PARAMOPS_HD void tiled_gen(const Gen& g, const Tiled<DM>& td, int64_t offset, uint64_t tile, uint64_t thread,
                           uint64_t block_dim, void* smem) {
  const int L = DT == DT_F64 ? 2 : 4, ES = DT == DT_F64 ? 8 : (DT == DT_F32 ? 4 : 2);
  typedef typename WordOf<ES>::type W;
  W* s = static_cast<W*>(smem);
  const TileShape& t = td.t;
  const TilePos p = tile_pos(t, tile);
  const int ncpr = (p.cols + L - 1) / L + 1;  // calls a row of the tile can touch
  for (uint64_t i = thread; i < (uint64_t)(p.rows * ncpr); i += block_dim) {
    const int r = (int)(i / (uint64_t)ncpr), k = (int)(i % (uint64_t)ncpr);
    const int64_t g0 = offset + ((p.o * t.rows + p.r0 + r) * t.cols + p.c0);  // global index of (r, 0)
    const uint64_t c = first_call(g0, L) + (uint64_t)k;
    if (c >= end_call(g0, p.cols, L)) continue;
    uint32_t w[4];
    call_words<D, DT>(g.pf, g.pd, c, g.stream, g.keys, w);
    const int64_t e0 = (int64_t)(c * (uint64_t)L) - g0;  // column of the call's first element
    W* row = s + r * (t.tc + 1);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int l = 0; l < L; ++l) {
      const int64_t e = e0 + l;
      if (e < 0 || e >= p.cols) continue;
      row[e] = ES == 8 ? (W)join64(w[2 * l], w[2 * l + 1]) : (W)w[l];
    }
  }
}

// Phase 2: the tile to memory, column by column (consecutive threads: consecutive rows).
template <int ES, class DM>
PARAMOPS_HD void tiled_store(char* base, const Tiled<DM>& td, uint64_t tile, uint64_t thread, uint64_t block_dim,
                             const void* smem) {
  typedef typename WordOf<ES>::type W;
  const W* s = static_cast<const W*>(smem);
  const TileShape& t = td.t;
  const TilePos p = tile_pos(t, tile);
  int64_t unused;
  const int64_t base_off = unravel(td.outer, p.o, &unused) + p.r0 * t.row_stride + p.c0 * t.col_stride;
  for (uint64_t e = thread; e < (uint64_t)(p.rows * p.cols); e += block_dim) {
    const int col = (int)(e / (uint64_t)p.rows), r = (int)(e % (uint64_t)p.rows);
    const int64_t off = base_off + r * t.row_stride + col * t.col_stride;
    *reinterpret_cast<W*>(base + off * ES) = s[r * (t.tc + 1) + col];
  }
}

// ---------------------------------------------------------------- multi_init_
// The contiguous entries' calls laid end to end: calls_start[e] = sum of the
// call counts of entries [0, e) (n + 1 values). Chunk k = the kMultiUnroll *
// block_dim global calls from k * kMultiUnroll * block_dim on; a block finds
// the entries of its chunk's ends once (multi_chunk_range, thread 0, into
// shared memory), then each thread takes kMultiUnroll calls of the chunk,
// block_dim apart (coalesced), and finds each one's entry between those ends
// (a large entry: no search; small ones: a few steps in cache), so the two
// binary searches over all entries are paid once per chunk.
constexpr int kMultiUnroll = 8;

// The entry holding global call q: the largest e in [lo, hi] with calls_start[e] <= q.
PARAMOPS_HD int64_t multi_find(const int64_t* calls_start, int64_t lo, int64_t hi, int64_t q) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (calls_start[mid] <= q) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

PARAMOPS_HD void multi_chunk_range(const int64_t* calls_start, int64_t n, int64_t total, uint64_t chunk,
                                   uint64_t block_dim, int64_t* lo, int64_t* hi) {
  const int64_t per = (int64_t)block_dim * kMultiUnroll;
  const int64_t q0 = (int64_t)chunk * per;
  int64_t q1 = q0 + per - 1;
  q1 = q1 < total ? q1 : total - 1;
  *lo = multi_find(calls_start, 0, n - 1, q0);
  *hi = multi_find(calls_start, *lo, n - 1, q1);
}

template <int D, int DT>
PARAMOPS_HD void multi_call(const MultiEntry& e, uint64_t c) {
  const int L = DT == DT_F64 ? 2 : 4, ES = DT == DT_F64 ? 8 : (DT == DT_F32 ? 4 : 2);
  uint32_t w[4];
  if (D == KIND_FILL) {
    const uint32_t lo = (uint32_t)e.p[0], hi = (uint32_t)(e.p[0] >> 32);
    w[0] = lo;
    w[1] = ES == 8 ? hi : lo;
    w[2] = lo;
    w[3] = ES == 8 ? hi : lo;
  } else {
    float pf[6];
    double pd[6];
    for (int k = 0; k < 6; ++k) {
      pf[k] = f32_from((uint32_t)e.p[k]);
      pd[k] = f64_from(e.p[k]);
    }
    uint32_t keys[20];
    philox_keys(e.seed, keys);
    call_words<D == KIND_FILL ? KIND_UNIFORM : D, DT>(pf, pd, c, e.stream, keys, w);
  }
  store_call_contig<ES>(reinterpret_cast<char*>((uintptr_t)e.data), (int64_t)(c * (uint64_t)L) - e.offset,
                        e.numel, w);
}

template <int DT>
PARAMOPS_HD void multi_call_dt(const MultiEntry& e, uint64_t c) {
  switch (e.kind) {
    case KIND_UNIFORM: multi_call<KIND_UNIFORM, DT>(e, c); break;
    case KIND_NORMAL: multi_call<KIND_NORMAL, DT>(e, c); break;
    case KIND_TRUNC: multi_call<KIND_TRUNC, DT>(e, c); break;
    default: multi_call<KIND_FILL, DT>(e, c); break;
  }
}

// Thread `thread` of the block that handles chunk `chunk`, whose calls lie in entries [lo, hi].
PARAMOPS_HD void multi_thread(const MultiEntry* entries, const int64_t* calls_start, int64_t total,
                              int64_t lo, int64_t hi, uint64_t chunk, uint64_t thread, uint64_t block_dim) {
  const int64_t q0 = (int64_t)(chunk * block_dim) * kMultiUnroll + (int64_t)thread;
  int64_t k = lo;
  for (int u = 0; u < kMultiUnroll; ++u) {
    const int64_t q = q0 + (int64_t)u * (int64_t)block_dim;
    if (q >= total) return;
    k = k == hi ? k : multi_find(calls_start, k, hi, q);  // q grows with u: start at the last entry
    const MultiEntry& e = entries[k];
    const uint64_t c = first_call(e.offset, lanes_of(e.dtype)) + (uint64_t)(q - calls_start[k]);
    switch (e.dtype) {
      case DT_F32: multi_call_dt<DT_F32>(e, c); break;
      case DT_F16: multi_call_dt<DT_F16>(e, c); break;
      case DT_BF16: multi_call_dt<DT_BF16>(e, c); break;
      default: multi_call_dt<DT_F64>(e, c); break;
    }
  }
}

// The number of chunks of a multi_init_ launch.
PARAMOPS_HD uint64_t multi_chunks(int64_t total, uint64_t block_dim) {
  const uint64_t per = block_dim * kMultiUnroll;
  return ((uint64_t)total + per - 1) / per;
}

// The number of calls of a multi_init_ entry (host: building calls_start).
PARAMOPS_HD int64_t multi_calls(const MultiEntry& e) {
  const int L = lanes_of(e.dtype);
  return (int64_t)(end_call(e.offset, e.numel, L) - first_call(e.offset, L));
}

// ---------------------------------------------------------------- host helpers
// A multi_init_ entry: parameters (pf/pd as in Gen) stored in the compute type
// of dtype; fill: fill_bits = the value's bits in the output dtype.
PARAMOPS_HD MultiEntry make_multi_entry(uint64_t data, int64_t numel, int64_t offset, uint64_t seed,
                                        uint64_t stream, int kind, int dtype, const float* pf,
                                        const double* pd, uint64_t fill_bits) {
  MultiEntry e;
  e.data = data;
  e.numel = numel;
  e.offset = kind == KIND_FILL ? 0 : offset;
  e.seed = seed;
  e.stream = stream;
  e.kind = kind;
  e.dtype = dtype;
  for (int k = 0; k < 6; ++k) {
    e.p[k] = kind == KIND_FILL ? (k == 0 ? fill_bits : 0)
                               : (dtype == DT_F64 ? f64_bits(pd[k]) : (uint64_t)f32_bits(pf[k]));
  }
  return e;
}

// Dims of size 1 dropped, adjacent dims merged where the outer one steps over
// the inner one exactly (as the CPU's coalesce, cpu/ops.cpp); written innermost
// first into osize/ostride (room for nd). Returns their number.
PARAMOPS_HD int coalesce_dims(int nd, const int64_t* size, const int64_t* stride, int64_t* osize,
                              int64_t* ostride) {
  int m = 0;  // outermost first while merging
  for (int d = 0; d < nd; ++d) {
    if (size[d] == 1) continue;
    if (m > 0 && ostride[m - 1] == size[d] * stride[d]) {
      osize[m - 1] *= size[d];
      ostride[m - 1] = stride[d];
    } else {
      osize[m] = size[d];
      ostride[m] = stride[d];
      ++m;
    }
  }
  for (int a = 0, b = m - 1; a < b; ++a, --b) {
    const int64_t s = osize[a], t = ostride[a];
    osize[a] = osize[b];
    ostride[a] = ostride[b];
    osize[b] = s;
    ostride[b] = t;
  }
  return m;
}

// ---------------------------------------------------------------- kernels
#if defined(__CUDACC__)
// Kernel parameters read in place (no copy to local memory when the bodies take
// their address); CUDA 11.7+, sm_70+.
#if (__CUDACC_VER_MAJOR__ > 11 || (__CUDACC_VER_MAJOR__ == 11 && __CUDACC_VER_MINOR__ >= 7))
#define PARAMOPS_GRID_CONSTANT __grid_constant__
#else
#define PARAMOPS_GRID_CONSTANT
#endif

template <int D, int DT>
__global__ void contig_kernel(PARAMOPS_GRID_CONSTANT const Gen g, char* out, int64_t offset, int64_t n) {
  contig_body<D, DT>(g, out, offset, n, blockIdx.x, threadIdx.x, gridDim.x, blockDim.x);
}

template <int D, int DT, class DM>
__global__ void strided_kernel(PARAMOPS_GRID_CONSTANT const Gen g, char* base,
                               PARAMOPS_GRID_CONSTANT const DM dims, int64_t offset, int64_t n) {
  strided_body<D, DT>(g, base, dims, offset, n, blockIdx.x, threadIdx.x, gridDim.x, blockDim.x);
}

template <int D, int DT, class DM>
__global__ void tiled_kernel(PARAMOPS_GRID_CONSTANT const Gen g, char* base, PARAMOPS_GRID_CONSTANT const Tiled<DM> td,
                             int64_t offset, uint64_t ntiles) {
  const int ES = DT == DT_F64 ? 8 : (DT == DT_F32 ? 4 : 2);
  __shared__ __align__(16) unsigned char smem[kTileSmem * ES];
  for (uint64_t tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    tiled_gen<D, DT>(g, td, offset, tile, threadIdx.x, blockDim.x, smem);
    __syncthreads();
    tiled_store<ES>(base, td, tile, threadIdx.x, blockDim.x, smem);
    __syncthreads();
  }
}

__global__ void multi_kernel(const MultiEntry* entries, const int64_t* calls_start, int64_t n,
                             int64_t total) {
  __shared__ int64_t range[2];
  const uint64_t nchunks = multi_chunks(total, blockDim.x);
  for (uint64_t k = blockIdx.x; k < nchunks; k += gridDim.x) {
    if (threadIdx.x == 0) multi_chunk_range(calls_start, n, total, k, blockDim.x, &range[0], &range[1]);
    __syncthreads();
    multi_thread(entries, calls_start, total, range[0], range[1], k, threadIdx.x, blockDim.x);
    __syncthreads();
  }
}
#endif

}  // namespace cuda
}  // namespace paramops
