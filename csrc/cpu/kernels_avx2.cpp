// AVX2 + FMA build of the generator (see generate.h). The target pragma must
// come before any include, and this file must include no torch/c10 header.
// no-trapping-math lets GCC if-convert the two branches of ppnd (both are
// computed anyway); it changes no value.
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
#pragma GCC optimize("no-trapping-math")
#define PARAMOPS_ISA avx2
#include "cpu/generate.h"
#include "cpu/tied_tiles.h"
#else
#include "cpu/job.h"
// Not x86: never selected (ops.cpp checks the CPU), defined for the linker.
void paramops::cpu::avx2::generate(const Job&, int64_t, int64_t, void*, int64_t) {}
void paramops::cpu::avx2::tied_piece(const TiedPlan&, int64_t, int64_t) {}
#endif
