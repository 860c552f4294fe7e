// paramops CPU kernel of multi_init_: a whole list of tensors in one launch.
//
// Every entry is checked (with the single ops' checks, naming the entry)
// before anything is written, and so is the disjointness of the entries.
// Then, in the style of apex's multi_tensor_apply, the contiguous entries are
// laid end to end in one logical element space (prefix sums of their numels):
// threads take blocks of that space, map a block to (entry, first, n) pieces by
// binary search and run the single ops' generators on them, so that ten
// thousand tiny tensors and a few huge ones balance across threads alike.
// Each value depends only on (seed, stream, offset + index, parameters, dtype)
// of its entry (docs/stream.md), so entry i gets exactly the bits of the single
// op. Non-contiguous entries go through the single ops' strided path after.
//
// The schema is defined in Python (paramops/_ops.py); messages match
// paramops/multi.py (the Python reference), which the tests compare.
#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/job.h"
#include "cpu/ops_common.h"
#include "paramops/transforms.h"

namespace paramops {
namespace cpu {
namespace {

constexpr const char* kOp = "multi_init_";
enum Kind { KIND_UNIFORM = 0, KIND_NORMAL = 1, KIND_TRUNC = 2, KIND_FILL = 3 };

// One non-empty entry, ready to write.
struct Entry {
  char* data;
  int64_t index;   // in the tensor list
  int64_t numel;
  int64_t offset;  // global index of element 0
  int32_t esize;
  int32_t kind;
  uint64_t fill_bits;  // KIND_FILL: the value in the output dtype
  Job job;             // the random kinds
};

struct Extent {
  uintptr_t lo, hi;  // bytes [lo, hi)
  int64_t i;
};

// Per-thread scratch kept between calls: a list of 10,000 tensors needs ~2 MB
// of it, which would otherwise be fresh pages (page faults) on every call. A
// nested call on the same thread (the strided path runs torch ops, which a
// Python dispatch mode could turn into another multi_init_) takes its own.
struct Scratch {
  std::vector<Entry> entries;
  std::vector<Extent> ext, tmp;
  std::vector<int64_t> fused, strided, start;
};

class ScratchLease {
 public:
  ScratchLease() : cached_(busy_ ? nullptr : &cache_) {
    if (cached_ != nullptr) busy_ = true;
  }
  ~ScratchLease() {
    if (cached_ == nullptr) return;
    if (cache_.entries.capacity() > (1 << 16)) cache_ = Scratch();  // keep at most ~10 MB
    busy_ = false;
  }
  Scratch& get() { return cached_ != nullptr ? *cached_ : own_; }

