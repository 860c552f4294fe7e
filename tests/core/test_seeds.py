"""Seeding: torch's generator, generator=, explicit seed= and stream=."""
import pytest
import torch

import paramops
from conftest import bits


def test_manual_seed_reproducible():
    torch.manual_seed(0)
    a = paramops.normal_(torch.empty(1000))
    b = paramops.uniform_(torch.empty(1000))
    torch.manual_seed(0)
    assert torch.equal(bits(a), bits(paramops.normal_(torch.empty(1000))))
    assert torch.equal(bits(b), bits(paramops.uniform_(torch.empty(1000))))


def test_successive_calls_differ():
    torch.manual_seed(0)
    a = paramops.normal_(torch.empty(1000))
    b = paramops.normal_(torch.empty(1000))
    assert not torch.equal(a, b)


def test_generator_equals_manual_seed():
    g = torch.Generator().manual_seed(42)
    a = paramops.trunc_normal_(torch.empty(999), generator=g)
    torch.manual_seed(42)
    b = paramops.trunc_normal_(torch.empty(999))
    assert torch.equal(bits(a), bits(b))


def test_generator_leaves_default_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    paramops.normal_(torch.empty(10), generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(4), expected)


def test_explicit_seed_and_stream():
    a = paramops.normal_(torch.empty(500), seed=7)
    b = paramops.normal_(torch.empty(500), seed=7)
    c = paramops.normal_(torch.empty(500), seed=7, stream=1)
    d = paramops.normal_(torch.empty(500), seed=8)
    assert torch.equal(bits(a), bits(b))
    assert not torch.equal(a, c) and not torch.equal(a, d)


def test_seed_is_taken_modulo_2_64():
    a = paramops.uniform_(torch.empty(64), seed=-1)
    b = paramops.uniform_(torch.empty(64), seed=(1 << 64) - 1)
    assert torch.equal(bits(a), bits(b))


def test_same_values_across_dtypes_for_32bit_family():
    """fp16/bf16 are the float32 values rounded to nearest even."""
    f = paramops.normal_(torch.empty(4099), seed=5)
    for dt in (torch.float16, torch.bfloat16):
        h = paramops.normal_(torch.empty(4099, dtype=dt), seed=5)
        assert torch.equal(bits(h), bits(f.to(dt)))


@pytest.mark.parametrize("fn", ["normal_", "uniform_", "trunc_normal_", "fill_"])
def test_init_bumps_the_version_counter(fn):
    """Re-initializing a tensor saved for backward must make backward fail, as with torch."""
    w = torch.ones(5, requires_grad=True)
    x = w * 1.0
    y = (x * x).sum()  # saves x
    v = x._version
    getattr(paramops, fn)(x.detach(), *((0.5,) if fn == "fill_" else ()))
    assert x._version > v
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
