"""The ops' checks (csrc/cpu/checks.cpp, and its Python port paramops/spec/checks.py): every
bad input gets a clear error naming the argument, raised before anything is written or any
seed is drawn, with the same message on every backend."""
import math

import pytest
import torch

import paramops
from conftest import HAS_CPP, bits, call

# "cpp": the op with its C++ kernel; "python": the Python kernels (no extension);
# "refwriter": the C++ kernel over the Python reference writer.
BACKENDS = ["python"] + (["cpp", "refwriter"] if HAS_CPP else [])
NAN, INF = float("nan"), float("inf")

# (op, args, dtype, exception, message pattern)
BAD_PARAMS = [
    ("normal_", (0.0, -1.0), torch.float32, ValueError, "std must be >= 0, got -1.0"),
    ("normal_", (NAN, 1.0), torch.float32, ValueError, "mean must be finite, got nan"),
    ("normal_", (0.0, INF), torch.float32, ValueError, "std must be finite, got inf"),
    ("normal_", (1e300, 1.0), torch.float32, ValueError, "mean 1e\\+300 overflows torch.float32"),
    ("normal_", (0.0, 1e39), torch.float32, ValueError, "std 1e\\+39 overflows torch.float32"),
    ("normal_", (1e5, 1.0), torch.float16, ValueError, "mean 100000.0 overflows torch.float16"),
    ("normal_", (0.0, 7e4), torch.float16, ValueError, "std 70000.0 overflows torch.float16"),
    ("trunc_normal_", (0.0, 1e39, -2.0, 2.0), torch.float32, ValueError, "std 1e\\+39 overflows torch.float32"),
    ("uniform_", (1.0, 1.0), torch.float32, ValueError, "a must be less than b, got a=1.0, b=1.0"),
    ("uniform_", (2.0, 1.0), torch.float32, ValueError, "a must be less than b"),
    ("uniform_", (-INF, 1.0), torch.float32, ValueError, "a must be finite, got -inf"),
    ("uniform_", (0.0, NAN), torch.float32, ValueError, "b must be finite, got nan"),
    ("uniform_", (-3e38, 3e38), torch.float32, ValueError, "b - a overflows torch.float32"),
    # torch refuses a range that its dtype cannot hold, and so do the ops (issue: 34,434 inf)
    ("uniform_", (0.0, 1e5), torch.float16, ValueError, "b 100000.0 overflows torch.float16"),
    ("uniform_", (-7e4, 0.0), torch.float16, ValueError, "a -70000.0 overflows torch.float16"),
    ("uniform_", (-6e4, 6e4), torch.float16, ValueError, "b - a overflows torch.float16"),
    ("uniform_", (-1e308, 1e308), torch.float64, ValueError, "b - a overflows torch.float64"),
    ("trunc_normal_", (0.0, 1.0, 2.0, -2.0), torch.float32, ValueError, "a must be less than b"),
    ("trunc_normal_", (0.0, 1.0, -INF, -INF), torch.float32, ValueError, "a must be less than b"),
    ("trunc_normal_", (0.0, 1.0, INF, INF), torch.float32, ValueError, "a must be less than b"),
    ("trunc_normal_", (0.0, 0.0, -2.0, 2.0), torch.float32, ValueError, "std must be > 0, got 0.0"),
    ("trunc_normal_", (0.0, -1.0, -2.0, 2.0), torch.float32, ValueError, "std must be > 0"),
    ("trunc_normal_", (0.0, 1.0, NAN, 2.0), torch.float32, ValueError, "a must not be nan"),
    ("trunc_normal_", (0.0, 1.0, -2.0, NAN), torch.float32, ValueError, "b must not be nan"),
    ("trunc_normal_", (INF, 1.0, -2.0, 2.0), torch.float32, ValueError, "mean must be finite"),
    ("trunc_normal_", (0.0, 1.0, 40.0, 41.0), torch.float32, ValueError, "too far in the tail"),
    ("trunc_normal_", (0.0, 1.0, 40.0, INF), torch.float32, ValueError, "too far in the tail"),
    ("trunc_normal_", (0.0, 1.0, 1.00000108, 1.0000011), torch.float32, ValueError,
     "no torch.float32 value lies in"),
    ("trunc_normal_", (0.0, 1.0, 70000.0, 80000.0), torch.float16, ValueError, "no torch.float16 value lies in"),
    # central intervals too narrow for their std: the message says so (the two cases)
    ("trunc_normal_", (0.0, 1.0, -1e-17, 1e-17), torch.float32, ValueError,
     r"\[a, b\] = \[-1e-17, 1e-17\] is too narrow for the normal distribution \(mean=0.0, std=1.0\) to sample"),
    ("trunc_normal_", (0.0, 1e30, -1.0, 1.0), torch.float32, ValueError,
     r"\[a, b\] = \[-1.0, 1.0\] is too narrow .* is 0 in float64"),
    ("fill_", (NAN,), torch.float32, ValueError, "value must be finite"),
    ("fill_", (1e39,), torch.float32, ValueError, "value 1e\\+39 overflows torch.float32"),
    ("fill_", (1e5,), torch.float16, ValueError, "value 100000.0 overflows torch.float16"),
]


