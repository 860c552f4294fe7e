"""Real third-party models: transformers GPT-2 and Llama at small configs, built from a
config (no downloads) under the fused mode, under patch(), and materialized from meta."""
import contextlib
import math
import warnings

import pytest
import torch

import paramops
from paramops import capture as _capture
from conftest import assert_bitwise, require

transformers = require("transformers")

SEED = 20261128


def gpt2(n_layer=2):
    cfg = transformers.GPT2Config(n_layer=n_layer, n_embd=64, n_head=4, vocab_size=1000, n_positions=128)
    return transformers.GPT2LMHeadModel(cfg)


def llama(n_layer=2):
    cfg = transformers.LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=n_layer,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                   pad_token_id=0, initializer_range=0.02)
    return transformers.LlamaForCausalLM(cfg)


MODELS = {"gpt2": gpt2, "llama": llama}


@contextlib.contextmanager
def one_by_one():
    with paramops.patched(), _capture.Capture(eager=True) as cap:
        yield cap


def build(make, ctx):
    torch.manual_seed(SEED)
    with ctx:
        return make()


def check_intent(name, model):
    """Every parameter is initialized as the model's own _init_weights intends."""
    cfg = model.config
    for pname, p in model.named_parameters():
        p = p.detach().float()
        assert torch.isfinite(p).all(), pname
        if "ln" in pname or "norm" in pname:
            want = 0.0 if pname.endswith("bias") else 1.0
            assert torch.all(p == want), pname
        elif pname.endswith("bias"):
            assert torch.all(p == 0), pname
        else:
            std = cfg.initializer_range
            if name == "gpt2" and "c_proj" in pname:
                std = std / math.sqrt(2 * cfg.n_layer)  # GPT-2's scaled residual init
            x = p.flatten()
            if name == "llama" and "embed_tokens" in pname:
                assert torch.all(p[cfg.pad_token_id] == 0), "padding row"
                x = torch.cat([p[:cfg.pad_token_id], p[cfg.pad_token_id + 1:]]).flatten()
            n = x.numel()
            # sample std within 6 standard errors (se = std / sqrt(2n)); mean within 6 se
            assert abs(float(x.std()) / std - 1) < 6 / math.sqrt(2 * n), (pname, float(x.std()), std)
            assert abs(float(x.mean())) < 6 * std / math.sqrt(n), pname
    if name == "gpt2":
        assert model.lm_head.weight is model.transformer.wte.weight  # tied by the model


@pytest.mark.parametrize("name", MODELS)
def test_fused_build_equals_one_by_one(name):
    make = MODELS[name]
    ref = build(make, one_by_one())
    before = paramops.init.fallback_count()
    torch.manual_seed(SEED)
    with paramops.fused_init() as cap:
        fused = make()
    assert paramops.init.fallback_count() == before  # every init went through paramops
    sa, sb = ref.state_dict(), fused.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert_bitwise(sb[k], sa[k])
    assert cap.flushes <= 4, cap.flushes
    check_intent(name, fused)


@pytest.mark.parametrize("name", MODELS)
def test_patched_build(name):
    make = MODELS[name]
    torch.manual_seed(SEED)
    plain = make()
    patched = build(make, paramops.patched())
    ref = build(make, one_by_one())
    check_intent(name, patched)
    # transformers 5 initializes through torch.nn.init only, so patch() alone routes
    # every draw through paramops: the one-by-one values exactly
    for k, t in ref.state_dict().items():
        assert_bitwise(patched.state_dict()[k], t)
    w = "transformer.h.0.mlp.c_fc.weight" if name == "gpt2" else "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(plain.state_dict()[w], patched.state_dict()[w])


