// paramops tied_grad_: the sum of a tied parameter's gradients, many groups in one op
// (docs/tied.md). Its kernel (one per device slot, tied.cpp) checks the whole call, as
// paramops/spec/checks.py does with the same messages, bumps the destinations' versions
// and hands the groups to the slot's Writer (writer.h TiedGroup).
#pragma once
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "cpu/writer.h"

namespace paramops {
namespace cpu {

// Every check of tied_grad_, then the groups; nothing is written.
std::vector<TiedGroup> check_tied(c10::ArrayRef<c10::IValue> out, c10::ArrayRef<c10::IValue> grads,
                                  const std::vector<int64_t>& counts, const std::vector<int64_t>& copies,
                                  const std::vector<double>& scales, const c10::List<bool>& accumulate);

// The boxed tied_grad_ kernel of a slot. Arguments: (out, grads, counts, copies, scales, accumulate).
template <int kSlot>
void tied_grad_kernel(const c10::OperatorHandle& op, torch::jit::Stack* stack);

}  // namespace cpu
}  // namespace paramops
