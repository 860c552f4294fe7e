"""The CUDA kernels, checked without a GPU.

* Host emulation: tests/backends/native/cuda_host.cpp includes csrc/cuda/generate.cuh (the
  kernel bodies, torch-free host+device code) and runs them with g++ over an emulated
  grid; the bits must equal the C++ CPU ops' for every dtype and distribution, odd
  sizes, huge offsets, full-range seeds and streams, strided layouts (including more
  coalesced dims than the kernel parameters hold) and multi_init_'s fused kernel with
  mixed kinds and dtypes, for several grid and block sizes. Buffers are poisoned, so
  an element written that should not be (or not written that should) shows.
* nvcc: csrc/cuda/kernels.cu compiles (PTX and object for sm_90) with setup.py's
  NVCC_FLAGS, and its PTX has only correctly rounded arithmetic (so dropping
  --fmad=false or adding fast math fails here). The ptxas register/spill report is
  printed and recorded.
* g++: csrc/cuda/ops.cpp (the torch binding) compiles against the torch headers, with a
  stub for the one header the CPU wheel lacks.

What needs a GPU (launch, streams, the H2D copy, speed) is not covered here.
Missing g++ or nvcc skips the tests that need them.
"""
import ast
import ctypes
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest
import torch

from conftest import DTYPES, bits, poisoned, requires_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CSRC = os.path.join(ROOT, "csrc")
KERNELS_CU = os.path.join(CSRC, "cuda", "kernels.cu")
GXX = shutil.which("g++")
NVCC = shutil.which("nvcc")

DT = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
DIST = {"uniform_": 0, "normal_": 1, "trunc_normal_": 2}
OPS = list(DIST)
PARAMS = {"uniform_": (-0.5, 2.0), "normal_": (0.3, 1.7), "trunc_normal_": (0.1, 1.3, -2.0, 2.5)}
I64_MAX = (1 << 63) - 1
SEEDS = [0, -(1 << 63), I64_MAX, 0x9E3779B97F4A7C15 - (1 << 64), 1, 0x0123456789ABCDEF]
STREAMS = [0, -1, -(1 << 63), 7, 0x7EDCBA9876543210, 1 << 32]
GRIDS = [(1, 1), (1, 32), (3, 64), (7, 32), (2, 256), (5, 3)]
requires_gxx = pytest.mark.skipif(GXX is None, reason="g++ not found: the CUDA host emulation and binding check need it")
requires_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found: the CUDA compile checks need it")

u64 = ctypes.c_uint64
i64 = ctypes.c_int64
PD = ctypes.POINTER(ctypes.c_double)
PI64 = ctypes.POINTER(ctypes.c_int64)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ not found")
    so = str(tmp_path_factory.mktemp("cuda_host") / "cuda_host.so")
    src = os.path.join(ROOT, "tests", "backends", "native", "cuda_host.cpp")
    r = subprocess.run([GXX, "-O2", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror",
                        "-I", CSRC, src, "-o", so], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib = ctypes.CDLL(so)
    lib.ph_contig.argtypes = [ctypes.c_int, ctypes.c_int, PD, u64, u64, ctypes.c_void_p, i64, i64,
                              ctypes.c_int, ctypes.c_int]
    lib.ph_contig.restype = ctypes.c_int
    lib.ph_strided.argtypes = [ctypes.c_int, ctypes.c_int, PD, u64, u64, ctypes.c_void_p, ctypes.c_int, PI64, PI64,
                               i64, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.ph_strided.restype = ctypes.c_int
    lib.ph_multi.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int), PD,
                             ctypes.POINTER(u64), ctypes.POINTER(u64), PI64, ctypes.POINTER(ctypes.c_void_p), PI64,
                             ctypes.POINTER(u64), ctypes.c_int, ctypes.c_int]
    lib.ph_multi.restype = ctypes.c_int64
    PI = ctypes.POINTER(ctypes.c_int)
    lib.ph_tied.argtypes = [ctypes.c_int, PI64, PI64, PI64, PI, PI, PD, PI, ctypes.POINTER(ctypes.c_void_p),
                            ctypes.c_int, ctypes.c_int]
    lib.ph_tied.restype = None
    return lib


