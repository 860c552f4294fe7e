// paramops tied_grad_ on the CPU: every group of a call in one parallel pass
// (writer.h tied_cpu). The groups' elements are laid end to end (prefix sums of their
// numels, as multi_init_'s entries: driver.cpp multi_write), threads take blocks of that
// space, and the ISA's tile loops (cpu/tied_tiles.h) sum each block: the sources read
// once, the destination read once in add mode, every destination written once. The
// numbers are those of csrc/paramops/tied.h, element by element, so no split changes a bit.
// The host side (contiguous copies, temporaries, the copy_ into non-contiguous
// destinations) is TiedLayout's, which the CUDA writer shares.
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "cpu/checks.h"
#include "cpu/driver.h"
#include "cpu/writer.h"
#include "paramops/tied.h"

namespace paramops {
namespace cpu {
TiedLayout::TiedLayout(const std::vector<TiedGroup>& groups) {
  for (const TiedGroup& g : groups) {
    const at::Tensor& d0 = g.dst[0];
    if (d0.numel() == 0) continue;
    TiedPlan t;
    t.sdt = dtype_code(g.src[0].scalar_type());
    t.ddt = dtype_code(d0.scalar_type());
    t.ssz = static_cast<int>(g.src[0].element_size());
    t.dsz = static_cast<int>(d0.element_size());
    t.f64 = tied_acc(t.sdt, t.ddt) == DT_F64;
    t.add = g.add;
    t.scale = t.f64 ? g.scale : static_cast<double>(static_cast<float>(g.scale));
    t.rd = nullptr;
    std::vector<const char*> src;
    for (const at::Tensor& x : g.src) {
      if (!x.is_contiguous()) keep_.push_back(x.contiguous());
      src.push_back(static_cast<const char*>((x.is_contiguous() ? x : keep_.back()).data_ptr()));
    }
    std::vector<char*> dst;
    at::Tensor result;  // a contiguous tensor that holds the values after the write
    for (const at::Tensor& d : g.dst) {
      if (!d.is_contiguous()) continue;
      dst.push_back(static_cast<char*>(d.data_ptr()));
      if (!result.defined()) result = d;
    }
    if (!result.defined()) {
      keep_.push_back(at::empty(d0.sizes(), d0.options().memory_format(at::MemoryFormat::Contiguous)));
      result = keep_.back();
      dst.push_back(static_cast<char*>(result.data_ptr()));
    }
    if (t.add) {
      if (!d0.is_contiguous()) keep_.push_back(d0.contiguous());
      t.rd = static_cast<const char*>((d0.is_contiguous() ? d0 : keep_.back()).data_ptr());
    }
    t.nsrc = static_cast<int>(src.size());
    t.ndst = static_cast<int>(dst.size());
    if (dst.size() < g.dst.size() || !d0.is_contiguous()) after_.emplace_back(&g, result);
    src_.push_back(std::move(src));
    dst_.push_back(std::move(dst));
    plans.push_back(t);
    numel.push_back(d0.numel());
  }
  for (size_t k = 0; k < plans.size(); ++k) {  // the pointer vectors no longer move
    plans[k].src = src_[k].data();
    plans[k].dst = dst_[k].data();
  }
}

void TiedLayout::finish() const {
  at::AutoDispatchBelowADInplaceOrView guard;
  for (const auto& [g, result] : after_) {
    for (const at::Tensor& d : g->dst) {
      if (!d.is_contiguous()) d.copy_(result);
    }
  }
}

void tied_cpu(const std::vector<TiedGroup>& groups) {
  const TiedLayout lay(groups);
  if (lay.plans.empty()) return;
  std::vector<int64_t> start{0};
  for (int64_t n : lay.numel) start.push_back(start.back() + n);
  const auto piece = choose_isa().tied;
  parallel_blocks(start.back(), kBlock, kGrain, [&](int64_t b, int64_t e) {
    IeeeDefaults fp_defaults;
    size_t k = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    while (b < e) {
      const int64_t first = b - start[k], m = std::min(e, start[k + 1]) - b;
      piece(lay.plans[k], first, m);
      b += m;
      ++k;
    }
  });
  lay.finish();
}

}  // namespace cpu
}  // namespace paramops
