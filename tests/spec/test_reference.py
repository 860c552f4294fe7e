"""The C++ kernels and the Python reference write identical bits."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import CASES, DTYPES, assert_bitwise, call, poisoned, requires_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [1, 3, 5, 63, 4097, 100_003]
SEED = 0x9E3779B97F4A7C15 - (1 << 64)


@requires_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
@pytest.mark.parametrize("n", SIZES)
def test_cpp_equals_reference(op, dtype, n):
    args = CASES[op]
    a = call("cpp", op, poisoned((n,), dtype), *args, seed=SEED, stream=11, offset=0)
    b = call("python", op, poisoned((n,), dtype), *args, seed=SEED, stream=11, offset=0)
    assert not a.isnan().any()
    assert_bitwise(a, b)


@requires_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
def test_fresh_seeds_and_parameters(op, dtype):
    g = torch.Generator().manual_seed(1234)
    for _ in range(3):
        seed = int(torch.randint(-(1 << 63), (1 << 63) - 1, (), generator=g))
        stream = int(torch.randint(0, 1 << 62, (), generator=g))
        offset = int(torch.randint(0, 1 << 40, (), generator=g))
        n = int(torch.randint(1, 3000, (), generator=g))
        mean = float(torch.randn((), generator=g))
        std = float(torch.rand((), generator=g)) * 3 + 0.01
        lo = mean + float(torch.randn((), generator=g)) * std
        args = {"uniform_": (lo, lo + std), "normal_": (mean, std),
                "trunc_normal_": (mean, std, lo, lo + std)}[op]
        kw = dict(seed=seed, stream=stream, offset=offset)
        assert_bitwise(call("cpp", op, poisoned((n,), dtype), *args, **kw),
                       call("python", op, poisoned((n,), dtype), *args, **kw))


@requires_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("op", list(CASES))
def test_non_contiguous_outputs(op, dtype):
    args = CASES[op]
    base = poisoned((37, 29), dtype)
    views = [base.t(), base[::2, 1::3], base[:, 5], torch.empty(0, dtype=dtype),
             poisoned((), dtype), poisoned((3, 1, 4, 1), dtype).permute(3, 2, 0, 1)]
    for v in views:
        want = call("python", op, poisoned(v.shape, dtype), *args, seed=5, stream=0, offset=9)
        call("cpp", op, v, *args, seed=5, stream=0, offset=9)
        assert_bitwise(v.contiguous(), want)


@requires_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
def test_pieces_equal_whole(op, dtype):
    """A tensor generated in slices (flat offsets) is the tensor generated whole."""
    args = CASES[op]
    n = 10_007
    whole = call("cpp", op, poisoned((n,), dtype), *args, seed=77, stream=3, offset=0)
    cuts = [0, 1, 2, 7, 4096, 4101, 9999, n]
    for lo, hi in zip(cuts, cuts[1:]):
        part = call("cpp", op, poisoned((hi - lo,), dtype), *args, seed=77, stream=3, offset=lo)
        assert_bitwise(part, whole[lo:hi])
    # a 2-d shard (rows 5..12 of a 20 x 501 logical tensor) via the flat offset of its first row
    full = call("cpp", op, poisoned((20, 501), dtype), *args, seed=77, stream=3, offset=0)
    shard = call("cpp", op, poisoned((7, 501), dtype), *args, seed=77, stream=3, offset=5 * 501)
    assert_bitwise(shard, full[5:12])


@requires_cpp
def test_untouched_outside_view():
    base = poisoned((40, 30), torch.float32)
    view = base[3:20:2, 4:25:3]
    call("cpp", "normal_", view, 0.0, 1.0, seed=1)
    mask = torch.zeros_like(base, dtype=torch.bool)
    mask[3:20:2, 4:25:3] = True
    assert not base[mask].isnan().any()
    assert base[~mask].isnan().all()


_SCRIPT = """
import torch, paramops, sys
torch.set_num_threads(int(sys.argv[1]))
out = []
for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
    for op, args in (("uniform_", (-1.0, 3.0)), ("normal_", (0.5, 2.0)), ("trunc_normal_", (0.0, 1.0, -1.0, 2.5))):
        t = torch.full((300_001,), float('nan'), dtype=dt)
        getattr(torch.ops.paramops, op)(t, *args, seed=123, stream=4, offset=3)
        out.append(t.view(torch.int16 if t.element_size() == 2 else torch.int32 if t.element_size() == 4 else torch.int64))
torch.save(out, sys.argv[2])
"""


@requires_cpp
def test_isa_and_thread_count_invariance(tmp_path):
    """Every CPU code path (AVX-512, AVX2, baseline) and thread count writes the same bits."""
    script = tmp_path / "gen.py"
    script.write_text(_SCRIPT)
    results = {}
    for isa in ("avx512", "avx2", "base"):
        for threads in (1, 2):
            env = dict(os.environ, PARAMOPS_CPU_ISA=isa, PARAMOPS_BACKEND="cpp")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
            path = tmp_path / f"{isa}{threads}.pt"
            r = subprocess.run([sys.executable, str(script), str(threads), str(path)], env=env,
                               capture_output=True, text=True, cwd=ROOT)
            if r.returncode != 0 and "not supported" in r.stderr:
                continue  # this CPU lacks the ISA
            assert r.returncode == 0, r.stderr[-2000:]
            results[(isa, threads)] = torch.load(path)
    assert ("base", 1) in results and len(results) >= 4
    ref = results[("base", 1)]
    for key, res in results.items():
        for x, y in zip(res, ref):
            assert torch.equal(x, y), key


@requires_cpp
@pytest.mark.parametrize("op,args", [
    ("normal_", (1e300, 1e305)), ("normal_", (0.0, 3e307)),
    ("uniform_", (-8e307, 8e307)), ("trunc_normal_", (0.0, 1e305, -1e306, 2e306)),
])
def test_float64_huge_parameters(op, args):
    """Ranges and stds above 2^996: the reference's exact fma must not overflow (it did)."""
    a, b = poisoned((4099,), torch.float64), poisoned((4099,), torch.float64)
    call("cpp", op, a, *args, seed=77)
    call("python", op, b, *args, seed=77)
    assert not torch.isnan(b).any()
    assert_bitwise(a, b)
