// paramops multi_init_: a whole list of tensors in one op call (multi.h).
//
// The per-tensor metadata comes as two CPU tensors, apex multi_tensor_apply
// style: plan, int64 [n, 4] of (kind, seed, stream, offset) (codes.h PLAN_*), and
// params, float64 [n, 4] of the zero-padded parameters, read through their
// strides (an expanded row serves every entry). Every entry is checked (with the
// single ops' checks, naming the entry) before anything is written, and so is the
// disjointness of the entries. Entries with the same (kind, dtype, parameters)
// share one checked set-up (the Job without seed and stream: trunc_normal's erf
// work, fill's conversion), so a list of 10,000 tensors with one or a few kinds
// checks and builds its parameters a few times, not 10,000. The slot's Writer
// then writes them all (the CPU's: one parallel pass, driver.cpp).
//
// The schema is defined in Python (paramops/registration.py); messages match
// paramops/spec/checks.py (the Python port), which the tests compare.
#include <Python.h>

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/checks.h"
#include "cpu/job.h"
#include "cpu/multi.h"
#include "cpu/seeds.h"
#include "cpu/writer.h"
#include "paramops/transforms.h"

namespace paramops {
namespace cpu {
namespace {

constexpr const char* kOp = "multi_init_";

std::string idx(int64_t i) { return std::to_string(i); }


// plan and params: [n, 4] tensors of one dtype on the CPU, any strides (an
// expanded row serves all entries). Messages as paramops/multi.py's _check_table.
void check_table(const at::Tensor& t, const char* name, at::ScalarType st, int64_t n, const char* per) {
  TORCH_CHECK_TYPE(t.layout() == at::kStrided, "paramops.multi_init_: ", name,
                   " must be a dense (strided) tensor, got layout ", torch_layout(t.layout()));
  TORCH_CHECK_TYPE(t.scalar_type() == st, "paramops.multi_init_: ", name, " must be a ", torch_dtype(st),
                   " tensor, got ", torch_dtype(t.scalar_type()));
  TORCH_CHECK(t.device().is_cpu(), "paramops.multi_init_: ", name,
              " must be a CPU tensor (it is read on the host, also for tensors on another device), "
              "got a tensor on ", t.device().str());
  TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == n && t.size(1) == 4, "paramops.multi_init_: ", name,
                    " must have shape [", idx(n), ", 4] (", per, "), got ", shape_str(t));
}

// A row-major view of an [n, 4] table of T with any (element) strides.
template <class T>
struct Table {
  const T* data;
  int64_t s0, s1;
  explicit Table(const at::Tensor& t)
      : data(static_cast<const T*>(t.const_data_ptr())), s0(t.stride(0)), s1(t.stride(1)) {}
  T operator()(int64_t i, int k) const { return data[i * s0 + k * s1]; }
};

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

}  // namespace

bool tensors_overlap(const at::Tensor& a, const at::Tensor& b) {
  const auto pa = reinterpret_cast<intptr_t>(a.data_ptr()), pb = reinterpret_cast<intptr_t>(b.data_ptr());
  const intptr_t origin = std::min(pa, pb);
  return sets_overlap(layout_of(a), 0, pa - origin, layout_of(b), 0, pb - origin);
}

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

namespace {

// Stable LSD radix sort by lo (ties keep list order). Only the bits in which
// the starts differ are sorted on (for 10,000 heap blocks of 256 bytes spread
// over 100 MB: 21 bits, as two passes of 11), and the counts of all passes
// are taken in one read.
void sort_by_start(std::vector<Extent>& ext, std::vector<Extent>& tmp, std::vector<uint32_t>& count) {
  const size_t n = ext.size();
  if (n < 2) return;
  uintptr_t base = ext[0].lo;
  for (const Extent& e : ext) base = std::min(base, e.lo);
  uintptr_t diff = 0;
  for (const Extent& e : ext) diff |= e.lo - base;
  if (diff == 0) return;
  const int shift = __builtin_ctzll(diff);
  const int bits = 64 - __builtin_clzll(diff) - shift;
  const int passes = (bits + 10) / 11, width = (bits + passes - 1) / passes;
  const size_t buckets = size_t{1} << width;
  const uintptr_t mask = buckets - 1;
  count.assign(passes * buckets, 0);
  for (const Extent& e : ext) {
    const uintptr_t key = (e.lo - base) >> shift;
    for (int p = 0; p < passes; ++p) ++count[p * buckets + ((key >> (p * width)) & mask)];
  }
  tmp.resize(n);
  for (int p = 0; p < passes; ++p) {
    uint32_t* c = count.data() + p * buckets;
    uint32_t sum = 0;
    for (size_t b = 0; b < buckets; ++b) {
      const uint32_t k = c[b];
      c[b] = sum;
      sum += k;
    }
    for (const Extent& e : ext) tmp[c[(((e.lo - base) >> shift) >> (p * width)) & mask]++] = e;
    ext.swap(tmp);
  }
}

// Raises for the first entry j (in list order) that shares memory with an
// earlier entry i, naming the smallest such i (as paramops/multi.py does).
// ext: the extents of the non-empty entries, in list order.
// Returns whether each extent starts at or after the end of all before it.
bool ascending_and_disjoint(const std::vector<Extent>& ext) {
  uintptr_t reach = 0;
  for (const Extent& e : ext) {
    if (e.lo < reach) return false;
    reach = std::max(reach, e.hi);
  }
  return true;
}

void check_disjoint(Tensors tensors, std::vector<Extent>& ext, std::vector<Extent>& tmp,
                    std::vector<uint32_t>& count) {
  // Tensors allocated one after another often lie in list order: no sort needed.
  if (ascending_and_disjoint(ext)) return;
  sort_by_start(ext, tmp, count);
  if (ascending_and_disjoint(ext)) return;
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
// The last few distinct (kind, dtype, parameters) keys and their templates: a
// list of layers alternates between a few of them (weight normal, bias fill),
// and each is checked and set up (trunc_normal's erf, fill's conversion) once.
// Only keys whose checks passed are kept, so a hit needs no check: they depend
// on nothing else (the entry's own checks, offset included, run for each).
class TmplCache {
 public:
  // The template of an entry, checked and built by make() on a miss.
  template <class Make>
  int32_t get(int32_t kind, int dt, const double (&p)[4], const Make& make) {
    for (int k = 0; k < used_; ++k) {
      const Key& key = keys_[k];
      if (key.kind == kind && key.dt == dt && std::memcmp(key.p, p, sizeof p) == 0) return key.tmpl;
    }
    const int32_t t = make();
    const int slot = used_ < kSlots ? used_++ : next_++ % kSlots;  // round robin once full
    keys_[slot] = {kind, dt, {p[0], p[1], p[2], p[3]}, t};
    return t;
  }

 private:
  struct Key {
    int32_t kind;
    int dt;
    double p[4];
    int32_t tmpl;
  };
  static constexpr int kSlots = 8;
  Key keys_[kSlots];
  int used_ = 0, next_ = 0;
};

}  // namespace

thread_local Scratch ScratchLease::cache_;
thread_local bool ScratchLease::busy_ = false;

void prepare_multi(Tensors tensors, const at::Tensor& plan_arg, const at::Tensor& params_arg,
                   const at::Generator& gen, bool draw_seeds, c10::DeviceType device, Scratch& scratch) {
  const int64_t n = static_cast<int64_t>(tensors.size());
  check_table(plan_arg, "plan", at::kLong, n, "one row (kind, seed, stream, offset) per tensor");
  check_table(params_arg, "params", at::kDouble, n, "one row of 4 parameters per tensor");
  std::vector<Entry>&fused = scratch.fused, &strided = scratch.strided;
  std::vector<Tmpl>& tmpls = scratch.tmpls;
  std::vector<Extent>& ext = scratch.ext;
  std::vector<int64_t>& start = scratch.start;
  fused.clear();
  strided.clear();
  tmpls.clear();
  ext.clear();
  start.clear();
  start.push_back(0);  // start[k]: first element of fused[k] in the concatenation
  if (n == 0) return;
  const at::Tensor plan_t = plan_arg.is_neg() ? plan_arg.resolve_neg() : plan_arg;
  const at::Tensor params_t = params_arg.is_neg() ? params_arg.resolve_neg() : params_arg;
  const Table<int64_t> plan(plan_t);
  const Table<double> params(params_t);

  // ---- checks and per-entry setup; nothing is written before all passed
  fused.reserve(n);
  ext.reserve(n);
  start.reserve(n + 1);
  TmplCache cache;
  const at::Device dev0 = tensors[0].device();
  constexpr int64_t kAhead = 8;
  for (int64_t i = 0; i < n; ++i) {
    // The TensorImpls (and the StorageImpls that data_ptr reads) are scattered
    // in memory: fetch ahead what the checks read.
    if (i + 2 * kAhead < n) {
      const char* impl = reinterpret_cast<const char*>(tensors[i + 2 * kAhead].unsafeGetTensorImpl());
      for (int line = 0; line < 4; ++line) __builtin_prefetch(impl + 64 * line);
    }
    if (i + kAhead < n) {
      const char* storage = reinterpret_cast<const char*>(
          tensors[i + kAhead].unsafeGetTensorImpl()->unsafe_storage().unsafeGetStorageImpl());
      __builtin_prefetch(storage);
      __builtin_prefetch(storage + 64);
    }
    const at::Tensor& t = tensors[i];
    c10::TensorImpl* impl = t.unsafeGetTensorImpl();
    const int64_t kind = plan(i, PLAN_KIND);
    TORCH_CHECK_VALUE(kind >= KIND_UNIFORM && kind <= KIND_FILL, "paramops.multi_init_: kinds[", idx(i),
                      "] must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), got ", idx(kind));
    TORCH_CHECK(impl->device() == dev0, "paramops.multi_init_: tensors[", idx(i), "] is on ",
                t.device().str(), " but tensors[0] is on ", dev0.str(),
                "; all tensors must be on one device");
    // check_self's checks; a contiguous tensor has no internal overlap, so the
    // common case needs no call. Anything else gets check_self (and its message).
    int dt = dtype_code(t.scalar_type());
    bool contiguous = impl->layout() == at::kStrided && dt >= 0 && impl->device_type() == device &&
                      impl->is_contiguous();
    if (!contiguous) {
      dt = check_self(t, Subject{kOp, i}, device);
      contiguous = impl->is_contiguous();
    }
    const double p[4] = {params(i, 0), params(i, 1), params(i, 2), params(i, 3)};
    const int32_t tm = cache.get(static_cast<int32_t>(kind), dt, p, [&]() {
      const Subject s{kOp, i};
      Tmpl tp{};
      tp.kind = static_cast<int32_t>(kind);
      tp.esize = static_cast<int32_t>(impl->itemsize());
      tp.job.dtype = dt;
      switch (kind) {
        case KIND_UNIFORM: tp.job = uniform_job(dt, p[0], p[1], s); break;
        case KIND_NORMAL: tp.job = normal_job(dt, p[0], p[1], s); break;
        case KIND_TRUNC: tp.job = trunc_normal_job(dt, p[0], p[1], p[2], p[3], s); break;
        default:
          check_fill(dt, p[0], s);
          tp.fill_bits = fill_bits(dt, p[0]);
          tp.fill_value = p[0];
          break;
      }
      tmpls.push_back(tp);
      return static_cast<int32_t>(tmpls.size() - 1);
    });
    const int64_t numel = impl->numel();
    Entry e;
    e.offset = 0;
    if (kind != KIND_FILL) {
      e.offset = plan(i, PLAN_OFFSET);
      if (e.offset < 0 || e.offset > std::numeric_limits<int64_t>::max() - numel) {
        check_offset(t, e.offset, Subject{kOp, i});  // raises
      }
    }
    if (numel == 0) continue;
    e.data = static_cast<char*>(impl->mutable_data());
    e.seed = plan(i, PLAN_SEED);
    e.stream = plan(i, PLAN_STREAM);
    e.index = i;
    e.tmpl = tm;
    const auto lo = reinterpret_cast<uintptr_t>(e.data);
    if (contiguous) {
      ext.push_back({lo, lo + static_cast<uintptr_t>(numel * tmpls[tm].esize), i});
      fused.push_back(e);
      start.push_back(start.back() + numel);
    } else {
      ext.push_back(extent_of(t, e.data, i, false));
      strided.push_back(e);
    }
  }
  check_disjoint(tensors, ext, scratch.tmp, scratch.count);
  for (int64_t i = 0; i < n; ++i) check_writable(tensors[i]);
  // All checked: the seeds (one per random entry, empty ones included, in list order, as
  // the single ops would draw them one by one), then the version bumps.
  if (draw_seeds) {
    std::vector<int64_t>& seeds = scratch.seeds;
    seeds.assign(n, 0);
    int64_t nrand = 0;
    for (int64_t i = 0; i < n; ++i) nrand += plan(i, PLAN_KIND) != KIND_FILL;
    std::vector<int64_t> drawn(nrand);
    ::paramops::cpu::draw_seeds(gen, nrand, drawn.data());
    for (int64_t i = 0, k = 0; i < n; ++i) {
      if (plan(i, PLAN_KIND) != KIND_FILL) seeds[i] = drawn[k++];
    }
    for (Entry& e : fused) e.seed = seeds[e.index];
    for (Entry& e : strided) e.seed = seeds[e.index];
  }
  for (int64_t i = 0; i < n; ++i) bump_version(tensors[i]);
}

// Drops the op's arguments from the stack. When the stack holds the last
// reference to the list, that releases every tensor's reference, and for a
// tensor with a Python object torch then decrefs the object, taking the GIL
// for it (the Python binding releases the GIL around the op): for 10,000
// tensors that is 10,000 GIL hand-overs, about 0.3 ms. Here the GIL is taken
// once around the whole release instead, when torch would take it anyway (some
// tensor has a Python object) and this thread does not hold it.
void drop_args(torch::jit::Stack& stack, size_t a, size_t n) {
  const c10::IValue& list = stack[a];
  bool take_gil = false;
  if (list.isList() && list.use_count() == 1 && Py_IsInitialized()) {
    for (const c10::IValue& v : list.toListRef()) {
      if (v.isTensor() && v.toTensor().unsafeGetTensorImpl()->pyobj_slot()->load_pyobj() != nullptr) {
        take_gil = !PyGILState_Check();
        break;
      }
    }
  }
  if (!take_gil) {
    torch::jit::drop(stack, n);
    return;
  }
  const PyGILState_STATE gil = PyGILState_Ensure();
  torch::jit::drop(stack, n);
  PyGILState_Release(gil);
}

// Boxed: the tensor list is read in place from the stack (see Tensors). Arguments:
// (tensors, plan, params, *, generator=None, draw_seeds=False).
template <int kSlot>
void multi_init_kernel(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  const size_t a = stack->size() - 5;
  {
    IeeeDefaults fp_defaults;
    ScratchLease lease;
    Scratch& scratch = lease.get();
    const Subject s{"multi_init_"};
    const c10::IValue& g = (*stack)[a + 3];
    const at::Generator gen = generator_of(g.isNone() ? std::nullopt : std::optional<int64_t>(g.toInt()), s);
    const Tensors tensors{(*stack)[a].toListRef()};
    prepare_multi(tensors, (*stack)[a + 1].toTensor(), (*stack)[a + 2].toTensor(), gen, (*stack)[a + 4].toBool(),
                  slot_device(kSlot), scratch);
    if (!scratch.fused.empty() || !scratch.strided.empty()) writer_of(kSlot, "multi_init_").multi(tensors, scratch);
  }
  drop_args(*stack, a, 5);
}
template void multi_init_kernel<SLOT_CPU>(const c10::OperatorHandle&, torch::jit::Stack*);
template void multi_init_kernel<SLOT_CUDA>(const c10::OperatorHandle&, torch::jit::Stack*);

}  // namespace cpu
}  // namespace paramops
