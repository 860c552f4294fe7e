"""The public single ops (paramops/ops.py): a thin and strict layer over torch.ops.paramops.

Every bad argument is refused by name, before anything is written or any seed is drawn (the
cases the issue lists first): a non-real parameter, a non-integral seed, stream or offset, a
seed outside [-2**63, 2**64), a generator that is not a torch.Generator, a range or value the
dtype cannot hold. A good call does no Python work but the op call (checked by counting
what runs: the bench's call cases time it)."""
import sys

import pytest
import torch

import paramops
from conftest import HAS_CPP, bits

INF = float("inf")
U64 = 1 << 64


def _fresh(dtype=torch.float32, n=12):
    return (torch.arange(n, dtype=torch.float64) + 0.25).to(dtype)


# (call, exception, message): each a lambda of the tensor t
BAD = [
    # the issue: "writes 34,434 inf"; torch raises
    (lambda t: paramops.uniform_(t.half(), 0.0, 1e5, seed=1), None, None),
    (lambda t: paramops.normal_(t, 0.0, "0.02"), TypeError, "paramops.normal_: std must be a real number, got str"),
    (lambda t: paramops.normal_(t, 0.0, None), TypeError, "paramops.normal_: std must be a real number, got NoneType"),
    (lambda t: paramops.normal_(t, 1j), TypeError, "paramops.normal_: mean must be a real number, got complex"),
    (lambda t: paramops.uniform_(t, "a", 1.0), TypeError, "paramops.uniform_: a must be a real number, got str"),
    (lambda t: paramops.trunc_normal_(t, 0.0, 1.0, -2.0, [2.0]), TypeError,
     "paramops.trunc_normal_: b must be a real number, got list"),
    (lambda t: paramops.fill_(t, "1"), TypeError, "paramops.fill_: value must be a real number, got str"),
    (lambda t: paramops.normal_(t, seed=1.5), TypeError, "paramops.normal_: seed must be an int, got float"),
    (lambda t: paramops.normal_(t, seed="x"), TypeError, "paramops.normal_: seed must be an int, got str"),
    (lambda t: paramops.normal_(t, seed=2 ** 64), ValueError,
     r"paramops.normal_: seed must lie in \[-2\*\*63, 2\*\*64\), got 18446744073709551616"),
    (lambda t: paramops.normal_(t, seed=-2 ** 63 - 1), ValueError, r"paramops.normal_: seed must lie in \[-2\*\*63"),
    (lambda t: paramops.uniform_(t, offset=1.99), TypeError, "paramops.uniform_: offset must be an int, got float"),
    (lambda t: paramops.uniform_(t, offset=None), TypeError, "paramops.uniform_: offset must be an int, got NoneType"),
    (lambda t: paramops.uniform_(t, offset=2 ** 63), ValueError, r"paramops.uniform_: offset \+ numel overflows int64"),
    (lambda t: paramops.uniform_(t, offset=-1), ValueError, "paramops.uniform_: offset must be >= 0, got -1"),
    (lambda t: paramops.trunc_normal_(t, stream=0.5), TypeError,
     "paramops.trunc_normal_: stream must be an int, got float"),
    (lambda t: paramops.trunc_normal_(t, stream=U64), ValueError,
     r"paramops.trunc_normal_: stream must lie in \[-2\*\*63, 2\*\*64\)"),
    (lambda t: paramops.normal_(t, generator=1), TypeError,
     "paramops.normal_: generator must be a torch.Generator or None, got int"),
    (lambda t: paramops.normal_(t, generator="cpu"), TypeError,
     "paramops.normal_: generator must be a torch.Generator or None, got str"),
    (lambda t: paramops.normal_([1.0]), TypeError, "paramops.normal_: self must be a torch.Tensor, got list"),
    (lambda t: paramops.fill_(None, 1.0), TypeError, "paramops.fill_: self must be a torch.Tensor, got NoneType"),
]
BAD[0] = (BAD[0][0], ValueError, "paramops.uniform_: b 100000.0 overflows torch.float16")


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_argument_named_nothing_written_no_seed_drawn(i):
    call, exc, msg = BAD[i]
    t = _fresh()
    h = t.half()
    before, hb = bits(t).clone(), bits(h).clone()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    v = t._version
    with pytest.raises(exc, match="^" + msg):
        call(t)
    assert torch.equal(bits(t), before) and torch.equal(bits(h), hb) and t._version == v
    assert torch.equal(torch.get_rng_state(), state), "a refused call must not draw a seed"


