// paramops kernels: who writes the values. Every op has one C++ kernel per device
// slot (CPU, CUDA), which checks its arguments, draws its seed, bumps the version
// counter and then either hands the call to an active Capture (fused mode) or to
// the slot's Writer. A Writer only writes: the C++ CPU generators (driver.cpp), the
// CUDA kernels (cuda/ops.cpp), or a Python object (py_writer.cpp: the Triton
// kernels, the Python reference). paramops/registration.py chooses them.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "cpu/job.h"

namespace paramops {
namespace cpu {

struct Scratch;
struct Tensors;

// One checked group of tied_grad_ (tied.cpp): its destinations (the first is the one
// read in add mode; every one gets the same values), its sources, the scale as given
// and the mode.
struct TiedGroup {
  std::vector<at::Tensor> dst, src;
  double scale;
  bool add;
};

class Writer {
 public:
  virtual ~Writer() = default;
  // A checked random op: elements [offset, offset + numel) of job's stream into self
  // (numel > 0, any strides).
  virtual void random(const at::Tensor& self, const Job& job, int64_t offset, const char* op) = 0;
  // A checked multi_init_: every entry of sc (prepare_multi: seeds set, versions bumped).
  virtual void multi(Tensors tensors, const Scratch& sc) = 0;
  // A checked tied_grad_ (versions bumped).
  virtual void tied(const std::vector<TiedGroup>& groups) = 0;
};

// tied_grad_'s writes on the CPU: every group in one fused pass (tied_cpu.cpp).
void tied_cpu(const std::vector<TiedGroup>& groups);

// The host side of a tied_grad_ write, shared by the CPU pass and the CUDA writer
// (tied_cpu.cpp): a TiedPlan (job.h) over contiguous memory for every non-empty group,
// and its numel. Non-contiguous sources (and a non-contiguous destination read in add
// mode) are read from contiguous copies; the contiguous destinations are written
// directly, or a contiguous temporary when there is none; finish() then copies the
// result into the non-contiguous destinations (copy_ moves no value).
class TiedLayout {
 public:
  explicit TiedLayout(const std::vector<TiedGroup>& groups);
  TiedLayout(const TiedLayout&) = delete;
  TiedLayout& operator=(const TiedLayout&) = delete;
  std::vector<TiedPlan> plans;
  std::vector<int64_t> numel;
  void finish() const;

 private:
  std::vector<std::vector<const char*>> src_;
  std::vector<std::vector<char*>> dst_;
  std::vector<at::Tensor> keep_;                                // copies and temporaries
  std::vector<std::pair<const TiedGroup*, at::Tensor>> after_;  // (group, its result)
};

enum Slot { SLOT_CPU = 0, SLOT_CUDA = 1, kNumSlots = 2 };

constexpr c10::DeviceType slot_device(int slot) {
  return slot == SLOT_CPU ? c10::DeviceType::CPU : c10::DeviceType::CUDA;
}

// The slot's writer; raises if none was registered (cannot happen once the kernels are).
Writer& writer_of(int slot, const char* op);
// Installs w (kept alive for the life of the process: a kernel may still be using the old one).
void set_writer(int slot, Writer* w);
// Registers every op's kernel for the slot's dispatch keys (once) and installs w (register.cpp).
void register_slot(int slot, Writer* w);

// The native writers: the CPU's (driver.cpp) and, in a build with CUDA, the CUDA's
// (cuda/ops.cpp; nullptr without).
Writer* cpu_writer();
Writer* cuda_writer();
// A writer that calls the Python object `obj` (its random / multi methods, py_writer.cpp).
Writer* python_writer(void* obj);

// torch's in-place ops bump the autograd version counter (ADInplaceOrView) before they
// write; custom ops get no such kernel, so the kernels do, after their checks.
inline void bump_version(const at::Tensor& t) { t.unsafeGetTensorImpl()->bump_version(); }

// Tensor.fill_ below autograd, as the write of fill_ (and of multi_init_'s strided fill
// entries): the op as a whole is what autograd sees, and its kernel bumped the version
// counter already. The value is converted as c10::Scalar converts it.
inline void fill_below_autograd(const at::Tensor& self, double value) {
  at::AutoDispatchBelowADInplaceOrView guard;
  at::Tensor t = self;
  t.fill_(value);
}

}  // namespace cpu
}  // namespace paramops
