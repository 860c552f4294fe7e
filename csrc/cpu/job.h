// paramops CPU kernels: what the torch side hands to the per-ISA generators
// (kernels_*.cpp, torch-free). Plain data and declarations only.
#pragma once
#include <stdint.h>

#include "paramops/codes.h"

namespace paramops {
namespace cpu {

// One call of uniform_/normal_/trunc_normal_. Parameters are already rounded
// to the compute type (float for float16/bfloat16/float32, double for
// float64); only the array of that type is read:
//   uniform: p[0] = c(a), p[1] = c(b) - c(a)
//   normal:  p[0] = c(mean), p[1] = c(std)
//   trunc:   p[0] = c(pa), p[1] = c(dp), p[2] = c(mean), p[3] = c(sstd),
//            p[4] = c(lo), p[5] = c(hi)
struct Job {
  int kind;   // KIND_UNIFORM, KIND_NORMAL or KIND_TRUNC (codes.h)
  int dtype;  // DT_* (codes.h)
  uint64_t seed;
  uint64_t stream;
  float pf[6];
  double pd[6];
};

// Writes the elements with global indices [first, first + n) (docs/stream.md
// §2) to out[0], out[stride], ..., out[(n - 1) * stride] (stride in elements,
// of the output dtype). One definition per instruction set.
#define PARAMOPS_CPU_DECLARE(isa) \
  namespace isa {                 \
  void generate(const Job& job, int64_t first, int64_t n, void* out, int64_t stride); \
  }
PARAMOPS_CPU_DECLARE(avx512)
PARAMOPS_CPU_DECLARE(avx2)
PARAMOPS_CPU_DECLARE(base)
#undef PARAMOPS_CPU_DECLARE

}  // namespace cpu
}  // namespace paramops
