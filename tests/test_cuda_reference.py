"""On a CUDA device (served by the Python reference until the GPU kernels land) the
values are bitwise those of the CPU backend."""
import pytest
import torch

import paramops
from conftest import CASES, DTYPES, assert_bitwise, poisoned

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
@pytest.mark.parametrize("n", [1, 7, 4099, 1 << 20])
def test_cuda_equals_cpu(op, dtype, n):
    args = CASES[op]
    gpu = poisoned((n,), dtype, device="cuda")
    cpu = poisoned((n,), dtype)
    getattr(torch.ops.paramops, op)(gpu, *args, seed=123, stream=5, offset=3)
    getattr(torch.ops.paramops, op)(cpu, *args, seed=123, stream=5, offset=3)
    assert_bitwise(gpu.cpu(), cpu)


def test_public_api_on_cuda_uses_cpu_generator():
    torch.manual_seed(0)
    a = paramops.normal_(torch.empty(1000, device="cuda"))
    torch.manual_seed(0)
    b = paramops.normal_(torch.empty(1000))
    assert_bitwise(a.cpu(), b)
