"""torch.library.opcheck and torch.compile(fullgraph=True) for every op."""
import pytest
import torch

import paramops  # noqa: F401

SAMPLES = {
    "uniform_": ((-1.0, 2.0), {"seed": 3, "stream": 1, "offset": 5}),
    "normal_": ((0.0, 0.02), {"seed": 3, "stream": 1, "offset": 5}),
    "trunc_normal_": ((0.0, 1.0, -2.0, 2.0), {"seed": 3, "stream": 1, "offset": 5}),
    "fill_": ((0.5,), {}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("op", list(SAMPLES))
def test_opcheck(op, dtype):
    args, kw = SAMPLES[op]
    for shape in [(7, 5), (0,), ()]:
        t = torch.empty(shape, dtype=dtype)
        torch.library.opcheck(getattr(torch.ops.paramops, op).default, (t, *args), kw)


@pytest.mark.parametrize("op", list(SAMPLES))
def test_compile_fullgraph(op):
    args, kw = SAMPLES[op]
    fn = getattr(torch.ops.paramops, op)

    def init(t):
        fn(t, *args, **kw)
        return t * 1.0

    torch._dynamo.reset()
    compiled = torch.compile(init, fullgraph=True, backend="aot_eager")
    got = compiled(torch.empty(33, 3))
    want = init(torch.empty(33, 3))
    assert torch.equal(got, want)
