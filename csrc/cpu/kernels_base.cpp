// Baseline x86-64 / any-CPU build of the generator (see generate.h): the
// fallback when neither AVX2+FMA nor AVX-512 is available. fma/fmaf are then
// libm calls (correctly rounded), so values are the same, only slower.
// This file must include no torch/c10 header.
#define PARAMOPS_ISA base
#include "cpu/generate.h"
#include "cpu/tied_tiles.h"
