"""Fused-init mode, init_module, keyed init and materialize (paramops/model.py, capture.py).

The reference for every fused run is the same construction with each init call made one
by one through paramops (Capture(eager=True) under patched()): values must be bitwise equal.
"""
import contextlib
import math
import pickle
import warnings

import pytest
import torch
from torch import nn

import paramops
from paramops import capture as _capture
from conftest import assert_bitwise


@contextlib.contextmanager
def one_by_one():
    with paramops.patched(), _capture.Capture(eager=True) as cap:
        yield cap


@contextlib.contextmanager
def poisoned_empty():
    """torch.empty & co. fill NaN (ints: max), so an element no init wrote shows."""
    import torch.utils.deterministic as det
    old = (torch.are_deterministic_algorithms_enabled(), det.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    det.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0])
        det.fill_uninitialized_memory = old[1]


class Zoo(nn.Module):
    """Modules whose construction exercises every capture path."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        kw = dict(dtype=dtype)
        self.emb = nn.Embedding(50, 16, padding_idx=3, **kw)       # normal_ then a row fill_
        self.lin = nn.Linear(16, 33, **kw)                          # kaiming, then replaced below
        self.conv = nn.Conv2d(3, 8, 3, **kw)
        self.ln = nn.LayerNorm(33, **kw)
        self.bn = nn.BatchNorm1d(7, **kw)                           # buffers, an int64 zero_
        self.mha = nn.MultiheadAttention(16, 4, **kw)               # xavier + constant
        self.lstm = nn.LSTM(8, 12, **kw)                            # uniform_ on many tensors
        self.w = nn.Parameter(torch.empty(17, 5, **kw))
        nn.init.trunc_normal_(self.w, std=0.02)
        self.w.data[0] = 5.0                                        # scalar setitem on pending
        self.w.data[1] = torch.arange(5, dtype=dtype)               # tensor setitem: flush
        self.lin.weight.data.normal_(0, 0.02)                       # Tensor method, same view
        self.lin.bias.data.zero_()
        with torch.no_grad():
            self.lin.weight[:, 0].uniform_(-1, 1)                   # strided view on pending
        self.v = nn.Parameter(torch.empty(9, **kw).uniform_(-1, 1))
        self.scale = float(self.v.detach().abs().max())             # a read mid-construction
        self.register_buffer("b", torch.empty(4, **kw).fill_(2.5))
        self.eye = nn.Parameter(torch.empty(6, 4, **kw))
        nn.init.eye_(self.eye)
        self.orth = nn.Parameter(torch.empty(5, 7, **kw))
        if dtype in (torch.float32, torch.float64):
            nn.init.orthogonal_(self.orth)                          # a temporary, QR reads it
        else:
            nn.init.xavier_normal_(self.orth)


def build(ctx, seed=1234, **kw):
    torch.manual_seed(seed)
    with ctx as cap:
        m = Zoo(**kw)
    return m, cap


def assert_same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert_bitwise(sa[k], sb[k])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_fused_equals_one_by_one(dtype):
    ref, _ = build(one_by_one(), dtype=dtype)
    fused, cap = build(paramops.fused_init(), dtype=dtype)
    assert_same_model(fused, ref)
    assert fused.scale == ref.scale
    assert cap.recorded >= 25 and cap.flushes <= 6, (cap.recorded, cap.flushes)  # few launches, not one per call
    # the model's own intent survives
    assert torch.all(fused.emb.weight[3] == 0)
    assert torch.all(fused.w[0] == 5) and torch.equal(fused.w[1], torch.arange(5, dtype=dtype))
    assert torch.all(fused.b == 2.5) and torch.all(fused.bn.running_var == 1)
    assert torch.equal(fused.eye.detach(), torch.eye(6, 4, dtype=dtype))
    assert torch.all(fused.ln.weight == 1) and torch.all(fused.lin.bias == 0)


def test_fused_differs_from_torch_and_writes_everything():
    torch.manual_seed(0)
    plain = Zoo()
    with poisoned_empty():
        assert torch.isnan(torch.empty(3)).all()  # the poison works
        fused, _ = build(paramops.fused_init(), seed=0)
    for k, t in fused.state_dict().items():
        if t.is_floating_point():
            assert not torch.isnan(t).any(), k
    assert not torch.equal(plain.lin.weight, fused.lin.weight)  # paramops drew them


def test_seeds_are_drawn_in_call_order():
    """The generator state after a fused build equals the one after the one-by-one build."""
    build(one_by_one(), seed=5)
    a = torch.randint(0, 1 << 30, (4,))
    build(paramops.fused_init(), seed=5)
    assert torch.equal(a, torch.randint(0, 1 << 30, (4,)))


@pytest.mark.parametrize("reader", ["sum", "item", "numpy", "tolist", "pickle", "clone", "copy_to", "index"])
def test_readers_see_initialized_values(reader):
    def run(ctx):
        torch.manual_seed(3)
        with ctx:
            t = torch.empty(7, 3)
            torch.nn.init.normal_(t, 1.0, 2.0)
            if reader == "sum":
                seen = t.sum()
            elif reader == "item":
                seen = t[1, 2].item()
            elif reader == "numpy":
                seen = torch.from_numpy(t.numpy().copy())
            elif reader == "tolist":
                seen = torch.tensor(t.tolist())
            elif reader == "pickle":
                seen = pickle.loads(pickle.dumps(t))
            elif reader == "clone":
                seen = t.t().clone()
            elif reader == "copy_to":
                seen = torch.zeros(7, 3).copy_(t)
            else:
                seen = t[torch.tensor([0, 6])]
        return seen, t

    (a, ta), (b, tb) = run(one_by_one()), run(paramops.fused_init())
    assert torch.equal(ta, tb)
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def test_overlapping_writes_keep_their_order():
    def run(ctx):
        torch.manual_seed(9)
        with ctx:
            t = torch.empty(10, 6)
            t.normal_()
            t[2:5].fill_(7.0)              # wave 2 on a sub-view
            t[:, 1].uniform_(-3, -2)       # wave 3 crossing it
            t.diagonal().zero_()
            u = torch.empty(4)
            u.uniform_()
            u.normal_()                    # same view: replaces the uniform
        return t, u

    (t1, u1), (t2, u2) = run(one_by_one()), run(paramops.fused_init())
    assert torch.equal(t1, t2) and torch.equal(u1, u2)
    assert torch.all(t2[2:5, 0] == 7) and torch.all(t2[[0] + list(range(2, 10)), 1] < -2) and t2[1, 1] == 0


def test_torch_errors_still_raise_in_fused_mode():
    with paramops.fused_init():
        t = torch.zeros(5)
        with pytest.raises(RuntimeError, match="std"):
            t.normal_(0, -1)
        with pytest.raises(RuntimeError):
            t.uniform_(2, 1)
        i = torch.zeros(4, dtype=torch.int64)
        i.fill_(3)                         # not a paramops dtype: runs as torch
        with pytest.raises(ValueError, match="Fan in and fan out"):
            nn.init.xavier_uniform_(torch.empty(5))
    assert torch.all(t == 0) and torch.all(i == 3)


def test_nested_contexts_and_explicit_flush():
    torch.manual_seed(4)
    with one_by_one():
        a = torch.empty(100).normal_()
        b = torch.empty(50).uniform_()
    torch.manual_seed(4)
    with paramops.fused_init() as outer:
        x = torch.empty(100).normal_()
        with paramops.fused_init() as inner:
            y = torch.empty(50).uniform_()
        inner_pending = inner.pending
        assert outer.pending == 1
        outer.flush()
        assert outer.pending == 0
    assert inner_pending == 0 and torch.equal(a, x) and torch.equal(b, y)


# --------------------------------------------------------------------------- init_module

def d2l_init_normal(m):
    if type(m) is nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def test_init_module_fn_equals_apply():
    net_a, net_b = mlp(), mlp()
    torch.manual_seed(2)
    with one_by_one():
        net_a.apply(d2l_init_normal)
    torch.manual_seed(2)
    assert paramops.init_module(net_b, d2l_init_normal) is net_b
    assert_same_model(net_a, net_b)
    assert torch.all(net_b[0].bias == 0) and abs(float(net_b[0].weight.detach().std()) - 0.01) < 0.005


def test_init_module_reruns_construction_logic():
    torch.manual_seed(8)
    with one_by_one():
        ref = nn.Sequential(nn.Linear(6, 5), nn.Conv1d(2, 3, 3), nn.LayerNorm(5), nn.Embedding(9, 4, padding_idx=0),
                            nn.Transformer(8, 2, 1, 1, 16, dropout=0.0))
    m = nn.Sequential(nn.Linear(6, 5), nn.Conv1d(2, 3, 3), nn.LayerNorm(5), nn.Embedding(9, 4, padding_idx=0),
                      nn.Transformer(8, 2, 1, 1, 16, dropout=0.0))
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float("nan"))
    torch.manual_seed(8)
    paramops.init_module(m)
    # same calls as construction, children first: nn.Transformer's xavier pass comes last
    assert_same_model(m, ref)


def test_init_module_bad_input():
    with pytest.raises(TypeError, match="module"):
        paramops.init_module(torch.zeros(3))
    net = mlp()
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(TypeError, match="fn"):
        paramops.init_module(net, fn=3)
    with pytest.raises(TypeError, match="seed"):
        paramops.init_module(net, seed="7")
    with pytest.raises(TypeError, match="seed"):
        paramops.init_module(net, seed=1.5)
    for p, q in zip(net.parameters(), before):
        assert torch.equal(p, q)
    with pytest.raises(TypeError, match="seed"):
        with paramops.fused_init(seed=[1]):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fused_on_cuda_matches_cpu():
    """Same seeds (torch's CPU generator), same stream: CUDA values equal the CPU ones."""
    def make(device):
        torch.manual_seed(6)
        with paramops.fused_init():
            m = nn.Sequential(nn.Linear(40, 30, device=device), nn.LayerNorm(30, device=device),
                              nn.Embedding(20, 8, padding_idx=1, device=device))
            nn.init.trunc_normal_(m[0].weight, std=0.02)
        return m

    cpu, cuda = make("cpu"), make("cuda")
    for (k, a), b in zip(cpu.state_dict().items(), cuda.state_dict().values()):
        assert_bitwise(b.cpu(), a)
    # both devices pending in one block: one launch per device
    torch.manual_seed(7)
    with paramops.fused_init():
        x, y = torch.empty(100), torch.empty(100, device="cuda")
        x.normal_()
        y.normal_()
    torch.manual_seed(7)
    x2, y2 = paramops.normal_(torch.empty(100)), paramops.normal_(torch.empty(100))
    assert_bitwise(x, x2)
    assert_bitwise(y.cpu(), y2)


# --------------------------------------------------------------------------- keyed

class Named(nn.Module):
    def __init__(self, names, extra=False):
        super().__init__()
        if extra:
            self.extra = nn.Linear(3, 3)
        for n in names:
            setattr(self, n, nn.Sequential(nn.Linear(8, 6), nn.LayerNorm(6), nn.Embedding(5, 6)))


def test_stream_key_golden():
    # docs/keyed.md: BLAKE2b-64 of the UTF-8 name, read little-endian, signed
    assert paramops.stream_key("weight") == -8872040418398604730
    assert paramops.stream_key("h.0.attn.c_attn.weight") == -6432702070292073099
    assert paramops.stream_key("a") != paramops.stream_key("a#1")


def test_keyed_is_order_independent():
    a = Named(["x", "y"])
    b = Named(["y", "x"], extra=True)
    torch.manual_seed(1)
    paramops.init_module(a, seed=77)
    torch.manual_seed(2)  # the torch generator does not matter
    torch.rand(5)
    paramops.init_module(b, seed=77)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        assert_bitwise(sa[k], sb[k])
    c = Named(["x", "y"])
    paramops.init_module(c, seed=78)
    assert not torch.equal(c.x[0].weight, a.x[0].weight)
    assert not torch.equal(a.x[0].weight, a.y[0].weight)  # different names, different streams


def test_keyed_fused_init_equals_init_module():
    with paramops.fused_init(seed=5):
        a = Named(["x", "y"])
    with paramops.fused_init(seed=5):
        b = Named(["y", "x"], extra=True)
    c = Named(["x", "y"])
    paramops.init_module(c, seed=5)
    for k, t in a.state_dict().items():
        assert_bitwise(t, b.state_dict()[k])
        assert_bitwise(t, c.state_dict()[k])


def test_keyed_stream_is_the_documented_one():
    lin = nn.Linear(8, 6)
    paramops.init_module(lin, seed=11)
    w = torch.empty(6, 8)
    bound = 1 / math.sqrt(8) * math.sqrt(3) * math.sqrt(2 / (1 + 5))  # kaiming_uniform_(a=sqrt(5))
    torch.ops.paramops.uniform_(w, -bound, bound, seed=11, stream=paramops.stream_key("weight"))
    assert_bitwise(lin.weight.detach(), w)


def test_keyed_fused_init_refuses_unnamed_read():
    class Peek(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.s = float(self.lin.weight.sum())

    with pytest.raises(RuntimeError, match="name"):
        with paramops.fused_init(seed=1):
            Peek()
    with paramops.fused_init():  # unkeyed: fine
        Peek()


# --------------------------------------------------------------------------- materialize

class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.b.weight = self.a.weight
        self.bn = nn.BatchNorm1d(6)


def test_materialize_equals_init_module_and_keeps_ties():
    with torch.device("meta"):
        meta = Tied()
    m = paramops.materialize(meta, device="cpu", seed=21)
    assert m is meta and m.a.weight.device.type == "cpu"
    assert m.b.weight is m.a.weight
    ref = Tied()
    paramops.init_module(ref, seed=21)
    assert_same_model(m, ref)
    assert torch.all(m.bn.running_var == 1) and int(m.bn.num_batches_tracked) == 0


def test_materialize_reports_unwritten_buffers():
    class Buf(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.register_buffer("table", torch.arange(4.0))  # computed once, never reset

    with torch.device("meta"):
        meta = Buf()
    with pytest.warns(UserWarning, match="table"):
        m = paramops.materialize(meta, "cpu")
    assert torch.isnan(m.table).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.device("meta"):
            ok = Tied()
        paramops.materialize(ok, "cpu")


def test_materialize_bad_input():
    with pytest.raises(TypeError, match="module"):
        paramops.materialize("net")
    with torch.device("meta"):
        meta = Tied()
    with pytest.raises(ValueError, match="device"):
        paramops.materialize(meta, "meta")
    assert meta.a.weight.device.type == "meta"


class _TiedLM(nn.Module):
    def __init__(self, V=2000, d=64):
        super().__init__()
        self.emb = nn.Embedding(V, d, padding_idx=0)
        self.hidden = nn.Linear(d, d)
        self.head = nn.Linear(d, V)
        self.head.weight = self.emb.weight  # tied after construction: the embedding's init is kept


@pytest.mark.parametrize("how", ["materialize", "init_module", "keyed"])
def test_tie_by_assignment_keeps_the_first_holders_init(how):
    """The issue: the head's kaiming_uniform overwrote the tied embedding (std 0.036 instead
    of 1.0, non-zero padding row). The first holder's init (N(0, 1), row 0 zero) is kept; the
    head's bias and the other layers are initialized as usual."""
    torch.manual_seed(0)
    eager = _TiedLM()
    if how == "init_module":
        model = _TiedLM()
        paramops.init_module(model)
    else:
        with torch.device("meta"):
            model = _TiedLM()
        paramops.materialize(model, "cpu", seed=3 if how == "keyed" else None)
    assert model.head.weight is model.emb.weight and isinstance(model.head.weight, nn.Parameter)
    w, e = model.emb.weight.detach(), eager.emb.weight.detach()
    assert torch.equal(w[0], torch.zeros(64))
    n = w[1:].numel()
    assert abs(w[1:].mean()) <= 5 / math.sqrt(n) and abs(w[1:].std() - 1) <= 5 / math.sqrt(2 * n)
    assert abs(w[1:].std() / e[1:].std() - 1) <= 7 / math.sqrt(2 * n)
    bound = 1 / math.sqrt(64)  # the head's bias: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    b = model.head.bias.detach()
    assert b.abs().max() <= bound and b.abs().max() > 0.9 * bound
