"""Golden values: the first values of each distribution for seed 42, stream 0 (stream v1).

If one of these changes, the stream changed: that needs a new stream version, not a new pin.
"""
import pytest
import torch

from conftest import HAS_CPP, bits, call

GOLDEN = {
    ("uniform_", "float16"): [0x38e7, 0x377f, 0x2cb0, 0x3574, 0x3be7, 0x353c, 0x381c, 0x3745],
    ("uniform_", "bfloat16"): [0x3f1d, 0x3ef0, 0x3d96, 0x3eaf, 0x3f7d, 0x3ea7, 0x3f04, 0x3ee9],
    ("uniform_", "float32"): [0x3f1ceaf0, 0x3eefea92, 0x3d95fa80, 0x3eae8566, 0x3f7cdb21, 0x3ea774d8, 0x3f038f5a, 0x3ee89c0c],
    ("uniform_", "float64"): [0x3fddfd524ee73abc, 0x3fd5d0acf5c4afd4, 0x3fd4ee9b3f7f36c8, 0x3fdd1381bee0e3d6, 0x3fe510ebb97a6d80, 0x3fe8c134ab3349ad, 0x3fe575e1b57758e0, 0x3fd84399fde58794],
    ("normal_", "float16"): [0xbbc3, 0x3235, 0xbcf1, 0x3fb2, 0xacaf, 0x3074, 0xbc6d, 0x353a],
    ("normal_", "bfloat16"): [0xbf78, 0x3e47, 0xbf9e, 0x3ff6, 0xbd96, 0x3e0e, 0xbf8e, 0x3ea7],
    ("normal_", "float32"): [0xbf785e5b, 0x3e46aced, 0xbf9e28ce, 0x3ff64340, 0xbd95e02d, 0x3e0e7a15, 0xbf8da733, 0x3ea7430b],
    ("normal_", "float64"): [0xbfe54ac03c1a032b, 0x3ff0938db380d762, 0xbff6f135c80fefcb, 0x3fdb16fd5e6389c8, 0x3fc147f0a3f6edba, 0xbfecf0bbb759e230, 0xbfe4be7821c7eb85, 0x3fe3b205af57e138],
    ("trunc_normal_", "float16"): [0x3461, 0xacd1, 0xbd4c, 0xb63f, 0x3f46, 0xb6d2, 0x2842, 0xaf02],
    ("trunc_normal_", "bfloat16"): [0x3e8c, 0xbd9a, 0xbfaa, 0xbec8, 0x3fe9, 0xbeda, 0x3d08, 0xbde0],
    ("trunc_normal_", "float32"): [0x3e8c1ad0, 0xbd9a123b, 0xbfa98ce8, 0xbec7e8e4, 0x3fe8cdb1, 0xbeda4887, 0x3d084e01, 0xbde04d0d],
    ("trunc_normal_", "float64"): [0xbfb34246b476b76a, 0xbfd8fd1c8c27338a, 0xbfdb4910b4cf2886, 0xbfbc09a184f80cd2, 0x3fd8da4ff2adcf07, 0x3fe6b804a99b3ce5, 0x3fdae6979a883805, 0xbfd2c64f0962f483],
}

ARGS = {"uniform_": (0.0, 1.0), "normal_": (0.0, 1.0), "trunc_normal_": (0.0, 1.0, -2.0, 2.0)}


@pytest.mark.parametrize("backend", ["python"] + (["cpp"] if HAS_CPP else []))
@pytest.mark.parametrize("op,dtype", list(GOLDEN))
def test_golden(backend, op, dtype):
    t = torch.full((8,), float("nan"), dtype=getattr(torch, dtype))
    call(backend, op, t, *ARGS[op], seed=42, stream=0, offset=0)
    mask = (1 << (8 * t.element_size())) - 1
    assert [v & mask for v in bits(t).tolist()] == GOLDEN[(op, dtype)]


def test_golden_public_api_seeded_by_torch():
    """paramops.normal_ after torch.manual_seed(0) draws its seed from torch's generator."""
    import paramops
    torch.manual_seed(0)
    seed = int(torch.randint(-(1 << 63), (1 << 63) - 1, (), dtype=torch.int64))
    a = torch.empty(8)
    call("python", "normal_", a, 0.0, 1.0, seed=seed)
    torch.manual_seed(0)
    b = paramops.normal_(torch.empty(8))
    assert torch.equal(bits(a), bits(b))
