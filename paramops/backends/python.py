"""The Python port of the ops' C++ kernels (csrc/cpu/single.h, csrc/cpu/multi.cpp), for an
installation without the extension: the same steps in the same order, with the same
messages (paramops/spec/checks.py), then a writer (paramops/backends/reference.py or triton.py):

  1. the checks: self, the parameters, the offset, writability, the generator handle;
  2. the seed: `seed`, else one drawn from the generator (torch's default CPU generator);
  3. the autograd version bump;
  4. the write.

make(writer) gives the op table paramops/registration.py registers. (Fused mode needs no
hook here: without the extension its Python dispatch mode takes the calls before they
reach these kernels, paramops/capture.py.)
"""
import struct

import torch

from ..core import codes as K
from ..core import seeds as _seeds
from ..spec import checks as _checks
from ..spec import reference as R
from .dims import coalesce

_INT_OF = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
           torch.float64: torch.int64}
DTYPE_CODE = {torch.float32: K.F32, torch.float64: K.F64, torch.float16: K.F16, torch.bfloat16: K.BF16}


def bump(t):
    """The autograd version bump of an in-place op (an inference tensor has no counter; the
    checks refused one outside inference mode)."""
    if not t.is_inference():
        torch.autograd.graph.increment_version(t)


def below_autograd():
    # The write must not bump the counter a second time, nor be seen by autograd: the op as
    # a whole is what autograd sees.
    return torch._C._AutoDispatchBelowADInplaceOrView()


def _i64(u):
    return u - (1 << 64) if u >= 1 << 63 else u


def param_bits(kind, p, dtype):
    """The table's P0..P5 (csrc/cpu/table.cpp): the compute-type bits of the per-call
    parameters, or for fill the bits of the value in `dtype` (zero-extended)."""
    if kind == K.FILL:
        b = int(torch.empty((), dtype=dtype).fill_(p[0]).view(_INT_OF[dtype]).item())
        return [b & ((1 << 8 * torch.empty((), dtype=dtype).element_size()) - 1)] + [0] * 5
    job = R.job_params(kind, p[:K.ARITY[kind]], dtype)
    if dtype == torch.float64:
        return [_i64(struct.unpack("<Q", struct.pack("<d", x))[0]) for x in job]
    return [struct.unpack("<I", struct.pack("<f", x))[0] for x in job]


def one_run_stride(t):
    """The element stride of t's single coalesced dim (1 for one element), or NOT_ONE_RUN."""
    dims = coalesce(t)
    if len(dims) > 1:
        return K.NOT_ONE_RUN
    return dims[0][1] if dims else 1


def multi_table(tensors, rows, params, seeds):
    """csrc/cpu/table.cpp's table, for a checked call: an int64 tensor [rows, TABLE_W]. The
    strided fill entries are not in it: they are written here, with Tensor.fill_."""
    out, bits_of = [], {}
    for i, (t, row, p) in enumerate(zip(tensors, rows, params)):
        n = t.numel()
        if n == 0:
            continue
        kind = row[K.PLAN_KIND]
        stride = one_run_stride(t)
        if kind == K.FILL and stride == K.NOT_ONE_RUN:
            with below_autograd():
                t.fill_(p[0])
            continue
        key = (kind, t.dtype, *(struct.pack("<d", x) for x in p))  # 0.0 and -0.0 are different keys
        bits = bits_of.get(key)
        if bits is None:
            bits = bits_of[key] = param_bits(kind, p, t.dtype)
        offset = 0 if kind == K.FILL else row[K.PLAN_OFFSET]
        out.append([i, t.data_ptr(), n, offset, seeds[i], row[K.PLAN_STREAM], kind, DTYPE_CODE[t.dtype], stride]
                   + bits)
    return torch.tensor(out, dtype=torch.int64).reshape(-1, K.TABLE_W)


def make(writer):
    """The five ops' kernels (op name -> function with the op's schema) over `writer`."""

    def random(op, kind, self, p, seed, generator, stream, offset):
        _checks.tensor(op, self)
        _checks.kind_params(op, kind, self.dtype, p)
        _checks.offset(op, offset, self.numel())
        _checks.writable(self)
        if seed is None:
            seed = _seeds.draw_seeds(_seeds.generator_of(op, generator), 1)[0]
        bump(self)
        if self.numel():
            out = self if not self.is_neg() else torch.empty(self.shape, dtype=self.dtype, device=self.device)
            writer.random(out, kind, R.job_params(kind, p, self.dtype), seed, stream, offset)
            if out is not self:  # a view with the negative bit (see negative_kernels)
                with below_autograd():
                    self.copy_(out)

    def uniform_(self, a, b, *, seed=None, generator=None, stream=0, offset=0):
        random("uniform_", K.UNIFORM, self, (a, b), seed, generator, stream, offset)

    def normal_(self, mean, std, *, seed=None, generator=None, stream=0, offset=0):
        random("normal_", K.NORMAL, self, (mean, std), seed, generator, stream, offset)

    def trunc_normal_(self, mean, std, a, b, *, seed=None, generator=None, stream=0, offset=0):
        random("trunc_normal_", K.TRUNC, self, (mean, std, a, b), seed, generator, stream, offset)

    def fill_(self, value):
        _checks.fill(self, value)
        _checks.writable(self)
        bump(self)
        if self.numel():
            with below_autograd():
                self.fill_(value)

    def multi_init_(tensors, plan, params, *, generator=None, draw_seeds=False):
        gen = _seeds.generator_of(_checks.MULTI, generator)
        _checks.multi(tensors, plan, params)
        rows, prm = plan.tolist(), params.tolist()
        seeds = [r[K.PLAN_SEED] for r in rows]
        if draw_seeds:  # one per random entry, in list order, after every check passed
            rand = [i for i, r in enumerate(rows) if r[K.PLAN_KIND] != K.FILL]
            for i, s in zip(rand, _seeds.draw_seeds(gen, len(rand))):
                seeds[i] = s
        for t in tensors:
            bump(t)
        table = multi_table(tensors, rows, prm, seeds)
        if len(table):
            writer.multi(tensors, table)

    def tied_grad_(out, grads, counts, copies, scales, accumulate):
        groups = _checks.tied(out, grads, counts, copies, scales, accumulate)
        for t in out:
            bump(t)
        writer.tied(groups)

    return {"uniform_": uniform_, "normal_": normal_, "trunc_normal_": trunc_normal_, "fill_": fill_,
            "multi_init_": multi_init_, "tied_grad_": tied_grad_}


def negative_kernels(kernels):
    """The kernels for the Negative dispatch key, which only views with the negative bit
    (torch._neg_view) carry. With the extension torch's Negative fallback resolves them around
    the C++ kernel; for Python kernels that fallback fails ("Expected Tensor but got None"), so
    here the single ops write such a view through a copy (their kernel above), and multi_init_
    refuses it as torch's fallback refuses it for the C++ kernel."""
    def multi_init_(tensors, plan, params, *, generator=None, draw_seeds=False):
        if any(isinstance(t, torch.Tensor) and t.is_neg() for t in tensors):
            raise RuntimeError(" fallback doesn't currently support mutable TensorLists with negation inputs. Please "
                               "materialize all the negation input tensor(s) in the mutable TensorList inputs before "
                               "calling paramops::multi_init_")
        kernels["multi_init_"](tensors, plan, params, generator=generator, draw_seeds=draw_seeds)

    return {**kernels, "multi_init_": multi_init_}
