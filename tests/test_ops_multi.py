"""multi_init_: one op call for a list of tensors, bitwise equal to the single-tensor ops."""
import random

import pytest
import torch

import paramops
from conftest import DTYPES, HAS_CPP, PYTHON_KERNELS, assert_bitwise, bits, call, poisoned, requires_cpp
from paramops.core import codes as C
from paramops.core import seeds as S
from paramops.spec import checks

BACKENDS = ["python"] + (["cpp"] if HAS_CPP else [])
SIZES = [0, 1, 3, 127, 1000, 4099]
SEED = 0x9E3779B97F4A7C15 - (1 << 64)

KINDS = {0: "uniform_", 1: "normal_", 2: "trunc_normal_", 3: "fill_"}
PARAMS = {0: (-0.5, 2.0), 1: (0.3, 1.7), 2: (0.1, 1.3, -2.0, 2.5), 3: (0.7,)}


def make_plan(kinds, seeds, streams, offsets):
    """The op's plan: int64 [n, 4], one row (kind, seed, stream, offset) per tensor."""
    return torch.tensor([list(r) for r in zip(kinds, seeds, streams, offsets)], dtype=torch.int64).reshape(-1, 4)


def make_params(params):
    """The op's params: float64 [n, 4], one row of parameters per tensor, zero-padded."""
    return torch.tensor([[float(x) for x in tuple(p) + (0.0,) * (4 - len(p))] for p in params],
                        dtype=torch.float64).reshape(-1, 4)


def raw(backend):
    return PYTHON_KERNELS["multi_init_"] if backend == "python" else torch.ops.paramops.multi_init_


def multi_call(backend, tensors, kinds, params, seeds, streams, offsets):
    """The raw op on one backend: "cpp" = torch.ops dispatch, "python" = the Python kernel."""
    raw(backend)(tensors, make_plan(kinds, seeds, streams, offsets), make_params(params))
    return tensors


def single_calls(backend, tensors, kinds, params, seeds, streams, offsets):
    """The same entries, one single-op call each."""
    for t, k, p, s, st, off in zip(tensors, kinds, params, seeds, streams, offsets):
        if k == 3:
            call(backend, "fill_", t, *p)
        else:
            call(backend, KINDS[k], t, *p, seed=s, stream=st, offset=off)
    return tensors


