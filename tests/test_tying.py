"""paramops.tie_gradients (paramops/tying.py, docs/tied.md): the gradient of a tensor used
K times is the fused float32 sum of its K uses' gradients, handed to the tensor's normal
AccumulateGrad path (or added to main_grad), under every way a model runs."""
import copy
import math
import os

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import paramops
from conftest import assert_bitwise, require


def d2l_net():
    """D2L 5.2.3: a shared layer used twice."""
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def run(model, x, **tie):
    model.zero_grad(set_to_none=True)
    if tie is None:
        model(x).sum().backward()
    else:
        with paramops.tie_gradients(model, **tie):
            model(x).sum().backward()
    return grads(model)


def plain(model, x):
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    return grads(model)


def test_d2l_shared_net_bitwise_and_still_one_object():
    torch.manual_seed(0)
    net, x = d2l_net(), torch.randn(32, 4)
    want = plain(net, x)
    got = run(net, x)
    assert net[2].weight is net[4].weight and isinstance(net[2].weight, nn.Parameter)
    assert want.keys() == got.keys()
    for n in want:
        assert_bitwise(got[n], want[n])
    assert paramops.tie_gradients(net).groups == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]


class Looped(nn.Module):
    """ALBERT-style: one layer used k times."""

    def __init__(self, layer, k, ckpt=False, detach=()):
        super().__init__()
        self.layer, self.k, self.ckpt, self.detach = layer, k, ckpt, detach

    def forward(self, x):
        for i in range(self.k):
            y = checkpoint(self.layer, x, use_reentrant=False) if self.ckpt else self.layer(x)
            x = torch.tanh(y.detach() if i in self.detach else y)
        return x


class Untied(nn.Module):
    """The same computation with k separate copies: each copy's .grad is one use's contribution."""

    def __init__(self, layer, k):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(k))

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def _loss(out):
    return out.float().square().sum()


def _bf16_ulp(x):
    """The spacing of bfloat16 at |x| (normal range)."""
    e = torch.floor(torch.log2(x.abs().clamp_min(2.0 ** -126)))
    return torch.exp2(e - 7)


@pytest.mark.parametrize("low_memory", [False, True])
def test_albert_style_bf16_layer_used_12_times(low_memory):
    """The fused bf16 .grad against the exact (float64) sum of the 12 per-use bf16 gradients,
    taken from 12 untied copies: correctly rounded on >= 99.9% of elements and within
    max(1 ulp, K 2^-24 sum|g_k|) everywhere; main_grad (float32) within K 2^-24 sum|g_k|.
    Autograd's pairwise bf16 sum is measured on the same check (it fails it)."""
    torch.manual_seed(1)
    k = 12
    layer = nn.Linear(256, 256).bfloat16()
    x = torch.randn(64, 256, dtype=torch.bfloat16)
    untied = Untied(layer, k)
    _loss(untied(x)).backward()
    parts = torch.stack([l.weight.grad.double() for l in untied.layers])
    exact, mag = parts.sum(0), parts.abs().sum(0)
    from paramops.spec import tied as T
    rounded = T.round_to(exact, torch.bfloat16)  # the correctly rounded sum (one rounding from float64)

    model = Looped(layer, k)
    layer.zero_grad(set_to_none=True)
    _loss(model(x)).backward()
    auto = layer.weight.grad.clone()
    layer.zero_grad(set_to_none=True)
    with paramops.tie_gradients(model, params=["layer.weight", "layer.bias"], low_memory=low_memory):
        _loss(model(x)).backward()
    fused = layer.weight.grad.clone()
    assert fused.dtype == torch.bfloat16
    bound = torch.maximum(_bf16_ulp(exact), k * 2.0 ** -24 * mag)
    share = (fused == rounded).double().mean().item()
    auto_share = (auto == rounded).double().mean().item()
    assert share >= 0.999, (share, auto_share)
    assert ((fused.double() - exact).abs() <= bound).all()
    # autograd on the same check: reported, and it is worse
    auto_err = ((auto.double() - exact).abs() / bound).max().item()
    print(f"\nK=12 bf16: correctly rounded {share:.5f} (autograd {auto_share:.5f}); max error / bound "
          f"{((fused.double() - exact).abs() / bound).max().item():.3f} (autograd {auto_err:.3f})")
    assert auto_share < share

    layer.zero_grad(set_to_none=True)
    with paramops.tie_gradients(model, params=["layer.weight"], main_grad=True, low_memory=low_memory):
        _loss(model(x)).backward()
    mg = layer.weight.main_grad
    assert mg.dtype == torch.float32 and layer.weight.grad is None  # .grad left alone
    assert ((mg.double() - exact).abs() <= k * 2.0 ** -24 * mag).all()
    del layer.weight.main_grad


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_every_memory_mode_gives_the_same_bits(dtype):
    """low_memory True (accumulate as they arrive), False (hold all K) and None (the default:
    accumulate for float32/float64, hold 16-bit): the bits of one left-to-right sum of the
    uses in arrival order (the spec's, from untied copies), with a scale, into .grad and
    into main_grad."""
    from paramops.spec import tied as T
    torch.manual_seed(2)
    layer = nn.Linear(64, 64).to(dtype)
    model, x = Looped(layer, 7), torch.randn(8, 64, dtype=dtype)
    untied = Untied(layer, 7)
    _loss(untied(x)).backward()
    parts = [l.weight.grad for l in reversed(untied.layers)]  # backward's arrival order
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    for mg in (False, True):
        for scale in (0.25, 1.0):
            # main_grad starts at zero and is added to; .grad is written
            want = T.tied_sum(parts, torch.zeros(64, 64, dtype=acc if mg else dtype), scale, mg)
            for low in (None, False, True):
                layer.zero_grad(set_to_none=True)
                with paramops.tie_gradients(model, params=["layer.weight"], low_memory=low, main_grad=mg,
                                            scale=scale):
                    _loss(model(x)).backward()
                assert_bitwise(layer.weight.main_grad if mg else layer.weight.grad, want)
                if mg:
                    del layer.weight.main_grad


