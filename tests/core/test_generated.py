"""The generated files (csrc/paramops/gen_constants.py): constants.h and paramops/spec/constants.py
(the stream's numbers), codes.h and paramops/core/codes.py (every code and table layout) are
exactly what the generator writes, and the C++ and Python copies agree."""
import importlib.util
import os
import re
import struct

import pytest

from paramops.core import codes as C
from paramops.spec import constants as K

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(ROOT, "csrc", "paramops", "gen_constants.py")
HEADER = os.path.join(ROOT, "csrc", "paramops", "constants.h")
CODES_H = os.path.join(ROOT, "csrc", "paramops", "codes.h")


def _generator():
    pytest.importorskip("mpmath")
    spec = importlib.util.spec_from_file_location("gen_constants", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_files_are_what_the_generator_writes():
    outputs = _generator().outputs()
    assert len(outputs) == 4
    for path, text in outputs.items():
        with open(path) as f:
            assert f.read() == text, f"{os.path.relpath(path, ROOT)} differs from the generator's output: rerun it"


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
    for name in dir(K):
        if name.endswith("_F32"):
            vals = getattr(K, name)
            for v in (vals if isinstance(vals, tuple) else (vals,)):
                assert struct.unpack("f", struct.pack("f", v))[0] == v, name


def test_codes_match():
    """Every enumerator of codes.h has the value of its Python name, and no code is spelled
    anywhere else: the C++, CUDA and Triton sources use these names."""
    text = open(CODES_H).read()
    pairs = re.findall(r"\b([A-Z][A-Z0-9_]*) = (\d+)\b", text)
    assert len(pairs) == 4 + 4 + 4 + 15  # kinds, dtypes, plan columns, table columns
    prefix = {"KIND_": "", "DT_": "", "PLAN_": "PLAN_", "TC_": "TABLE_"}
    for name, value in pairs:
        pre = next(p for p in prefix if name.startswith(p))
        assert getattr(C, prefix[pre] + name[len(pre):]) == int(value), name
    for name, value in re.findall(r"constexpr int k(\w+) = (\d+);", text):
        py = re.sub(r"(?<!^)([A-Z])", r"_\1", name).upper()
        assert getattr(C, py) == int(value), name
    assert C.ARITY == tuple(int(x) for x in re.search(r"kArity\[kNumKinds\] = \{([^}]*)\}", text).group(1).split(","))
    assert C.KIND_NAME == tuple(re.findall(r'"(\w+)"', re.search(r"kKindName\[kNumKinds\] = \{([^}]*)\}", text).group(1)))


def test_no_code_spelled_twice():
    """The kind and dtype codes and the table columns are defined only by the generated files:
    no other source declares an enum of them or a literal table of their values."""
    pats = [r"enum\s+\w*\s*\{[^}]*KIND_UNIFORM\s*=", r"enum\s+\w*\s*\{[^}]*DT_F32\s*=", r"\bUNIFORM\s*=\s*0\b", r"UNIFORM\s*,\s*NORMAL\s*,\s*TRUNC\s*,\s*FILL\s*=\s*0",
            r"\bTC_INDEX\s*=", r"\bINDEX\s*,\s*ADDR\s*,\s*NUMEL\b.*=\s*range", r"OUT_CODE\s*=\s*\{[^}]*:\s*0\b"]
    offenders = []
    for base in ("csrc", "paramops"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, base)):
            for fn in files:
                path = os.path.join(dirpath, fn)
                if not fn.endswith((".py", ".h", ".cpp", ".cu", ".cuh")) or path in (CODES_H, C.__file__, GEN):
                    continue
                text = open(path).read()
                offenders += [(os.path.relpath(path, ROOT), p) for p in pats if re.search(p, text)]
    assert not offenders, offenders
