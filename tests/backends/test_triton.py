"""The Triton writer (paramops/backends/triton.py, paramops/backends/kernels/) writes the bits of
the C++ CPU kernels, behind the ops' C++ kernels (their checks, seeds and version bumps) and
behind their Python port (the configuration without the extension).

With a GPU the Triton ops write CUDA tensors; without one they write CPU tensors under
TRITON_INTERPRET=1 (conftest sets it before paramops.backends.kernels is imported), so sizes stay
small. Every output is poisoned (NaN) before the write; every comparison is bitwise against
torch.ops.paramops.* on the CPU (the C++ kernels). Seeds, streams and offsets are fresh per
case, drawn from one fixed master seed.

The interpreter of triton 3.9 (this repository's .venv) rounds tl.fma once; triton 3.6's
interpreter computes x * y + z with two roundings, so these tests need 3.9 when run without
a GPU (on a GPU fma is the hardware's fma.rn).
"""
import os
import random
import subprocess
import sys

import pytest
import torch

from conftest import CASES, DTYPES, PYTHON_KERNELS, assert_bitwise, bits, call, poisoned, requires_cpp, served_by

from paramops import registration
from paramops.backends import python as PK
from paramops.backends import triton as TW
from paramops.core import codes as M
from paramops.core import ext
from paramops.spec import reference as R

pytestmark = requires_cpp

DEV = "cuda" if torch.cuda.is_available() else "cpu"  # where the Triton kernels write
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASTER_SEED = 0x7A17
MASTER = random.Random(MASTER_SEED)  # re-seeded per test (below), so a test's draws do not
#                                      depend on which other tests run
U64 = 1 << 64
DIST = {"uniform_": "uniform", "normal_": "normal", "trunc_normal_": "trunc_normal"}
KIND = {"uniform_": M.UNIFORM, "normal_": M.NORMAL, "trunc_normal_": M.TRUNC}


@pytest.fixture(autouse=True)
def _master_seed(request):
    MASTER.seed(f"{MASTER_SEED}:{request.node.nodeid}")


def fresh_seed():
    """A seed or stream over the whole uint64 range, as the op takes it (int64: values >= 2^63
    are negative); a quarter are the edge values."""
    v = MASTER.choice([0, 1, (1 << 63) - 1, U64 - 1, 1 << 63, MASTER.getrandbits(64),
                       MASTER.getrandbits(64), MASTER.getrandbits(64)])
    return v - U64 if v >= 1 << 63 else v


def out(shape, dtype):
    """A poisoned output on the Triton device."""
    return poisoned(shape, dtype, device=DEV)


def triton_op(op, t, *args, block=None, host="cpp", **kw):
    """The op with the Triton writer behind the C++ kernel (host "cpp") or behind its Python port
    (host "python"), or straight through the kernel wrapper with an explicit block size."""
    if block is not None:
        from paramops.backends.kernels import random as RK
        RK.generate_(t, DIST[op], args, kw["seed"], kw.get("stream", 0), kw.get("offset", 0), block=block)
    elif host == "python":
        PK.make(TW.Writer())[op](t, *args, **kw)
    else:
        with served_by(t.device.type, "triton"):
            getattr(torch.ops.paramops, op)(t, *args, **kw)
    return t


def triton_multi(host, tensors, plan, params):
    if host == "python":
        PK.make(TW.Writer())["multi_init_"](tensors, plan, params)
    else:
        with served_by(tensors[0].device.type if tensors else DEV, "triton"):
            torch.ops.paramops.multi_init_(tensors, plan, params)


def expected(op, shape, dtype, *args, **kw):
    return call("cpp", op, poisoned(shape, dtype), *args, **kw)


