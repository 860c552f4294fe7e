// AVX-512 build of the generator (see generate.h). The target pragma must come
// before any include, and this file must include no torch/c10 header.
// no-trapping-math lets GCC if-convert the two branches of ppnd (both are
// computed anyway); it changes no value. (g++ does not define __AVX512DQ__
// after a target pragma in C++, hence PARAMOPS_ISA_AVX512.)
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,fma")
#pragma GCC optimize("no-trapping-math")
// GCC 12 warns inside avx512fintrin.h (_mm512_undefined_* operands): a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define PARAMOPS_ISA avx512
#define PARAMOPS_ISA_AVX512 1
#include "cpu/generate.h"
#include "cpu/tied_tiles.h"
#else
#include "cpu/job.h"
// Not x86: never selected (ops.cpp checks the CPU), defined for the linker.
void paramops::cpu::avx512::generate(const Job&, int64_t, int64_t, void*, int64_t) {}
void paramops::cpu::avx512::tied_piece(const TiedPlan&, int64_t, int64_t) {}
#endif