@pytest.mark.parametrize("name", MODELS)
def test_no_element_left_unwritten(name):
    import torch.utils.deterministic as det
    old = (torch.are_deterministic_algorithms_enabled(), det.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    det.fill_uninitialized_memory = True  # torch.empty now fills NaN
    try:
        model = build(MODELS[name], paramops.fused_init())
    finally:
        torch.use_deterministic_algorithms(old[0])
        det.fill_uninitialized_memory = old[1]
    for k, t in model.state_dict().items():
        if t.is_floating_point():
            assert not torch.isnan(t).any(), k


@pytest.mark.parametrize("name", MODELS)
def test_materialize_from_meta(name):
    make = MODELS[name]
    with torch.device("meta"):
        meta = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left unwritten
        model = paramops.materialize(meta, device="cpu", seed=3)
    check_intent(name, model)
    ref = make()
    paramops.init_module(ref, seed=3)
    for k, t in ref.state_dict().items():
        assert_bitwise(model.state_dict()[k], t)
    x = torch.randint(1, 1000, (2, 9))
    assert torch.isfinite(model(x).logits).all()


def test_keyed_llama_depth_does_not_change_shared_layers():
    a, b = llama(2), llama(3)
    paramops.init_module(a, seed=9)
    paramops.init_module(b, seed=9)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        assert_bitwise(sb[k], sa[k])
    assert "model.layers.2.mlp.up_proj.weight" in sb


# ------------------------------------------------------------------ tied embeddings (docs/tied.md)
def bert_mlm():
    cfg = transformers.BertConfig(vocab_size=2000, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=128, max_position_embeddings=64)
    return transformers.BertForMaskedLM(cfg)


def _close(x, y):
    """Mean and std of two samples of one normal distribution agree: 5 standard errors."""
    n = x.numel()
    assert abs(x.mean() - y.mean()) <= 5 * y.std() / math.sqrt(n)
    assert abs(x.std() / y.std() - 1) <= 5 / math.sqrt(2 * n)


TIED_MODELS = {"bert": (bert_mlm, "bert.embeddings.word_embeddings", "cls.predictions.decoder"),
               "gpt2": (lambda: gpt2(1), "transformer.wte", "lm_head")}


@pytest.mark.parametrize("name", list(TIED_MODELS))
@pytest.mark.parametrize("how", ["materialize", "materialize_keyed", "init_module"])
def test_tied_embedding_gets_the_eager_init(name, how):
    """The issue's bug: materialize re-ran the head's init on the tied embedding (BERT's
    padding row became non-zero). Now the tied weight has the input embedding's init, as in
    the eager build: padding row exactly zero, mean and std as eager's; the tie is kept."""
    make, emb_path, head_path = TIED_MODELS[name]
    eager = build(make, contextlib.nullcontext())
    if how == "init_module":
        model = build(make, contextlib.nullcontext())
        paramops.init_module(model)
    else:
        with torch.device("meta"):
            model = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paramops.materialize(model, "cpu", seed=SEED if how == "materialize_keyed" else None)
    emb, head = model.get_submodule(emb_path), model.get_submodule(head_path)
    assert head.weight is emb.weight
    assert paramops.find_tied(model)[0] == sorted([emb_path + ".weight", head_path + ".weight"])
    w, e = emb.weight.detach(), eager.get_submodule(emb_path).weight.detach()
    pad = emb.padding_idx
    if pad is not None:
        assert torch.equal(w[pad], torch.zeros_like(w[pad])) and torch.equal(e[pad], torch.zeros_like(e[pad]))
        keep = torch.ones(w.shape[0], dtype=torch.bool)
        keep[pad] = False
        w, e = w[keep], e[keep]
    _close(w, e)


def test_tied_keyed_materialize_twice_gives_the_same_bits():
    models = []
    for _ in range(2):
        with torch.device("meta"):
            m = bert_mlm()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models.append(paramops.materialize(m, "cpu", seed=7))
    for (n, a), (_, b) in zip(models[0].state_dict().items(), models[1].state_dict().items()):
        if a.is_floating_point():
            assert_bitwise(a, b)
