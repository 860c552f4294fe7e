// paramops: portability layer for the torch-free host+device math headers.
//
// Everything in csrc/paramops/*.h is plain C++ that nvcc and g++ both compile:
// no torch, no std containers. Functions get internal linkage on the host
// (static inline), so translation units compiled for different ISAs (see
// csrc/cpu/kernels_*.cpp) never share a copy through the linker.
//
// Numbers: only IEEE-exact operations (+, -, *, correctly rounded / and sqrt,
// and fma written out). Build with -ffp-contract=off (g++) / --fmad=false (nvcc)
// so that no compiler fuses a*b+c on its own.
#pragma once
#include <stdint.h>
#include <string.h>
#include <math.h>

#if defined(__CUDACC__)
#define PARAMOPS_HD static __host__ __device__ __forceinline__
#else
#define PARAMOPS_HD static inline __attribute__((always_inline))
#endif

namespace paramops {

PARAMOPS_HD uint32_t f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
#endif
}
PARAMOPS_HD float f32_from(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  memcpy(&x, &u, 4);
  return x;
#endif
}
PARAMOPS_HD uint64_t f64_bits(double x) {
#if defined(__CUDA_ARCH__)
  return (uint64_t)__double_as_longlong(x);
#else
  uint64_t u;
  memcpy(&u, &x, 8);
  return u;
#endif
}
PARAMOPS_HD double f64_from(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double((long long)u);
#else
  double x;
  memcpy(&x, &u, 8);
  return x;
#endif
}

}  // namespace paramops
