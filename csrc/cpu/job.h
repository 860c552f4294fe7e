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

// One group of tied_grad_ (tied_cpu.cpp), contiguous: nsrc sources of DT_* code sdt,
// ndst destinations of code ddt (each gets the same values), rd the destination's
// values in add mode; scale already rounded to the accumulator (binary64 when f64).
struct TiedPlan {
  const char* const* src;
  char* const* dst;
  const char* rd;
  int nsrc, ndst, sdt, ddt, ssz, dsz;
  bool f64, add;
  double scale;
};

// generate: writes the elements with global indices [first, first + n)
// (docs/stream.md §2) to out[0], out[stride], ..., out[(n - 1) * stride] (stride
// in elements, of the output dtype). tied_piece: elements [first, first + n) of
// a tied_grad_ group (csrc/paramops/tied.h; cpu/tied_tiles.h). One definition
// per instruction set.
#define PARAMOPS_CPU_DECLARE(isa) \
  namespace isa {                 \
  void generate(const Job& job, int64_t first, int64_t n, void* out, int64_t stride); \
  void tied_piece(const TiedPlan& p, int64_t first, int64_t n); \
  }
PARAMOPS_CPU_DECLARE(avx512)
PARAMOPS_CPU_DECLARE(avx2)
PARAMOPS_CPU_DECLARE(base)
#undef PARAMOPS_CPU_DECLARE

}  // namespace cpu
}  // namespace paramops
