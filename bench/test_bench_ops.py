"""Representative benchmarks: each op on 2^20 float32 elements, and the GPT-2
small parameter list, paramops against torch.nn.init (same group = compared
side by side in pytest-benchmark's table). CPU only."""
import pytest
import torch

from paramops.bench import cases as bench

IMPLS = ["paramops", "nn.init"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", list(bench.OPS))
def test_op_2p20_fp32(benchmark, op, impl):
    t = torch.empty(2**20, dtype=torch.float32)
    fn = bench.op_fn(op, impl)
    benchmark.group = f"{op} 2^20 float32"
    benchmark.extra_info.update(numel=t.numel(), bytes=t.numel() * t.element_size())
    benchmark.pedantic(fn, args=(t,), warmup_rounds=2, rounds=20, iterations=1)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("weight_op", ["normal_", "trunc_normal_"])
def test_gpt2_init(benchmark, weight_op, impl):
    params = bench.gpt2_params()
    tensors = [torch.empty(shape, dtype=torch.float32) for _, shape, _, _ in params]
    fn = bench.model_init_fn(params, impl, weight_op)
    benchmark.group = f"gpt2[{len(params)} tensors] float32 weights {weight_op}"
    benchmark.extra_info.update(numel=bench.numel_of(params), tensors=len(params))
    benchmark.pedantic(fn, args=(tensors,), warmup_rounds=1, rounds=3, iterations=1)