 private:
  static thread_local Scratch cache_;
  static thread_local bool busy_;
  Scratch* cached_;
  Scratch own_;
};
thread_local Scratch ScratchLease::cache_;
thread_local bool ScratchLease::busy_ = false;

std::string idx(int64_t i) { return std::to_string(i); }

// The op's list arguments, read in place from the dispatcher's stack: the
// boxed kernel below avoids the copies that unboxing to at::TensorList and
// IntArrayRef makes (for 10,000 tensors: 10,000 reference count round trips
// and 80,000 numbers, a sizable part of the per-call cost).
template <class T>
struct ListArg {
  c10::ArrayRef<c10::IValue> v;
  size_t size() const { return v.size(); }
  T operator[](size_t i) const;
};
template <>
inline const at::Tensor& ListArg<const at::Tensor&>::operator[](size_t i) const { return v[i].toTensor(); }
template <>
inline int64_t ListArg<int64_t>::operator[](size_t i) const { return v[i].toInt(); }
template <>
inline double ListArg<double>::operator[](size_t i) const { return v[i].toDouble(); }
using Tensors = ListArg<const at::Tensor&>;
using Ints = ListArg<int64_t>;
using Doubles = ListArg<double>;

void check_length(const char* name, size_t got, int64_t want, const char* per) {
  TORCH_CHECK_VALUE(static_cast<int64_t>(got) == want, "paramops.multi_init_: ", name, " must have ",
                    per, " (", idx(want), "), got ", idx(static_cast<int64_t>(got)));
}

// The value of fill_ in dtype dt, converted as Tensor.fill_ converts it
// (c10::Scalar::to), so that the bits equal those of paramops.fill_.
uint64_t fill_bits(int dt, double value) {
  const c10::Scalar v(value);
  uint64_t bits = 0;
  switch (dt) {
    case DT_F16: { const at::Half h = v.to<at::Half>(); std::memcpy(&bits, &h, 2); break; }
    case DT_BF16: { const at::BFloat16 h = v.to<at::BFloat16>(); std::memcpy(&bits, &h, 2); break; }
    case DT_F32: { const float f = v.to<float>(); std::memcpy(&bits, &f, 4); break; }
    default: { const double d = v.to<double>(); std::memcpy(&bits, &d, 8); break; }
  }
  return bits;
}

template <class E>
void fill_run(char* dst, int64_t n, uint64_t bits) {
  E v;
  std::memcpy(&v, &bits, sizeof(E));
  std::fill_n(reinterpret_cast<E*>(dst), n, v);
}

// ---------------------------------------------------------------- disjointness
// Two entries must not share a byte: they would be written concurrently, and
// the result would depend on the order. The common case (distinct tensors) is
// decided by the extents alone: sorted by start, no extent reaches into the
// next. Pairs whose extents do intersect (views of one tensor, e.g. column
// blocks w[:, :k] and w[:, k:], or w[:, ::2] and w[:, 1::2]) get an exact test.

// A strided set of byte intervals: start + sum(i_k * stride_k), each itemsize
// long; dims sorted by stride, largest first (sizes > 1, strides > 0).
struct Lay {
  int64_t isz;
  std::vector<std::pair<int64_t, int64_t>> dims;  // (size, byte stride)
};

int64_t span(const Lay& l, size_t from) {  // bytes covered by dims [from, end), itemsize included
  int64_t s = l.isz;
  for (size_t k = from; k < l.dims.size(); ++k) s += (l.dims[k].first - 1) * l.dims[k].second;
  return s;
}

int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// Whether the interval sets x (dims from xd) and y (dims from yd) share a byte.
bool sets_overlap(const Lay& x, size_t xd, int64_t xb, const Lay& y, size_t yd, int64_t yb) {
  const int64_t xs = span(x, xd), ys = span(y, yd);
  if (xb >= yb + ys || yb >= xb + xs) return false;  // extents disjoint
  const bool xe = xd == x.dims.size(), ye = yd == y.dims.size();
  if (xe && ye) return true;
  // One progression each with the same stride: solvable in O(1).
  if ((xe || xd + 1 == x.dims.size()) && (ye || yd + 1 == y.dims.size())) {
    const int64_t st = xe ? y.dims[yd].second : x.dims[xd].second;
    if ((xe || x.dims[xd].second == st) && (ye || y.dims[yd].second == st)) {
      const int64_t nx = xe ? 1 : x.dims[xd].first, ny = ye ? 1 : y.dims[yd].first;
      // x_i = xb + i st, y_j = yb + j st share a byte iff
      // yb - xb - x.isz < (i - j) st < yb - xb + y.isz, with t = i - j in [-(ny-1), nx-1].
      const int64_t tlo = std::max<int64_t>(floor_div(yb - xb - x.isz, st) + 1, -(ny - 1));
      const int64_t thi = std::min<int64_t>(-floor_div(-(yb - xb + y.isz), st) - 1, nx - 1);
      return tlo <= thi;
    }
  }
  // Split the operand whose outer stride is larger into its slices, keeping
  // only those whose extent meets the other operand's.
  const bool split_x = ye || (!xe && x.dims[xd].second >= y.dims[yd].second);
  const Lay& a = split_x ? x : y;
  const Lay& o = split_x ? y : x;
  const size_t ad = split_x ? xd : yd, od = split_x ? yd : xd;
  const int64_t ab = split_x ? xb : yb, ob = split_x ? yb : xb;
  const int64_t n = a.dims[ad].first, st = a.dims[ad].second;
  const int64_t inner = span(a, ad + 1), os = span(o, od);
  // slice k covers [ab + k st, ab + k st + inner) and must meet [ob, ob + os)
  const int64_t k0 = std::max<int64_t>(0, floor_div(ob - ab - inner, st) + 1);
  const int64_t k1 = std::min<int64_t>(n - 1, -floor_div(-(ob + os - ab), st) - 1);
  for (int64_t k = k0; k <= k1; ++k) {
    const bool hit = split_x ? sets_overlap(a, ad + 1, ab + k * st, o, od, ob)
                             : sets_overlap(o, od, ob, a, ad + 1, ab + k * st);
    if (hit) return true;
  }
  return false;
}

Lay layout_of(const at::Tensor& t) {
  Lay l{static_cast<int64_t>(t.element_size()), {}};
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) > 1) l.dims.push_back({t.size(d), t.stride(d) * l.isz});
  }
  std::sort(l.dims.begin(), l.dims.end(),
            [](const auto& p, const auto& q) { return p.second > q.second; });
  return l;
}

bool tensors_overlap(const at::Tensor& a, const at::Tensor& b) {
  const auto pa = reinterpret_cast<intptr_t>(a.data_ptr()), pb = reinterpret_cast<intptr_t>(b.data_ptr());
  const intptr_t origin = std::min(pa, pb);
  return sets_overlap(layout_of(a), 0, pa - origin, layout_of(b), 0, pb - origin);
}

