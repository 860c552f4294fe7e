// paramops tied_grad_: its checks and its kernel (tied.h).
// Messages match paramops/spec/checks.py (tied_groups, _tied_alias), in its order.
#include "cpu/tied.h"

#include <ATen/MemoryOverlap.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "cpu/checks.h"
#include "cpu/multi.h"
#include "paramops/tied.h"

namespace paramops {
namespace cpu {
namespace {

constexpr const char* kTop = "paramops.tied_grad_";

std::string at_(const char* list, int64_t i, int64_t g) {
  return std::string(list) + "[" + std::to_string(i) + "] (group " + std::to_string(g) + ")";
}

void check_tensor(const at::Tensor& t, const std::string& who, const c10::Device& dev0, bool write) {
  TORCH_CHECK_TYPE(t.layout() == at::kStrided, kTop, ": ", who, " must be a dense (strided) tensor, got layout ",
                   torch_layout(t.layout()));
  TORCH_CHECK_TYPE(dtype_code(t.scalar_type()) >= 0, kTop, ": ", who,
                   " must be a float16, bfloat16, float32 or float64 tensor, got ", torch_dtype(t.scalar_type()));
  TORCH_CHECK(t.device() == dev0, kTop, ": ", who, " is on ", t.device().str(), " but out[0] is on ", dev0.str(),
              "; one call takes the tensors of one device");
  TORCH_CHECK(!write || t.device().is_meta() || at::has_internal_overlap(t) != at::MemOverlap::Yes, kTop, ": ",
              who, " has overlapping elements in memory (e.g. from expand()); write into a tensor with distinct "
              "elements");
}

struct Ext {
  uintptr_t lo, hi;
  int kind;  // 0 a source, 1 a destination
  int64_t i;
};

Ext extent(const at::Tensor& t, int kind, int64_t i) {
  const Extent e = extent_of(t, static_cast<char*>(t.data_ptr()), i, t.is_contiguous());
  return {e.lo, e.hi, kind, i};
}

// The first destination (list order) that shares memory with a source (smallest index
// first) or with an earlier destination: spec/checks.py _tied_alias.
void check_alias(c10::ArrayRef<c10::IValue> out, c10::ArrayRef<c10::IValue> grads) {
  std::vector<Ext> ext;
  ext.reserve(out.size() + grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].toTensor().numel() > 0) ext.push_back(extent(grads[i].toTensor(), 0, i));
  }
  for (size_t j = 0; j < out.size(); ++j) {
    if (out[j].toTensor().numel() > 0) ext.push_back(extent(out[j].toTensor(), 1, j));
  }
  std::sort(ext.begin(), ext.end(), [](const Ext& a, const Ext& b) {
    return std::tie(a.lo, a.hi, a.kind, a.i) < std::tie(b.lo, b.hi, b.kind, b.i);
  });
  bool found = false;
  std::tuple<int64_t, int, int64_t> best;
  std::vector<const Ext*> active;
  for (const Ext& e : ext) {
    size_t w = 0;
    for (const Ext* a : active) {
      if (a->hi > e.lo) active[w++] = a;
    }
    active.resize(w);
    for (const Ext* a : active) {
      if (a->kind == 0 && e.kind == 0) continue;  // two sources: both only read
      std::tuple<int64_t, int, int64_t> key =
          a->kind == 1 && e.kind == 1 ? std::make_tuple(std::max(a->i, e.i), 1, std::min(a->i, e.i))
          : a->kind == 1              ? std::make_tuple(a->i, 0, e.i)
                                      : std::make_tuple(e.i, 0, a->i);
      if (found && !(key < best)) continue;
      const at::Tensor& other = (std::get<1>(key) == 0 ? grads : out)[std::get<2>(key)].toTensor();
      if (tensors_overlap(out[std::get<0>(key)].toTensor(), other)) {
        best = key;
        found = true;
      }
    }
    active.push_back(&e);
  }
  if (!found) return;
  const auto [j, kind, i] = best;
  TORCH_CHECK(kind != 0, kTop, ": out[", std::to_string(j), "] and grads[", std::to_string(i),
              "] overlap in memory; a destination must not alias a source");
  TORCH_CHECK(false, kTop, ": out[", std::to_string(i), "] and out[", std::to_string(j),
              "] overlap in memory; each destination must have memory of its own");
}

}  // namespace

