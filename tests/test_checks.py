"""Bad input: a clear error naming the argument, raised before anything is written."""
import pytest
import torch

import paramops
from conftest import HAS_CPP, bits, call

BACKENDS = ["python"] + (["cpp"] if HAS_CPP else [])
NAN, INF = float("nan"), float("inf")

# (op, args, exception, message pattern)
BAD_PARAMS = [
    ("normal_", (0.0, -1.0), ValueError, "std must be >= 0"),
    ("normal_", (NAN, 1.0), ValueError, "mean must be finite"),
    ("normal_", (0.0, INF), ValueError, "std must be finite"),
    ("normal_", (1e300, 1.0), ValueError, "mean 1e\\+300 overflows torch.float32"),
    ("normal_", (0.0, 1e39), ValueError, "std 1e\\+39 overflows torch.float32"),
    ("trunc_normal_", (0.0, 1e39, -2.0, 2.0), ValueError, "std 1e\\+39 overflows torch.float32"),
    ("uniform_", (1.0, 1.0), ValueError, "a must be less than b"),
    ("uniform_", (2.0, 1.0), ValueError, "a must be less than b"),
    ("uniform_", (-INF, 1.0), ValueError, "a must be finite"),
    ("uniform_", (0.0, NAN), ValueError, "b must be finite"),
    ("uniform_", (-3e38, 3e38), ValueError, "b - a overflows"),
    ("trunc_normal_", (0.0, 1.0, 2.0, -2.0), ValueError, "a must be less than b"),
    ("trunc_normal_", (0.0, 0.0, -2.0, 2.0), ValueError, "std must be > 0"),
    ("trunc_normal_", (0.0, -1.0, -2.0, 2.0), ValueError, "std must be > 0"),
    ("trunc_normal_", (0.0, 1.0, NAN, 2.0), ValueError, "a must be finite"),
    ("trunc_normal_", (0.0, 1.0, -2.0, INF), ValueError, "b must be finite"),
    ("trunc_normal_", (INF, 1.0, -2.0, 2.0), ValueError, "mean must be finite"),
    ("trunc_normal_", (0.0, 1.0, 40.0, 41.0), ValueError, "too far in the tail"),
    ("trunc_normal_", (0.0, 1.0, 1.00000108, 1.0000011), ValueError, "no torch.float32 value lies in"),
    ("fill_", (NAN,), ValueError, "value must be finite"),
    ("fill_", (1e39,), ValueError, "value 1e\\+39 overflows"),
]


def _fresh(dtype=torch.float32):
    return torch.arange(12, dtype=dtype).reshape(3, 4) + 0.25


def _kw(op):
    return {} if op == "fill_" else {"seed": 1}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,args,exc,msg", BAD_PARAMS)
def test_bad_parameters(backend, op, args, exc, msg):
    t = _fresh()
    before = t.clone()
    with pytest.raises(exc, match=msg) as info:
        call(backend, op, t, *args, **_kw(op))
    assert f"paramops.{op}" in str(info.value)
    assert torch.equal(bits(t), bits(before))


@pytest.mark.parametrize("op,args,exc,msg", BAD_PARAMS)
def test_bad_parameters_public_api(op, args, exc, msg):
    t = _fresh()
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
    with pytest.raises(TypeError, match="self must be a float16, bfloat16, float32 or float64 tensor"):
        call(backend, op, t, *OPS[op], **_kw(op))
    assert torch.equal(t, before)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(OPS))
def test_sparse(backend, op):
    t = torch.eye(3).to_sparse()
    with pytest.raises(TypeError, match="self must be a dense \\(strided\\) tensor"):
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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["uniform_", "normal_", "trunc_normal_"])
def test_bad_offset(backend, op):
    t = _fresh()
    before = t.clone()
    with pytest.raises(ValueError, match="offset must be >= 0"):
        call(backend, op, t, *OPS[op], seed=1, offset=-1)
    with pytest.raises(ValueError, match="offset \\+ numel overflows int64"):
        call(backend, op, t, *OPS[op], seed=1, offset=(1 << 63) - 5)
    assert torch.equal(bits(t), bits(before))


def test_not_a_tensor():
    with pytest.raises(TypeError, match="self must be a torch.Tensor"):
        paramops.normal_([1.0, 2.0])


def test_fp16_bounds_beyond_range():
    t = torch.zeros(4, dtype=torch.float16)
    with pytest.raises(ValueError, match="no torch.float16 value lies in"):
        paramops.trunc_normal_(t, 0.0, 1.0, 70000.0, 80000.0)
    with pytest.raises(ValueError, match="value 100000.0 overflows torch.float16"):
        paramops.fill_(t, 1e5)
    assert torch.equal(t, torch.zeros(4, dtype=torch.float16))


@pytest.mark.parametrize("op", list(OPS))
def test_meta_is_a_noop(op):
    t = torch.empty(3, 4, device="meta")
    assert getattr(paramops, op)(t, *OPS[op]) is t
    getattr(torch.ops.paramops, op)(t, *OPS[op], **_kw(op))
    assert t.device.type == "meta"


def test_zero_element_and_0_dim():
    e = torch.empty(0, 5)
    assert paramops.normal_(e) is e
    s = torch.tensor(float("nan"))
    paramops.trunc_normal_(s)
    assert -2.0 <= s.item() <= 2.0


def test_device_without_backend(monkeypatch):
    """A device paramops has no backend for is refused by name (simulated: CPU switched off)."""
    from paramops import _checks
    monkeypatch.setattr(_checks, "DEVICES", ("cuda", "meta"))
    t = _fresh()
    before = t.clone()
    with pytest.raises(RuntimeError, match="no backend for device 'cpu' of self"):
        paramops.normal_(t)
    assert torch.equal(bits(t), bits(before))
