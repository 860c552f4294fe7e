"""torch.library.opcheck for every op, and torch.compile(fullgraph=True) over every public API:
the raw ops, the paramops single ops, paramops.init with the default generator, with a
generator= and with a seed=, and multi_init_. Each compiles without a graph break (fullgraph
would raise), under aot_eager and inductor; after the same torch.manual_seed (or the same
generator seed) the bits equal the eager calls', and a second run draws fresh seeds, as a
second eager run does."""
import pytest
import torch

import paramops
import paramops.init as PI
from conftest import assert_bitwise

SAMPLES = {
    "uniform_": ((-1.0, 2.0), {"seed": 3, "stream": 1, "offset": 5}),
    "normal_": ((0.0, 0.02), {"seed": 3, "stream": 1, "offset": 5}),
    "trunc_normal_": ((0.0, 1.0, -2.0, 2.0), {"seed": 3, "stream": 1, "offset": 5}),
    "fill_": ((0.5,), {}),
}
BACKENDS = ["aot_eager", "inductor"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("op", list(SAMPLES))
def test_opcheck(op, dtype):
    args, kw = SAMPLES[op]
    for shape in [(7, 5), (0,), ()]:
        t = torch.empty(shape, dtype=dtype)
        torch.library.opcheck(getattr(torch.ops.paramops, op).default, (t, *args), kw)


def test_opcheck_multi_init():
    ts = [torch.empty(5, 3), torch.empty(4, dtype=torch.float64), torch.empty(0)]
    plan = torch.tensor([[1, 7, 0, 0], [3, 0, 0, 0], [0, 9, 2, 4]], dtype=torch.int64)
    params = torch.tensor([[0.0, 0.02, 0, 0], [1.0, 0, 0, 0], [-1.0, 1.0, 0, 0]], dtype=torch.float64)
    torch.library.opcheck(torch.ops.paramops.multi_init_.default, (ts, plan, params), {})


def _compiled(fn, backend):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, backend=backend)


def _shapes():
    return [torch.empty(33, 3), torch.empty(17, dtype=torch.bfloat16), torch.empty(8, 4, dtype=torch.float64)]


def _check_fresh_and_equal(fn, backend, reseed):
    """Eager and compiled fn(tensors) give the same bits after reseed(); a second run of each
    after the first differs from the first (fresh seeds) and agrees with the other."""
    cfn = _compiled(fn, backend)
    out = {}
    for name, f in (("eager", fn), ("compiled", cfn)):
        ts = _shapes()
        reseed()
        f(ts)
        first = [t.clone() for t in ts]
        f(ts)
        out[name] = (first, [t.clone() for t in ts])
    for (a1, a2), (b1, b2) in [(out["eager"], out["compiled"])]:
        for x, y in zip(a1, b1):
            assert_bitwise(x, y)
        for x, y in zip(a2, b2):
            assert_bitwise(x, y)
        assert any(not torch.equal(x, y) for x, y in zip(a1, a2)), "the second run must draw fresh seeds"


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_ops(backend):
    def init(ts):
        for t in ts:
            torch.ops.paramops.normal_(t, 0.0, 0.02)
            torch.ops.paramops.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0, seed=11, offset=2)
        torch.ops.paramops.uniform_(ts[0], -1.0, 1.0)
        torch.ops.paramops.fill_(ts[1], 0.25)

    _check_fresh_and_equal(init, backend, lambda: torch.manual_seed(5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_ops(backend):
    def init(ts):
        paramops.normal_(ts[0], 0.0, 0.02)
        paramops.uniform_(ts[1], -0.5, 0.5)
        paramops.trunc_normal_(ts[2], 0.0, 1.0, -2.0, 2.0)
        paramops.uniform_(ts[0][:5], seed=2**64 - 3, stream=2**63 + 1, offset=7)  # 64-bit patterns
        paramops.fill_(ts[2][0], 3.0)

    _check_fresh_and_equal(init, backend, lambda: torch.manual_seed(6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_default_generator(backend):
    def init(ts):
        PI.kaiming_uniform_(ts[0], a=5 ** 0.5)
        PI.normal_(ts[1], 0.0, 0.02)
        PI.trunc_normal_(ts[2], std=0.02, a=-0.04, b=0.04)
        PI.xavier_normal_(ts[2])
        PI.zeros_(ts[1][:3])

    _check_fresh_and_equal(init, backend, lambda: torch.manual_seed(7))


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_generator(backend):
    g = torch.Generator().manual_seed(8)

    def init(ts):
        PI.uniform_(ts[0], -0.1, 0.1, generator=g)
        PI.kaiming_normal_(ts[2], generator=g)
        PI.trunc_normal_(ts[1], generator=g)

    def reseed():
        g.manual_seed(8)
        torch.manual_seed(99)

    state = torch.get_rng_state()
    _check_fresh_and_equal(init, backend, reseed)
    torch.manual_seed(99)
    assert torch.equal(torch.get_rng_state(), torch.get_rng_state())
    torch.set_rng_state(state)


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_generator_leaves_the_default_alone(backend):
    g = torch.Generator().manual_seed(1)
    cfn = _compiled(lambda t: PI.normal_(t, generator=g), backend)
    torch.manual_seed(3)
    want = torch.get_rng_state()
    cfn(torch.empty(10))
    assert torch.equal(torch.get_rng_state(), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_is_a_constant_or_an_input(backend):
    """seed= gives the same bits every run, compiled or not."""
    def init(t, s):
        PI.normal_(t)  # drawn
        paramops.normal_(t[:4], seed=s)

    cfn = _compiled(init, backend)
    a, b = torch.empty(9), torch.empty(9)
    torch.manual_seed(0)
    init(a, 1234)
    torch.manual_seed(0)
    cfn(b, 1234)
    assert_bitwise(a, b)
    assert_bitwise(b[:4], paramops.normal_(torch.empty(4), seed=1234))


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_init(backend):
    def init(ts):
        paramops.multi_init_(ts, "normal", (0.0, 0.02))
        paramops.multi_init_(ts, ["uniform", "fill", "trunc_normal"], [(-1.0, 1.0), (2.0,), (0.0, 1.0, -2.0, 2.0)])
        paramops.multi_init_(ts[:2], "normal", (0.0, 1.0), seeds=[5, 2**64 - 1], streams=[0, 3], offsets=4)

    _check_fresh_and_equal(init, backend, lambda: torch.manual_seed(9))


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_init_generator(backend):
    g = torch.Generator().manual_seed(4)

    def init(ts):
        paramops.multi_init_(ts, "uniform", (0.0, 1.0), generator=g)

    _check_fresh_and_equal(init, backend, lambda: g.manual_seed(4))


def test_compiled_bad_input_raises_the_ops_error():
    """The checks are the op's: under compile a refused call still raises paramops' error and
    writes nothing (the fake kernel checks at compile time, the kernel at run time)."""
    t = torch.full((5,), 2.0)
    with pytest.raises(Exception, match="paramops.normal_: std must be >= 0"):
        _compiled(lambda x: paramops.normal_(x, 0.0, -1.0), "aot_eager")(t)
    assert torch.equal(t, torch.full((5,), 2.0))
