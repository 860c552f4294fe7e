// paramops kernels: the one registration mechanism. register_slot() registers the
// C++ kernel of every op for a device slot's dispatch keys (the dense key and the
// sparse ones, whose tensors the checks refuse by name) and installs the slot's
// writer; paramops/registration.py calls it through paramops._C.register(device, writer)
// for each device with the backend it chose. The schemas and fake kernels are
// defined in Python, so the ops exist without this library.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "cpu/multi.h"
#include "cpu/single.h"
#include "cpu/tied.h"
#include "cpu/writer.h"

namespace paramops {
namespace cpu {
namespace {

std::atomic<Writer*> writers[kNumSlots];

template <int kSlot>
std::unique_ptr<torch::Library> make_library(c10::DispatchKey key) {
  auto lib = std::make_unique<torch::Library>(torch::Library::IMPL, "paramops", key, __FILE__, __LINE__);
  lib->impl("uniform_", &SingleOps<kSlot>::uniform);
  lib->impl("normal_", &SingleOps<kSlot>::normal);
  lib->impl("trunc_normal_", &SingleOps<kSlot>::trunc_normal);
  lib->impl("fill_", &SingleOps<kSlot>::fill);
  lib->impl("multi_init_", torch::CppFunction::makeFromBoxedFunction<&multi_init_kernel<kSlot>>());
  lib->impl("tied_grad_", torch::CppFunction::makeFromBoxedFunction<&tied_grad_kernel<kSlot>>());
  return lib;
}

template <int kSlot>
void make_libraries(std::unique_ptr<torch::Library> (&libs)[3]) {
  using K = c10::DispatchKey;
  const K keys[3] = {kSlot == SLOT_CPU ? K::CPU : K::CUDA, kSlot == SLOT_CPU ? K::SparseCPU : K::SparseCUDA,
                     kSlot == SLOT_CPU ? K::SparseCsrCPU : K::SparseCsrCUDA};
  std::unique_ptr<torch::Library> made[3];
  for (int k = 0; k < 3; ++k) made[k] = make_library<kSlot>(keys[k]);
  for (int k = 0; k < 3; ++k) libs[k] = std::move(made[k]);
}

}  // namespace

Writer& writer_of(int slot, const char* op) {
  Writer* w = writers[slot].load(std::memory_order_acquire);
  TORCH_CHECK(w != nullptr, "paramops.", op, ": no writer is registered for this device");
  return *w;
}

void set_writer(int slot, Writer* w) { writers[slot].store(w, std::memory_order_release); }

void register_slot(int slot, Writer* w) {
  static std::mutex mu;
  static std::unique_ptr<torch::Library> libs[kNumSlots][3];
  const std::lock_guard<std::mutex> lock(mu);
  set_writer(slot, w);
  if (libs[slot][0]) return;  // the kernels read the writer at every call
  if (slot == SLOT_CPU) {
    make_libraries<SLOT_CPU>(libs[slot]);
  } else {
    make_libraries<SLOT_CUDA>(libs[slot]);
  }
}

#if !defined(PARAMOPS_CUDA)
Writer* cuda_writer() { return nullptr; }  // a build without the CUDA kernels (cuda/ops.cpp)
#endif

}  // namespace cpu
}  // namespace paramops