// The bytes [lo, hi) that a non-empty tensor can touch.
Extent extent_of(const at::Tensor& t, char* data, int64_t i, bool contiguous) {
  const auto p = reinterpret_cast<uintptr_t>(data);
  const int64_t isz = t.element_size();
  if (contiguous) return {p, p + t.numel() * isz, i};
  int64_t lo = 0, hi = 0;  // element offsets from data
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t reach = (t.size(d) - 1) * t.stride(d);
    (reach < 0 ? lo : hi) += reach;
  }
  return {p + lo * isz, p + (hi + 1) * isz, i};
}

// Stable LSD radix sort by lo, one pass per byte in which the keys differ
// (a handful for heap addresses): ties keep list order.
void sort_by_start(std::vector<Extent>& ext, std::vector<Extent>& tmp) {
  if (ext.size() < 2) return;
  uintptr_t diff = 0;
  for (const Extent& e : ext) diff |= e.lo ^ ext[0].lo;
  tmp.resize(ext.size());
  for (int shift = 0; shift < 64; shift += 8) {
    if (((diff >> shift) & 0xFF) == 0) continue;
    size_t count[257] = {0};
    for (const Extent& e : ext) ++count[((e.lo >> shift) & 0xFF) + 1];
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (const Extent& e : ext) tmp[count[(e.lo >> shift) & 0xFF]++] = e;
    ext.swap(tmp);
  }
}

// Raises for the first entry j (in list order) that shares memory with an
// earlier entry i, naming the smallest such i (as paramops/multi.py does).
// ext: the extents of the non-empty entries, in list order.
void check_disjoint(Tensors tensors, std::vector<Extent>& ext, std::vector<Extent>& tmp) {
  sort_by_start(ext, tmp);
  bool any = false;
  uintptr_t reach = 0;
  for (const Extent& e : ext) {
    if (e.lo < reach) { any = true; break; }
    reach = std::max(reach, e.hi);
  }
  if (!any) return;
  // Rare: extents intersect. Test every such pair exactly; report the smallest (j, i).
  int64_t bj = -1, bi = -1;
  std::vector<const Extent*> active;
  for (const Extent& e : ext) {
    size_t w = 0;
    for (const Extent* a : active) {
      if (a->hi > e.lo) active[w++] = a;
    }
    active.resize(w);
    for (const Extent* a : active) {
      const int64_t i = std::min(a->i, e.i), j = std::max(a->i, e.i);
      if (bj >= 0 && (j > bj || (j == bj && i > bi))) continue;
      if (tensors_overlap(tensors[i], tensors[j])) {
        bj = j;
        bi = i;
      }
    }
    active.push_back(&e);
  }
  TORCH_CHECK(bj < 0, "paramops.multi_init_: tensors[", idx(bi), "] and tensors[", idx(bj),
              "] overlap in memory; the entries would be written concurrently, so each must "
              "have memory of its own");
}