# ---------------------------------------------------------------- single ops, contiguous
# (numel, offset): odd sizes; offsets 0, 1, 3, odd, 2^33 + 5 and the largest allowed
# (offset + numel = 2^63 - 1), so that the 64-bit call index and its high word are used.
SHAPES_OFFSETS = [(1, 0), (3, 1), (5, 3), (4099, 2 ** 33 + 5), (7, None), (6, (1 << 63) - 1 - 6),
                  (9, (1 << 63) - 1 - 9 - 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
def test_equals_cpp(op, dtype):
    for n, offset in SHAPES_OFFSETS:
        offset = MASTER.randrange(1, 1 << 40, 2) if offset is None else offset
        kw = dict(seed=fresh_seed(), stream=fresh_seed(), offset=offset)
        got = triton_op(op, out((n,), dtype), *CASES[op], **kw).cpu()
        assert not got.isnan().any()
        assert_bitwise(got, expected(op, (n,), dtype, *CASES[op], **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
def test_fresh_parameters(op, dtype):
    """Random parameters (tiny and large scales, both signs), sizes and offsets."""
    for _ in range(2):
        wide = dtype in (torch.float32, torch.float64)  # scales that 16-bit dtypes cannot resolve
        mean = MASTER.choice([0.0, -0.0, MASTER.gauss(0, 1), MASTER.gauss(0, 1e4 if wide else 3.0)])
        std = MASTER.choice([1e-3 if wide else 0.05, 0.02 * abs(mean) + 0.1, MASTER.uniform(0.01, 3.0), 250.0])
        lo = mean + MASTER.uniform(-2.5, 0.5) * std
        args = {"uniform_": (lo, lo + std), "normal_": (mean, std),
                "trunc_normal_": (mean, std, lo, lo + MASTER.uniform(0.5, 3.0) * std)}[op]
        n = MASTER.randrange(1, 700)
        kw = dict(seed=fresh_seed(), stream=fresh_seed(), offset=MASTER.randrange(0, 1 << 62))
        assert_bitwise(triton_op(op, out((n,), dtype), *args, **kw).cpu(), expected(op, (n,), dtype, *args, **kw))


def test_special_values():
    """std = 0, -0.0 mean (the sign of zero survives the negation in sin/cos), fp16 results
    in the subnormal range and rounding to the largest finite value, bf16 ties."""
    cases = [("normal_", torch.float32, (-0.0, 0.0)), ("normal_", torch.float16, (0.0, 1e-6)),
             ("normal_", torch.float16, (-0.0, 2e-8)), ("uniform_", torch.float16, (0.0, 65504.0)),
             ("uniform_", torch.bfloat16, (-1e-38, 1e-38)), ("normal_", torch.float64, (-0.0, 1e-300)),
             ("trunc_normal_", torch.float16, (0.0, 1e-5, -1e-5, 2e-5)),
             ("trunc_normal_", torch.float32, (3.0, 1.0, 4.0, 4.5)),
             ("trunc_normal_", torch.float64, (0.0, 1.0, -40.0, -6.0)),
             ("uniform_", torch.float32, (-1e-30, 3e30)), ("uniform_", torch.float32, (-16777217.0, 1.0000001)),
             ("uniform_", torch.float64, (-1e300, 1e300))]
    for op, dtype, args in cases:
        kw = dict(seed=fresh_seed(), stream=fresh_seed(), offset=MASTER.randrange(0, 1 << 50))
        assert_bitwise(triton_op(op, out((1001,), dtype), *args, **kw).cpu(),
                       expected(op, (1001,), dtype, *args, **kw))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
@pytest.mark.parametrize("op", ["normal_", "trunc_normal_"])
def test_block_size_does_not_change_values(op, dtype):
    n = 150
    kw = dict(seed=fresh_seed(), stream=fresh_seed(), offset=MASTER.randrange(1, 1 << 34, 2))
    want = expected(op, (n,), dtype, *CASES[op], **kw)
    for block in (8, 64, 2048):
        assert_bitwise(triton_op(op, out((n,), dtype), *CASES[op], block=block, **kw).cpu(), want)
    with pytest.raises(ValueError, match="power of two"):
        triton_op(op, out((n,), dtype), *CASES[op], block=96, **kw)


# ---------------------------------------------------------------- strided outputs
def storage_bits(t):
    """The bits of t's whole storage, in memory order."""
    n = t.untyped_storage().nbytes() // t.element_size()
    return bits(torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage(), 0, (n,), (1,))).cpu()


def _views(dtype):
    base = out((37, 29), dtype)
    nc = out((2, 3, 5, 7), dtype).to(memory_format=torch.channels_last)
    deep = out((2,) * 8, dtype).permute(*range(7, -1, -1))  # 8 dims, none mergeable
    return [
        (base, base.t()), (base, base[::2, 1::3]), (base, base[:, 5]), (base, base[3, 2::4]),
        (nc, nc), (deep, deep), (deep, deep[:, 1]),
        (None, out((), dtype)), (None, torch.empty(0, 3, dtype=dtype, device=DEV)),
        (None, out((3, 1, 4, 1), dtype).permute(3, 2, 0, 1)),
        (None, out((4, 6, 5), dtype).transpose(0, 2)[1:, ::2]),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_views_written_in_place(dtype):
    for k, (base, v) in enumerate(_views(dtype)):
        op = list(CASES)[k % 3]
        kw = dict(seed=fresh_seed(), stream=fresh_seed(), offset=MASTER.randrange(0, 1 << 33))
        want = expected(op, v.shape, dtype, *CASES[op], **kw)
        before = None if base is None else storage_bits(base)
        ptr = v.data_ptr()
        triton_op(op, v, *CASES[op], **kw)
        assert v.data_ptr() == ptr
        assert_bitwise(v.cpu().contiguous(), want)
        if base is not None:  # nothing outside the view was touched
            inside = torch.zeros(before.numel(), dtype=torch.bool)
            inside.as_strided(v.shape, v.stride(), v.storage_offset()).fill_(True)
            assert inside.sum() == v.numel()
            assert torch.equal(storage_bits(base)[~inside], before[~inside])


# ---------------------------------------------------------------- fill_
@pytest.mark.parametrize("dtype", DTYPES)
def test_fill(dtype):
    for value in (0.0, -0.0, 1.0 / 3.0, 1 + 2 ** -11 + 2 ** -40, -6.0e-8, 1e-300 if dtype == torch.float64 else 3e-5):
        for v in (out((5, 3), dtype), out((5, 3), dtype).t(), out((), dtype)):
            want = call("cpp", "fill_", poisoned(v.shape, dtype), value)
            triton_op("fill_", v, value)
            assert_bitwise(v.cpu().contiguous(), want)


# ---------------------------------------------------------------- multi_init_
@pytest.fixture(params=["cpp", "python"])
def host(request):
    """multi_init_'s host work (checks, seeds, bumps, the table) by the C++ kernel or by its
    Python port: the two must not differ in bits, messages or versions."""
    return request.param


def _plan(rows):
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 4)


def _params(prms):
    return torch.tensor([tuple(p) + (0.0,) * (4 - len(p)) for p in prms], dtype=torch.float64).reshape(-1, 4)


def _multi_case():
    entries = []  # (tensor, kind, params)
    shapes = [(37,), (5, 7), (13,), (6, 8), (3,), (20,), (1029,), (), (0,), (4, 5), (2, 3, 4, 5), (11,)]
    for i, shape in enumerate(shapes):
        dtype = DTYPES[i % 4]
        kind = [M.NORMAL, M.UNIFORM, M.TRUNC, M.FILL][(i * 3) % 4]
        t = out(shape, dtype)
        if i == 3:
            t = t.t()  # not one strided run: single-tensor kernel
        elif i == 5:
            t = out((60,), dtype)[::3]  # one run, stride 3
        elif i == 10:
            t = t.to(memory_format=torch.channels_last)
        elif i == 11:
            t = out((11, 2), dtype)[:, 1]
        prm = {M.UNIFORM: (-1.0, 3.0), M.NORMAL: (0.1, 2.0), M.TRUNC: (0.0, 1.0, -1.5, 2.0),
               M.FILL: (MASTER.choice([1 + 2 ** -11 + 2 ** -40, 0.1, -0.0, 5e-8]),)}[kind]
        entries.append((t, kind, prm))
    rows = [(k, fresh_seed(), fresh_seed(), MASTER.choice([0, 1, 3, 2 ** 40 + 1, (1 << 62) + 7]))
            for _, k, _ in entries]
    return [t for t, _, _ in entries], _plan(rows), _params([p for _, _, p in entries])


def _single(t, kind, seed, stream, offset, prm):
    o = poisoned(t.shape, t.dtype)
    if kind == M.FILL:
        return call("cpp", "fill_", o, prm[0])
    op = {M.UNIFORM: "uniform_", M.NORMAL: "normal_", M.TRUNC: "trunc_normal_"}[kind]
    return call("cpp", op, o, *prm[:M.ARITY[kind]], seed=seed, stream=stream, offset=offset)


def test_multi_equals_single_ops_and_cpp_multi(host):
    tensors, plan, params = _multi_case()
    ref = [poisoned(t.shape, t.dtype) for t in tensors]
    torch.ops.paramops.multi_init_(ref, plan, params)  # the C++ multi kernel
    triton_multi(host, tensors, plan, params)
    for t, r, row, prm in zip(tensors, ref, plan.tolist(), params.tolist()):
        assert_bitwise(t.cpu().contiguous(), r)
        assert_bitwise(t.cpu().contiguous(), _single(t, row[0], row[1], row[2], row[3], prm))


def test_multi_launches_once_per_dtype(monkeypatch, host):
    """One multi_kernel launch per output dtype among the one-run entries; entries that are not
    one strided run go through the single-tensor kernel."""
    from paramops.backends.kernels import multi as MK
    from paramops.backends.kernels import random as RK

    launches = []

    class Spy:
        def __init__(self, kernel, name):
            self.kernel, self.name = kernel, name

        def __getitem__(self, grid):
            def launch(*args, **kw):
                launches.append((self.name, kw.get("OUT")))
                return self.kernel[grid](*args, **kw)
            return launch

    monkeypatch.setattr(MK, "multi_kernel", Spy(MK.multi_kernel, "multi"))
    monkeypatch.setattr(RK, "random_kernel", Spy(RK.random_kernel, "single"))
    tensors, plan, params = _multi_case()
    triton_multi(host, tensors, plan, params)
    strided_random = [t for t, k in zip(tensors, plan[:, 0].tolist())
                      if k != M.FILL and t.numel() and len(RK.coalesce(t)) > 1]
    one_run = {t.dtype for t in tensors if t.numel() and len(RK.coalesce(t)) <= 1}
    assert sorted(o for n, o in launches if n == "multi") == sorted(RK.OUT_CODE[d] for d in one_run)
    assert sum(n == "single" for n, _ in launches) == len(strided_random) > 0


def test_multi_block_sizes_and_many_entries():
    """Many small entries (the binary search over the entries' first chunks), 2 block sizes,
    from the C++ table and from the Python one."""
    n = 30
    dtypes = [DTYPES[MASTER.randrange(4)] for _ in range(n)]
    sizes = [MASTER.randrange(0, 40) for _ in range(n)]
    kinds = [MASTER.randrange(4) for _ in range(n)]
    plan = _plan([(k, fresh_seed(), fresh_seed(), MASTER.randrange(0, 1 << 45)) for k in kinds])
    params = _params([{M.UNIFORM: (-2.0, 0.5), M.NORMAL: (1.0, 0.3), M.TRUNC: (0.0, 0.5, -0.2, 0.9),
                       M.FILL: (0.7,)}[k] for k in kinds])
    ref = [poisoned((s,), d) for s, d in zip(sizes, dtypes)]
    torch.ops.paramops.multi_init_(ref, plan, params)
    from paramops.backends.kernels import multi as MK
    for block, source in [(8, "cpp"), (1024, "cpp"), (1024, "python")]:  # block 8: slow in the interpreter
        tensors = [out((s,), d) for s, d in zip(sizes, dtypes)]
        if source == "cpp":
            MK.launch(tensors, cpp_table(tensors, plan, params), block=block)
        else:
            MK.launch(tensors, PK.multi_table(tensors, plan.tolist(), params.tolist(), plan[:, 1].tolist()),
                      block=block)
        for t, r in zip(tensors, ref):
            assert_bitwise(t.cpu(), r)


def test_multi_expanded_rows_and_empty_list(host):
    ts = [out((17,), torch.float32), out((9,), torch.bfloat16)]
    plan = torch.tensor([[M.NORMAL, -3, 5, 11]], dtype=torch.int64).expand(2, 4)
    params = torch.tensor([[0.5, 2.0, 0.0, 0.0]], dtype=torch.float64).expand(2, 4)
    ref = [poisoned(t.shape, t.dtype) for t in ts]
    torch.ops.paramops.multi_init_(ref, plan, params)
    triton_multi(host, ts, plan, params)
    for t, r in zip(ts, ref):
        assert_bitwise(t.cpu(), r)
    triton_multi(host, [], torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0, 4, dtype=torch.float64))
    # no one-run entry: only the single-tensor paths; only empty entries
    ts, ref = [out((3, 4), torch.float32).t(), out((0,), torch.float16)], [poisoned((3, 4), torch.float32).t()]
    torch.ops.paramops.multi_init_(ref + [poisoned((0,), torch.float16)], plan, params)
    triton_multi(host, ts, plan, params)
    assert_bitwise(ts[0].cpu(), ref[0])
    triton_multi(host, ts[1:], plan[:1], params[:1])


def _table_case(rows=None, device=DEV):
    """A mixed list for the table: every kind and dtype, one-run strided entries, entries that
    are not one run, empty entries, one-element views, interleaved views of one tensor, fill
    values that round (and -0.0 next to 0.0, which must not share a template). rows: the
    plan's rows (drawn when None)."""
    def out(shape, dtype):  # noqa: F811  (on `device`)
        return poisoned(shape, dtype, device=device)

    base = out((64,), torch.float32)
    grid = out((5, 5), torch.float64)
    entries = [  # (tensor, kind, params)
        (base[:10], M.NORMAL, (-0.0, 1.0)),
        (base[10:30:2], M.UNIFORM, (-1.0, 3.0)),  # stride 2, interleaved with the next
        (base[11:31:2], M.FILL, (-0.0,)),
        (base[40:48].view(2, 4).t(), M.TRUNC, (0.0, 1.0, -1.5, 2.0)),  # not one run
        (base[32:36], M.FILL, (0.0,)),
        (base[36:36], M.NORMAL, (0.0, 1.0)),  # empty view
        (out((0, 3), torch.float16), M.FILL, (1.0,)),
        (out((), torch.bfloat16), M.TRUNC, (0.0, 2.0, -1.0, 1.0)),
        (grid[2:3, 1:2], M.UNIFORM, (0.0, 1.0)),  # one element, odd strides
        (grid[:, 4], M.NORMAL, (0.0, 1.0)),  # a column: stride 5
        (grid[:2, 2:4], M.FILL, (0.1,)),  # not one run
        (out((7, 3), torch.float16).t(), M.NORMAL, (0.0, 1.0)),
        (out((2, 3, 4, 5), torch.bfloat16).to(memory_format=torch.channels_last), M.FILL,
         (1 + 2 ** -11 + 2 ** -40,)),
        (out((37,), torch.float16), M.FILL, (5e-8,)),
        (out((33,), torch.bfloat16), M.UNIFORM, (-0.5, 2.0)),
        (out((9,), torch.float64), M.TRUNC, (0.1, 1.3, -2.0, 2.5)),
        (out((6, 1, 2), torch.float16)[:, :, 1], M.TRUNC, (0.0, 1.0, -1.5, 2.0)),  # stride 2 over a size-1 dim
    ]
    if rows is None:
        rows = [(k, fresh_seed(), fresh_seed(), 0 if i % 3 else MASTER.choice([1, 3, 2 ** 40 + 1, (1 << 62) + 7]))
                for i, (_, k, _) in enumerate(entries)]
    return [t for t, _, _ in entries], _plan(rows), _params([p for _, _, p in entries])


class _TableSpy:
    """A writer that keeps the multi table the C++ kernel hands it, and writes nothing."""

    def __init__(self):
        self.tables = []

    def random(self, *args):
        raise AssertionError("multi_init_ only")

    def multi(self, tensors, table):
        self.tables.append(table.clone())


def cpp_table(tensors, plan, params):
    """The table the op's C++ kernel (csrc/cpu/table.cpp) hands a Python writer for this call
    (its checks, seeds and version bumps done)."""
    spy = _TableSpy()
    ext.C.register("cpu", spy)
    try:
        torch.ops.paramops.multi_init_(tensors, plan, params)
    finally:
        registration.register("cpu", registration.backend("cpu"))
    return spy.tables[0] if spy.tables else torch.zeros(0, M.TABLE_W, dtype=torch.int64)


def test_multi_table_layout():
    """The C++ kernel's multi table (csrc/cpu/table.cpp) equals its Python port's
    (paramops/backends/python.py), column by column from their definitions; one version bump
    per entry; strided fill entries are filled by the kernel itself and left out."""
    from paramops.backends.kernels import multi as MK
    from paramops.backends.kernels import random as RK

    tensors, plan, params = _table_case(device="cpu")
    for plan_v, params_v in [(plan, params), (plan.t().contiguous().t(), torch._neg_view(-params))]:
        versions = [t._version for t in tensors]
        tab = cpp_table(tensors, plan_v, params_v)
        # one bump per entry, on the version counter that views share with their base
        roots = [id(t._base if t._base is not None else t) for t in tensors]
        assert [t._version - v for t, v in zip(tensors, versions)] == [roots.count(r) for r in roots]
        assert tab.dtype == torch.int64 and tab.device.type == "cpu" and tab.is_contiguous()
        rows = [i for i, t in enumerate(tensors) if t.numel() and not (
            plan[i, 0] == M.FILL and len(RK.coalesce(t)) > 1)]
        assert tab.shape == (len(rows), MK.TABLE_W)
        got = tab.numpy()
        py = PK.multi_table(tensors, plan.tolist(), params.tolist(), plan[:, 1].tolist())
        assert (got == py.numpy()).all()
        # the fields, from their definitions
        c = {name: got[:, col].tolist() for name, col in [
            ("index", MK.INDEX), ("addr", MK.ADDR), ("numel", MK.NUMEL), ("offset", MK.OFFSET), ("seed", MK.SEED),
            ("stream", MK.STREAM), ("kind", MK.KIND), ("dtype", MK.DTYPE), ("stride", MK.STRIDE)]}
        ts = [tensors[i] for i in rows]
        pl = [plan.tolist()[i] for i in rows]
        pr = [params.tolist()[i] for i in rows]
        assert c["index"] == rows
        assert c["addr"] == [t.data_ptr() for t in ts] and c["numel"] == [t.numel() for t in ts]
        assert c["kind"] == [r[0] for r in pl] and c["seed"] == [r[1] for r in pl]
        assert c["stream"] == [r[2] for r in pl]
        assert c["offset"] == [0 if r[0] == M.FILL else r[3] for r in pl]
        assert c["dtype"] == [RK.OUT_CODE[t.dtype] for t in ts]
        dims = [RK.coalesce(t) for t in ts]
        assert c["stride"] == [MK.NOT_ONE_RUN if len(d) > 1 else d[0][1] if d else 1 for d in dims]
        assert {s for s in c["stride"]} >= {MK.NOT_ONE_RUN, 1, 2, 5}
        for row, t, (kind, *_), p in zip(got.tolist(), ts, pl, pr):
            pbits = [b & (U64 - 1) for b in row[MK.P0:MK.P0 + 6]]
            if kind == M.FILL:
                one = torch.empty((), dtype=t.dtype).fill_(p[0])
                assert pbits == [int(one.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[one.element_size()])
                                     .item()) & ((1 << 8 * one.element_size()) - 1)] + [0] * 5
            else:
                assert pbits == RK.param_bits(R.job_params(kind, tuple(p[:M.ARITY[kind]]), t.dtype), t.dtype)
        assert got[2, MK.P0] == 0x80000000 and got[4, MK.P0] == 0  # fill -0.0 and 0.0 in float32
    assert cpp_table([], torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0, 4, dtype=torch.float64)).shape[0] == 0


