"""The GPU backends against the C++ CPU kernels, bit for bit.

On a CUDA device every backend is checked: the one dispatched for CUDA tensors
(`torch.ops.paramops.*`: the CUDA extension, Triton or the reference, as PARAMOPS_BACKEND and
the build decide; bench/gpu_check.sh runs this file once per backend), and Triton and the
Python kernels of the configuration without the extension. Without a GPU the file is skipped, except that
PARAMOPS_TEST_DEVICE=cpu runs the same checks on CPU tensors (dispatch = the C++ kernels,
Triton through its interpreter) to check the tests themselves.
"""
import os

import pytest
import torch

import paramops
from paramops import registration
from conftest import CASES, DTYPES, assert_bitwise, call, poisoned, requires_cpp

DEV = os.environ.get("PARAMOPS_TEST_DEVICE", "cuda")
ON_GPU = DEV == "cuda"
pytestmark = [pytest.mark.skipif(ON_GPU and not torch.cuda.is_available(), reason="no CUDA device"),
              requires_cpp]

BACKENDS = ["dispatch", "python"] + (["triton"] if registration.triton_installed() else [])
FAST = [b for b in BACKENDS if b != "python"]  # the ones worth big sizes


run = call  # backend "dispatch": torch.ops.paramops.* for CUDA tensors


def cpu_op(op, t, *args, **kw):
    return call("cpp", op, t, *args, **kw)


def test_dispatch_is_the_chosen_backend():
    info = paramops.backend_info()
    assert info["cpu"] == "cpp"
    if ON_GPU:
        assert info["cuda"] == registration.backend("cuda")
        forced = os.environ.get("PARAMOPS_BACKEND", "auto")
        if forced in ("cuda", "triton", "python"):
            assert info["cuda"] == forced


# ------------------------------------------------------------------ single tensors
SIZES = [1, 3, 5, 4099, (1 << 16) + 3]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
def test_single_equals_cpu(backend, op, dtype):
    g = torch.Generator().manual_seed(hash((backend, op, str(dtype))) & 0xFFFF)
    for n in SIZES:
        seed, stream = (int(v) for v in torch.randint(-2**63, 2**63 - 1, (2,), generator=g, dtype=torch.int64))
        for offset in (0, 1, 7, (1 << 33) + 5):
            want = cpu_op(op, poisoned((n,), dtype), *CASES[op], seed=seed, stream=stream, offset=offset)
            got = run(backend, op, poisoned((n,), dtype, device=DEV), *CASES[op], seed=seed, stream=stream,
                      offset=offset)
            assert_bitwise(got.cpu(), want)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
def test_large_tensor_equals_cpu(backend, op, dtype):
    n = (1 << 22) + 4097 if ON_GPU else 20011
    want = cpu_op(op, poisoned((n,), dtype), *CASES[op], seed=77, stream=3, offset=11)
    got = run(backend, op, poisoned((n,), dtype, device=DEV), *CASES[op], seed=77, stream=3, offset=11)
    assert_bitwise(got.cpu(), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(CASES))
def test_extreme_counters(backend, op):
    """Seeds, streams and offsets at the ends of the 64-bit range."""
    n = 37
    for seed, stream, offset in [(-1, -1, (1 << 63) - 1 - n), (-(1 << 63), (1 << 63) - 1, (1 << 32) - 3),
                                 ((1 << 63) - 1, 0, (1 << 31) - 2)]:
        for dtype in (torch.float32, torch.float64):
            want = cpu_op(op, poisoned((n,), dtype), *CASES[op], seed=seed, stream=stream, offset=offset)
            got = run(backend, op, poisoned((n,), dtype, device=DEV), *CASES[op], seed=seed, stream=stream,
                      offset=offset)
            assert_bitwise(got.cpu(), want)


def _layouts(dtype, device):
    """(name, a view to write) pairs; the same construction on either device."""
    out = []
    base = poisoned((37, 53), dtype, device=device)
    out.append(("t", base.t()))
    out.append(("steps", poisoned((40, 60), dtype, device=device)[1::3, ::2]))
    out.append(("channels_last", poisoned((3, 5, 7, 9), dtype, device=device).to(memory_format=torch.channels_last)))
    out.append(("permuted", poisoned((4, 6, 10), dtype, device=device).permute(2, 0, 1)))
    out.append(("column", poisoned((33, 9), dtype, device=device)[:, 4]))
    out.append(("rank7", poisoned((2, 3, 2, 3, 2, 3, 5), dtype, device=device).transpose(0, 6)[..., ::2]))
    out.append(("scalar", poisoned((), dtype, device=device)))
    out.append(("empty", poisoned((0, 5), dtype, device=device)))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(CASES))
