// paramops::_multi_table: multi_init_'s host-side preparation, for a backend
// whose write happens elsewhere (the Triton backend, paramops/_triton.py and
// kernels/multi.py, which serves CUDA tensors when the extension was built
// without CUDA kernels: pip installs without nvcc).
//
// It runs prepare_multi (cpu/multi_common.h) for the device type of the
// tensors: every check of multi_init_, with its messages ("paramops.
// multi_init_: ...": this is multi_init_'s preparation, called only by its
// kernels), the shared per-(kind, dtype, parameters) set-up, the exact overlap
// check and the version bumps. Nothing is written to the tensors. The caller
// writes right after, and must not bump again.
//
// Registered for CompositeExplicitAutograd: that alias gives every backend key
// (CPU, CUDA, the sparse ones, ...) this one kernel, so that CUDA tensors reach
// it in a CPU-only build, where nothing else is registered for CUDA; it never
// needs a device of its own (it reads only metadata: sizes, strides, data
// addresses). Not CompositeImplicitAutograd: that would run it at the Autograd
// key, i.e. under FakeTensor/make_fx tracing, as if it were a decomposition
// into other ops. Autograd sees a leaf op whose schema mutates nothing
// (`Tensor[] tensors`, no `(a!)`): the write and its version bump belong to
// multi_init_, whose schema declares them; this op's int64 result is not
// differentiable, so the autograd fallback records nothing. Meta (FakeTensor)
// is served by the fake kernel of paramops/_ops.py, a direct registration,
// which takes precedence over the alias.
//
// The schema lives in Python (paramops/_ops.py):
//   _multi_table(Tensor[] tensors, Tensor plan, Tensor params) -> Tensor
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/job.h"
#include "cpu/multi_common.h"
#include "cpu/ops_common.h"
#include "paramops/transforms.h"

namespace paramops {
namespace cpu {
namespace {

// ---------------------------------------------------------------- the table
// int64 [rows, kTableW], a CPU tensor, row-major (contiguous); one row per
// entry with numel > 0, in list order. kernels/multi.py mirrors these columns
// by name (INDEX, ADDR, ...; tests/test_triton.py checks both against the
// Python computation of the same fields).
//   INDEX   the entry's index in the tensor list
//   ADDR    the address of its element 0 (data_ptr(), as an int64)
//   NUMEL   its number of elements (> 0)
//   OFFSET  the global index of its element 0 (plan column 3; 0 for fill)
//   SEED    plan column 1 (int64 of the uint64 seed; as given for fill)
//   STREAM  plan column 2 (as SEED)
//   KIND    0 uniform, 1 normal, 2 trunc_normal, 3 fill
//   DTYPE   paramops::DType (transforms.h): 0 float32, 1 float64, 2 float16,
//           3 bfloat16
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
enum TableCol {
  TC_INDEX = 0,
  TC_ADDR,
  TC_NUMEL,
  TC_OFFSET,
  TC_SEED,
  TC_STREAM,
  TC_KIND,
  TC_DTYPE,
  TC_STRIDE,
  TC_P0,
  kTableW = TC_P0 + 6,
};
constexpr int64_t kNotOneRun = 0;

// STRIDE of a non-contiguous (strided-path) entry.
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

at::Tensor multi_table(Tensors tensors, const at::Tensor& plan, const at::Tensor& params) {
  IeeeDefaults fp_defaults;  // the parameters' set-up (trunc_normal's Phi), as in multi_init_
  ScratchLease lease;
  Scratch& sc = lease.get();
  const c10::DeviceType device = tensors.size() > 0 ? tensors[0].device().type() : c10::DeviceType::CPU;
  prepare_multi(tensors, plan, params, device, sc);  // checks, then the version bumps
  const size_t nf = sc.fused.size(), ns = sc.strided.size();
  at::Tensor table = at::empty({static_cast<int64_t>(nf + ns), kTableW}, at::TensorOptions().dtype(at::kLong));
  int64_t* out = table.data_ptr<int64_t>();
  // fused and strided are each in list order: merge them
  size_t f = 0, s = 0;
  while (f < nf || s < ns) {
    const bool take_fused = s == ns || (f < nf && sc.fused[f].index < sc.strided[s].index);
    if (take_fused) {
      const Entry& e = sc.fused[f];
      put_row(out, e, sc.tmpls[e.tmpl], sc.start[f + 1] - sc.start[f], 1);
      ++f;
    } else {
      const Entry& e = sc.strided[s];
      const at::Tensor& t = tensors[e.index];
      put_row(out, e, sc.tmpls[e.tmpl], t.numel(), one_run_stride(t));
      ++s;
    }
    out += kTableW;
  }
  return table;
}

// Boxed: the tensor list is read in place from the stack (see Tensors).
void multi_table_boxed(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  const size_t a = stack->size() - 3;
  at::Tensor table =
      multi_table(Tensors{(*stack)[a].toListRef()}, (*stack)[a + 1].toTensor(), (*stack)[a + 2].toTensor());
  drop_args(*stack, a);
  stack->emplace_back(std::move(table));
}

}  // namespace
}  // namespace cpu
}  // namespace paramops

TORCH_LIBRARY_IMPL(paramops, CompositeExplicitAutograd, m) {
  m.impl("_multi_table", torch::CppFunction::makeFromBoxedFunction<&paramops::cpu::multi_table_boxed>());
}
