// AVX2 + FMA build of the generator (see generate.h). The target pragma must
// come before any include, and this file must include no torch/c10 header.
// no-trapping-math lets GCC if-convert the two branches of ppnd (both are
// computed anyway); it changes no value.
#pragma GCC target("avx2,fma")
#pragma GCC optimize("no-trapping-math")
#define PARAMOPS_ISA avx2
#include "cpu/generate.h"
