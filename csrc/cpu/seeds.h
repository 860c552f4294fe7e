// paramops kernels: where a call's seed comes from, when none is given. The ops draw it
// themselves, after their checks (a refused call draws nothing), so that a compiled
// graph draws a fresh seed at every run as eager code does.
//
// A generator reaches an op as a handle (an int): torch.compile cannot trace a
// torch.Generator argument, but it can bake in a constant, and Python's
// paramops.generator_handle(g) gives the same handle for as long as g lives.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "cpu/checks.h"

namespace paramops {
namespace cpu {

// The handle (>= 1) of gen, the same for every call while gen lives, never reused.
int64_t generator_handle(const at::Generator& gen);
// The generator of an optional handle (undefined when none); an error naming the op when
// the handle is unknown or its generator is gone.
at::Generator generator_of(const std::optional<int64_t>& handle, const Subject& s);
// One seed from gen (undefined: torch's default CPU generator), the value of
// torch.randint(-2**63, 2**63 - 1, (), dtype=torch.int64, generator=gen).
int64_t draw_seed(const at::Generator& gen);
// n such seeds, in order: what n successive draw_seed calls give.
void draw_seeds(const at::Generator& gen, int64_t n, int64_t* out);

}  // namespace cpu
}  // namespace paramops
