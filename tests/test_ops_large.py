"""Tensors of more than 2^31 elements (64-bit indexing)."""
import pytest
import torch

from conftest import assert_bitwise, call, requires_cpp

N = (1 << 31) + 4099


@requires_cpp
@pytest.mark.parametrize("op,args", [("normal_", (0.0, 1.0)), ("uniform_", (0.0, 1.0))])
def test_more_than_2_31_elements(op, args):
    t = torch.full((N,), float("nan"), dtype=torch.float16)
    call("cpp", op, t, *args, seed=99, stream=2)
    # the head, the region around 2^31 and the tail match the reference computed via offsets
    for start, length in [(0, 1000), ((1 << 31) - 600, 1200), (N - 333, 333)]:
        want = call("python", op, torch.empty(length, dtype=torch.float16), *args, seed=99, stream=2,
                    offset=start)
        assert_bitwise(t[start:start + length], want)
    assert not t.isnan().any()