def test_multi_table_case_bits(host):
    """The mixed list of the table test, written by the Triton multi_init_ through either host
    path (views of one tensor, one-element views, -0.0 and 0.0): the C++ multi kernel's bits."""
    tensors, plan, params = _table_case()
    ref, _, _ = _table_case(plan.tolist(), device="cpu")
    torch.ops.paramops.multi_init_(ref, plan, params)
    triton_multi(host, tensors, plan, params)
    for t, r in zip(tensors, ref):
        assert_bitwise(t.cpu(), r)


# ---------------------------------------------------------------- checks, version counter
def _bad_single_calls():
    f16 = lambda *s: out(s or (4,), torch.float16)  # noqa: E731
    f32 = lambda *s: out(s or (4,), torch.float32)  # noqa: E731
    return [
        ("uniform_", f32(), (1.0, 1.0), {}), ("uniform_", f32(), (float("nan"), 1.0), {}),
        ("uniform_", f32(), (-3e38, 3e38), {}), ("uniform_", f32(), (0.0, 1.0), {"offset": -1}),
        ("uniform_", f32(), (0.0, 1.0), {"offset": (1 << 63) - 2}),
        ("normal_", f32(), (0.0, -1.0), {}), ("normal_", f32(), (1e39, 1.0), {}),
        ("normal_", torch.zeros(4, dtype=torch.int32, device=DEV), (0.0, 1.0), {}),
        ("normal_", f32(1).expand(4), (0.0, 1.0), {}),
        ("trunc_normal_", f32(), (0.0, 0.0, -1.0, 1.0), {}), ("trunc_normal_", f32(), (0.0, 1.0, 2.0, 1.0), {}),
        ("trunc_normal_", f16(), (0.0, 1.0, 1.0001, 1.0002), {}),
        ("trunc_normal_", f32(), (0.0, 1.0, 40.0, 41.0), {}),
        ("fill_", f16(), (1e6,), None), ("fill_", f32(), (float("inf"),), None),
    ]