std::vector<TiedGroup> check_tied(c10::ArrayRef<c10::IValue> out, c10::ArrayRef<c10::IValue> grads,
                                  const std::vector<int64_t>& counts, const std::vector<int64_t>& copies,
                                  const std::vector<double>& scales, const c10::List<bool>& accumulate) {
  const int64_t n = static_cast<int64_t>(counts.size());
  TORCH_CHECK_VALUE(static_cast<int64_t>(copies.size()) == n && static_cast<int64_t>(scales.size()) == n &&
                        static_cast<int64_t>(accumulate.size()) == n,
                    kTop, ": counts, copies, scales and accumulate must have one entry per group, got ",
                    std::to_string(n), ", ", std::to_string(copies.size()), ", ", std::to_string(scales.size()),
                    " and ", std::to_string(accumulate.size()));
  int64_t ns = 0, nd = 0;
  for (int64_t g = 0; g < n; ++g) {
    const std::string gs = std::to_string(g);
    TORCH_CHECK_VALUE(counts[g] >= 1, kTop, ": group ", gs, " is empty: counts[", gs, "] must be >= 1, got ",
                      std::to_string(counts[g]));
    TORCH_CHECK_VALUE(copies[g] >= 1, kTop, ": group ", gs, " has no destination: copies[", gs,
                      "] must be >= 1, got ", std::to_string(copies[g]));
    ns += counts[g];
    nd += copies[g];
  }
  TORCH_CHECK_VALUE(ns == static_cast<int64_t>(grads.size()), kTop, ": counts add up to ", std::to_string(ns),
                    " but grads has ", std::to_string(grads.size()), " tensors");
  TORCH_CHECK_VALUE(nd == static_cast<int64_t>(out.size()), kTop, ": copies add up to ", std::to_string(nd),
                    " but out has ", std::to_string(out.size()), " tensors");
  std::vector<TiedGroup> groups;
  if (n == 0) return groups;
  groups.reserve(n);
  const c10::Device dev0 = out[0].toTensor().device();
  int64_t i = 0, j = 0;
  for (int64_t g = 0; g < n; ++g) {
    TiedGroup grp;
    const at::Tensor& s0 = grads[i].toTensor();
    for (int64_t k = 0; k < counts[g]; ++k) {
      const at::Tensor& t = grads[i + k].toTensor();
      const std::string who = at_("grads", i + k, g);
      check_tensor(t, who, dev0, false);
      if (k > 0) {
        TORCH_CHECK_VALUE(t.sizes() == s0.sizes(), kTop, ": ", who, " has shape ", shape_str(t), " but grads[",
                          std::to_string(i), "], the group's first source, has ", shape_str(s0));
        TORCH_CHECK_VALUE(t.scalar_type() == s0.scalar_type(), kTop, ": ", who, " has dtype ",
                          torch_dtype(t.scalar_type()), " but grads[", std::to_string(i),
                          "], the group's first source, has ", torch_dtype(s0.scalar_type()));
      }
      grp.src.push_back(t);
    }
    for (int64_t k = 0; k < copies[g]; ++k) {
      const at::Tensor& t = out[j + k].toTensor();
      const std::string who = at_("out", j + k, g);
      check_tensor(t, who, dev0, true);
      TORCH_CHECK_VALUE(t.sizes() == s0.sizes(), kTop, ": ", who, " has shape ", shape_str(t),
                        " but the group's sources have ", shape_str(s0));
      TORCH_CHECK_VALUE(k == 0 || t.scalar_type() == grp.dst[0].scalar_type(), kTop, ": ", who, " has dtype ",
                        torch_dtype(t.scalar_type()), " but out[", std::to_string(j),
                        "], the group's first destination, has ", torch_dtype(grp.dst[0].scalar_type()));
      grp.dst.push_back(t);
    }
    const std::string gs = std::to_string(g);
    const double s = scales[g];
    const int acc = tied_acc(dtype_code(s0.scalar_type()), dtype_code(grp.dst[0].scalar_type()));
    TORCH_CHECK_VALUE(std::isfinite(s), kTop, ": scales[", gs, "] must be finite, got ", py_float(s));
    TORCH_CHECK_VALUE(std::fabs(s) <= dtype_max(acc), kTop, ": scales[", gs, "] ", py_float(s), " overflows ",
                      dtype_name(acc), ", the group's accumulator");
    grp.scale = s;
    grp.add = accumulate.get(g);
    groups.push_back(std::move(grp));
    i += counts[g];
    j += copies[g];
  }
  if (!dev0.is_meta()) check_alias(out, grads);
  for (const c10::IValue& t : out) check_writable(t.toTensor());
  return groups;
}

template <int kSlot>
void tied_grad_kernel(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  const size_t a = stack->size() - 6;
  {
    IeeeDefaults fp_defaults;
    const auto& s = *stack;
    std::vector<TiedGroup> groups =
        check_tied(s[a].toListRef(), s[a + 1].toListRef(), s[a + 2].toIntVector(), s[a + 3].toIntVector(),
                   s[a + 4].toDoubleVector(), s[a + 5].toBoolList());
    for (const c10::IValue& t : s[a].toListRef()) {
      if (!t.toTensor().is_inference()) bump_version(t.toTensor());
    }
    if (!groups.empty()) writer_of(kSlot, "tied_grad_").tied(groups);
  }
  torch::jit::drop(*stack, 6);
}
template void tied_grad_kernel<SLOT_CPU>(const c10::OperatorHandle&, torch::jit::Stack*);
template void tied_grad_kernel<SLOT_CUDA>(const c10::OperatorHandle&, torch::jit::Stack*);

}  // namespace cpu
}  // namespace paramops