def test_the_issues_float16_range():
    """uniform_(float16, 0, 1e5): refused as torch refuses it (before, 34,434 of 10**5 were inf)."""
    t = torch.zeros(10 ** 5, dtype=torch.float16)
    with pytest.raises(ValueError, match="b 100000.0 overflows torch.float16"):
        paramops.uniform_(t, 0.0, 1e5, seed=1)
    assert not t.any()
    with pytest.raises(RuntimeError, match="to is out of bounds for"):
        t.uniform_(0.0, 1e5)  # torch's own refusal
    paramops.uniform_(t, 0.0, 65504.0, seed=1)
    assert torch.isfinite(t).all() and t.max() <= 65504


def test_64_bit_patterns():
    """A seed or stream in [2**63, 2**64) is the same pattern as its int64 (taken modulo 2**64);
    2**64 is refused, not wrapped to 0."""
    def n(**kw):
        return paramops.normal_(torch.empty(33), **kw)

    assert torch.equal(bits(n(seed=2 ** 64 - 1)), bits(n(seed=-1)))
    assert torch.equal(bits(n(seed=2 ** 63)), bits(n(seed=-2 ** 63)))
    assert torch.equal(bits(n(seed=3, stream=2 ** 63 + 5)), bits(n(seed=3, stream=-2 ** 63 + 5)))
    assert not torch.equal(bits(n(seed=0)), bits(n(seed=2 ** 63)))
    with pytest.raises(ValueError):
        n(seed=2 ** 64)


def test_integer_like_arguments():
    """What the op schema takes as an int or a float is taken: numpy scalars, 0-d tensors, bools."""
    np = pytest.importorskip("numpy")
    want = paramops.normal_(torch.empty(9), 0.0, 2.0, seed=5, offset=3)
    assert torch.equal(paramops.normal_(torch.empty(9), np.float32(0.0), np.float64(2.0), seed=np.int64(5),
                                        offset=np.int32(3)), want)
    assert torch.equal(paramops.normal_(torch.empty(9), 0, 2, seed=torch.tensor(5), offset=3), want)


def test_returns_the_tensor_and_writes_in_place():
    for fn, args in ((paramops.uniform_, ()), (paramops.normal_, ()), (paramops.trunc_normal_, ()),
                     (paramops.fill_, (2.0,)), (paramops.constant_, (2.0,))):
        t = torch.full((3, 5), float("nan")).t()
        ptr = t.data_ptr()
        assert fn(t, *args) is t and t.data_ptr() == ptr and not t.isnan().any()


def test_the_call_path_is_one_op_call():
    """paramops.normal_ with default arguments runs the op and nothing else of paramops in
    Python but its one shared helper (ops._single, which uniform_, normal_ and trunc_normal_
    share instead of three copies of the same lines); the checks, the seed and the write
    happen in the op (sys.setprofile sees every Python function call)."""
    t = torch.empty(64)
    paramops.normal_(t)
    seen = []

    def prof(frame, event, arg):
        if event == "call":
            seen.append((frame.f_code.co_filename, frame.f_code.co_name))

    sys.setprofile(prof)
    try:
        paramops.normal_(t, 0.0, 0.02)
        paramops.init.normal_(t, 0.0, 0.02)
    finally:
        sys.setprofile(None)
    # (without the extension the kernels are Python too, paramops/backends/python.py: not counted)
    ours = [name for f, name in seen if f.endswith(("paramops/ops.py", "paramops/init.py"))]
    # paramops.normal_; paramops.init.normal_ with its checks of what torch must take instead
    assert ours == ["normal_", "_single", "normal_", "_two"], ours
    if HAS_CPP:  # and nothing else in Python: the op's work is C++
        assert all(f.endswith(("paramops/ops.py", "paramops/init.py", "torch/_ops.py")) for f, _ in seen), seen