def test_main_grad_accumulates_over_4_micro_batches():
    """main_grad += the fused sum of each micro-batch, in float32; .grad untouched."""
    torch.manual_seed(3)
    layer = nn.Linear(32, 32).bfloat16()
    model = Looped(layer, 3)
    xs = [torch.randn(4, 32, dtype=torch.bfloat16) for _ in range(4)]
    from paramops.spec import tied as T
    want = torch.zeros(32, 32)
    for x in xs:  # each micro-batch's contributions, from untied copies (same values)
        untied = Untied(layer, 3)
        _loss(untied(x)).backward()
        parts = [l.weight.grad for l in reversed(untied.layers)]  # backward's arrival order
        want = T.tied_sum(parts, want, 1.0, True)
    with paramops.tie_gradients(model, params=["layer.weight"], main_grad=True):
        for x in xs:
            _loss(model(x)).backward()
    assert layer.weight.grad is None
    assert_bitwise(layer.weight.main_grad, want)


def test_forward_twice_then_one_backward_and_two_backwards():
    torch.manual_seed(4)
    net, x = d2l_net(), torch.randn(16, 4)
    net.zero_grad(set_to_none=True)
    (net(x).sum() + net(2 * x).sum()).backward()
    want = grads(net)
    net.zero_grad(set_to_none=True)
    with paramops.tie_gradients(net):
        (net(x).sum() + net(2 * x).sum()).backward()
    got = grads(net)
    for n in want:  # K = 4 in float32: autograd's order differs, so within rounding
        torch.testing.assert_close(got[n], want[n], rtol=1e-6, atol=1e-7)
    # two forwards, two backwards: .grad accumulates across backward calls as usual
    net.zero_grad(set_to_none=True)
    with paramops.tie_gradients(net):
        a, b = net(x).sum(), net(2 * x).sum()
        a.backward()
        first = net[2].weight.grad.clone()
        b.backward()
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()
    assert_bitwise(first, net[2].weight.grad)  # K = 2 per backward: bitwise
    net(2 * x).sum().backward()
    assert_bitwise(net[2].weight.grad, grads(net)["2.weight"])


def test_a_detached_use_counts_nothing_and_loses_nothing():
    torch.manual_seed(5)
    layer = nn.Linear(16, 16)
    model, x = Looped(layer, 3, detach=(1,)), torch.randn(4, 16)
    want = plain(model, x)
    got = run(model, x, params=["layer.weight", "layer.bias"])
    for n in want:  # the detached use's node never runs: two uses reach the weight
        assert_bitwise(got[n], want[n])
    with paramops.tie_gradients(model, params=["layer.weight"]):
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
        model(x).sum().backward()  # nothing left over from the first backward
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    model(x).sum().backward()
    assert_bitwise(layer.weight.grad, model.layer.weight.grad)


