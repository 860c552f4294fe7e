"""The Python reference as a writer: the interface of csrc/cpu/py_writer.cpp.

    random(t, kind, p, seed, stream, offset)   p: the six per-call parameters in the
                                               compute type (paramops.spec.reference.job_params)
    multi(tensors, table)                      the multi table (paramops.core.codes TABLE_*)
    tied(groups)                               tied_grad_'s checked groups, [(dests, sources,
                                               scale, accumulate)] (paramops.spec.tied)

The caller has checked the call and bumped the version counter; the writes below run
below autograd, so they bump nothing again.
"""
import struct

import torch

from ..core import codes as K
from ..spec import reference as R
from ..spec import tied as _tied

_INT_OF = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _below_autograd():
    return torch._C._AutoDispatchBelowADInplaceOrView()


def unpack_params(dtype, bits):
    """The six parameters from the table's bit patterns P0..P5 (binary64 bits for float64
    outputs, binary32 bits otherwise), as exact Python floats."""
    if dtype == torch.float64:
        return [struct.unpack("<d", struct.pack("<Q", b & (1 << 64) - 1))[0] for b in bits]
    return [struct.unpack("<f", struct.pack("<I", b & 0xFFFFFFFF))[0] for b in bits]


def fill_value(dtype, bits):
    """The value whose bits in `dtype` the table's P0 holds (zero-extended)."""
    size = torch.empty((), dtype=dtype).element_size()
    b = bits & ((1 << 8 * size) - 1)
    if b >= 1 << (8 * size - 1):
        b -= 1 << 8 * size
    return torch.tensor(b, dtype=_INT_OF[size]).view(dtype)


DTYPES = {K.F32: torch.float32, K.F64: torch.float64, K.F16: torch.float16, K.BF16: torch.bfloat16}


class Writer:
    name = "python"

    def random(self, t, kind, p, seed, stream, offset):
        v = R.generate_job(kind, p, t.dtype, t.numel(), offset, seed, stream, device=t.device)
        with _below_autograd():
            t.copy_(v.view(t.shape))

    def multi(self, tensors, table):
        for r in table.tolist():
            t = tensors[r[K.TABLE_INDEX]]
            kind = r[K.TABLE_KIND]
            bits = r[K.TABLE_P0:K.TABLE_P0 + 6]
            if kind == K.FILL:
                with _below_autograd():
                    t.copy_(fill_value(t.dtype, bits[0]).expand(t.shape))
            else:
                self.random(t, kind, unpack_params(t.dtype, bits), r[K.TABLE_SEED], r[K.TABLE_STREAM],
                            r[K.TABLE_OFFSET])

    def tied(self, groups):
        _tied.write(groups)