def _fresh(dtype=torch.float32):
    return (torch.arange(12, dtype=torch.float64).reshape(3, 4) + 0.25).to(dtype)


def _kw(op):
    return {} if op == "fill_" else {"seed": 1}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,args,dtype,exc,msg", BAD_PARAMS)
def test_bad_parameters(backend, op, args, dtype, exc, msg):
    t = _fresh(dtype)
    before = t.clone()
    v = t._version
    with pytest.raises(exc, match=msg) as info:
        call(backend, op, t, *args, **_kw(op))
    assert str(info.value).startswith(f"paramops.{op}: ")
    assert torch.equal(bits(t), bits(before)) and t._version == v


@pytest.mark.parametrize("op,args,dtype,exc,msg", BAD_PARAMS)
def test_same_message_on_every_backend(op, args, dtype, exc, msg):
    got = set()
    for backend in BACKENDS:
        with pytest.raises(exc) as info:
            call(backend, op, _fresh(dtype), *args, **_kw(op))
        got.add(str(info.value).split("\n")[0])
    assert len(got) == 1, got


@pytest.mark.parametrize("op,args,dtype,exc,msg", BAD_PARAMS)
def test_bad_parameters_public_api(op, args, dtype, exc, msg):
    t = _fresh(dtype)
    before = t.clone()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with pytest.raises(exc, match=msg):
        getattr(paramops, op)(t, *args)
    assert torch.equal(bits(t), bits(before))
    assert torch.equal(torch.get_rng_state(), state), "a failed call must not draw a seed"


OPS = {"uniform_": (0.0, 1.0), "normal_": (0.0, 1.0), "trunc_normal_": (0.0, 1.0, -2.0, 2.0), "fill_": (1.0,)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64, torch.uint8])
def test_bad_dtype(backend, op, dtype):
    t = torch.ones(5, dtype=dtype)
    before = t.clone()
    with pytest.raises(TypeError, match=f"paramops.{op}: self must be a float16, bfloat16, float32 or float64 "
                                        f"tensor, got {dtype}"):
        call(backend, op, t, *OPS[op], **_kw(op))
    assert torch.equal(t, before)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(OPS))
def test_sparse(backend, op):
    t = torch.eye(3).to_sparse()
    with pytest.raises(TypeError, match="self must be a dense \\(strided\\) tensor, got layout torch.sparse_coo"):
        call(backend, op, t, *OPS[op], **_kw(op))
    assert torch.equal(t.to_dense(), torch.eye(3))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(OPS))
def test_overlapping_memory(backend, op):
    base = torch.arange(4.0)
    t = base.expand(3, 4)
    with pytest.raises(RuntimeError, match="self has overlapping elements in memory"):
        call(backend, op, t, *OPS[op], **_kw(op))
    assert torch.equal(base, torch.arange(4.0))


@pytest.mark.parametrize("op", list(OPS))
def test_negative_bit_view_gets_the_values(op):
    """A view with the negative bit (torch._neg_view) gets the values a plain tensor gets, as with
    torch's in-place ops: torch's Negative fallback resolves it around the kernel."""
    base = torch.arange(6.0)
    view = torch._neg_view(base)
    getattr(paramops, op)(view, *OPS[op], **_kw(op))
    plain = getattr(paramops, op)(torch.empty(6), *OPS[op], **_kw(op))
    assert torch.equal(view.resolve_neg(), plain) and torch.equal(base, -plain)
    # multi_init_: torch's fallback refuses such a view in a list, before anything is written
    a, b = torch.zeros(6), torch.arange(4.0)
    with pytest.raises(RuntimeError, match="mutable TensorLists with negation inputs"):
        paramops.multi_init_([a, torch._neg_view(b)], ["normal", "fill"], [(0.0, 1.0), (2.0,)], seeds=[3, 0])
    assert torch.equal(a, torch.zeros(6)) and torch.equal(b, torch.arange(4.0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(OPS))
def test_inference_tensor_outside_inference_mode(backend, op):
    """torch's own error, raised before anything is written (the issue: the Python backend wrote first)."""
    with torch.inference_mode():
        t = torch.full((7,), 0.25)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        call(backend, op, t, *OPS[op], **_kw(op))
    assert torch.equal(t, torch.full((7,), 0.25))
    with torch.inference_mode():  # inside inference mode it is written
        call(backend, op, t, *OPS[op], **_kw(op))
    assert not torch.equal(t, torch.full((7,), 0.25))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["uniform_", "normal_", "trunc_normal_"])
