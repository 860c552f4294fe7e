"""torch.ops.paramops.tied_grad_ and paramops.tied_grad_ / tied_grads_ / find_tied
(paramops/tied.py; the spec: paramops/spec/tied.py, docs/tied.md).

Every backend writes the spec's bits: the C++ kernel with the CPU's fused pass ("cpp", at
each instruction set), the C++ kernel over the Python reference writer ("refwriter") and
over the Triton kernel under TRITON_INTERPRET ("triton"), and the Python kernel without the
extension ("python"). Outputs are poisoned,
sizes odd, views misaligned and strided."""

import numpy as np
import pytest
import torch

import paramops
from conftest import DTYPES, HAS_CPP, PYTHON_KERNELS, assert_bitwise, bits, require, served_by
from paramops.backends import python as _pykernels
from paramops.spec import tied as T

BACKENDS = ["python", "triton"] + (["cpp", "refwriter"] if HAS_CPP else [])
OP = torch.ops.paramops.tied_grad_.default


def run(backend, out, grads, counts, copies, scales, accumulate):
    args = (out, grads, counts, copies, scales, accumulate)
    if backend == "python":
        PYTHON_KERNELS["tied_grad_"](*args)
    elif backend == "refwriter":
        with served_by("cpu", "python"):
            OP(*args)
    elif backend == "triton":
        require("triton")
        from paramops.backends import triton
        if HAS_CPP:
            with served_by("cpu", "triton"):
                OP(*args)
        else:
            _pykernels.make(triton.Writer())["tied_grad_"](*args)
    else:
        OP(*args)


def _src(shape, dtype, gen, scale=4.0):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _expected(dests, sources, scale, accumulate):
    return T.tied_sum(sources, dests[0], scale, accumulate)


# ------------------------------------------------------------------ the spec itself
def test_spec_against_numpy_sequential_sums():
    """The spec's float32 path is a left-to-right sum of float32 adds, a float32 multiply and
    add, and one RNE rounding; checked with numpy's float32 scalars, element by element."""
    g = torch.Generator().manual_seed(1)
    srcs = [_src((257,), torch.bfloat16, g) for _ in range(7)]
    dest = _src((257,), torch.float16, g)
    got = T.tied_sum(srcs, dest, 0.3, True)
    s32, d = np.float32(0.3), dest.float().numpy()
    cols = [x.float().numpy() for x in srcs]
    for i in range(257):
        acc = np.float32(cols[0][i])
        for c in cols[1:]:
            acc = np.float32(acc + c[i])
        acc = np.float32(np.float32(d[i]) + np.float32(acc * s32))
        assert np.float16(acc).view(np.int16) == got[i:i + 1].view(torch.int16).item()


def test_spec_float64_to_16_bit_is_one_rounding():
    """float64 sums to float16/bfloat16 round once (through float32 rounded to odd), where
    torch's .to() rounds twice: values just past a 16-bit halfway point show the difference."""
    # 1 + 2^-11 + 2^-40: above the float16 halfway point 1 + 2^-11, so it rounds up to 1 + 2^-10;
    # through float32 (RNE) it becomes exactly 1 + 2^-11, which then ties to even: 1.0.
    x = torch.tensor([1 + 2 ** -11 + 2 ** -40, -(1 + 2 ** -8 + 2 ** -45), 1 + 2 ** -11], dtype=torch.float64)
    h = T.round_to(x, torch.float16)
    assert h[0].item() == 1 + 2 ** -10 and x[:1].to(torch.float16).item() == 1.0
    b = T.round_to(x, torch.bfloat16)
    assert b[1].item() == -(1 + 2 ** -7) and x[1:2].to(torch.bfloat16).item() == -1.0
    assert h[2].item() == 1.0  # an exact halfway point still ties to even


def test_spec_canonical_nan():
    for dt in DTYPES:
        x = torch.tensor([float("nan"), -float("nan")], dtype=torch.float64 if dt == torch.float64 else torch.float32)
        out = T.round_to(x, dt)
        assert bits(out).tolist() == [T.CANONICAL_NAN[dt] - (1 << 8 * out.element_size() if
                                                              T.CANONICAL_NAN[dt] >= 1 << (8 * out.element_size() - 1)
                                                              else 0)] * 2