// ---------------------------------------------------------------- op
void multi_init(Tensors tensors, Ints kinds, Doubles params, Ints seeds, Ints streams, Ints offsets) {
  IeeeDefaults fp_defaults;
  const int64_t n = static_cast<int64_t>(tensors.size());
  check_length("kinds", kinds.size(), n, "one entry per tensor");
  check_length("params", params.size(), 4 * n, "4 entries per tensor");
  check_length("seeds", seeds.size(), n, "one entry per tensor");
  check_length("streams", streams.size(), n, "one entry per tensor");
  check_length("offsets", offsets.size(), n, "one entry per tensor");
  if (n == 0) return;

  // ---- checks and per-entry setup; nothing is written before all passed
  ScratchLease lease;
  Scratch& scratch = lease.get();
  std::vector<Entry>& entries = scratch.entries;
  std::vector<Extent>& ext = scratch.ext;
  std::vector<int64_t>&fused = scratch.fused, &strided = scratch.strided, &start = scratch.start;
  entries.clear();
  ext.clear();
  fused.clear();
  strided.clear();
  bool any_random = false;
  const at::Device dev0 = tensors[0].device();
  for (int64_t i = 0; i < n; ++i) {
    if (i + 4 < n) {  // the TensorImpls are scattered in memory: fetch ahead what the checks read
      const char* impl = reinterpret_cast<const char*>(tensors[i + 4].unsafeGetTensorImpl());
      for (int line = 0; line < 4; ++line) __builtin_prefetch(impl + 64 * line);
    }
    const Subject s{kOp, i};
    const at::Tensor& t = tensors[i];
    const int64_t kind = kinds[i];
    TORCH_CHECK_VALUE(kind >= KIND_UNIFORM && kind <= KIND_FILL, "paramops.multi_init_: kinds[", idx(i),
                      "] must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), got ", idx(kind));
    TORCH_CHECK(t.device() == dev0, "paramops.multi_init_: tensors[", idx(i), "] is on ",
                t.device().str(), " but tensors[0] is on ", dev0.str(),
                "; all tensors must be on one device");
    const int dt = check_self(t, s);
    const double p[4] = {params[4 * i], params[4 * i + 1], params[4 * i + 2], params[4 * i + 3]};
    Entry e{};
    e.kind = static_cast<int32_t>(kind);
    e.fill_bits = 0;
    e.offset = offsets[i];
    switch (kind) {
      case KIND_UNIFORM: e.job = uniform_job(dt, p[0], p[1], seeds[i], streams[i], s); break;
      case KIND_NORMAL: e.job = normal_job(dt, p[0], p[1], seeds[i], streams[i], s); break;
      case KIND_TRUNC: e.job = trunc_normal_job(dt, p[0], p[1], p[2], p[3], seeds[i], streams[i], s); break;
      default:
        check_fill(dt, p[0], s);
        e.fill_bits = fill_bits(dt, p[0]);
        e.offset = 0;
        break;
    }
    if (kind != KIND_FILL) {
      check_offset(t, offsets[i], s);
      any_random = true;
    }
    e.numel = t.numel();
    if (e.numel == 0) continue;
    e.data = static_cast<char*>(t.data_ptr());
    e.index = i;
    e.esize = static_cast<int32_t>(t.element_size());
    const bool contiguous = t.is_contiguous();
    ext.push_back(extent_of(t, e.data, i, contiguous));
    (contiguous ? fused : strided).push_back(static_cast<int64_t>(entries.size()));
    entries.push_back(e);
  }
  check_disjoint(tensors, ext, scratch.tmp);
  const GenFn gen = any_random ? choose_isa().gen : nullptr;  // may raise (PARAMOPS_CPU_ISA)

  // ---- the contiguous entries: one parallel pass over their concatenation
  start.resize(fused.size() + 1);  // start[k]: first element of fused[k]
  start[0] = 0;
  for (size_t k = 0; k < fused.size(); ++k) start[k + 1] = start[k] + entries[fused[k]].numel;
  parallel_blocks(start.back(), kBlock, kGrain, [&](int64_t b, int64_t e) {
    size_t k = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    while (b < e) {
      const Entry& en = entries[fused[k]];
      const int64_t first = b - start[k], m = std::min(e, start[k + 1]) - b;
      char* dst = en.data + first * en.esize;
      if (en.kind != KIND_FILL) {
        gen(en.job, en.offset + first, m, dst, 1);
      } else {
        switch (en.esize) {
          case 2: fill_run<uint16_t>(dst, m, en.fill_bits); break;
          case 4: fill_run<uint32_t>(dst, m, en.fill_bits); break;
          default: fill_run<uint64_t>(dst, m, en.fill_bits); break;
        }
      }
      b += m;
      ++k;
    }
  });

  // ---- the others: the single ops' strided path, one by one
  for (const int64_t k : strided) {
    const Entry& en = entries[k];
    if (en.kind != KIND_FILL) {
      run(tensors[en.index], en.job, en.offset, gen);
    } else {
      at::AutoDispatchBelowADInplaceOrView guard;  // as fill_: below autograd
      at::Tensor t = tensors[en.index];
      t.fill_(params[4 * en.index]);
    }
  }
}

void multi_init_cpu(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  const size_t a = stack->size() - 6;
  auto list = [&](size_t k) { return (*stack)[a + k].toListRef(); };
  multi_init(Tensors{list(0)}, Ints{list(1)}, Doubles{list(2)}, Ints{list(3)}, Ints{list(4)}, Ints{list(5)});
  torch::jit::drop(*stack, 6);
}

}  // namespace
}  // namespace cpu
}  // namespace paramops

#define PARAMOPS_MULTI_KERNEL \
  torch::CppFunction::makeFromBoxedFunction<&paramops::cpu::multi_init_cpu>()
TORCH_LIBRARY_IMPL(paramops, CPU, m) { m.impl("multi_init_", PARAMOPS_MULTI_KERNEL); }
// A list with a sparse tensor dispatches to these keys: the same kernel, whose
// checks refuse it with the layout message.
TORCH_LIBRARY_IMPL(paramops, SparseCPU, m) { m.impl("multi_init_", PARAMOPS_MULTI_KERNEL); }
TORCH_LIBRARY_IMPL(paramops, SparseCsrCPU, m) { m.impl("multi_init_", PARAMOPS_MULTI_KERNEL); }