def _params4(op):
    p = list(PARAMS[op]) + [0.0] * (4 - len(PARAMS[op]))
    return (ctypes.c_double * 4)(*p)


def _arr(ctype, values):
    return (ctype * len(values))(*values)


def emulate_contig(host, op, out, offset, seed, stream, grid, block):
    rc = host.ph_contig(DIST[op], DT[out.dtype], _params4(op), seed % (1 << 64), stream % (1 << 64),
                        out.data_ptr(), offset, out.numel(), grid, block)
    assert rc == 0


def cpu_op(op, t, offset, seed, stream):
    getattr(torch.ops.paramops, op)(t, *PARAMS[op], seed=seed, stream=stream, offset=offset)


def same_bits(a, b):
    return torch.equal(bits(a), bits(b))


# ------------------------------------------------------------------ contiguous
@requires_cpp
@requires_gxx
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_contiguous_equals_cpu(host, op, dtype):
    k = 0
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 33, 130):
        for offset in (0, 1, 2, 3, 5, (1 << 32) - 2, (1 << 32) + 3, I64_MAX - n - 1, I64_MAX - n):
            # lead = offset % 4: the calls' starts are aligned (the vector-store fast path, with
            # partial calls at the ends); the other lead misaligns them (element stores)
            for lead in (offset % 4, (offset + 1 + k % 3) % 4):
                seed, stream = SEEDS[k % len(SEEDS)], STREAMS[(k // 2) % len(STREAMS)]
                grid, block = GRIDS[k % len(GRIDS)]
                k += 1
                buf = poisoned((lead + n + 3,), dtype)
                out = buf[lead:lead + n]
                emulate_contig(host, op, out, offset, seed, stream, grid, block)
                ref = poisoned((n,), dtype)
                cpu_op(op, ref, offset, seed, stream)
                assert not ref.isnan().any()
                where = f"n={n} offset={offset} seed={seed} stream={stream} grid={grid}x{block} lead={lead}"
                assert same_bits(out, ref), where
                assert buf[:lead].isnan().all() and buf[lead + n:].isnan().all(), "wrote outside: " + where


@requires_cpp
@requires_gxx
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_contiguous_large_any_grid(host, op, dtype):
    """A longer run; the bits must not depend on the grid."""
    n, offset, seed = 20_011, 6, 0x5DEECE66D
    ref = poisoned((n,), dtype)
    cpu_op(op, ref, offset, seed, 3)
    for grid, block in ((13, 128), (1, 1024), (600, 32)):
        out = poisoned((n,), dtype)
        emulate_contig(host, op, out, offset, seed, 3, grid, block)
        assert same_bits(out, ref), (grid, block)


# ------------------------------------------------------------------ strided
def _layouts():
    """(name, base shape, view of the base)"""
    return [
        ("t", (37, 29), lambda b: b.t()),
        ("steps", (20, 30), lambda b: b[::3, 1::4]),
        ("step1d", (100,), lambda b: b[::3]),
        ("narrow_rows", (5, 70), lambda b: b[:, 3:]),
        ("col_block", (6, 72), lambda b: b[:, 8:]),  # unit-stride rows: vector stores where aligned
        ("col_block_odd", (7, 70), lambda b: b[:, 2:67]),  # calls straddling rows
        ("size1_dims", (4, 1, 6), lambda b: b[:, :, ::2]),
        ("channels_last", (3, 5, 7, 4), lambda b: b.permute(0, 3, 1, 2)),  # an NCHW view of NHWC memory
        ("t_steps", (40, 13), lambda b: b[1::2, ::3].t()),
        ("rank8_reversed", (2, 3, 2, 2, 3, 2, 2, 2), lambda b: b.permute(*range(7, -1, -1))),
        ("rank9_reversed", (2,) * 9, lambda b: b.permute(*range(8, -1, -1))),
        ("rank9_mixed", (2, 3, 2, 2, 2, 3, 2, 2, 2), lambda b: b.permute(8, 0, 7, 1, 6, 2, 5, 3, 4)[:, :, 1:]),
        ("rank7_step", (3, 2, 2, 3, 2, 2, 5), lambda b: b.permute(6, 5, 4, 3, 2, 1, 0)[::2]),
        ("contiguous", (3, 11), lambda b: b),
    ]


# (force_ptr, plain, tile rows, tile cols): auto as cuda/ops.cpp; dims in "device memory";
# the plain strided kernel where the tiled one would serve; small and odd tiles (calls
# straddling rows and tiles)
VARIANTS = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (1, 1, 0, 0), (0, 0, 3, 5), (1, 0, 1, 1), (0, 0, 7, 2)]


@requires_cpp
@requires_gxx
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_strided_equals_cpu(host, op, dtype):
    many, tiled, tiled_many = set(), set(), set()
    k = 0
    for name, shape, view in _layouts():
        for force_ptr, plain, tr, tc in VARIANTS:
            for offset in ((0, None), (5, (1 << 40) + 1))[k % 2]:
                seed, stream = SEEDS[k % len(SEEDS)], STREAMS[k % len(STREAMS)]
                grid, block = GRIDS[k % len(GRIDS)]
                k += 1
                base, ref_base = poisoned(shape, dtype), poisoned(shape, dtype)
                v, rv = view(base), view(ref_base)
                off = I64_MAX - v.numel() if offset is None else offset
                r = host.ph_strided(DIST[op], DT[dtype], _params4(op), seed % (1 << 64), stream % (1 << 64),
                                    v.data_ptr(), v.dim(), _arr(ctypes.c_int64, v.shape), _arr(ctypes.c_int64, v.stride()),
                                    off, force_ptr, plain, tr, tc, grid, block)
                assert r >= 0
                m = r % 100
                if r >= 100:
                    tiled.add(name)
                    if m - 2 > 6:
                        tiled_many.add(name)
                elif m > 6:
                    many.add(name)
                cpu_op(op, rv, off, seed, stream)
                assert not rv.isnan().any()
                # the whole base: the view's elements equal, the others still poisoned in both
                where = f"{name} offset={off} variant={(force_ptr, plain, tr, tc)} grid={grid}x{block}"
                assert same_bits(base, ref_base), where
    # the paths were all taken: plain strided with > 6 dims, tiled (and with > 6 outer dims)
    assert many >= {"rank8_reversed", "rank7_step"}, many
    assert tiled >= {"t", "channels_last", "t_steps", "rank8_reversed"}, tiled
    assert tiled_many == {"rank9_reversed"}, tiled_many
    assert not tiled & {"steps", "step1d", "narrow_rows", "col_block", "col_block_odd", "size1_dims", "contiguous"}, tiled


@requires_gxx
def test_tile_shape(host):
    host.ph_tile_shape.argtypes = [ctypes.c_int, PI64, PI64, ctypes.POINTER(ctypes.c_int32)]

    def shape(t):
        out = (ctypes.c_int32 * 2)()
        host.ph_tile_shape(t.dim(), _arr(ctypes.c_int64, t.shape), _arr(ctypes.c_int64, t.stride()), out)
        return out[0], out[1]

    assert shape(torch.empty(4096, 4096).t()) == (32, 32)
    # channels_last 3x3 conv weight: rows = input channels, columns = kh * kw = 9
    w = torch.empty(64, 3, 3, 128).permute(0, 3, 1, 2)
    assert shape(w) == (113, 9)
    assert shape(torch.empty(1000, 3).t()) == (3, 341)  # few rows: wide tiles


@requires_gxx
def test_coalesced_dims(host):
    host.ph_coalesce.argtypes = [ctypes.c_int, PI64, PI64, PI64, PI64]
    host.ph_coalesce.restype = ctypes.c_int

    def co(t):
        s, st = (ctypes.c_int64 * 16)(), (ctypes.c_int64 * 16)()
        m = host.ph_coalesce(t.dim(), _arr(ctypes.c_int64, t.shape), _arr(ctypes.c_int64, t.stride()), s, st)
        return [(s[k], st[k]) for k in range(m)]  # innermost first

    x = torch.empty(4, 5, 6)
    assert co(x) == [(120, 1)]
    assert co(x[:, 1:]) == [(24, 1), (4, 30)]
    assert co(x.t() if x.dim() == 2 else x.permute(2, 1, 0)) == [(4, 30), (5, 6), (6, 1)]
    assert co(torch.empty(3, 1, 1, 2)[:, :, :, ::2]) == [(3, 2)]
    assert co(torch.empty(1, 1)) == []


# ------------------------------------------------------------------ multi_init_
def _fill_bits(value, dtype):
    itype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[torch.empty((), dtype=dtype).element_size()]
    b = int(torch.tensor([value], dtype=dtype).view(itype)[0])
    return b % (1 << (8 * torch.empty((), dtype=dtype).element_size()))


def _multi_entries(seed):
    """Views carved from one poisoned buffer per dtype at odd element offsets, with gaps;
    kinds, dtypes, offsets and parameters mixed."""
    g = torch.Generator().manual_seed(seed)
    sizes = [1, 2, 3, 4, 5, 7, 8, 64, 65, 129, 1000, 3, 1, 17]
    kinds_params = [(0, (-0.5, 2.0, 0, 0)), (1, (0.3, 1.7, 0, 0)), (2, (0.1, 1.3, -2.0, 2.5)), (3, (0.7, 0, 0, 0)),
                    (1, (0.0, 0.02, 0, 0)), (3, (-3.25, 0, 0, 0)), (2, (0.0, 1.0, -1.0, 3.0)), (0, (2.0, 2.5, 0, 0))]
    entries = []
    for i in range(40):
        dtype = DTYPES[(i * 3 + seed) % 4]
        n = sizes[(i * 5 + seed) % len(sizes)]
        kind, p = kinds_params[(i + seed) % len(kinds_params)]
        offset = [0, 1, 3, (1 << 33) + 7, I64_MAX - n, 6][i % 6]
        s = int(torch.randint(-(1 << 63), I64_MAX, (), generator=g))
        st = int(torch.randint(-(1 << 63), I64_MAX, (), generator=g))
        gap = int(torch.randint(0, 4, (), generator=g))
        entries.append(dict(dtype=dtype, n=n, kind=kind, p=p, offset=offset, seed=s, stream=st, gap=gap))
    return entries


def _carve(entries):
    total = {d: sum(e["n"] + e["gap"] for e in entries if e["dtype"] == d) + 1 for d in DTYPES}
    bases = {d: poisoned((total[d],), d) for d in DTYPES}
    pos = {d: 1 for d in DTYPES}  # element 1: misaligned start
    views = []
    for e in entries:
        d = e["dtype"]
        p = pos[d] + e["gap"]
        views.append(bases[d][p:p + e["n"]])
        pos[d] = p + e["n"]
    return bases, views


@requires_cpp
@requires_gxx
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_equals_cpu(host, seed):
    entries = _multi_entries(seed)
    k = len(entries)
    # reference: the CPU multi_init_ (bitwise equal to the single ops, tests/test_multi.py)
    ref_bases, ref_views = _carve(entries)
    plan = torch.tensor([[e["kind"], e["seed"], e["stream"], e["offset"]] for e in entries], dtype=torch.int64)
    params = torch.tensor([list(e["p"]) for e in entries], dtype=torch.float64)
    torch.ops.paramops.multi_init_(ref_views, plan, params)
    for v in ref_views:
        assert not v.isnan().any()
    for grid, block in ((1, 1), (1, 32), (3, 64), (4, 7), (64, 256)):
        bases, views = _carve(entries)
        total = host.ph_multi(
            k, _arr(ctypes.c_int, [e["kind"] for e in entries]), _arr(ctypes.c_int, [DT[e["dtype"]] for e in entries]),
            _arr(ctypes.c_double, [x for e in entries for x in e["p"]]),
            _arr(u64, [e["seed"] % (1 << 64) for e in entries]), _arr(u64, [e["stream"] % (1 << 64) for e in entries]),
            _arr(ctypes.c_int64, [e["offset"] for e in entries]), _arr(ctypes.c_void_p, [v.data_ptr() for v in views]),
            _arr(ctypes.c_int64, [e["n"] for e in entries]),
            _arr(u64, [_fill_bits(e["p"][0], e["dtype"]) if e["kind"] == 3 else 0 for e in entries]), grid, block)
        assert total > k
        for d in DTYPES:  # every entry's bits, and the gaps still poisoned
            assert same_bits(bases[d], ref_bases[d]), (str(d), grid, block)


# ------------------------------------------------------------------ nvcc: PTX exactness
def _nvcc_flags():
    """NVCC_FLAGS as setup.py defines them (the flags the extension is built with)."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "NVCC_FLAGS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no NVCC_FLAGS")


def _nvcc(flags, out, *extra):
    cmd = [NVCC, "-std=c++17", "-arch=sm_90", *flags, "-I", CSRC, *extra, KERNELS_CU, "-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, " ".join(cmd) + "\n" + r.stderr
    return r


# Instructions that would make the bits differ from the CPU's: approximate division,
# square root, reciprocal, transcendental units, flush-to-zero, and arithmetic without
# an explicit rounding mode (which ptxas may contract into an fma; with --fmad=false
# nvcc writes .rn on every add/sub/mul).
_BAD = re.compile(r"\b(div\.approx|div\.full|sqrt\.approx|rcp\.approx|rsqrt\.approx|ex2\.approx|lg2\.approx|"
                  r"sin\.approx|cos\.approx|tanh\.approx)\S*|\.ftz\b|\b(add|sub|mul|mad)(\.sat)?\.f(16|32|64)\b")


def ptx_problems(ptx):
    return [line.strip() for line in ptx.splitlines() if _BAD.search(line)]


@requires_nvcc
def test_ptx_is_exact(tmp_path):
    flags = _nvcc_flags()
    bare = {f.lstrip("-") for f in flags}
    for f in ("fmad=false", "prec-div=true", "prec-sqrt=true", "ftz=false"):
        assert f in bare, f"setup.py NVCC_FLAGS lacks --{f}"
    assert not any("fast_math" in f or "fast-math" in f for f in flags)
    out = str(tmp_path / "kernels.ptx")
    _nvcc(flags, out, "-ptx")
    ptx = open(out).read()
    bad = ptx_problems(ptx)
    assert not bad, f"{len(bad)} inexact instructions, e.g. {bad[:5]}"
    # the value paths are there, with correctly rounded operations
    for ins in ("fma.rn.f32", "fma.rn.f64", "mul.rn.f32", "mul.rn.f64", "div.rn.f32", "div.rn.f64",
                "sqrt.rn.f32", "sqrt.rn.f64", "add.rn.f32", "sub.rn.f32"):
        assert ins in ptx, ins
    entries = re.findall(r"\.entry\s+(\S+)\(", ptx)
    # 12 (dist, dtype) x contiguous, strided and tiled (each with Dims and DimsPtr), the multi
    # kernel and the tied_grad_ kernel
    assert len(entries) == 62, entries


@requires_nvcc
@pytest.mark.parametrize("bad_flags", [["--fmad=true"], ["--use_fast_math"]])
def test_ptx_check_catches_inexact_builds(tmp_path, bad_flags):
    """The PTX check is not vacuous: without --fmad=false, or with fast math, it fails."""
    flags = [f for f in _nvcc_flags() if not f.startswith("--fmad")] + bad_flags
    out = str(tmp_path / "kernels.ptx")
    _nvcc(flags, out, "-ptx")
    assert ptx_problems(open(out).read())


@pytest.fixture(scope="module")
def kernels_object(tmp_path_factory):
    """csrc/cuda/kernels.cu compiled to an sm_90 object with setup.py's flags, and ptxas' report."""
    if NVCC is None:
        pytest.skip("nvcc not found")
    out = str(tmp_path_factory.mktemp("nvcc") / "kernels.o")
    r = _nvcc(_nvcc_flags(), out, "-c", "-Xptxas", "-v")
    assert os.path.getsize(out) > 0
    return out, r.stderr


@requires_nvcc
def test_nvcc_object_and_ptxas_report(kernels_object, tmp_path, record_property):
    """Compiles to an sm_90 object; prints ptxas' registers and spills per kernel (information)."""
    report = kernels_object[1]
    funcs = re.findall(r"Compiling entry function '(\S+)'", report)
    assert len(funcs) == 62, report[:2000]
    regs = [int(x) for x in re.findall(r"Used (\d+) registers", report)]
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    spilled = sum(1 for s, l in spills if int(s) or int(l))
    stack = [int(x) for x in re.findall(r"(\d+) bytes stack frame", report)]
    summary = (f"ptxas sm_90: {len(funcs)} kernels, registers {min(regs)}..{max(regs)}, "
               f"{spilled} with spills, stack frames up to {max(stack, default=0)} bytes")
    record_property("ptxas", summary)
    with open(os.path.join(str(tmp_path), "ptxas.txt"), "w") as f:
        f.write(report)
    print(summary)
    for name, line in zip(funcs, re.findall(r"Used \d+ registers[^\n]*", report)):
        print(f"  {name[:60]}: {line}")


# ------------------------------------------------------------------ g++: the torch binding
def _cuda_include():
    cands = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    if NVCC:
        cands.append(os.path.dirname(os.path.dirname(os.path.realpath(NVCC))))
    for c in cands:
        if c and os.path.exists(os.path.join(c, "include", "cuda_runtime_api.h")):
            return os.path.join(c, "include")
    return None


@requires_gxx
def test_binding_compiles(tmp_path, request):
    """cuda/ops.cpp (and cpu/register.cpp's CUDA branch) compile against the torch
    headers with -DPARAMOPS_CUDA. The CPU wheel lacks c10/cuda/impl/cuda_cmake_macros.h;
    a stub of it comes first on the include path."""
    cuda_inc = _cuda_include()
    if cuda_inc is None:
        pytest.skip("no CUDA headers (cuda_runtime_api.h) found")
    from torch.utils.cpp_extension import include_paths
    stub = tmp_path / "stub" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    # -Werror applies to paramops' files: the torch, CUDA and Python headers come as system
    # headers (-isystem, searched after the -I dirs, so the stub still comes first)
    inc = ["-I" + str(tmp_path / "stub"), "-I" + CSRC]
    for p in [*include_paths(), cuda_inc, sysconfig.get_paths()["include"]]:
        inc += ["-isystem", p]
    procs = []
    obj = str(tmp_path / "cuda_ops.o")
    for src, mode in (("cuda/ops.cpp", ["-O0", "-c", "-o", obj]), ("cpu/register.cpp", ["-fsyntax-only"])):
        cmd = [GXX, "-std=c++20", *mode, "-fPIC", "-Wall", "-Werror", "-DPARAMOPS_CUDA", "-DTORCH_EXTENSION_NAME=_C",
               *inc, os.path.join(CSRC, src)]
        procs.append((src, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for src, p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, f"{src}:\n{err[:4000]}"
    if NVCC is not None and shutil.which("nm"):
        # what the binding calls in cuda/launch.h is what kernels.cu defines (same signatures)
        kobj = request.getfixturevalue("kernels_object")[0]

        def syms(path, kind):
            out = subprocess.run(["nm", "-C", path], capture_output=True, text=True, check=True).stdout
            tag = f" {kind} paramops::cuda::"
            return {ln[ln.index(tag) + 3:] for ln in out.splitlines() if tag in ln and "(" in ln}

        needed, defined = syms(obj, "U"), syms(kobj, "T")
        assert any("launch_multi" in x for x in needed), needed
        assert needed <= defined, needed - defined


@requires_cpp
def test_registration_api():
    """cuda_built() tells whether the .so has the CUDA writer; registering it raises in a build
    without it. The CUDA keys always have the ops' C++ kernels (csrc/cpu/register.cpp), whichever
    writer serves them (paramops/registration.py): the CUDA kernels, Triton or the reference."""
    from paramops import registration
    from paramops.core import ext

    ops = list(registration.SCHEMAS)

    def from_register(op, key):
        dump = torch._C._dispatch_dump(f"paramops::{op}")
        line = [ln for ln in dump.splitlines() if ln.startswith(key + ":")]
        return bool(line) and os.path.join("cpu", "register.cpp") in line[0]

    built = ext.C.cuda_built()
    assert isinstance(built, bool) and built == registration.cuda_built()
    for key in ("CUDA", "SparseCUDA", "SparseCsrCUDA"):
        assert all(from_register(op, key) for op in ops), key
    if not built:
        with pytest.raises(ValueError, match="no CUDA kernels"):
            ext.C.register("cuda", None)
        assert registration.backend("cuda") in ("triton", "python")
        return
    assert registration.backend("cuda") in ("cuda", "triton", "python")


# ------------------------------------------------------------------ tied_grad_
@requires_cpp
@requires_gxx
@pytest.mark.parametrize("grid,block", [(1, 1), (3, 32), (7, 128)])
def test_tied_body_equals_cpu(host, grid, block):
    """cuda/tied.cuh's body over an emulated grid: every dtype pair, K from 1 to 16,
    copies, add and overwrite, misaligned starts; bitwise against the CPU op."""
    from paramops.spec import tied as T
    g = torch.Generator().manual_seed(grid * 1000 + block)
    groups, k = [], 0
    for sdt in DTYPES:
        for ddt in DTYPES:
            n, K, nd = 1 + (37 * k) % 301, 1 + k % 16, 1 + k % 2
            srcs = [(torch.randn(n + 1, generator=g, dtype=torch.float64) * 8).to(sdt)[1:] for _ in range(K)]
            dests = [torch.full((n,), float("nan"), dtype=ddt) for _ in range(nd)]
            add = k % 3 == 0
            if add:
                for d in dests:
                    d.copy_(torch.randn(n, generator=g))
            groups.append((srcs, dests, 0.37 if k % 4 else 1.0, add))
            k += 1
    want = [T.tied_sum(s, d[0], sc, a) for s, d, sc, a in groups]
    addrs = [t.data_ptr() for s, d, _, _ in groups for t in s + d]
    host.ph_tied(len(groups), _arr(ctypes.c_int64, [s[0].numel() for s, *_ in groups]),
                 _arr(ctypes.c_int64, [len(s) for s, *_ in groups]), _arr(ctypes.c_int64, [len(d) for _, d, *_ in groups]),
                 _arr(ctypes.c_int, [DT[s[0].dtype] for s, *_ in groups]),
                 _arr(ctypes.c_int, [DT[d[0].dtype] for _, d, *_ in groups]),
                 _arr(ctypes.c_double, [sc for *_, sc, _ in groups]), _arr(ctypes.c_int, [int(a) for *_, a in groups]),
                 _arr(ctypes.c_void_p, addrs), grid, block)
    for (s, d, sc, a), w in zip(groups, want):
        for t in d:
            assert same_bits(t, w), (s[0].dtype, d[0].dtype, len(s), sc, a)
