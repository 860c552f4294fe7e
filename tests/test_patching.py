"""paramops.patch()/unpatch()/patched(): torch.nn.init and every captured binding of its
functions route through paramops.init, and come back exactly."""
import math
import os
import subprocess
import sys
import types

import pytest
import torch
import torch.nn.init as TI
from torch import nn

import paramops
import paramops.init as PI
from paramops import patching as _patch
from conftest import assert_bitwise, Recorder, require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261128


@pytest.fixture(autouse=True)
def _balanced():
    assert not _patch.is_patched()
    PI.reset_fallback_counts()
    yield
    if _patch.is_patched():  # a failed test must not leak a patch into the others
        paramops.unpatch(force=True)
        pytest.fail("test left torch.nn.init patched")


def _bindings():
    """Every (container, key) -> function that holds one of torch's original init functions."""
    originals = {id(f) for f in _patch.ORIGINALS.values()}
    found = {}
    for name, mod in list(sys.modules.items()):
        d = getattr(mod, "__dict__", None)
        if mod is None or not isinstance(d, dict) or name in ("paramops.init", "paramops.patching"):
            continue
        for k, v in list(d.items()):
            if id(v) in originals:
                found[(name, k)] = v
    hf = sys.modules.get("transformers.initialization")
    if hf is not None:
        for k, v in hf.TORCH_INIT_FUNCTIONS.items():
            found[("TORCH_INIT_FUNCTIONS", k)] = v
    return found


def _lookup(where, key):
    if where == "TORCH_INIT_FUNCTIONS":
        return sys.modules["transformers.initialization"].TORCH_INIT_FUNCTIONS[key]
    return getattr(sys.modules[where], key)


def _is_paramops(fn, name):
    return fn is _patch.REPLACEMENTS[name] and fn.__code__ is getattr(PI, name).__code__


# ----------------------------------------------------------------------------- swapping

def test_patch_swaps_every_binding_and_unpatch_restores_the_same_objects():
    require("transformers.initialization")  # its dict of torch's functions must be covered too
    before = _bindings()
    assert ("torch.nn.init", "kaiming_uniform_") in before
    assert ("torch.nn.modules.activation", "xavier_uniform_") in before
    assert ("torch.nn.modules.activation", "constant_") in before
    assert ("torch.nn.modules.transformer", "xavier_uniform_") in before
    assert ("TORCH_INIT_FUNCTIONS", "trunc_normal_") in before
    with paramops.patched():
        assert _patch.is_patched()
        for (where, key), fn in before.items():
            assert _is_paramops(_lookup(where, key), fn.__name__), (where, key)
        for name in _patch.NAMES:
            assert _is_paramops(getattr(TI, name), name)
        assert TI.calculate_gain is PI.calculate_gain  # pure helpers are left alone
    assert _bindings() == before
    for (where, key), fn in before.items():
        assert _lookup(where, key) is fn


def test_patched_functions_are_paramops_init():
    """Same code, signature and docs as paramops.init's; deliberate paramops imports stay distinct."""
    import inspect
    with paramops.patched():
        for name in _patch.NAMES:
            fn = getattr(TI, name)
            assert inspect.signature(fn) == inspect.signature(getattr(PI, name))
            assert fn.__doc__ == getattr(PI, name).__doc__
            assert fn.__paramops_patch__ is getattr(PI, name)
        assert PI.normal_ is not TI.normal_


def test_nesting_and_reference_counting():
    originals = dict(_patch.ORIGINALS)
    with paramops.patched():
        first = TI.normal_
        with paramops.patched():
            assert TI.normal_ is first
            with paramops.patched():
                pass
            assert TI.normal_ is first
        assert TI.normal_ is first and _patch.is_patched()
    assert TI.normal_ is originals["normal_"] and not _patch.is_patched()

    paramops.patch()
    paramops.patch()
    assert paramops.unpatch() is False and _patch.is_patched()
    assert paramops.unpatch() is True and TI.normal_ is originals["normal_"]
    assert paramops.unpatch() is True  # unbalanced: a no-op
    paramops.patch()
    paramops.patch()
    assert paramops.unpatch(force=True) is True and not _patch.is_patched()
    assert TI.uniform_ is originals["uniform_"]


def test_patched_restores_on_exception():
    with pytest.raises(ZeroDivisionError):
        with paramops.patched():
            with paramops.patched():
                1 / 0
    assert not _patch.is_patched()
    assert TI.kaiming_uniform_ is PI._TORCH["kaiming_uniform_"]
    assert nn.modules.activation.xavier_uniform_ is PI._TORCH["xavier_uniform_"]