def clones(tensors):
    """Fresh poisoned tensors with the same shapes, dtypes and strides (views keep their base)."""
    out = []
    for t in tensors:
        base = torch.full((t.untyped_storage().nbytes() // t.element_size(),), float("nan"), dtype=t.dtype)
        out.append(base.as_strided(t.shape, t.stride(), t.storage_offset()))
    return out


def assert_all_bitwise(xs, ys):
    assert len(xs) == len(ys)
    for i, (x, y) in enumerate(zip(xs, ys)):
        try:
            assert_bitwise(x, y)
        except AssertionError as e:
            raise AssertionError(f"tensors[{i}]: {e}") from None


def random_entries(rng, n, sizes, dtypes=DTYPES, kinds=(0, 1, 2, 3), views=False):
    tensors, ks, ps, seeds, streams, offsets = [], [], [], [], [], []
    for _ in range(n):
        dt = rng.choice(dtypes)
        size = rng.choice(sizes)
        if views and size > 4 and rng.random() < 0.3:
            v = rng.choice(["t", "step", "col"])
            if v == "t":
                t = poisoned((3, size), dt).t()
            elif v == "step":
                t = poisoned((2 * size,), dt)[1::2]
            else:
                t = poisoned((size, 5), dt)[:, 2]
        else:
            t = poisoned((size,), dt)
        k = rng.choice(kinds)
        tensors.append(t)
        ks.append(k)
        ps.append(PARAMS[k])
        seeds.append(rng.randrange(-(1 << 63), 1 << 63))
        streams.append(rng.randrange(0, 1 << 40))
        offsets.append(rng.choice([0, 1, 5, rng.randrange(0, 1 << 40)]))
    return tensors, ks, ps, seeds, streams, offsets


# ------------------------------------------------------------------ bitwise
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_equals_single_ops(backend, kind, dtype):
    n = len(SIZES)
    tensors = [poisoned((s,), dtype) for s in SIZES]
    seeds = [SEED + i for i in range(n)]
    streams = [0, 11, 3, 0, 7, 1 << 40]
    offsets = [0, 3, 1, 4096, 7, (1 << 50) + 1]
    args = ([kind] * n, [PARAMS[kind]] * n, seeds, streams, offsets)
    got = multi_call(backend, tensors, *args)
    want = single_calls(backend, clones(tensors), *args)
    assert all(not t.isnan().any() for t in got)
    assert_all_bitwise(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_list(backend):
    """Kinds, dtypes, odd sizes, offsets, streams and non-contiguous views in one list."""
    base = poisoned((37, 29), torch.float32)
    other = poisoned((3, 1, 4, 1), torch.bfloat16)
    tensors = [poisoned((0,), torch.float16), poisoned((1,), torch.float64), poisoned((3,), torch.bfloat16),
               poisoned((127,), torch.float32), base.t(), poisoned((1000,), torch.float16),
               poisoned((4099,), torch.float64)[::3], poisoned((), torch.float32), other.permute(3, 2, 0, 1),
               poisoned((5, 0, 3), torch.float32), poisoned((50, 40), torch.float64)[:, 7],
               poisoned((10, 4097), torch.float32)]
    n = len(tensors)
    rng = random.Random(5)
    kinds = [i % 4 for i in range(n)]
    params = [PARAMS[k] for k in kinds]
    seeds = [rng.randrange(-(1 << 63), 1 << 63) for _ in range(n)]
    streams = [rng.randrange(0, 1 << 63) for _ in range(n)]
    offsets = [rng.randrange(0, 1 << 45) for _ in range(n)]
    want = single_calls(backend, clones(tensors), kinds, params, seeds, streams, offsets)
    got = multi_call(backend, tensors, kinds, params, seeds, streams, offsets)
    assert_all_bitwise(got, want)
    assert not any(t.isnan().any() for t in got)


@requires_cpp
def test_cpp_equals_reference():
    """The multi op itself: C++ kernel == Python reference, random mixed lists."""
    rng = random.Random(1234)
    entries = random_entries(rng, 60, [0, 1, 2, 3, 5, 63, 64, 65, 127, 1000, 4099], views=True)
    cpp = multi_call("cpp", *entries)
    py = multi_call("python", clones(entries[0]), *entries[1:])
    assert_all_bitwise(cpp, py)


@requires_cpp
def test_many_tiny_tensors():
    """10,000 small tensors of every kind and dtype in one call == 10,000 single calls."""
    rng = random.Random(7)
    entries = random_entries(rng, 10_000, [1, 2, 3, 5, 8, 17, 31, 64])
    want = single_calls("cpp", clones(entries[0]), *entries[1:])
    got = multi_call("cpp", *entries)
    assert_all_bitwise(got, want)


@requires_cpp
def test_threads_and_isa_give_identical_bits(monkeypatch):
    """Thread count (1, 2) and CPU code path do not change a value; tiny and huge entries mixed."""
    rng = random.Random(99)
    entries = random_entries(rng, 3000, [1, 7, 64, 300])
    big = random_entries(rng, 6, [200_003, 65_536, 131_071], views=True)
    entries = [a + b for a, b in zip(entries, big)]
    order = list(range(len(entries[0])))
    rng.shuffle(order)
    entries = [[col[i] for i in order] for col in entries]
    threads = torch.get_num_threads()
    results = []
    try:
        for isa in ("auto", "base", "avx2"):
            for nt in (1, 2):
                if isa != "auto":
                    monkeypatch.setenv("PARAMOPS_CPU_ISA", isa)
                torch.set_num_threads(nt)
                try:
                    results.append(multi_call("cpp", clones(entries[0]), *entries[1:]))
                except RuntimeError as e:
                    assert "not supported by this CPU" in str(e)
    finally:
        torch.set_num_threads(threads)
    assert len(results) >= 4
    for res in results[1:]:
        assert_all_bitwise(res, results[0])
    assert_all_bitwise(results[0], single_calls("cpp", clones(entries[0]), *entries[1:]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_disjoint_views_are_accepted(backend):
    """Views of one tensor that interleave but share no byte are fine (column blocks, strides)."""
    w = poisoned((64, 96), torch.float32)
    u = poisoned((40, 30), torch.float16)
    cases = [
        [w[:, :32], w[:, 32:64], w[:, 64:]],                       # fused QKV-style column blocks
        [w[:, ::2], w[:, 1::2]],                                    # interleaved columns
        [w.t()[::3], w.t()[1::3], w.t()[2::3]],
        [u[:20], u[20:], poisoned((5,), torch.float32)],            # row blocks
        [u.view(torch.float32)[:, :5], u[:, 10:]],                  # other dtype over the same bytes
    ]
    for tensors in cases:
        n = len(tensors)
        args = ([1] * n, [(0.0, 1.0)] * n, [SEED + i for i in range(n)], [0] * n, [0] * n)
        want = single_calls(backend, clones(tensors), *args)
        assert_all_bitwise(multi_call(backend, tensors, *args), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_and_params_any_strides(backend):
    """plan and params are read through their strides: an expanded row broadcasts (stride 0),
    column-major, stepped, offset and negated views give the values they show."""
    rng = random.Random(3)
    entries = random_entries(rng, 40, [0, 1, 5, 64, 300], views=True)
    tensors, kinds, params, seeds, streams, offsets = entries
    want = single_calls(backend, clones(tensors), *entries[1:])
    plan, prm = make_plan(kinds, seeds, streams, offsets), make_params(params)
    n = len(tensors)
    big_plan = torch.zeros(3 * n + 1, 9, dtype=torch.int64)
    big_plan[1::3, 2::2] = plan
    big_prm = torch.zeros(4, 2 * n, dtype=torch.float64)
    big_prm.t()[::2] = prm
    layouts = [
        (plan.t().contiguous().t(), prm.t().contiguous().t()),   # column-major
        (big_plan[1::3, 2::2], big_prm.t()[::2]),                   # stepped, offset views
        (torch._neg_view(-plan), torch._neg_view(-prm)),            # negative bit set
    ]
    for pl, pr in layouts:
        assert pl.shape == (n, 4) and pr.shape == (n, 4) and torch.equal(pl, plan) and torch.equal(pr, prm)
        got = clones(tensors)
        raw(backend)(got, pl, pr)
        assert_all_bitwise(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcast_row(backend):
    """One row expanded to [n, 4]: every tensor gets the same kind, seed, stream, offset and parameters."""
    for kind in KINDS:
        tensors = [poisoned((s,), dt) for s in (1, 64, 65, 0, 1000) for dt in DTYPES]
        n = len(tensors)
        plan = torch.tensor([[kind, SEED, 5, 17]], dtype=torch.int64).expand(n, 4)
        prm = make_params([PARAMS[kind]]).expand(n, 4)
        assert plan.stride() == (0, 1)
        raw(backend)(tensors, plan, prm)
        want = single_calls(backend, clones(tensors), [kind] * n, [PARAMS[kind]] * n, [SEED] * n, [5] * n, [17] * n)
        assert_all_bitwise(tensors, want)
        assert not any(t.isnan().any() for t in tensors)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_checked_per_dtype(backend):
    """Entries with the same kind and parameters share their set-up only within one dtype:
    what float64 accepts, float32 or float16 may refuse."""
    cases = [
        ([torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), torch.zeros(3)], 1,
         (1e300, 1.0), "mean 1e+300 of tensors[2] overflows torch.float32"),
        ([torch.zeros(3), torch.zeros(3, dtype=torch.bfloat16), torch.zeros(3, dtype=torch.float16)], 3,
         (1e5,), "value 100000.0 of tensors[2] overflows torch.float16"),
        ([torch.zeros(3, dtype=torch.float64), torch.zeros(2)] * 5 + [torch.zeros(3, dtype=torch.float16)], 2,
         (0.0, 1.0, 1.0001, 1.0002), "no torch.float16 value lies in [a, b] = [1.0001, 1.0002] of tensors[10]"),
    ]
    for tensors, kind, p, msg in cases:
        n = len(tensors)
        with pytest.raises(ValueError) as info:
            raw(backend)(tensors, make_plan([kind] * n, range(n), [0] * n, [0] * n), make_params([p] * n))
        assert str(info.value) == "paramops.multi_init_: " + msg
        assert all(not t.any() for t in tensors)


@requires_cpp
def test_many_distinct_parameters():
    """More distinct (kind, dtype, parameters) than the kernel keeps set up at once, interleaved."""
    rng = random.Random(17)
    tensors, kinds, params, seeds, streams, offsets = random_entries(rng, 2000, [1, 3, 64, 70])
    params = [tuple(x + rng.choice([0.0, 0.125, 0.25, 0.5]) for x in p) if k != 2 else
              (p[0], p[1] * rng.choice([1.0, 2.0]), p[2], p[3]) for k, p in zip(kinds, params)]
    want = single_calls("cpp", clones(tensors), kinds, params, seeds, streams, offsets)
    assert_all_bitwise(multi_call("cpp", tensors, kinds, params, seeds, streams, offsets), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_disjointness_in_any_list_order(backend):
    """Disjoint pieces of one buffer are accepted in any order; a shared byte is found in any order."""
    buf = poisoned((4096,), torch.float32)
    pieces = [buf[64 * k:64 * (k + 1)] for k in range(64)]
    rng = random.Random(8)
    for order in (list(range(64)), list(range(63, -1, -1)), rng.sample(range(64), 64)):
        ts = [pieces[k] for k in order]
        n = len(ts)
        args = ([1] * n, [(0.0, 1.0)] * n, list(range(n)), [0] * n, [0] * n)
        want = single_calls(backend, clones(ts), *args)
        assert_all_bitwise(multi_call(backend, ts, *args), want)
        bad = ts[:40] + [buf[64 * order[7] + 10:64 * order[7] + 12]] + ts[40:]
        n = len(bad)
        with pytest.raises(RuntimeError, match=r"tensors\[7\] and tensors\[40\] overlap in memory"):
            multi_call(backend, bad, [1] * n, [(0.0, 1.0)] * n, list(range(n)), [0] * n, [0] * n)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_cpu_plan():
    """On a GPU the tensors are on the device and plan and params stay on the CPU."""
    rng = random.Random(21)
    entries = random_entries(rng, 30, [1, 64, 1000])
    cpu = multi_call("cpp" if HAS_CPP else "python", *entries)
    cuda = [t.cuda() for t in clones(entries[0])]
    multi_call("cpp", cuda, *entries[1:])  # torch.ops dispatch: the CUDA backend
    assert_all_bitwise([t.cpu() for t in cuda], cpu)
    with pytest.raises(RuntimeError, match="plan must be a CPU tensor .* got a tensor on cuda:0"):
        torch.ops.paramops.multi_init_(cuda, make_plan(*entries[1:2], *entries[3:]).cuda(), make_params(entries[2]))


# ------------------------------------------------------------------ bad input
def _bad_cases():
    """(name, build() -> (tensors, kinds, params, seeds, streams, offsets), exception, message)."""
    def ok(n):
        return [torch.arange(7, dtype=torch.float32) + 0.25 for _ in range(n)]

    def entries(tensors, kinds=None, params=None, offsets=None):
        n = len(tensors)
        kinds = kinds if kinds is not None else [1] * n
        params = params if params is not None else [PARAMS[k] for k in kinds]
        offsets = offsets if offsets is not None else [0] * n
        return tensors, make_plan(kinds, list(range(n)), [0] * n, offsets), make_params(params)

    def tables(n, plan=None, params=None):
        """ok(n) with a replaced plan or params."""
        t, pl, pr = entries(ok(n))
        return t, plan if plan is not None else pl, params if params is not None else pr

    NAN, INF = float("nan"), float("inf")
    w = torch.arange(24, dtype=torch.float32).reshape(4, 6) + 0.5
    plan_shape = "plan must have shape [3, 4] (one row (kind, seed, stream, offset) per tensor), got "
    params_shape = "params must have shape [3, 4] (one row of 4 parameters per tensor), got "
    on_host = " must be a CPU tensor (it is read on the host, also for tensors on another device), got a tensor on "
    cases = [
        ("plan rows", lambda: tables(3, plan=torch.zeros(2, 4, dtype=torch.int64)), ValueError, plan_shape + "[2, 4]"),
        ("plan columns", lambda: tables(3, plan=torch.zeros(3, 3, dtype=torch.int64)), ValueError,
         plan_shape + "[3, 3]"),
        ("plan flat", lambda: tables(3, plan=torch.zeros(12, dtype=torch.int64)), ValueError, plan_shape + "[12]"),
        ("plan 3-d", lambda: tables(3, plan=torch.zeros(3, 4, 1, dtype=torch.int64)), ValueError,
         plan_shape + "[3, 4, 1]"),
        ("plan 0-d", lambda: tables(3, plan=torch.tensor(1)), ValueError, plan_shape + "[]"),
        ("params rows", lambda: tables(3, params=torch.zeros(4, 4, dtype=torch.float64)), ValueError,
         params_shape + "[4, 4]"),
        ("params pairs", lambda: tables(3, params=torch.zeros(3, 2, dtype=torch.float64)), ValueError,
         params_shape + "[3, 2]"),
        ("params flat", lambda: tables(3, params=torch.zeros(12, dtype=torch.float64)), ValueError,
         params_shape + "[12]"),
        ("empty list, plan rows", lambda: ([], torch.zeros(1, 4, dtype=torch.int64), torch.zeros(0, 4, dtype=torch.float64)),
         ValueError, "plan must have shape [0, 4] (one row (kind, seed, stream, offset) per tensor), got [1, 4]"),
        ("plan dtype", lambda: tables(3, plan=torch.zeros(3, 4, dtype=torch.int32)), TypeError,
         "plan must be a torch.int64 tensor, got torch.int32"),
        ("plan float", lambda: tables(3, plan=torch.zeros(3, 4, dtype=torch.float64)), TypeError,
         "plan must be a torch.int64 tensor, got torch.float64"),
        ("params dtype", lambda: tables(3, params=torch.zeros(3, 4, dtype=torch.float32)), TypeError,
         "params must be a torch.float64 tensor, got torch.float32"),
        ("params int", lambda: tables(3, params=torch.zeros(3, 4, dtype=torch.int64)), TypeError,
         "params must be a torch.float64 tensor, got torch.int64"),
        ("plan sparse", lambda: tables(3, plan=torch.zeros(3, 4, dtype=torch.int64).to_sparse()), TypeError,
         "plan must be a dense (strided) tensor, got layout torch.sparse_coo"),
        ("params sparse", lambda: tables(2, params=torch.eye(2, 4, dtype=torch.float64).to_sparse()), TypeError,
         "params must be a dense (strided) tensor, got layout torch.sparse_coo"),
        ("plan device", lambda: tables(3, plan=torch.zeros(3, 4, dtype=torch.int64, device="meta")), RuntimeError,
         "plan" + on_host + "meta"),
        ("params device", lambda: tables(3, params=torch.zeros(3, 4, dtype=torch.float64, device="meta")),
         RuntimeError, "params" + on_host + "meta"),
        ("plan before params", lambda: tables(3, plan=torch.zeros(3, 4, dtype=torch.int32),
                                              params=torch.zeros(3, 4, dtype=torch.float32)), TypeError,
         "plan must be a torch.int64 tensor"),
        ("tables before entries", lambda: (lambda t: (ok(1) + [torch.arange(4)], t[1], t[2]))(
            tables(2, params=torch.zeros(2, 3, dtype=torch.float64))), ValueError,
         "params must have shape [2, 4] (one row of 4 parameters per tensor), got [2, 3]"),
        ("kind value", lambda: entries(ok(3), [1, 3, 4], [(0.0, 1.0), (1.0,), (0.0,)]), ValueError,
         "kinds[2] must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), got 4"),
        ("negative kind", lambda: entries(ok(2), [-1, 1], [(0.0,), (0.0, 1.0)]), ValueError,
         "kinds[0] must be 0 (uniform), 1 (normal), 2 (trunc_normal) or 3 (fill), got -1"),
        ("dtype", lambda: entries(ok(3) + [torch.arange(4)] + ok(1)), TypeError,
         "tensors[3] must be a float16, bfloat16, float32 or float64 tensor, got torch.int64"),
        ("sparse", lambda: entries(ok(1) + [torch.eye(3).to_sparse()]), TypeError,
         "tensors[1] must be a dense (strided) tensor, got layout torch.sparse_coo"),
        ("expanded", lambda: entries(ok(2) + [torch.ones(4).expand(3, 4)]), RuntimeError,
         "tensors[2] has overlapping elements in memory (e.g. from expand()); write into a tensor with "
         "distinct elements"),
        ("std", lambda: entries(ok(4), [1, 1, 1, 1], [(0.0, 1.0)] * 3 + [(0.0, -1.0)]), ValueError,
         "std of tensors[3] must be >= 0, got -1.0"),
        ("mean nan", lambda: entries(ok(2), [1, 1], [(0.0, 1.0), (NAN, 1.0)]), ValueError,
         "mean of tensors[1] must be finite, got nan"),
        ("mean f32 overflow", lambda: entries(ok(2), [0, 1], [(0.0, 1.0), (1e300, 1.0)]), ValueError,
         "mean 1e+300 of tensors[1] overflows torch.float32"),
        ("uniform a >= b", lambda: entries(ok(2), [0, 0], [(0.0, 1.0), (2.0, 1.0)]), ValueError,
         "a of tensors[1] must be less than b, got a=2.0, b=1.0"),
        ("uniform b inf", lambda: entries(ok(1), [0], [(0.0, INF)]), ValueError,
         "b of tensors[0] must be finite, got inf"),
        ("uniform range", lambda: entries(ok(2), [1, 0], [(0.0, 1.0), (-3e38, 3e38)]), ValueError,
         "b - a of tensors[1] overflows torch.float32"),
        ("trunc std", lambda: entries(ok(2), [2, 2], [(0.0, 1.0, -2.0, 2.0), (0.0, 0.0, -2.0, 2.0)]), ValueError,
         "std of tensors[1] must be > 0, got 0.0"),
        ("trunc a >= b", lambda: entries(ok(1), [2], [(0.0, 1.0, 2.0, -2.0)]), ValueError,
         "a of tensors[0] must be less than b, got a=2.0, b=-2.0"),
        ("trunc tail", lambda: entries(ok(3), [1, 3, 2], [(0.0, 1.0), (1.0,), (0.0, 1.0, 40.0, 41.0)]), ValueError,
         "[a, b] = [40.0, 41.0] of tensors[2] lies too far in the tail of the normal distribution (mean=0.0, "
         "std=1.0) to sample in torch.float32"),
        ("trunc no value", lambda: entries(ok(2), [2, 2], [(0.0, 1.0, -2.0, 2.0), (0.0, 1.0, 1.00000108, 1.0000011)]),
         ValueError, "no torch.float32 value lies in [a, b] = [1.00000108, 1.0000011] of tensors[1]"),
        ("fill nan", lambda: entries(ok(2), [3, 3], [(1.0,), (NAN,)]), ValueError,
         "value of tensors[1] must be finite, got nan"),
        ("fill overflow", lambda: entries(ok(1) + [torch.zeros(3, dtype=torch.float16)], [3, 3], [(1.0,), (1e5,)]),
         ValueError, "value 100000.0 of tensors[1] overflows torch.float16"),
        ("offset negative", lambda: entries(ok(3), offsets=[0, 0, -1]), ValueError,
         "offset of tensors[2] must be >= 0, got -1"),
        ("offset overflow", lambda: entries(ok(2), offsets=[0, (1 << 63) - 5]), ValueError,
         "offset + numel of tensors[1] overflows int64"),
        ("same tensor twice", lambda: (lambda t: entries([t, torch.ones(3), t]))(torch.ones(5)), RuntimeError,
         "tensors[0] and tensors[2] overlap in memory"),
        ("overlapping slices", lambda: entries([torch.ones(2), w[:, :4], w[:, 3:]]), RuntimeError,
         "tensors[1] and tensors[2] overlap in memory"),
        ("first conflict named", lambda: entries([w[1:3], w[0], w[2, 1:], w[:, 0]]), RuntimeError,
         "tensors[0] and tensors[2] overlap in memory"),
        ("bytes of another dtype", lambda: entries([w[0], w.view(torch.float16)[0, 11:12]]), RuntimeError,
         "tensors[0] and tensors[1] overlap in memory"),
    ]
    return cases


BAD = _bad_cases()


def _snapshot(tensors):
    return [t.to_dense().clone() if t.layout != torch.strided else t.clone() for t in tensors]


def _unchanged(tensors, before):
    for t, b in zip(tensors, before):
        now = t.to_dense() if t.layout != torch.strided else t
        assert torch.equal(bits(now), bits(b)), "a failed call wrote into a tensor"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,build,exc,msg", BAD, ids=[c[0] for c in BAD])
def test_bad_input(backend, name, build, exc, msg):
    args = build()
    before = _snapshot(args[0])
    with pytest.raises(exc) as info:
        raw(backend)(*args)
    assert str(info.value).startswith("paramops.multi_init_: " + msg), str(info.value)
    _unchanged(args[0], before)


@requires_cpp
@pytest.mark.parametrize("name,build,exc,msg", BAD, ids=[c[0] for c in BAD])
def test_cpp_and_python_messages_identical(name, build, exc, msg):
    errors = []
    for fn in (torch.ops.paramops.multi_init_, PYTHON_KERNELS["multi_init_"]):
        with pytest.raises(Exception) as info:
            fn(*build())
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("name,build,exc,msg", [c for c in BAD if c[0].startswith(("plan", "params"))],
                         ids=[c[0] for c in BAD if c[0].startswith(("plan", "params"))])
def test_fake_kernel_checks_plan_and_params(name, build, exc, msg):
    """The fake kernel (meta tensors, FakeTensorMode) checks plan and params as the kernels do."""
    tensors, plan, params = build()
    metas = [torch.empty_like(t, device="meta") for t in tensors]
    if plan.layout == torch.strided and params.layout == torch.strided:  # sparse + meta: no kernel (SparseMeta)
        with pytest.raises(exc) as info:
            torch.ops.paramops.multi_init_(metas, plan, params)
        assert str(info.value).startswith("paramops.multi_init_: " + msg), str(info.value)
    with pytest.raises(exc) as info:
        checks.multi_fake(tensors, plan, params)
    assert str(info.value).startswith("paramops.multi_init_: " + msg), str(info.value)


def test_mixed_devices_refused():
    """A list mixing meta and CPU tensors dispatches to the fake kernel, which refuses it."""
    tensors = [torch.zeros(3), torch.empty(3, device="meta")]
    with pytest.raises(RuntimeError, match=r"tensors\[1\] is on meta but tensors\[0\] is on cpu"):
        torch.ops.paramops.multi_init_(tensors, make_plan([1, 1], [1, 2], [0, 0], [0, 0]),
                                       make_params([(0.0, 1.0)] * 2))
    assert torch.equal(tensors[0], torch.zeros(3))
    with pytest.raises(RuntimeError, match=r"tensors\[1\] is on meta but tensors\[0\] is on cpu"):
        paramops.multi_init_(tensors, "normal", (0.0, 1.0))
    assert torch.equal(tensors[0], torch.zeros(3))


def test_fake_kernel_kinds():
    """On meta tensors the plan is a real tensor: the fake kernel checks its kinds; under a
    FakeTensorMode it holds no values and only its dtype, device and shape are checked."""
    metas = [torch.empty(3, device="meta"), torch.empty(2, device="meta")]
    with pytest.raises(ValueError, match=r"kinds\[1\] must be 0 \(uniform\), 1 \(normal\), .* got 7"):
        torch.ops.paramops.multi_init_(metas, make_plan([1, 7], [1, 2], [0, 0], [0, 0]), make_params([(0.0, 1.0)] * 2))
    torch.ops.paramops.multi_init_(metas, make_plan([1, 3], [1, 2], [0, 0], [0, 0]),
                                   make_params([(0.0, 1.0), (2.0,)]))
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        ts = [torch.empty(3), torch.empty(2)]
        plan = mode.from_tensor(make_plan([1, 7], [1, 2], [0, 0], [0, 0]))
        torch.ops.paramops.multi_init_(ts, plan, torch.zeros(2, 4, dtype=torch.float64))
        with pytest.raises(TypeError, match="plan must be a torch.int64 tensor, got torch.int32"):
            torch.ops.paramops.multi_init_(ts, plan.int(), torch.zeros(2, 4, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"params must have shape \[2, 4\]"):
            torch.ops.paramops.multi_init_(ts, plan, torch.zeros(2, 2, dtype=torch.float64))


@pytest.mark.parametrize("name,build,exc,msg", BAD, ids=[c[0] for c in BAD])
def test_bad_input_public_api_draws_no_seed(name, build, exc, msg):
    tensors, plan, prm = build()
    n = len(tensors)
    if (plan.layout != torch.strided or prm.layout != torch.strided or plan.dtype != torch.int64
            or prm.dtype != torch.float64 or plan.device.type != "cpu" or prm.device.type != "cpu"
            or plan.shape != (n, 4) or prm.shape != (n, 4) or any(not 0 <= k <= 3 for k in plan[:, 0].tolist())):
        pytest.skip("the public API builds plan and params itself")
    if not HAS_CPP and any(t.layout != torch.strided for t in tensors):
        pytest.skip("sparse CPU tensors reach the op's checks only through the C++ backend")
    kinds = plan[:, 0].tolist()
    params = [tuple(prm[i, :C.ARITY[k]].tolist()) for i, k in enumerate(kinds)]
    per = {"offsets": plan[:, 3].tolist()}
    before = _snapshot(tensors)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with pytest.raises(exc, match="^paramops.multi_init_: "):
        paramops.multi_init_(tensors, kinds, params, **per)
    assert torch.equal(torch.get_rng_state(), state), "a failed call must not draw a seed"
    _unchanged(tensors, before)
    g = torch.Generator().manual_seed(3)
    gstate = g.get_state()
    with pytest.raises(exc):
        paramops.multi_init_(tensors, kinds, params, generator=g, **per)
    assert torch.equal(g.get_state(), gstate)


@pytest.mark.parametrize("args,exc,msg", [
    (([torch.zeros(2)], "gaussian", (0.0, 1.0)), ValueError, "kinds must be 'uniform', 'normal'"),
    (([torch.zeros(2)], ["normal", 5], (0.0, 1.0)), ValueError, "kinds must have one entry per tensor"),
    (([torch.zeros(2)] * 2, ["normal", 5], (0.0, 1.0)), ValueError, r"kinds\[1\] must be 0 \(uniform\)"),
    (([torch.zeros(2)], 1.5, (0.0, 1.0)), TypeError, "kinds must be a name, an int or a sequence of them"),
    (([torch.zeros(2)], [1.5], (0.0, 1.0)), TypeError, r"kinds\[0\] must be a name or an int, got float"),
    # the cases: a bool is not a kind, seeds and offsets are integers, params numbers
    (([torch.zeros(2)], True, (0.0, 1.0)), TypeError, "kinds must be a name or an int, got bool"),
    (([torch.zeros(2)] * 2, "normal", (0.0, 1.0)), RuntimeError, r"tensors\[0\] and tensors\[1\] overlap"),
    (([torch.zeros(2), torch.zeros(3)], "normal", (0.0, 1.0), {"seeds": [1, 1.5]}), TypeError,
     r"seeds\[1\] must be an int, got float"),
    (([torch.zeros(2), torch.zeros(3)], "normal", (0.0, 1.0), {"seeds": [1, 2**64]}), ValueError,
     r"seeds\[1\] must lie in \[-2\*\*63, 2\*\*64\), got 18446744073709551616"),
    (([torch.zeros(2), torch.zeros(3)], "normal", (0.0, 1.0), {"offsets": [0, 1.5]}), TypeError,
     r"offsets\[1\] must be an int, got float"),
    (([torch.zeros(2), torch.zeros(3)], "normal", (0.0, 1.0), {"streams": [0, "a"]}), TypeError,
     r"streams\[1\] must be an int, got str"),
    (([torch.zeros(2)], "normal", ("a", 1.0)), TypeError, r"params\[0\] must be a number or a tuple of numbers, got str"),
    (([torch.zeros(2)], "normal", [("a", 1.0)]), TypeError, r"params\[0\] must be a tuple of numbers, got str in it"),
    ((None, "normal", (0.0, 1.0)), TypeError, "tensors must be a sequence of tensors, got NoneType"),
    (([torch.zeros(2)], "normal", (0.0, 1.0), {"generator": 1}), TypeError,
     "generator must be a torch.Generator or None, got int"),
    (([torch.zeros(2)], "trunc_normal", (0.0, 1.0)), ValueError,
     r"params for trunc_normal must be \(mean, std, a, b\), got \(0.0, 1.0\)"),
    (([torch.zeros(2)] * 2, "normal", [(0.0, 1.0)]), ValueError, "params must have one tuple per tensor"),
    (([torch.zeros(2)] * 2, ["normal", "fill"], [(0.0, 1.0), (0.0, 1.0)]), ValueError,
     r"params\[1\] for fill must be \(value,\)"),
    (([torch.zeros(2), "w"], "normal", (0.0, 1.0)), TypeError, r"tensors\[1\] must be a torch.Tensor, got str"),
    ((torch.zeros(2), "normal", (0.0, 1.0)), TypeError, "tensors must be a sequence of tensors"),
    (([torch.zeros(2)] * 2, "normal", (0.0, 1.0)), RuntimeError, r"tensors\[0\] and tensors\[1\] overlap"),
])
def test_public_api_argument_errors(args, exc, msg):
    args, kw = (args[:-1], args[-1]) if isinstance(args[-1], dict) else (args, {})
    tensors = args[0] if isinstance(args[0], list) else []
    before = [t.clone() if isinstance(t, torch.Tensor) else t for t in tensors]
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with pytest.raises(exc, match="^paramops.multi_init_: " + msg):
        paramops.multi_init_(*args, **kw)
    assert torch.equal(torch.get_rng_state(), state)
    for t, b in zip(tensors, before):
        if isinstance(t, torch.Tensor):
            assert torch.equal(t, b)


# ------------------------------------------------------------------ public API
def _model_tensors():
    return [poisoned((64, 32), torch.float32), poisoned((32,), torch.float32), poisoned((7,), torch.bfloat16),
            poisoned((0,), torch.float32), poisoned((10, 10), torch.float64).t(), poisoned((4099,), torch.float16),
            poisoned((3, 5), torch.float32)[:, 1]]


SEQ = [("normal", (0.0, 0.02)), ("fill", (0.0,)), ("uniform", (-0.1, 0.1)), ("trunc_normal", (0.0, 1.0, -2.0, 2.0)),
       ("normal_", (1.0, 3.0)), ("constant", (0.5,)), ("trunc_normal_", (0.5, 0.2, 0.0, 1.0))]
SINGLE = {"normal": paramops.normal_, "normal_": paramops.normal_, "fill": paramops.fill_,
          "constant": paramops.constant_, "uniform": paramops.uniform_, "trunc_normal": paramops.trunc_normal_,
          "trunc_normal_": paramops.trunc_normal_}


def test_public_seeds_none_equals_sequential_calls():
    """seeds=None: one seed per random tensor (none for fill), in list order, from torch's generator."""
    torch.manual_seed(0)
    got = paramops.multi_init_(_model_tensors(), [k for k, _ in SEQ], [p for _, p in SEQ])
    after_multi = torch.rand(3)
    torch.manual_seed(0)
    want = [SINGLE[k](t, *p) for t, (k, p) in zip(_model_tensors(), SEQ)]
    assert torch.equal(torch.rand(3), after_multi), "the generator must advance as with sequential calls"
    assert_all_bitwise(got, want)
    assert not any(t.isnan().any() for t in got)


def test_public_all_normal_equals_sequential_normal_calls():
    torch.manual_seed(42)
    ts = [torch.empty(n) for n in (64, 1, 3, 1000, 0, 17)]
    paramops.multi_init_(ts, "normal", (0.0, 0.02))
    torch.manual_seed(42)
    want = [paramops.normal_(torch.empty(t.shape), 0.0, 0.02) for t in ts]
    assert_all_bitwise(ts, want)


def test_public_layers_equal_sequential_calls():
    """Weight/bias pairs (seeds drawn for the weights only, scattered into their rows)."""
    sizes = [(64, 32), (32,), (16, 64), (16,)] * 50
    kinds = ["normal", "fill", "trunc_normal", "fill"] * 50
    params = [(0.0, 0.02), (0.0,), (0.0, 0.02, -0.04, 0.04), 0.5] * 50
    torch.manual_seed(5)
    got = paramops.multi_init_([torch.empty(s) for s in sizes], kinds, params)
    after = torch.rand(2)
    torch.manual_seed(5)
    want = [SINGLE[k](torch.empty(s), *(p if isinstance(p, tuple) else (p,))) for s, k, p in zip(sizes, kinds, params)]
    assert torch.equal(torch.rand(2), after)
    assert_all_bitwise(got, want)


def test_public_offsets_outside_int64():
    """An offset is an int64 (the op's checks then refuse a negative one or one that overflows
    with numel, naming the entry; fill entries ignore theirs)."""
    torch.manual_seed(0)
    state = torch.get_rng_state()
    ts = [torch.zeros(4), torch.zeros(3)]
    with pytest.raises(ValueError, match=r"^paramops.multi_init_: offsets must lie in int64 .* got 9223372036854775808"):
        paramops.multi_init_(ts, "normal", (0.0, 1.0), offsets=1 << 63)
    with pytest.raises(ValueError, match=r"^paramops.multi_init_: offsets\[0\] must lie in int64"):
        paramops.multi_init_(ts, ["fill", "normal"], [(0.0,), (0.0, 1.0)], offsets=[1 << 64, 0])
    with pytest.raises(ValueError, match=r"^paramops.multi_init_: offset \+ numel of tensors\[1\] overflows int64"):
        paramops.multi_init_(ts, ["fill", "normal"], [(0.0,), (0.0, 1.0)], offsets=[0, (1 << 63) - 2])
    with pytest.raises(ValueError, match=r"^paramops.multi_init_: offset of tensors\[0\] must be >= 0, got -1"):
        paramops.multi_init_(ts, "normal", (0.0, 1.0), offsets=-1)
    assert torch.equal(torch.get_rng_state(), state) and not any(t.any() for t in ts)
    paramops.multi_init_(ts, ["fill", "fill"], [(1.0,), 2.0], offsets=[-5, (1 << 63) - 1])
    assert torch.equal(ts[1], torch.full((3,), 2.0))
    with pytest.raises(ValueError, match=r"offsets must have one entry per tensor \(2\), got 3"):
        paramops.multi_init_(ts, "fill", 1.5, offsets=[0, 0, 0])


def test_public_generator_equals_manual_seed():
    ts = [torch.empty(n) for n in (10, 20, 30)]
    paramops.multi_init_(ts, "uniform", (0.0, 1.0), generator=torch.Generator().manual_seed(7))
    torch.manual_seed(7)
    want = paramops.multi_init_([torch.empty(n) for n in (10, 20, 30)], "uniform", (0.0, 1.0))
    assert_all_bitwise(ts, want)


def test_vector_draw_equals_scalar_draws():
    """The op's draw of n seeds equals n draw_seed calls (and the Python port's)."""
    g = torch.Generator().manual_seed(11)
    vec = S.draw_seeds(g, 257)
    g = torch.Generator().manual_seed(11)
    assert vec == [paramops.draw_seed(g) for _ in range(257)]
    g = torch.Generator().manual_seed(11)
    ts = [torch.empty(4) for _ in range(257)]
    paramops.multi_init_(ts, "normal", (0.0, 1.0), generator=g)
    assert_all_bitwise(ts, [paramops.normal_(torch.empty(4), seed=s) for s in vec])


def test_public_explicit_seeds_streams_offsets():
    ts = [torch.empty(100), torch.empty(5, 5, dtype=torch.float64), torch.empty(9, dtype=torch.float16)]
    out = paramops.multi_init_(ts, ["normal", 2, "uniform_"], [(0.0, 2.0), (0.0, 1.0, -1.0, 1.0), (-1, 1)],
                               seeds=[1, -5, (1 << 64) - 1], streams=[0, 3, 1 << 63], offsets=[7, 0, 1 << 40])
    assert out is ts
    want = [paramops.normal_(torch.empty(100), 0.0, 2.0, seed=1, offset=7),
            paramops.trunc_normal_(torch.empty(5, 5, dtype=torch.float64), 0.0, 1.0, -1.0, 1.0, seed=-5, stream=3),
            paramops.uniform_(torch.empty(9, dtype=torch.float16), -1, 1, seed=-1, stream=1 << 63, offset=1 << 40)]
    assert_all_bitwise(ts, want)
    # one seed and per-tensor streams
    ts = paramops.multi_init_([torch.empty(8) for _ in range(3)], "normal", (0.0, 1.0), seeds=9, streams=range(3))
    assert_all_bitwise(ts, [paramops.normal_(torch.empty(8), seed=9, stream=s) for s in range(3)])


def test_public_meta_and_empty_and_parameters():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    metas = [torch.empty(3, 4, device="meta"), torch.empty(5, device="meta")]
    assert paramops.multi_init_(metas, "normal", (0.0, 1.0)) is metas
    assert paramops.multi_init_([], "normal", (0.0, 1.0)) == []
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(TypeError, match=r"tensors\[1\] must be a float16"):
        paramops.multi_init_([torch.empty(3, device="meta"), torch.empty(3, dtype=torch.int32, device="meta")],
                             "fill", 1.0)
    # nn.Parameters that require grad, a generator of tensors, a bare number for fill
    lin = torch.nn.Linear(4, 3)
    out = paramops.multi_init_(lin.parameters(), ["normal", "fill"], [(0.0, 0.1), 0.25])
    assert out[0] is lin.weight and out[1] is lin.bias
    assert torch.equal(lin.bias.detach(), torch.full((3,), 0.25)) and lin.weight.requires_grad


def test_opcheck():
    tensors = [torch.empty(7, 5), torch.empty(0, dtype=torch.bfloat16), torch.empty((), dtype=torch.float64),
               torch.empty(6, 4).t()]
    plan = make_plan([0, 1, 2, 3], [3, 4, 5, 6], [1, 0, 2, 0], [5, 0, 0, 0])
    params = torch.tensor([[-1.0, 2.0, 0, 0], [0.0, 0.02, 0, 0], [0.0, 1.0, -2.0, 2.0], [0.5, 0, 0, 0]],
                          dtype=torch.float64)
    torch.library.opcheck(torch.ops.paramops.multi_init_.default, (tensors, plan, params))
    # column-major plan, one params row expanded to every tensor
    torch.library.opcheck(torch.ops.paramops.multi_init_.default,
                          ([torch.empty(4, dtype=torch.float16), torch.empty(3, 2)],
                           plan[:2].t().contiguous().t(), torch.tensor([[0.0, 1.0, 0.0, 0.0]],
                                                                       dtype=torch.float64).expand(2, 4)))


def test_compile_fullgraph():
    def init(ts, plan, params):
        torch.ops.paramops.multi_init_(ts, plan, params)
        return ts[0] * 1.0 + ts[1].sum()

    def init_const(ts):  # plan and params made inside the graph
        plan = torch.tensor([[1, 1, 0, 0], [3, 2, 0, 0]], dtype=torch.int64)
        params = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]], dtype=torch.float64)
        return init(ts, plan, params)

    torch._dynamo.reset()
    plan = make_plan([1, 3], [1, 2], [0, 0], [0, 0])
    params = make_params([(0.0, 1.0), (0.5,)])
    compiled = torch.compile(init, fullgraph=True, backend="aot_eager")
    a, b = [torch.empty(5), torch.empty(3)], [torch.empty(5), torch.empty(3)]
    assert torch.equal(compiled(a, plan, params), init(b, plan, params))
    assert_all_bitwise(a, b)
    compiled = torch.compile(init_const, fullgraph=True, backend="aot_eager")
    c = [torch.empty(5), torch.empty(3)]
    assert torch.equal(compiled(c), init(b, plan, params))
    assert_all_bitwise(c, b)


def test_ops_bump_the_version_counter():
    """The kernels bump the autograd version counter as torch's in-place ops do, so
    re-initializing a tensor saved for backward fails backward."""
    w = torch.ones(6, requires_grad=True)
    x, z = w * 1.0, w * 2.0
    y = (x * x).sum() + (z * z).sum()
    vx, vz = x._version, z._version
    plan = torch.tensor([[1, 5, 0, 0], [3, 0, 0, 0]], dtype=torch.int64)
    prm = torch.tensor([[0.0, 1.0, 0, 0], [2.0, 0, 0, 0]], dtype=torch.float64)
    with torch.no_grad():
        torch.ops.paramops.multi_init_([x, z], plan, prm)
    assert x._version > vx and z._version > vz
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    for op, args in (("normal_", (0.0, 1.0)), ("uniform_", (0.0, 1.0)), ("trunc_normal_", (0.0, 1.0, -2.0, 2.0)),
                     ("fill_", (3.0,))):
        t = torch.empty(5)
        v = t._version
        getattr(torch.ops.paramops, op)(t, *args, **({} if op == "fill_" else {"seed": 1}))
        assert t._version > v, op
