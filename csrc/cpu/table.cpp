// paramops multi_init_: the table a Python writer (the Triton kernels, the Python
// reference) gets for a prepared call (multi.h multi_table): the entries, their
// seeds and their parameters in the compute type, as one int64 CPU tensor.
//
// int64 [rows, kTableW], row-major; one row per non-empty entry, in list order,
// except the fill entries whose memory is not one strided run (the kernel fills those
// with Tensor.fill_). The
// columns are codes.h's TC_* (paramops/core/codes.py TABLE_*):
//   INDEX   the entry's index in the tensor list
//   ADDR    the address of its element 0 (data_ptr(), as an int64)
//   NUMEL   its number of elements (> 0)
//   OFFSET  the global index of its element 0 (plan column OFFSET; 0 for fill)
//   SEED    its seed (int64 of the uint64 seed: given, or drawn by the kernel)
//   STREAM  plan column STREAM (as SEED)
//   KIND    KIND_*
//   DTYPE   DT_*
//   STRIDE  the element stride of its single coalesced dim (size-1 dims
//           dropped, adjacent dims merged where the outer steps over the
//           inner, as kernels/random.py's coalesce): 1 when contiguous; or
//           kNotOneRun (0) when its memory is not one strided run (w.t(),
//           channels_last, ...): such entries need the single-tensor strided
//           path. (0 is never a stride here: a tensor with a 0 stride over a
//           dim of size > 1 has internal overlap, which the checks refuse.)
//   P0..P5  the parameters as bit patterns in the compute type, as the
//           kernels read them (the Job's pf / pd): random kinds on float16,
//           bfloat16, float32 the binary32 bits (zero-extended), on float64
//           the binary64 bits; unused slots 0. Fill: P0 the bits of the value
//           in the output dtype as Tensor.fill_ converts it (zero-extended),
//           P1..P5 0.
#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>

#include "cpu/multi.h"

namespace paramops {
namespace cpu {

int64_t one_run_stride(const at::Tensor& t) {
  int64_t n = 0, size = 0, stride = 1;
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t s = t.size(d), st = t.stride(d);
    if (s == 1) continue;
    if (n > 0 && stride == s * st) {  // merges into the dim before
      size *= s;
      stride = st;
      continue;
    }
    if (++n > 1) return kNotOneRun;
    size = s;
    stride = st;
  }
  return stride;  // n == 0 (one element): 1
}

namespace {

void put_row(int64_t* row, const Entry& e, const Tmpl& tp, int64_t numel, int64_t stride) {
  row[TC_INDEX] = e.index;
  row[TC_ADDR] = static_cast<int64_t>(reinterpret_cast<intptr_t>(e.data));
  row[TC_NUMEL] = numel;
  row[TC_OFFSET] = e.offset;
  row[TC_SEED] = e.seed;
  row[TC_STREAM] = e.stream;
  row[TC_KIND] = tp.kind;
  row[TC_DTYPE] = tp.job.dtype;
  row[TC_STRIDE] = stride;
  int64_t* p = row + TC_P0;
  std::memset(p, 0, 6 * sizeof(int64_t));
  if (tp.kind == KIND_FILL) {
    p[0] = static_cast<int64_t>(tp.fill_bits);
  } else if (tp.job.dtype == DT_F64) {
    for (int k = 0; k < 6; ++k) std::memcpy(&p[k], &tp.job.pd[k], 8);
  } else {
    for (int k = 0; k < 6; ++k) {
      uint32_t b;
      std::memcpy(&b, &tp.job.pf[k], 4);
      p[k] = b;
    }
  }
}

}  // namespace

at::Tensor multi_table(Tensors tensors, const Scratch& sc) {
  const size_t nf = sc.fused.size();
  // the strided entries in the table: all but the fills that are not one strided run
  std::vector<int64_t> stride(sc.strided.size());
  size_t ns = 0;
  for (size_t k = 0; k < sc.strided.size(); ++k) {
    const Entry& e = sc.strided[k];
    stride[k] = one_run_stride(tensors[e.index]);
    ns += !(sc.tmpls[e.tmpl].kind == KIND_FILL && stride[k] == kNotOneRun);
  }
  at::Tensor table = at::empty({static_cast<int64_t>(nf + ns), kTableW}, at::TensorOptions().dtype(at::kLong));
  int64_t* out = table.data_ptr<int64_t>();
  // fused and strided are each in list order: merge them (the fills left out skipped)
  const size_t nstr = sc.strided.size();
  size_t f = 0, s = 0;
  while (true) {
    while (s < nstr && sc.tmpls[sc.strided[s].tmpl].kind == KIND_FILL && stride[s] == kNotOneRun) ++s;
    if (f == nf && s == nstr) break;
    const bool take_fused = s == nstr || (f < nf && sc.fused[f].index < sc.strided[s].index);
    if (take_fused) {
      const Entry& e = sc.fused[f];
      put_row(out, e, sc.tmpls[e.tmpl], sc.start[f + 1] - sc.start[f], 1);
      ++f;
    } else {
      const Entry& e = sc.strided[s];
      put_row(out, e, sc.tmpls[e.tmpl], tensors[e.index].numel(), stride[s]);
      ++s;
    }
    out += kTableW;
  }
  return table;
}


}  // namespace cpu
}  // namespace paramops