def test_strided_views_equal_cpu(backend, op, dtype):
    for (name, want), (_, got) in zip(_layouts(dtype, "cpu"), _layouts(dtype, DEV)):
        parent = got._base if got._base is not None else got
        before = parent.clone()
        cpu_op(op, want, *CASES[op], seed=5, stream=9, offset=3)
        run(backend, op, got, *CASES[op], seed=5, stream=9, offset=3)
        assert_bitwise(got.cpu(), want)
        # outside the view, the parent is untouched (still the poison)
        if got._base is not None:
            mask = torch.ones(parent.shape, dtype=torch.bool, device=DEV)
            mask_view = mask.as_strided(got.shape, got.stride(), got.storage_offset() - parent.storage_offset())
            mask_view.fill_(False)
            assert torch.equal(parent[mask].isnan(), before[mask].isnan()), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fill(backend, dtype):
    for value in (0.0, -0.0, 1.0 / 3.0, -2.5e-8, 1e4):
        t = run(backend, "fill_", poisoned((4099,), dtype, device=DEV), value)
        assert_bitwise(t.cpu(), torch.full((4099,), value, dtype=dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_raises_before_writing(backend):
    t = poisoned((100,), torch.float32, device=DEV).normal_()
    before = t.clone()
    for op, args, kw, msg in [
        ("normal_", (0.0, -1.0), {"seed": 1}, "std must be >= 0"),
        ("uniform_", (1.0, 1.0), {"seed": 1}, "a must be less than b"),
        ("trunc_normal_", (0.0, 1.0, 50.0, 60.0), {"seed": 1}, "too far in the tail"),
        ("normal_", (0.0, 1.0), {"seed": 1, "offset": -1}, "offset must be >= 0"),
        ("fill_", (float("inf"),), {}, "value must be finite"),
    ]:
        with pytest.raises(ValueError, match=msg):
            run(backend, op, t, *args, **kw)
        assert torch.equal(t, before)
    with pytest.raises(RuntimeError, match="overlapping"):
        run(backend, "normal_", torch.empty(1, device=DEV).expand(10), 0.0, 1.0, seed=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_version_counter_bumped(backend):
    t = torch.empty(10, device=DEV)
    v = t._version
    run(backend, "normal_", t, 0.0, 1.0, seed=1)
    assert t._version > v


# ------------------------------------------------------------------ multi_init_
def _multi_case(device, n_rand=40):
    """A mixed list: all kinds and dtypes, odd and empty sizes, strided entries and disjoint
    views of one tensor, with a fixed plan."""
    g = torch.Generator().manual_seed(2026)
    shared = poisoned((16, 30), torch.float32, device=device)
    tensors, rows, prm = [], [], []
    kinds_params = [(0, (-0.5, 2.0, 0.0, 0.0)), (1, (0.3, 1.7, 0.0, 0.0)), (2, (0.1, 1.3, -2.0, 2.5)),
                    (3, (0.75, 0.0, 0.0, 0.0))]
    for i in range(n_rand):
        dtype = DTYPES[i % 4]
        n = int(torch.randint(0, 3000, (), generator=g)) if i % 7 else 0
        t = poisoned((n,), dtype, device=device)
        if i % 5 == 3:
            t = poisoned((max(n // 7, 1), 9), dtype, device=device).t()  # strided entry
        kind, p = kinds_params[i % 4]
        seed, stream = (int(v) for v in torch.randint(-2**63, 2**63 - 1, (2,), generator=g, dtype=torch.int64))
        tensors.append(t)
        rows.append((kind, seed, stream, i * 1000))
        prm.append(p)
    for view in (shared[:, :11], shared[:, 11:]):  # disjoint column blocks of one tensor
        tensors.append(view)
        rows.append((1, 99, len(tensors), 0))
        prm.append((0.0, 1.0, 0.0, 0.0))
    return tensors, torch.tensor(rows, dtype=torch.int64), torch.tensor(prm, dtype=torch.float64)


def run_multi(backend, tensors, plan, params):
    call(backend, "multi_init_", tensors, plan, params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_equals_cpu(backend):
    want, plan, params = _multi_case("cpu")
    got, _, _ = _multi_case(DEV)
    torch.ops.paramops.multi_init_(want, plan, params)
    run_multi(backend, got, plan, params)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_bitwise(a.cpu(), b)


@pytest.mark.parametrize("backend", FAST)
def test_multi_many_tiny(backend):
    n = 10000 if ON_GPU else 300
    want = [poisoned((64,), torch.float32) for _ in range(n)]
    got = [poisoned((64,), torch.float32, device=DEV) for _ in range(n)]
    plan = torch.stack([torch.ones(n, dtype=torch.int64), torch.arange(n) * 7919 - 5, torch.arange(n),
                        torch.zeros(n, dtype=torch.int64)], 1)
    params = torch.tensor([0.0, 0.02, 0.0, 0.0], dtype=torch.float64).expand(n, 4)
    torch.ops.paramops.multi_init_(want, plan, params)
    run_multi(backend, got, plan, params)
    assert_bitwise(torch.cat(got).cpu(), torch.cat(want))


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_bad_entry_writes_nothing(backend):
    tensors = [torch.randn(50, device=DEV), torch.randn(20, device=DEV)]
    before = [t.clone() for t in tensors]
    plan = torch.tensor([[1, 1, 0, 0], [1, 2, 0, 0]], dtype=torch.int64)
    params = torch.tensor([[0.0, 1.0, 0, 0], [0.0, -1.0, 0, 0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"std of tensors\[1\] must be >= 0"):
        run_multi(backend, tensors, plan, params)
    for a, b in zip(tensors, before):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ GPU only
gpu_only = pytest.mark.skipif(not ON_GPU, reason="GPU only")


@gpu_only
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("op", ["normal_", "uniform_"])
def test_more_than_2_31_elements(backend, op):
    n = (1 << 31) + 4099
    t = poisoned((n,), torch.float16, device=DEV)
    run(backend, op, t, *CASES[op], seed=99, stream=2)
    for start, length in [(0, 1000), ((1 << 31) - 600, 1200), (n - 333, 333)]:
        want = cpu_op(op, torch.empty(length, dtype=torch.float16), *CASES[op], seed=99, stream=2, offset=start)
        assert_bitwise(t[start:start + length].cpu(), want)
    assert not t.isnan().any()
    del t
    torch.cuda.empty_cache()


@gpu_only
@pytest.mark.parametrize("backend", FAST)
def test_no_device_memory_beyond_the_tensors(backend):
    """Single ops allocate nothing the size of the tensor; multi_init_ O(n) metadata."""
    t = torch.empty(1 << 26, device=DEV)
    views = [t.view(4096, -1).t(), t]  # a transposed view, too
    for op, args in CASES.items():
        for v in views:
            run(backend, op, v, *args, seed=1)  # warm-up: compiles, caches
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            run(backend, op, v, *args, seed=2)
            torch.cuda.synchronize()
            assert torch.cuda.max_memory_allocated() - base <= 64 * 1024, (op, v.shape)
    n = 10000
    tensors = list(t[: n * 64].view(n, 64).unbind(0))
    plan = torch.tensor([1, 5, 0, 0], dtype=torch.int64).repeat(n, 1)
    params = torch.tensor([0.0, 0.02, 0.0, 0.0], dtype=torch.float64).expand(n, 4)
    run_multi(backend, tensors, plan, params)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run_multi(backend, tensors, plan, params)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base <= 64 * 1024 + 256 * n


@gpu_only
@pytest.mark.parametrize("backend", FAST)
def test_side_stream_and_second_call_order(backend):
    """Kernels run on the current stream: work queued there before and after is ordered."""
    s = torch.cuda.Stream()
    want = cpu_op("normal_", torch.empty(1 << 20), 0.0, 1.0, seed=3)
    with torch.cuda.stream(s):
        t = torch.zeros(1 << 20, device=DEV)
        run(backend, "normal_", t, 0.0, 1.0, seed=3)
        u = t * 1.0
    s.synchronize()
    assert_bitwise(u.cpu(), want)


@gpu_only
def test_public_api_and_models_equal_cpu():
    """paramops.* draws its seeds from the CPU generator, so a model initialized on the GPU
    equals the same model on the CPU, through the single functions, fused_init and
    init_module."""
    def build(device):
        torch.manual_seed(0)
        with paramops.patched():
            return torch.nn.Sequential(torch.nn.Linear(33, 65, device=device), torch.nn.LayerNorm(65, device=device),
                                       torch.nn.Embedding(17, 65, padding_idx=0, device=device))

    def fused(device):
        with paramops.fused_init():
            return build(device)

    for make in (build, fused):
        a, b = make(DEV), make("cpu")
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert_bitwise(p.detach().cpu(), q.detach())
    a, b = build(DEV), build("cpu")
    for m in (a, b):
        torch.manual_seed(1)
        paramops.init_module(m)
    for p, q in zip(a.parameters(), b.parameters()):
        assert_bitwise(p.detach().cpu(), q.detach())


@gpu_only
@pytest.mark.parametrize("op", list(CASES) + ["fill_", "multi_init_"])
def test_opcheck_on_cuda(op):
    """The schema, fake kernel and autograd registration hold for the backend dispatched for
    CUDA tensors, as test_opcheck.py checks them on the CPU."""
    for dtype in (torch.float32, torch.bfloat16):
        for shape in [(7, 5), (0,), ()]:
            t = torch.empty(shape, dtype=dtype, device=DEV)
            if op == "multi_init_":
                args = ([t, torch.empty(3, dtype=dtype, device=DEV)],
                        torch.tensor([[1, 3, 1, 5], [3, 0, 0, 0]], dtype=torch.int64),
                        torch.tensor([[0.0, 0.02, 0, 0], [0.5, 0, 0, 0]], dtype=torch.float64))
                kw = {}
            elif op == "fill_":
                args, kw = (t, 0.5), {}
            else:
                args, kw = (t, *CASES[op]), {"seed": 3, "stream": 1, "offset": 5}
            torch.library.opcheck(getattr(torch.ops.paramops, op).default, args, kw)
