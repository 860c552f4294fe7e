"""Whole-model init benchmarks: the GPT-2 small list (148 float32 tensors) and `tiny`
(10,000 float32 tensors of 64 elements), each initialised every way of
paramops.bench.cases.WAYS (the torch.nn.init loop, the paramops.init loop, the nn.init loop
inside paramops.fused_init(), paramops.init_module, one paramops.multi_init_ call)
and by the fill_ loop (the bandwidth reference). One group per model, so that
pytest-benchmark's table compares the ways side by side. CPU only.

    .venv/bin/python -m pytest bench/test_bench_models.py --benchmark-only

test_ways_agree (not a benchmark; run without --benchmark-only) checks that the paramops
ways write the same bits after the same torch.manual_seed.
"""
import pytest
import torch

from paramops.bench import cases as bench

MODELS = ["gpt2", "tiny"]
# rounds per benchmark: the nn.init loop over GPT-2 takes ~0.5 s on a 2-core VM
ROUNDS = {"gpt2": 5, "tiny": 10}


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    """(name, params, weight_op, tensors): one allocation per model, shared by its ways."""
    name, weight_op, shape = bench.parse_model(request.param)
    params = bench.tiny_params(*shape) if name == "tiny" else bench.gpt2_params()
    tensors = [torch.empty(s, dtype=bench.MODEL_DTYPES[name]) for _, s, _, _ in params]
    return name, params, weight_op, tensors


@pytest.mark.parametrize("way", list(bench.WAYS) + ["fill_"])
def test_model_init(benchmark, model, way):
    name, params, weight_op, tensors = model
    try:
        fn = bench.way_fn(way, params, weight_op, tensors)
        fn()  # the first call, untimed (pedantic's warm-up round would raise the same)
    except (AttributeError, ImportError) as e:  # the API of this way is not there (yet)
        pytest.skip(f"{way}: {type(e).__name__}: {e}")
    label = "tiny[{}x{}]".format(len(params), params[0][1][0]) if name == "tiny" else f"gpt2[{len(params)} tensors]"
    benchmark.group = f"{label} float32 {weight_op} weights"
    benchmark.extra_info.update(way=way, numel=bench.numel_of(params), tensors=len(params),
                                bytes=bench.numel_of(params) * tensors[0].element_size())
    benchmark.pedantic(fn, warmup_rounds=1, rounds=ROUNDS[name], iterations=1)


def test_ways_agree(model):
    """The paramops ways write the paramops.init loop's bits (same torch.manual_seed)."""
    _, params, weight_op, tensors = model
    res = bench.check_ways(params, weight_op, tensors)
    api_missing = ("AttributeError", "ImportError", "ModuleNotFoundError")
    missing = {w: v for w, v in res.items() if v.startswith("error: ") and v[7:].startswith(api_missing)}
    bad = {w: v for w, v in res.items() if not v.startswith("ok") and w not in missing}
    assert not bad, bad
    if missing:
        pytest.skip(f"API not available: {missing}")