# ------------------------------------------------------------------ every backend, bitwise
COMBOS = [(s, d) for s in DTYPES for d in DTYPES]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sdt,ddt", COMBOS, ids=[f"{s}-{d}".replace("torch.", "") for s, d in COMBOS])
def test_bitwise_every_dtype(backend, sdt, ddt):
    g = torch.Generator().manual_seed(hash((str(sdt), str(ddt))) % 1000)
    groups = []
    for n, k, scale, acc in [(1, 1, 1.0, False), (7, 2, 1.0, True), (1001, 5, 0.125, False), (33, 16, -3.7, True)]:
        groups.append(([_src((n,), ddt, g)], [_src((n,), sdt, g) for _ in range(k)], scale, acc))
    expected = [_expected(d, s, sc, a) for d, s, sc, a in groups]
    out = [d for ds, *_ in groups for d in ds]
    run(backend, out, [x for _, s, *_ in groups for x in s], [len(s) for _, s, *_ in groups],
        [1] * len(groups), [sc for *_, sc, _ in groups], [a for *_, a in groups])
    for (ds, *_), e in zip(groups, expected):
        assert_bitwise(ds[0], e)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 2, 3, 12, 16])
def test_bitwise_sizes_and_layouts(backend, k):
    """Odd sizes across the CPU's tiles and blocks, misaligned starts, transposed and stepped
    views, expanded sources, and a destination with copies (contiguous and not)."""
    g = torch.Generator().manual_seed(k)
    for n in [1, 3, 255, 257, 1023, 70001]:
        base = [_src((n + 1,), torch.bfloat16, g) for _ in range(k)]
        srcs = [b[1:] for b in base]  # misaligned by one element
        dest = torch.full((n + 3,), float("nan"))[3:]
        copy = torch.full((2 * n,), float("nan"))[::2]
        want = T.tied_sum(srcs, dest, 0.5, False)
        run(backend, [dest, copy], srcs, [k], [2], [0.5], [False])
        assert_bitwise(dest, want)
        assert_bitwise(copy, want)
    m = _src((37, 29), torch.float32, g)
    srcs = [_src((29, 37), torch.float16, g).t() for _ in range(k - 1)] + [torch.randn(1, 29, generator=g)
                                                                          .half().expand(37, 29)]
    dest = m.t().contiguous().t()  # column-major
    want = T.tied_sum(srcs, dest, 1.0, True)
    run(backend, [dest], srcs, [k], [1], [1.0], [True])
    assert_bitwise(dest, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_values(backend):
    """inf, -inf, NaN (any payload: the result is the canonical NaN), signed zeros, subnormals
    and overflow in the accumulator and in the rounding to the destination."""
    f = float
    a = torch.tensor([f("inf"), f("inf"), f("nan"), -0.0, 1e-45, 3e38, 60000.0, -0.0, 2.0 ** -140])
    b = torch.tensor([1.0, f("-inf"), 1.0, -0.0, 1e-45, 3e38, 6000.0, 0.0, 2.0 ** -140])
    nan_payload = torch.tensor([0x7F800001], dtype=torch.int32).view(torch.float32).expand(9).clone()
    for ddt in DTYPES:
        dest = torch.full((9,), 7.0, dtype=ddt)
        want = T.tied_sum([a, b], dest, 1.0, False)
        run(backend, [dest], [a, b], [1 + 1], [1], [1.0], [False])
        assert_bitwise(dest, want)
        d2 = torch.zeros(9, dtype=ddt)
        run(backend, [d2], [nan_payload], [1], [1], [1.0], [False])
        assert bits(d2).unique().numel() == 1 and d2.isnan().all()
        assert_bitwise(d2, T.tied_sum([nan_payload], d2, 1.0, False))


@pytest.mark.skipif(not HAS_CPP, reason="C++ extension not loaded")
@pytest.mark.parametrize("isa", ["avx512", "avx2", "base"])
def test_every_isa_and_thread_count(isa, monkeypatch):
    monkeypatch.setenv("PARAMOPS_CPU_ISA", isa)
    g = torch.Generator().manual_seed(5)
    srcs = [_src((300_001,), torch.bfloat16, g) for _ in range(4)]
    srcs64 = [_src((3001,), torch.float64, g) for _ in range(3)]
    want = T.tied_sum(srcs, torch.empty(300_001), 0.7, False)
    want64 = T.tied_sum(srcs64, torch.empty(3001, dtype=torch.bfloat16), 0.7, False)
    threads = torch.get_num_threads()
    try:
        for nt in {1, threads}:
            torch.set_num_threads(nt)
            out, out64 = torch.full((300_001,), float("nan")), torch.empty(3001, dtype=torch.bfloat16)
            try:
                OP([out, out64], srcs + srcs64, [4, 3], [1, 1], [0.7, 0.7], [False, False])
            except RuntimeError as e:
                assert "not supported by this CPU" in str(e)
                pytest.skip(f"this CPU has no {isa}")
            assert_bitwise(out, want)
            assert_bitwise(out64, want64)
    finally:
        torch.set_num_threads(threads)


def test_matches_autograd_for_two_uses_in_float32():
    """K = 2 in float32: autograd's sum of the two uses' gradients, bit for bit."""
    torch.manual_seed(0)
    w = torch.randn(64, 64, requires_grad=True)
    x = torch.randn(8, 64)
    (torch.tanh(x @ w) @ w).square().sum().backward()
    w1, w2 = w.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    (torch.tanh(x @ w1) @ w2).square().sum().backward()
    out = torch.empty(64, 64)
    paramops.tied_grad_(out, [w1.grad, w2.grad])
    assert_bitwise(out, w.grad)


# ------------------------------------------------------------------ errors: named, nothing written
def _ok(dtype=torch.float32):
    return torch.ones(5, dtype=dtype), [torch.ones(5), torch.ones(5)]


BAD = [
    # (make args -> (out, grads, counts, copies, scales, accumulate), exception, message)
    (lambda o, g: ([o], g, [2], [1, 1], [1.0], [False]), ValueError,
     "counts, copies, scales and accumulate must have one entry per group, got 1, 2, 1 and 1"),
    (lambda o, g: ([o], [], [0], [1], [1.0], [False]), ValueError, r"group 0 is empty: counts\[0\] must be >= 1, got 0"),
    (lambda o, g: ([o], g, [2], [0], [1.0], [False]), ValueError, r"group 0 has no destination: copies\[0\]"),
    (lambda o, g: ([o], g, [3], [1], [1.0], [False]), ValueError, "counts add up to 3 but grads has 2 tensors"),
    (lambda o, g: ([o, o.clone()], g, [2], [1], [1.0], [False]), ValueError, "copies add up to 1 but out has 2"),
    (lambda o, g: ([o], [g[0], torch.ones(6)], [2], [1], [1.0], [False]), ValueError,
     r"grads\[1\] \(group 0\) has shape \[6\] but grads\[0\], the group's first source, has \[5\]"),
    (lambda o, g: ([o], [g[0], torch.ones(5, dtype=torch.float16)], [2], [1], [1.0], [False]), ValueError,
     r"grads\[1\] \(group 0\) has dtype torch.float16 but grads\[0\], the group's first source, has torch.float32"),
    (lambda o, g: ([o], [g[0], torch.ones(5, dtype=torch.int64)], [2], [1], [1.0], [False]), TypeError,
     r"grads\[1\] \(group 0\) must be a float16, bfloat16, float32 or float64 tensor, got torch.int64"),
    (lambda o, g: ([o], [g[0], torch.ones(5, dtype=torch.complex64)], [2], [1], [1.0], [False]), TypeError,
     r"grads\[1\] \(group 0\) must be a float16, .* got torch.complex64"),
    (lambda o, g: ([o], [g[0], torch.ones(5).to_sparse()], [2], [1], [1.0], [False]), TypeError,
     r"grads\[1\] \(group 0\) must be a dense \(strided\) tensor, got layout torch.sparse_coo"),
    (lambda o, g: ([torch.ones(5, dtype=torch.int32)], g, [2], [1], [1.0], [False]), TypeError,
     r"out\[0\] \(group 0\) must be a float16"),
    (lambda o, g: ([o], [torch.ones(5, device="meta"), g[1]], [2], [1], [1.0], [False]), RuntimeError,
     r"grads\[0\] \(group 0\) is on meta but out\[0\] is on cpu; one call takes the tensors of one device"),
    (lambda o, g: ([o, torch.ones(4)], g, [2], [2], [1.0], [False]), ValueError,
     r"out\[1\] \(group 0\) has shape \[4\] but the group's sources have \[5\]"),
    (lambda o, g: ([o, torch.ones(5, dtype=torch.float64)], g, [2], [2], [1.0], [False]), ValueError,
     r"out\[1\] \(group 0\) has dtype torch.float64 but out\[0\], the group's first destination, has "
     "torch.float32"),
    (lambda o, g: ([o, torch.ones(1).expand(5)], g, [2], [2], [1.0], [False]), RuntimeError,
     r"out\[1\] \(group 0\) has overlapping elements in memory"),
    (lambda o, g: ([o], g, [2], [1], [float("inf")], [False]), ValueError, r"scales\[0\] must be finite, got inf"),
    (lambda o, g: ([o], g, [2], [1], [1e39], [False]), ValueError,
     r"scales\[0\] 1e\+39 overflows torch.float32, the group's accumulator"),
    (lambda o, g: ([o], [g[0], o], [2], [1], [1.0], [False]), RuntimeError,
     r"out\[0\] and grads\[1\] overlap in memory; a destination must not alias a source"),
    (lambda o, g: ([o, g[0]], [torch.ones(5)] * 2 + g, [2, 2], [1, 1], [1.0, 1.0], [False, True]), RuntimeError,
     r"out\[1\] and grads\[2\] overlap in memory"),
    (lambda o, g: ([o, o[1:3]], [torch.ones(5), torch.ones(2)], [1, 1], [1, 1], [1.0, 1.0], [False, False]),
     RuntimeError, r"out\[0\] and out\[1\] overlap in memory; each destination must have memory of its own"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_is_named_and_nothing_is_written(backend, case):
    make, exc, msg = BAD[case]
    o, g = _ok()
    args = make(o, g)
    before = [(t.clone() if t.device.type != "meta" and t.layout == torch.strided else None, t._version)
              for t in args[0] if isinstance(t, torch.Tensor)]
    with pytest.raises(exc, match="paramops.tied_grad_: " + msg):
        run(backend, *args)
    for t, (b, v) in zip(args[0], before):
        if b is not None:
            assert torch.equal(t, b) and t._version == v


def test_interleaved_destinations_are_not_an_overlap():
    g = torch.ones(3, 4), torch.full((3, 4), 2.0)
    w = torch.zeros(3, 8)
    paramops.tied_grads_([(w[:, ::2], [g[0], g[1]]), (w[:, 1::2], [g[1]])])
    assert torch.equal(w[:, ::2], torch.full((3, 4), 3.0)) and torch.equal(w[:, 1::2], g[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_tensor_refused_before_writing(backend):
    with torch.inference_mode():
        o = torch.zeros(5)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        run(backend, [o], [torch.ones(5)], [1], [1], [1.0], [False])
    assert torch.equal(o, torch.zeros(5))


def test_version_bumped_once_per_destination():
    o, c = torch.zeros(5), torch.zeros(5)
    v0, v1 = o._version, c._version
    OP([o, c], [torch.ones(5)], [1], [2], [1.0], [False])
    assert (o._version, c._version) == (v0 + 1, v1 + 1)


def test_opcheck():
    g = torch.Generator().manual_seed(3)
    args = ([torch.empty(7, 5), torch.empty(7, 5), torch.empty(0, dtype=torch.bfloat16)],
            [_src((7, 5), torch.bfloat16, g), _src((7, 5), torch.bfloat16, g), torch.empty(0)],
            [2, 1], [2, 1], [0.5, 1.0], [False, True])
    torch.library.opcheck(OP, args)


def test_compile_fullgraph():
    def f(o, a, b):
        OP([o], [a, b], [2], [1], [1.0], [True])
        return o * 2

    o, a, b = torch.zeros(9), torch.randn(9), torch.randn(9)
    o2 = o.clone()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(o, a, b)
    want = f(o2, a, b)
    assert_bitwise(got, want)
    assert_bitwise(o, o2)


# ------------------------------------------------------------------ the Python layer
def test_python_layer_strict_types():
    o, g = _ok()
    cases = [
        (lambda: paramops.tied_grad_(1.0, g), TypeError, "paramops.tied_grad_: dest must be a torch.Tensor, got float"),
        (lambda: paramops.tied_grad_(o, []), TypeError, "sources must be a non-empty list or tuple of tensors, got list "
                                                        "of length 0"),
        (lambda: paramops.tied_grad_(o, g[0]), TypeError, "sources must be a non-empty list or tuple"),
        (lambda: paramops.tied_grad_(o, [g[0], 2]), TypeError, r"sources\[1\] must be a torch.Tensor, got int"),
        (lambda: paramops.tied_grad_(o, g, scale="2"), TypeError, "scale must be a real number, got str"),
        (lambda: paramops.tied_grad_(o, g, scale=True), TypeError, "scale must be a real number, got bool"),
        (lambda: paramops.tied_grad_(o, g, accumulate=1), TypeError, "accumulate must be a bool, got int"),
        (lambda: paramops.tied_grad_(o, g, copies=[1]), TypeError, r"copies\[0\] must be a torch.Tensor"),
        (lambda: paramops.tied_grads_([(o,)]), TypeError, r"groups\[0\] must be a TiedGroup or a tuple"),
        (lambda: paramops.tied_grads_(None), TypeError, "groups must be a list or tuple, got NoneType"),
        (lambda: paramops.tied_grads_([(o, g), (o.clone(), g, "x")]), TypeError,
         r"paramops.tied_grads_: scale of groups\[1\] must be a real number"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()
        assert torch.equal(o, torch.ones(5))


def test_tied_grads_many_groups_in_one_call():
    from conftest import Recorder
    g = torch.Generator().manual_seed(9)
    groups = [paramops.TiedGroup(torch.zeros(n), [_src((n,), torch.float16, g) for _ in range(k)], 0.25, True)
              for n, k in [(3, 1), (100, 4), (7, 12)]]
    want = [T.tied_sum(x.sources, x.dest, 0.25, True) for x in groups]
    with Recorder() as rec:
        paramops.tied_grads_(groups)
    assert [c[0] for c in rec.calls] == ["tied_grad_"]
    for x, w in zip(groups, want):
        assert_bitwise(x.dest, w)


def test_copies_stay_bitwise_equal():
    g = torch.Generator().manual_seed(2)
    srcs = [_src((50,), torch.bfloat16, g) for _ in range(3)]
    d, c1, c2 = torch.ones(50), torch.ones(50), torch.ones(100)[::2]
    paramops.tied_grad_(d, srcs, accumulate=True, copies=(c1, c2))
    assert_bitwise(d, T.tied_sum(srcs, torch.ones(50), 1.0, True))
    assert_bitwise(c1, d)
    assert_bitwise(c2, d)


# ------------------------------------------------------------------ find_tied
def test_find_tied():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.block = torch.nn.Linear(4, 4)
            self.again = self.block  # a whole submodule shared by attribute
            self.head = torch.nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight  # a parameter shared by assignment
            self.norm = torch.nn.BatchNorm1d(4)
            self.norm2 = torch.nn.BatchNorm1d(4)
            self.norm2.running_mean = self.norm.running_mean  # a buffer

    assert paramops.find_tied(Net()) == [["emb.weight", "head.weight"], ["again.weight", "block.weight"],
                                         ["again.bias", "block.bias"], ["norm.running_mean", "norm2.running_mean"]]
    assert paramops.find_tied(torch.nn.Linear(2, 2)) == []
    with pytest.raises(TypeError, match="paramops.find_tied: module must be a torch.nn.Module, got int"):
        paramops.find_tied(3)
