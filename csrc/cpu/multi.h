// paramops multi_init_: its kernel (one per device slot, cpu/multi.cpp) and what
// the writers get. prepare_multi() does everything before the write,
// device-agnostic: the plan/params checks, every entry's checks (the single ops'
// checks, naming the entry), the shared per-(kind, dtype, parameters) set-up
// (Tmpl), the split into contiguous ("fused") and strided entries with the prefix
// sums of the fused numels, the exact overlap check, the seed draws and the
// version bumps. The slot's Writer (writer.h) then writes every entry.
#pragma once
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <vector>

#include "cpu/checks.h"
#include "cpu/job.h"

namespace paramops {
namespace cpu {

// What entries with the same (kind, dtype, parameters) share: the checked
// parameters, rounded to the compute type (the Job without seed and stream),
// or the fill value in the output dtype. Built once per distinct key.
struct Tmpl {
  int32_t kind;
  int32_t esize;
  uint64_t fill_bits;  // KIND_FILL: the value in the output dtype
  double fill_value;   // KIND_FILL: as given (the strided path uses Tensor.fill_)
  Job job;             // the random kinds (seed and stream are per entry); dtype set for all
};

// One non-empty entry, ready to write.
struct Entry {
  char* data;
  int64_t offset;  // global index of element 0 (0 for fill)
  int64_t seed, stream;
  int64_t index;   // in the tensor list
  int32_t tmpl;    // into Scratch::tmpls
};

struct Extent {
  uintptr_t lo, hi;  // bytes [lo, hi)
  int64_t i;
};

// Per-thread scratch kept between calls: a list of 10,000 tensors needs ~1 MB
// of it, which would otherwise be fresh pages (page faults) on every call. A
// nested call on the same thread (the strided path runs torch ops, which a
// Python dispatch mode could turn into another multi_init_) takes its own.
struct Scratch {
  std::vector<Entry> fused, strided;  // contiguous entries, others (list order)
  std::vector<Tmpl> tmpls;
  std::vector<Extent> ext, tmp;
  std::vector<uint32_t> count;
  std::vector<int64_t> start;  // start[k]: first element of fused[k] in their concatenation
  std::vector<int64_t> seeds;  // the drawn seeds, by list index (draw_seeds)
};

class ScratchLease {
 public:
  ScratchLease() : cached_(busy_ ? nullptr : &cache_) {
    if (cached_ != nullptr) busy_ = true;
  }
  ~ScratchLease() {
    if (cached_ == nullptr) return;
    if (cache_.fused.capacity() > (1 << 16)) cache_ = Scratch();  // keep at most ~7 MB
    busy_ = false;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  Scratch& get() { return cached_ != nullptr ? *cached_ : own_; }

 private:
  static thread_local Scratch cache_;
  static thread_local bool busy_;
  Scratch* cached_;
  Scratch own_;
};

// The tensor list, read in place from the dispatcher's stack: the boxed kernels
// avoid the copy that unboxing to at::TensorList makes (for 10,000 tensors,
// 10,000 reference count round trips).
struct Tensors {
  c10::ArrayRef<c10::IValue> v;
  size_t size() const { return v.size(); }
  const at::Tensor& operator[](size_t i) const { return v[i].toTensor(); }
};

// All checks of multi_init_ for a kernel of `device` (messages as
// paramops/spec/checks.py), then the entries in `scratch` (cleared first), the seeds
// when draw_seeds (one per random entry, in list order, from gen: undefined for
// torch's default CPU generator) and the version bumps; nothing is written. The
// caller holds IeeeDefaults.
void prepare_multi(Tensors tensors, const at::Tensor& plan, const at::Tensor& params, const at::Generator& gen,
                   bool draw_seeds, c10::DeviceType device, Scratch& scratch);

// The multi table a Python writer gets (codes.h TC_*): one int64 row per entry of
// sc, list order, except the fill entries that are not one strided run (which the
// kernel fills itself). (table.cpp)
at::Tensor multi_table(Tensors tensors, const Scratch& sc);
// The element stride of t's single coalesced dim (size-1 dims dropped, adjacent dims
// merged): 1 when contiguous; kNotOneRun when its memory is not one strided run.
int64_t one_run_stride(const at::Tensor& t);

// The bytes [lo, hi) that a non-empty tensor can touch (data: its element 0; contiguous:
// whether it is), with index i.
Extent extent_of(const at::Tensor& t, char* data, int64_t i, bool contiguous);
// Whether two non-empty tensors share a byte of memory, exactly (interleaved views that
// share none do not).
bool tensors_overlap(const at::Tensor& a, const at::Tensor& b);

// Drops the op's n arguments (the tensor list at stack[a]) from the stack, taking the
// GIL once for the whole release where torch would take it per tensor.
void drop_args(torch::jit::Stack& stack, size_t a, size_t n);

// The boxed multi_init_ kernel of a slot (writer.h).
template <int kSlot>
void multi_init_kernel(const c10::OperatorHandle& op, torch::jit::Stack* stack);

}  // namespace cpu
}  // namespace paramops
