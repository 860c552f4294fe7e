"""constants.h (the source of truth) and paramops/_constants.py hold the same numbers."""
import os
import re

from paramops import _constants as K

HEADER = os.path.join(os.path.dirname(__file__), "..", "csrc", "paramops", "constants.h")


def _header():
    text = open(HEADER).read()
    scalars = {m[0]: float.fromhex(m[1]) for m in re.findall(r"constexpr \w+ (\w+) = (-?0x[0-9a-f.]+p[-+]\d+)f?;", text)}
    polys = {}
    for name, body in re.findall(r"PARAMOPS_HD \w+ (\w+)\(\w+ x\) \{(.*?)\n\}", text, re.S):
        lits = re.findall(r"(-?0x[0-9a-f.]+p[-+]\d+)f?", body)
        polys[name] = tuple(float.fromhex(x) for x in reversed(lits))  # lowest degree first
    return scalars, polys


def test_scalars_match():
    scalars, _ = _header()
    assert len(scalars) >= 10
    for name, v in scalars.items():
        assert getattr(K, name) == v, name


def test_polynomials_match():
    _, polys = _header()
    assert {"LOG_P_F32", "SIN_F64", "PPND_A_F32", "CODY_N2", "EXP_P"} <= set(polys)
    for name, coefs in polys.items():
        assert getattr(K, name) == coefs, name


def test_float32_tables_are_float32():
    import struct
    for name in dir(K):
        if name.endswith("_F32"):
            vals = getattr(K, name)
            for v in (vals if isinstance(vals, tuple) else (vals,)):
                assert struct.unpack("f", struct.pack("f", v))[0] == v, name