def test_checkpoint_does_not_count_the_recomputed_uses():
    torch.manual_seed(6)
    layer = nn.Linear(32, 32).bfloat16()
    x = torch.randn(8, 32, dtype=torch.bfloat16)
    out = []
    for ck in (False, True):
        model = Looped(layer, 5, ckpt=ck)
        layer.zero_grad(set_to_none=True)
        with paramops.tie_gradients(model, params=["layer.weight", "layer.bias"]):
            _loss(model(x)).backward()
        out.append((layer.weight.grad.clone(), layer.bias.grad.clone()))
    assert_bitwise(out[0][0], out[1][0])
    assert_bitwise(out[0][1], out[1][1])


def test_no_grad_and_inference_forwards_are_untouched():
    torch.manual_seed(7)
    net, x = d2l_net(), torch.randn(4, 4)
    with paramops.tie_gradients(net):
        with torch.no_grad():
            y0 = net(x)
        with torch.inference_mode():
            y1 = net(x)
        assert y0.grad_fn is None and torch.equal(y0, y1)
        assert net[2]._parameters["weight"] is net[4].weight and isinstance(net[2].weight, nn.Parameter)
    want = plain(net, x)
    for n, g in run(net, x).items():
        assert_bitwise(g, want[n])


def test_remove_restores_plain_autograd():
    torch.manual_seed(8)
    net, x = d2l_net(), torch.randn(4, 4)
    w = net[2].weight
    before = (dict(net[2]._forward_pre_hooks), dict(net[2]._forward_hooks), w._backward_hooks)
    h = paramops.tie_gradients(net)
    y = net(x)  # built under tie_gradients, backward after removal: plain autograd
    h.remove()
    y.sum().backward()
    g1 = w.grad.clone()
    assert (dict(net[2]._forward_pre_hooks), dict(net[2]._forward_hooks)) == before[:2]
    assert not w._backward_hooks
    assert net[2]._parameters["weight"] is w
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()
    assert_bitwise(g1, w.grad)


def test_post_accumulate_grad_hook_fires_once_per_backward():
    torch.manual_seed(9)
    net, x = d2l_net(), torch.randn(4, 4)
    seen = []
    net[2].weight.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.clone()))
    with paramops.tie_gradients(net):
        net(x).sum().backward()
        net(x).sum().backward()
    assert len(seen) == 2 and torch.equal(seen[1], 2 * seen[0])