def _outcome(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    return None


@pytest.mark.parametrize("case", range(len(_bad_single_calls())))
def test_bad_input_same_message_nothing_written(case):
    op, t, args, kw = _bad_single_calls()[case]
    kw = {} if kw is None else dict(seed=fresh_seed(), **kw)
    before, version = bits(t).clone(), t._version
    want = _outcome(lambda: PYTHON_KERNELS[op](t, *args, **kw))  # raises before it writes
    assert want is not None
    for host in ("cpp", "python"):
        assert _outcome(lambda: triton_op(op, t, *args, host=host, **kw)) == want
    assert torch.equal(bits(t), before) and t._version == version


def test_multi_bad_input_same_message_nothing_written(host):
    def good():
        return [out((5,), torch.float32), out((3,), torch.float16)]

    base = out((6,), torch.float32)
    cases = [
        (good(), _plan([(0, 1, 0, 0), (7, 1, 0, 0)]), _params([(0.0, 1.0), (0.0, 1.0)])),  # bad kind
        (good(), _plan([(1, 1, 0, 0), (1, 1, 0, -4)]), _params([(0.0, 1.0), (0.0, 1.0)])),  # bad offset
        (good(), _plan([(1, 1, 0, 0), (3, 1, 0, 0)]), _params([(0.0, 1.0), (1e6,)])),  # fill overflow
        (good(), _plan([(1, 1, 0, 0)]), _params([(0.0, 1.0)])),  # plan shape
        ([base[:4], base[3:]], _plan([(1, 1, 0, 0), (1, 1, 0, 0)]), _params([(0.0, 1.0), (0.0, 1.0)])),  # overlap
        (good(), _plan([(2, 1, 0, 0), (2, 1, 0, 0)]), _params([(0.0, 1.0, 1.0, -1.0), (0.0, 1.0, -1.0, 1.0)])),
        # the entry's own checks: dtype, internal overlap, tail too far for float16, the
        # interleaved views of one tensor that share a byte; tables of the wrong dtype
        (good() + [torch.zeros(3, dtype=torch.int32, device=DEV)], _plan([(1, 1, 0, 0)] * 3),
         _params([(0.0, 1.0)] * 3)),
        (good() + [out((1,), torch.float32).expand(4)], _plan([(1, 1, 0, 0)] * 3), _params([(0.0, 1.0)] * 3)),
        (good(), _plan([(1, 1, 0, 0), (2, 1, 0, 0)]), _params([(0.0, 1.0), (0.0, 1.0, 40.0, 41.0)])),
        ([base[0::2], base[1:4], base[5:]], _plan([(1, 1, 0, 0), (3, 0, 0, 0), (1, 2, 0, 0)]),
         _params([(0.0, 1.0), (0.5,), (0.0, 1.0)])),
        (good(), _plan([(1, 1, 0, 0)] * 2), _params([(0.0, 1.0)] * 2).float()),
        (good(), _plan([(1, 1, 0, 0)] * 2).int(), _params([(0.0, 1.0)] * 2)),
    ]
    from paramops.backends.kernels import multi as MK  # noqa: F401  (the kernels loaded before counting versions)
    for tensors, plan, params in cases:
        before = [(bits(t).clone(), t._version) for t in tensors]
        want = _outcome(lambda: PYTHON_KERNELS["multi_init_"](tensors, plan, params))  # raises before it writes
        assert want is not None
        assert _outcome(lambda: triton_multi(host, tensors, plan, params)) == want
        for t, (b, v) in zip(tensors, before):
            assert torch.equal(bits(t), b) and t._version == v


def test_version_counter_bumped_once_like_cpp(host):
    for op, args, kw in [("uniform_", (0.0, 1.0), {"seed": 1}), ("normal_", (0.0, 1.0), {"seed": 2}),
                         ("trunc_normal_", (0.0, 1.0, -1.0, 1.0), {"seed": 3}), ("fill_", (0.5,), {})]:
        a, b = torch.zeros(5), torch.zeros(5, device=DEV)
        va, vb = a._version, b._version
        call("cpp", op, a, *args, **kw)
        triton_op(op, b, *args, host=host, **kw)
        assert b._version - vb == a._version - va == 1
    ts = [torch.zeros(3, device=DEV), torch.zeros(2, 2, device=DEV).t()]
    refs = [torch.zeros(3), torch.zeros(2, 2).t()]
    plan, params = _plan([(1, 5, 0, 0), (3, 0, 0, 0)]), _params([(0.0, 1.0), (2.0,)])
    torch.ops.paramops.multi_init_(refs, plan, params)
    triton_multi(host, ts, plan, params)
    assert [t._version for t in ts] == [r._version for r in refs] == [1, 1]


def test_inference_tensors_like_cpp(host):
    with torch.inference_mode():
        a, b = torch.zeros(6), torch.zeros(6, device=DEV)
    want = _outcome(lambda: call("cpp", "normal_", a, 0.0, 1.0, seed=4))
    assert want is not None and "inference tensor" in want[1]
    assert _outcome(lambda: triton_op("normal_", b, 0.0, 1.0, seed=4, host=host)) == want
    assert torch.equal(b.cpu(), torch.zeros(6))
    with torch.inference_mode():
        call("cpp", "normal_", a, 0.0, 1.0, seed=4)
        triton_op("normal_", b, 0.0, 1.0, seed=4, host=host)
        triton_op("fill_", torch.zeros(2, device=DEV), 1.0, host=host)
    assert_bitwise(a, b.cpu())


def test_kernels_not_imported_with_paramops():
    """paramops does not import triton or its Triton kernels at import time."""
    code = ("import sys, paramops, paramops.backends.triton; "
            "assert 'paramops.backends.kernels.random' not in sys.modules and 'triton' not in sys.modules, "
            "sorted(m for m in sys.modules if 'triton' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------- compiled code (no GPU needed)
PTX_CHECK = r"""
import re, sys, triton
from triton.backends.compiler import GPUTarget
from paramops.backends.kernels import random as RK, multi as MK, tied as TK

def ptx(fn, sig, consts):
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=consts)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(RK.LAUNCH)).asm["ptx"]

sig = {"out_ptr": "*i16", **{a: "i32" for a in RK._SCALARS}, "numel": "i64", "offset": "i64"}
sig.update({c: "constexpr" for c in ("DIST", "OUT", "NDIM", "BLOCK")})
texts = [ptx(RK.random_kernel, sig, {"DIST": 2, "OUT": 2, "NDIM": 2, "BLOCK": 256}),
         ptx(RK.random_kernel, dict(sig, out_ptr="*fp64"), {"DIST": 1, "OUT": 1, "NDIM": 0, "BLOCK": 256}),
         ptx(MK.multi_kernel, {"meta_ptr": "*i64", "n_entries": "i32", "OUT": "constexpr", "NBITS": "constexpr",
                               "BLOCK": "constexpr"}, {"OUT": 0, "NBITS": 2, "BLOCK": 256})]
tsig = {"meta_ptr": "*i64", "addr_ptr": "*i64", "n_groups": "i32",
        **{c: "constexpr" for c in ("SRC", "DST", "F64", "NBITS", "BLOCK")}}
tied = [ptx(TK.tied_kernel, tsig, {"SRC": 3, "DST": 0, "F64": False, "NBITS": 2, "BLOCK": 256}),   # bf16 -> f32
        ptx(TK.tied_kernel, tsig, {"SRC": 1, "DST": 2, "F64": True, "NBITS": 2, "BLOCK": 256})]    # f64 -> f16
for t in tied:  # the tied sum: adds and a multiply, each rounded, no fma; downcasts round to nearest even
    assert "add.rn.f32" in t or "add.rn.f64" in t
    cvt = set(re.findall(r"\bcvt\.[\w.]*f32\.f64\b", t))
    assert all(".rn" in c for c in cvt), cvt
for t in texts + tied:
    ops = set(re.findall(r"\b((?:div|sqrt|rcp|fma|mad|add|sub|mul|ex2|lg2)\.[\w.]*f(?:32|64))\b", t))
    assert t in tied or {"div.rn.f32", "sqrt.rn.f32"} <= ops or {"div.rn.f64", "sqrt.rn.f64"} <= ops, ops
    assert not any(o.startswith("fma") for o in ops) or t not in tied, ops
    bad = [o for o in ops if "approx" in o or "full" in o or "ftz" in o or o.startswith(("mad", "rcp", "ex2", "lg2"))]
    assert not bad, bad
    # enable_fp_fusion=False: every float add/sub/mul carries .rn, which ptxas never contracts
    # (with fusion on, LLVM emits bare mul.f32 / add.f32 and ptxas may fuse them into an fma)
    bare = [o for o in ops if o.startswith(("add", "sub", "mul")) and ".rn" not in o]
    assert not bare, bare
print("ok", triton.__version__)
"""


def test_compiled_ptx_uses_exact_operations():
    """Compile for sm_90 without a GPU (this Triton) and check the PTX: correctly rounded
    division and square root, no approximate or flush-to-zero float op; the kernels compile
    (the interpreter is more lenient than the compiler)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", PTX_CHECK], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-3000:]
