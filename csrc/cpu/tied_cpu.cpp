// paramops tied_grad_ on the CPU: every group of a call in one parallel pass
// (writer.h tied_cpu). The groups' elements are laid end to end (prefix sums of their
// numels, as multi_init_'s entries: driver.cpp multi_write), threads take blocks of that
// space, and the ISA's tile loops (cpu/tied_tiles.h) sum each block: the sources read
// once, the destination read once in add mode, every destination written once. The
// numbers are those of csrc/paramops/tied.h, element by element, so no split changes a bit.
// Non-contiguous sources are read from contiguous copies and non-contiguous
// destinations written by copy_ from the result, which moves no value.
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "cpu/checks.h"
#include "cpu/driver.h"
#include "cpu/writer.h"
#include "paramops/tied.h"

namespace paramops {
namespace cpu {
void tied_cpu(const std::vector<TiedGroup>& groups) {
  struct Plan {
    std::vector<const char*> src;
    std::vector<char*> dst;
    TiedPlan t;
  };
  std::vector<Plan> plans;
  std::vector<at::Tensor> keep;                            // contiguous copies, alive for the pass
  std::vector<std::pair<const TiedGroup*, at::Tensor>> after;  // copy_ targets: (group, its result)
  std::vector<int64_t> start{0};
  plans.reserve(groups.size());
  for (const TiedGroup& g : groups) {
    const at::Tensor& d0 = g.dst[0];
    if (d0.numel() == 0) continue;
    Plan p;
    TiedPlan& t = p.t;
    t.sdt = dtype_code(g.src[0].scalar_type());
    t.ddt = dtype_code(d0.scalar_type());
    t.ssz = static_cast<int>(g.src[0].element_size());
    t.dsz = static_cast<int>(d0.element_size());
    t.f64 = tied_acc(t.sdt, t.ddt) == DT_F64;
    t.add = g.add;
    t.scale = t.f64 ? g.scale : static_cast<double>(static_cast<float>(g.scale));
    t.rd = nullptr;
    for (const at::Tensor& s : g.src) {
      if (s.is_contiguous()) {
        p.src.push_back(static_cast<const char*>(s.data_ptr()));
      } else {
        keep.push_back(s.contiguous());
        p.src.push_back(static_cast<const char*>(keep.back().data_ptr()));
      }
    }
    at::Tensor result;  // a contiguous tensor that holds the values after the pass
    for (const at::Tensor& d : g.dst) {
      if (d.is_contiguous()) {
        p.dst.push_back(static_cast<char*>(d.data_ptr()));
        if (!result.defined()) result = d;
      }
    }
    if (!result.defined()) {
      keep.push_back(at::empty(d0.sizes(), d0.options().memory_format(at::MemoryFormat::Contiguous)));
      result = keep.back();
      p.dst.push_back(static_cast<char*>(result.data_ptr()));
    }
    if (t.add) {
      if (d0.is_contiguous()) {
        t.rd = static_cast<const char*>(d0.data_ptr());
      } else {
        keep.push_back(d0.contiguous());
        t.rd = static_cast<const char*>(keep.back().data_ptr());
      }
    }
    t.nsrc = static_cast<int>(p.src.size());
    t.ndst = static_cast<int>(p.dst.size());
    if (p.dst.size() < g.dst.size() || !g.dst[0].is_contiguous()) after.emplace_back(&g, result);
    plans.push_back(std::move(p));
    start.push_back(start.back() + d0.numel());
  }
  if (plans.empty()) return;
  for (Plan& p : plans) {  // the vectors no longer move
    p.t.src = p.src.data();
    p.t.dst = p.dst.data();
  }
  const auto piece = choose_isa().tied;
  parallel_blocks(start.back(), kBlock, kGrain, [&](int64_t b, int64_t e) {
    IeeeDefaults fp_defaults;
    size_t k = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    while (b < e) {
      const int64_t first = b - start[k], m = std::min(e, start[k + 1]) - b;
      piece(plans[k].t, first, m);
      b += m;
      ++k;
    }
  });
  at::AutoDispatchBelowADInplaceOrView guard;
  for (const auto& [g, result] : after) {
    for (const at::Tensor& d : g->dst) {
      if (!d.is_contiguous()) d.copy_(result);
    }
  }
}

}  // namespace cpu
}  // namespace paramops