def test_bad_offset(backend, op):
    t = _fresh()
    before = t.clone()
    with pytest.raises(ValueError, match="offset must be >= 0, got -1"):
        call(backend, op, t, *OPS[op], seed=1, offset=-1)
    with pytest.raises(ValueError, match="offset \\+ numel overflows int64"):
        call(backend, op, t, *OPS[op], seed=1, offset=(1 << 63) - 5)
    assert torch.equal(bits(t), bits(before))


@pytest.mark.parametrize("backend", BACKENDS)
def test_generator_handle_of_no_generator(backend):
    t = _fresh()
    before = t.clone()
    with pytest.raises(ValueError, match="paramops.normal_: generator 987654321 is not the handle of a live "
                                         "torch.Generator"):
        call(backend, "normal_", t, 0.0, 1.0, generator=987654321)
    assert torch.equal(bits(t), bits(before))


def test_not_a_tensor():
    with pytest.raises(TypeError, match="paramops.normal_: self must be a torch.Tensor, got list"):
        paramops.normal_([1.0, 2.0])


@pytest.mark.parametrize("op", list(OPS))
def test_meta_checks_and_writes_nothing(op):
    t = torch.empty(3, 4, device="meta")
    assert getattr(paramops, op)(t, *OPS[op]) is t
    getattr(torch.ops.paramops, op)(t, *OPS[op], **_kw(op))
    assert t.device.type == "meta"
    bad = {"uniform_": (1.0, 0.0), "normal_": (0.0, -1.0), "trunc_normal_": (0.0, 0.0, -2.0, 2.0), "fill_": (NAN,)}
    with pytest.raises(ValueError, match=f"paramops.{op}: "):
        getattr(paramops, op)(t, *bad[op])


def test_zero_element_and_0_dim():
    e = torch.empty(0, 5)
    assert paramops.normal_(e) is e
    s = torch.tensor(float("nan"))
    paramops.trunc_normal_(s)
    assert -2.0 <= s.item() <= 2.0


# ------------------------------------------------------------------ trunc_normal_'s infinite bounds
def _trunc_cdf(x, mean, std, a, b):
    phi = lambda v: 0.5 * math.erfc(-(v - mean) / (std * math.sqrt(2)))  # noqa: E731
    return (phi(x) - phi(a)) / (phi(b) - phi(a))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a,b", [(-INF, 0.5), (-0.3, INF), (-INF, INF), (1.5, INF), (-INF, -1.0)])
def test_trunc_normal_infinite_bounds(backend, a, b):
    """One bound or both infinite: accepted, finite values inside [a, b], and the exact
    truncated distribution (a Kolmogorov-Smirnov test against the truncated normal's CDF)."""
    n = 40_000 if backend != "python" else 8_000
    t = torch.full((n,), NAN, dtype=torch.float64)
    call(backend, "trunc_normal_", t, 0.2, 1.1, a, b, seed=7)
    assert torch.isfinite(t).all() and (t >= a).all() and (t <= b).all()
    x = t.sort().values.tolist()
    d = max(max(abs(_trunc_cdf(v, 0.2, 1.1, a, b) - i / n), abs(_trunc_cdf(v, 0.2, 1.1, a, b) - (i + 1) / n))
            for i, v in enumerate(x))
    assert d < 1.63 / math.sqrt(n), d  # the KS test's 1% critical value


@pytest.mark.parametrize("backend", BACKENDS)
def test_trunc_normal_infinite_bounds_stay_in_the_dtype(backend):
    """An infinite bound is the dtype's largest value: no float16 value is ever inf, and the
    infinite bounds give the same values as the dtype's extremes."""
    t = torch.full((4096,), NAN, dtype=torch.float16)
    call(backend, "trunc_normal_", t, 0.0, 3e4, -INF, INF, seed=3)
    assert torch.isfinite(t).all()
    u = torch.full((4096,), NAN, dtype=torch.float16)
    call(backend, "trunc_normal_", u, 0.0, 3e4, -65504.0, 65504.0, seed=3)
    assert torch.equal(bits(t), bits(u))
    both = torch.empty(999, dtype=torch.float32)
    plain = torch.empty(999, dtype=torch.float32)
    call(backend, "trunc_normal_", both, 0.0, 1.0, -INF, INF, seed=5)
    call(backend, "normal_", plain, 0.0, 1.0, seed=5)
    assert not torch.equal(both, plain)  # inverse CDF, not Box-Muller: another stream of values