def test_bindings_captured_while_patched_are_restored_deliberate_imports_kept():
    mod = types.ModuleType("paramops_test_late_import")
    sys.modules[mod.__name__] = mod
    try:
        with paramops.patched():
            mod.normal_ = TI.normal_  # e.g. `from torch.nn.init import normal_` inside the block
            mod.ours = PI.normal_  # `from paramops.init import normal_`: meant as paramops
            mod.table = {"normal_": TI.normal_}  # not a module attribute: out of reach
        assert mod.normal_ is PI._TORCH["normal_"]
        assert mod.ours is PI.normal_
        assert _is_paramops(mod.table["normal_"], "normal_")
    finally:
        del sys.modules[mod.__name__]


def test_unpatch_leaves_bindings_rebound_by_others():
    with paramops.patched():
        sentinel = lambda *a, **k: None  # noqa: E731
        nn.modules.activation.constant_ = sentinel
    try:
        assert nn.modules.activation.constant_ is sentinel
    finally:
        nn.modules.activation.constant_ = PI._TORCH["constant_"]


def test_transformers_imported_inside_the_block():
    """A module first imported while patched captures the patched functions; unpatch undoes that."""
    require("transformers")
    code = """
import sys, torch, paramops
from paramops import patching as _patch
assert "transformers.initialization" not in sys.modules
with paramops.patched():
    import transformers.initialization as ti
    assert ti.TORCH_INIT_FUNCTIONS["normal_"] is _patch.REPLACEMENTS["normal_"]
assert ti.TORCH_INIT_FUNCTIONS["normal_"] is torch.nn.init.normal_ is paramops.init._TORCH["normal_"]
assert all(f.__module__ == "torch.nn.init" for f in ti.TORCH_INIT_FUNCTIONS.values())
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_transformers_guard_inside_and_outside():
    ti = require("transformers.initialization")
    t = torch.empty(100)
    with ti.guard_torch_init_functions():
        with paramops.patched():
            torch.manual_seed(1)
            TI.normal_(t)  # transformers' guarded wrapper -> its dict -> paramops
    torch.manual_seed(1)
    assert torch.equal(t, PI.normal_(torch.empty(100)))
    with paramops.patched():
        with ti.guard_torch_init_functions():
            torch.manual_seed(2)
            TI.uniform_(t)
        assert _is_paramops(TI.uniform_, "uniform_")
    torch.manual_seed(2)
    assert torch.equal(t, PI.uniform_(torch.empty(100)))
    assert TI.uniform_ is PI._TORCH["uniform_"]
    assert PI.fallback_count() == 0


# ----------------------------------------------------------------------------- torch modules

def _replay(*steps):
    """The values paramops.init gives for a sequence of (function, shape, args) after torch.manual_seed(SEED)."""
    torch.manual_seed(SEED)
    return [fn(torch.empty(shape), *args) for fn, shape, args in steps]


def _build(make, patched=True):
    torch.manual_seed(SEED)
    if not patched:
        return make()
    with paramops.patched():
        return make()


def test_linear_and_conv():
    lin = _build(lambda: nn.Linear(20, 30))
    w, b = _replay((PI.kaiming_uniform_, (30, 20), (math.sqrt(5),)),
                   (PI.uniform_, (30,), (-1 / math.sqrt(20), 1 / math.sqrt(20))))
    assert_bitwise(lin.weight.detach(), w)
    assert_bitwise(lin.bias.detach(), b)
    assert not torch.equal(lin.weight, _build(lambda: nn.Linear(20, 30), patched=False).weight)

    conv = _build(lambda: nn.Conv2d(6, 8, 3, groups=2))
    fan_in = 3 * 3 * 3
    w, b = _replay((PI.kaiming_uniform_, (8, 3, 3, 3), (math.sqrt(5),)),
                   (PI.uniform_, (8,), (-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))))
    assert_bitwise(conv.weight.detach(), w)
    assert_bitwise(conv.bias.detach(), b)

    convt = _build(lambda: nn.ConvTranspose1d(4, 6, 5, bias=False))
    (w,) = _replay((PI.kaiming_uniform_, (4, 6, 5), (math.sqrt(5),)))
    assert_bitwise(convt.weight.detach(), w)
    assert PI.fallback_count() == 0


def test_embedding_with_padding_idx():
    emb = _build(lambda: nn.Embedding(50, 16, padding_idx=3))
    (w,) = _replay((PI.normal_, (50, 16), ()))
    w[3] = 0
    assert_bitwise(emb.weight.detach(), w)
    assert torch.all(emb.weight[3] == 0)


def test_multihead_attention():
    mha = _build(lambda: nn.MultiheadAttention(16, 4, add_bias_kv=True))
    bound = 1 / math.sqrt(16)
    w_out, _, w_in, bias_k, bias_v = _replay(
        (PI.kaiming_uniform_, (16, 16), (math.sqrt(5),)),  # out_proj: a Linear, built first
        (PI.uniform_, (16,), (-bound, bound)),  # its bias, zeroed again below
        (PI.xavier_uniform_, (48, 16), ()),
        (PI.xavier_normal_, (1, 1, 16), ()),
        (PI.xavier_normal_, (1, 1, 16), ()),
    )
    assert_bitwise(mha.out_proj.weight.detach(), w_out)
    assert_bitwise(mha.in_proj_weight.detach(), w_in)
    assert_bitwise(mha.bias_k.detach(), bias_k)
    assert_bitwise(mha.bias_v.detach(), bias_v)
    assert torch.all(mha.in_proj_bias == 0) and torch.all(mha.out_proj.bias == 0)

    kdim = _build(lambda: nn.MultiheadAttention(16, 4, kdim=8, vdim=12, bias=False))
    w_out, wq, wk, wv = _replay((PI.kaiming_uniform_, (16, 16), (math.sqrt(5),)),
                                (PI.xavier_uniform_, (16, 16), ()), (PI.xavier_uniform_, (16, 8), ()),
                                (PI.xavier_uniform_, (16, 12), ()))
    for p, want in [(kdim.out_proj.weight, w_out), (kdim.q_proj_weight, wq), (kdim.k_proj_weight, wk),
                    (kdim.v_proj_weight, wv)]:
        assert_bitwise(p.detach(), want)
    assert PI.fallback_count() == 0


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent(cls):
    rnn = _build(lambda: cls(10, 20, num_layers=2, bidirectional=True))
    stdv = 1 / math.sqrt(20)
    want = _replay(*[(PI.uniform_, tuple(p.shape), (-stdv, stdv)) for p in rnn.parameters()])
    for p, w in zip(rnn.parameters(), want):
        assert_bitwise(p.detach(), w)
    assert PI.fallback_count() == 0


def test_transformer_layer_and_misc_modules_use_paramops_only():
    torch.manual_seed(SEED)
    with paramops.patched(), Recorder() as rec:
        nn.TransformerEncoderLayer(32, 4, dim_feedforward=64)
        nn.Bilinear(4, 5, 6)
        nn.PReLU(3)
        nn.LayerNorm(8)
        nn.BatchNorm2d(4)
    assert len(rec.calls) > 10
    assert PI.fallback_count() == 0


def test_values_differ_from_torch_but_are_reproducible():
    make = lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4))  # noqa: E731
    a, b = _build(make), _build(make)
    c = _build(make, patched=False)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


# ----------------------------------------------------------------------------- transformers

def _gpt2():
    transformers = require("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128)
    return transformers.GPT2LMHeadModel(cfg)


def test_gpt2_builds_through_paramops():
    _gpt2()  # imports and caches transformers' modules outside the counted build
    PI.reset_fallback_counts()
    torch.manual_seed(SEED)
    with paramops.patched(), Recorder() as rec:
        model = _gpt2()
    assert PI.fallback_count() == 0, PI.fallback_counts()
    written = {a.untyped_storage().data_ptr() for _, a in rec.calls}
    params = dict(model.named_parameters())
    for name, p in params.items():
        assert p.untyped_storage().data_ptr() in written, name  # every parameter came from paramops

    reference = _build(_gpt2, patched=False)
    again = _build(_gpt2)
    ref_params = dict(reference.named_parameters())
    for name, p in params.items():
        assert torch.equal(p, dict(again.named_parameters())[name]), name  # reproducible
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            assert torch.all(p == 1), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        else:
            assert not torch.equal(p, ref_params[name]), name  # paramops' values, not torch's
    cfg = model.config
    std = {"wte.weight": 0.02, "wpe.weight": 0.02, "attn.c_attn.weight": 0.02, "mlp.c_fc.weight": 0.02,
           "attn.c_proj.weight": 0.02 / math.sqrt(2 * cfg.n_layer), "mlp.c_proj.weight": 0.02 / math.sqrt(2 * cfg.n_layer)}
    for name, p in params.items():
        for suffix, s in std.items():
            if name.endswith(suffix):
                assert abs(p.std().item() / s - 1) < 0.1, name
    assert TI.normal_ is PI._TORCH["normal_"]
    hf = sys.modules["transformers.initialization"]
    assert hf.TORCH_INIT_FUNCTIONS["normal_"] is PI._TORCH["normal_"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_modules_equal_cpu():
    def make(device):
        return nn.ModuleList([nn.Linear(16, 32, device=device), nn.Conv1d(4, 8, 3, device=device),
                              nn.Embedding(10, 4, padding_idx=0, device=device), nn.LSTM(4, 8, device=device),
                              nn.MultiheadAttention(8, 2, device=device)])

    cpu = _build(lambda: make("cpu"))
    gpu = _build(lambda: make("cuda"))
    torch.manual_seed(SEED)
    with torch.device("cuda"), paramops.patched():
        ctx = make(None)
    for a, b, c in zip(cpu.parameters(), gpu.parameters(), ctx.parameters()):
        assert b.is_cuda and c.is_cuda
        assert_bitwise(b.detach().cpu(), a.detach())
        assert_bitwise(c.detach().cpu(), a.detach())
    assert PI.fallback_count() == 0