class TwoCopies(nn.Module):
    """An embedding-like weight and a head copy kept as separate tensors."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = copy.deepcopy(self.a)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_tied_copies_stay_bitwise_equal_through_5_steps(opt):
    torch.manual_seed(10)
    m = TwoCopies()
    ref = TwoCopies()
    ref.load_state_dict(m.state_dict())
    ref.b.weight, ref.b.bias = ref.a.weight, ref.a.bias  # the same model, truly tied
    make = (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)) if opt == "sgd" else \
        (lambda ps: torch.optim.AdamW(ps, lr=0.01))
    o, oref = make(m.parameters()), make(ref.parameters())
    with paramops.tie_gradients(m, copies=[["a.weight", "b.weight"], ["a.bias", "b.bias"]]):
        for step in range(5):
            x = torch.randn(16, 8)
            for model, optim in ((m, o), (ref, oref)):
                optim.zero_grad()
                model(x).square().sum().backward()
            assert_bitwise(m.a.weight.grad, m.b.weight.grad)
            assert_bitwise(m.a.weight.grad, ref.a.weight.grad)  # K = 2 in float32
            o.step()
            oref.step()
            assert_bitwise(m.a.weight, m.b.weight)
            assert_bitwise(m.a.bias, m.b.bias)
            assert_bitwise(m.a.weight, ref.a.weight)


def test_bad_arguments():
    net = d2l_net()
    cases = [
        (lambda: paramops.tie_gradients(3), TypeError, "module must be a torch.nn.Module, got int"),
        (lambda: paramops.tie_gradients(net, main_grad=1), TypeError, "main_grad must be a bool, got int"),
        (lambda: paramops.tie_gradients(net, scale="1"), TypeError, "scale must be a real number, got str"),
        (lambda: paramops.tie_gradients(net, params="2.weight"), TypeError, "params must be a list or tuple"),
        (lambda: paramops.tie_gradients(net, params=["nope"]), ValueError, "params: 'nope' is not a parameter"),
        (lambda: paramops.tie_gradients(net, copies=[["0.weight"]]), ValueError,
         "each group of copies must list at least two parameter names"),
        (lambda: paramops.tie_gradients(net, copies=[["0.weight", "6.weight"]]), ValueError,
         "the copies '0.weight' and '6.weight' differ in shape or dtype"),
        (lambda: paramops.tie_gradients(net, copies=[["2.weight", "0.weight"]]), ValueError,
         "'2.weight' is in a group of copies and tied as '2.weight'"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match="paramops.tie_gradients: " + msg):
            fn()
    assert not net[2]._forward_pre_hooks and not net[2].weight._backward_hooks


# ------------------------------------------------------------------ transformers GPT-2
def _gpt2(tie, dtype):
    transformers = require("transformers")
    cfg = transformers.GPT2Config(n_layer=1, n_embd=64, n_head=4, vocab_size=500, n_positions=32,
                                  tie_word_embeddings=tie, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
    torch.manual_seed(11)
    return transformers.GPT2LMHeadModel(cfg).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpt2_tied_embedding_and_head(dtype):
    """The tied wte/lm_head weight: the fused sum of its two uses. Its two contributions come
    from the untied model with the same weights (wte.grad and lm_head.grad)."""
    tied, untied = _gpt2(True, dtype), _gpt2(False, dtype)
    untied.load_state_dict(tied.state_dict())
    untied.lm_head.weight = nn.Parameter(tied.transformer.wte.weight.detach().clone())
    ids = torch.randint(0, 500, (2, 16), generator=torch.Generator().manual_seed(0))
    untied(ids, labels=ids).loss.backward()
    parts = [untied.lm_head.weight.grad, untied.transformer.wte.weight.grad]  # backward's arrival order
    auto_model = _gpt2(True, dtype)
    auto_model(ids, labels=ids).loss.backward()
    with paramops.tie_gradients(tied) as h:
        assert h.groups[0] == ["lm_head.weight", "transformer.wte.weight"]
        tied(ids, labels=ids).loss.backward()
    got = tied.transformer.wte.weight.grad
    assert tied.lm_head.weight is tied.transformer.wte.weight
    from paramops.spec import tied as T
    assert_bitwise(got, T.tied_sum(parts, got, 1.0, False))
    auto = auto_model.transformer.wte.weight.grad
    if dtype == torch.float32:
        assert_bitwise(got, auto)  # K = 2 in float32: autograd's sum, bit for bit
    else:
        exact = parts[0].double() + parts[1].double()
        rounded = T.round_to(exact, torch.bfloat16)
        assert (got == rounded).double().mean().item() >= 0.999
        assert ((got.double() - exact).abs() <= torch.maximum(_bf16_ulp(exact), 2 * 2.0 ** -24 *
                                                               (parts[0].double().abs() + parts[1].double().abs()))).all()
    other = {n: p.grad for n, p in auto_model.named_parameters() if "wte" not in n}
    for n, p in tied.named_parameters():
        if "wte" not in n and n in other:
            assert_bitwise(p.grad, other[n])


# ------------------------------------------------------------------ DDP, world size 2 (gloo)
def _ddp_worker(rank, world, port, out):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        res = []
        for tie in (False, True):
            torch.manual_seed(0)
            net = d2l_net()
            ddp = DDP(net)
            x = torch.randn(8, 4, generator=torch.Generator().manual_seed(rank))
            handle = paramops.tie_gradients(ddp) if tie else None
            for _ in range(2):
                ddp(x).sum().backward()
            if handle is not None:
                handle.remove()
            res.append({n: p.grad.clone() for n, p in net.named_parameters()})
        torch.save(res, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_world_size_2_same_gradients(tmp_path):
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    for r in range(2):
        plain_g, tied_g = torch.load(tmp_path / f"rank{r}.pt")
        assert plain_g.keys() == tied_g.keys()
        for n in plain_g:
            assert_bitwise(tied_g[n], plain_g[n])


class DirectUse(nn.Module):
    """The tied weight used once through its holder's call and once read directly."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.head = nn.Linear(8, 20, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        h = torch.tanh(self.emb(ids))
        return self.head(h) + h @ self.emb.weight.t()  # the second use is not a holder's call


@pytest.mark.parametrize("main_grad", [False, True])
def test_a_use_outside_a_holders_call(main_grad):
    torch.manual_seed(12)
    m, ids = DirectUse(), torch.randint(0, 20, (5,))
    m(ids).square().sum().backward()
    want = m.emb.weight.grad.clone()
    m.zero_grad(set_to_none=True)
    with paramops.tie_gradients(m, main_grad=main_grad):
        m(ids).square().sum().backward()
    w = m.emb.weight
    if not main_grad:  # three uses, float32: within rounding of autograd's order
        torch.testing.assert_close(w.grad, want, rtol=1e-6, atol=1e-6)
    else:  # the holders' uses in main_grad, the direct one in .grad: together autograd's sum
        torch.testing.assert_close(w.main_grad + w.grad, want, rtol=1e-6, atol=1e-6)
        assert not torch.equal(w.grad, torch.zeros_like(w.grad))
