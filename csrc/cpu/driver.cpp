// paramops CPU kernels: the CPU writer (driver.h): single ops through run(), and
// multi_init_'s entries in one parallel pass over their concatenation.
#include "cpu/driver.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/multi.h"
#include "cpu/writer.h"

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
    if (has512) return {"avx512", avx512::generate, avx512::tied_piece};
    if (has2) return {"avx2", avx2::generate, avx2::tied_piece};
    return {"base", base::generate, base::tied_piece};
  }
  if (std::strcmp(env, "avx512") == 0) {
    TORCH_CHECK(has512, "paramops: PARAMOPS_CPU_ISA=avx512 is not supported by this CPU "
                "(it needs AVX-512 F, DQ, VL, BW and FMA)");
    return {"avx512", avx512::generate, avx512::tied_piece};
  }
  if (std::strcmp(env, "avx2") == 0) {
    TORCH_CHECK(has2, "paramops: PARAMOPS_CPU_ISA=avx2 is not supported by this CPU "
                "(it needs AVX2 and FMA)");
    return {"avx2", avx2::generate, avx2::tied_piece};
  }
  if (std::strcmp(env, "base") == 0) return {"base", base::generate, base::tied_piece};
  TORCH_CHECK(false, "paramops: PARAMOPS_CPU_ISA must be avx512, avx2, base or auto, got '",
              env, "'");
  return {nullptr, nullptr, nullptr};
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

template <class E>
void fill_run(char* dst, int64_t n, uint64_t bits) {
  E v;
  std::memcpy(&v, &bits, sizeof(E));
  std::fill_n(reinterpret_cast<E*>(dst), n, v);
}

// In the style of apex's multi_tensor_apply, the contiguous entries are laid end
// to end in one logical element space (prefix sums of their numels): threads take
// blocks of that space, map a block to (entry, first, n) pieces by binary search and
// run the single ops' generators on them, so that ten thousand tiny tensors and a
// few huge ones balance across threads alike. Each value depends only on (seed,
// stream, offset + index, parameters, dtype) of its entry (docs/stream.md), so entry
// i gets exactly the bits of the single op. Non-contiguous entries go through the
// single ops' strided path after.
void multi_write(Tensors tensors, const Scratch& scratch) {
  const std::vector<Entry>&fused = scratch.fused, &strided = scratch.strided;
  const std::vector<Tmpl>& tmpls = scratch.tmpls;
  const std::vector<int64_t>& start = scratch.start;
  bool any_random = false;
  for (const Tmpl& tp : tmpls) any_random |= tp.kind != KIND_FILL;
  const GenFn gen = any_random ? choose_isa().gen : nullptr;  // may raise (PARAMOPS_CPU_ISA)

  // ---- the contiguous entries: one parallel pass over their concatenation
  parallel_blocks(start.back(), kBlock, kGrain, [&](int64_t b, int64_t e) {
    size_t k = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    Job job;
    while (b < e) {
      const Entry& en = fused[k];
      const Tmpl& tp = tmpls[en.tmpl];
      const int64_t first = b - start[k], m = std::min(e, start[k + 1]) - b;
      char* dst = en.data + first * tp.esize;
      if (tp.kind != KIND_FILL) {
        job = tp.job;
        job.seed = static_cast<uint64_t>(en.seed);
        job.stream = static_cast<uint64_t>(en.stream);
        gen(job, en.offset + first, m, dst, 1);
      } else {
        switch (tp.esize) {
          case 2: fill_run<uint16_t>(dst, m, tp.fill_bits); break;
          case 4: fill_run<uint32_t>(dst, m, tp.fill_bits); break;
          default: fill_run<uint64_t>(dst, m, tp.fill_bits); break;
        }
      }
      b += m;
      ++k;
    }
  });

  // ---- the others: the single ops' strided path, one by one
  for (const Entry& en : strided) {
    const Tmpl& tp = tmpls[en.tmpl];
    if (tp.kind != KIND_FILL) {
      Job job = tp.job;
      job.seed = static_cast<uint64_t>(en.seed);
      job.stream = static_cast<uint64_t>(en.stream);
      run(tensors[en.index], job, en.offset, gen);
    } else {
      fill_below_autograd(tensors[en.index], tp.fill_value);
    }
  }
}

class CpuWriter final : public Writer {
 public:
  void random(const at::Tensor& self, const Job& job, int64_t offset, const char*) override {
    run(self, job, offset, choose_isa().gen);
  }
  void multi(Tensors tensors, const Scratch& sc) override { multi_write(tensors, sc); }
  void tied(const std::vector<TiedGroup>& groups) override { tied_cpu(groups); }
};

}  // namespace

Writer* cpu_writer() {
  static CpuWriter w;
  return &w;
}

}  // namespace cpu
}  // namespace paramops
